/**
 * Queue-group membership follows readiness (DESIGN D5, issue 9 §1): a replica that cannot decide
 * stays out of the queue group, so no valid login is refused while another replica can decide —
 * neither when a replica starts during an apiserver outage nor in a rolling restart.
 */
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { loadConfig } from "../lib/config.ts";
import { createLogger } from "../lib/log.ts";
import { connectNats, serveCallout } from "../lib/nats.ts";
import { type Service, startService } from "../lib/service.ts";
import { createServiceMetrics } from "../lib/service_metrics.ts";
import { LoginLoad } from "./support/login_load.ts";
import { authCalloutConfig, NatsServer, tolerateClientResets } from "./support/nats_server.ts";
import { accountKey } from "./support/nkeys.ts";
import { Stack } from "./support/stack.ts";
import { TcpProxy } from "./support/tcp_proxy.ts";
import { waitFor } from "./support/wait.ts";

tolerateClientResets();

interface Replica {
  readonly service: Service;
  readonly logs: Record<string, unknown>[];
}

async function startReplica(env: Record<string, string>): Promise<Replica> {
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({ level: "debug", write: (l) => logs.push(JSON.parse(l)) });
  const service = await startService({ config: loadConfig(env), logger });
  return { service, logs };
}

function allowed(service: Service): number {
  const text = service.metrics.registry.render();
  const m = /nats_auth_requests_total\{reason="",result="allowed"\} (\d+)/.exec(text);
  return m ? Number(m[1]) : 0;
}

function refusedByService(service: Service): number {
  const text = service.metrics.registry.render();
  let n = 0;
  for (const m of text.matchAll(/nats_auth_requests_total\{[^}]*result="denied"[^}]*\} (\d+)/g)) {
    n += Number(m[1]);
  }
  return n;
}

Deno.test("a replica outside the queue group gets no request; the client sees the server's timeout", async () => {
  const account = accountKey();
  const { config, service: user } = authCalloutConfig({
    issuer: account.publicKey,
    timeoutSeconds: 1,
  });
  await using ns = await NatsServer.start({ config });
  const logs: string[] = [];
  const logger = createLogger({ level: "debug", write: (l) => logs.push(l) });
  const nc = await connectNats({
    servers: [`nats://${user.user}:${user.password}@127.0.0.1:${ns.port}`],
    name: "membership-test",
    logger,
    metrics: createServiceMetrics(),
  });
  let failing: string[] = ["serviceaccounts"];
  let calls = 0;
  const svc = serveCallout(nc, () => {
    calls++;
    return Promise.resolve(undefined);
  }, { queue: "q", logger, canDecide: () => failing, checkIntervalMs: 20 });
  try {
    assert.equal(svc.member, false);
    const started = performance.now();
    await assert.rejects(
      connect({ servers: ns.url, token: "t", reconnect: false, timeout: 5000 }),
      /Authorization Violation/i,
    );
    assert.ok(performance.now() - started >= 900, "refused by the server's auth timeout");
    assert.equal(calls, 0, "no request reached the replica that cannot decide");

    failing = [];
    await waitFor(() => svc.ready, { what: "joined the queue group" });
    await assert.rejects(
      connect({ servers: ns.url, token: "t", reconnect: false, timeout: 5000 }),
      /Authorization Violation/i,
    );
    assert.equal(calls, 1, "a member gets the request");

    failing = ["keys", "serviceaccounts"];
    await waitFor(() => !svc.member, { what: "left the queue group" });
    assert.equal(svc.ready, false);
    const events = logs.map((l) => JSON.parse(l));
    assert.ok(events.some((e) => e.event === "callout_joined"));
    const left = events.find((e) => e.event === "callout_left");
    assert.deepEqual(left?.failing, ["keys", "serviceaccounts"]);
  } finally {
    await svc.stop();
    await nc.close();
  }
});

Deno.test("leaving drains: a request delivered before the leave is still answered", async () => {
  await using ns = await NatsServer.start();
  const logger = createLogger({ level: "error", write: () => {} });
  const nc = await connectNats({
    servers: [ns.url],
    name: "membership-test",
    logger,
    metrics: createServiceMetrics(),
  });
  const client = await connect({ servers: ns.url });
  let failing: string[] = [];
  const release = Promise.withResolvers<void>();
  const entered = Promise.withResolvers<void>();
  const svc = serveCallout(nc, async (data) => {
    entered.resolve();
    await release.promise;
    return data;
  }, { subject: "test.auth", queue: "q", logger, canDecide: () => failing, checkIntervalMs: 20 });
  try {
    await waitFor(() => svc.ready, { what: "member" });
    const reply = client.request("test.auth", "hello", { timeout: 5000 });
    await entered.promise;
    failing = ["serviceaccounts"];
    await waitFor(() => !svc.member, { what: "left" });
    release.resolve();
    assert.equal(new TextDecoder().decode((await reply).data), "hello");
  } finally {
    await svc.stop();
    await client.close();
    await nc.close();
  }
});

Deno.test("two replicas: a start during an apiserver outage and a rolling restart refuse no valid login", async () => {
  await using stack = await Stack.start({ captureLogs: false });
  stack.addServiceAccount("team-a", "orders");
  const token = await stack.token("team-a", "orders");
  await waitFor(
    () => stack.connect(token).then((nc) => nc.close().then(() => true), () => false),
    { what: "first login" },
  );

  const apiUrl = new URL(stack.api.url);
  await using proxy = TcpProxy.start(
    { hostname: apiUrl.hostname, port: Number(apiUrl.port) },
    { blocked: true },
  );
  const proxyUrl = `http://127.0.0.1:${proxy.port}`;
  const kubeconfig = `${Deno.makeTempDirSync()}/kubeconfig`;
  Deno.writeTextFileSync(
    kubeconfig,
    stack.api.kubeConfig().exportConfig().replaceAll(stack.api.url, proxyUrl),
  );
  const viaProxy = { ...stack.env, KUBECONFIG: kubeconfig, JWKS_URL: `${proxyUrl}/openid/v1/jwks` };

  const load = LoginLoad.start(stack.nats.url, () => token, { workers: 4 });
  const replicas: Replica[] = [];
  try {
    // B starts while its apiserver is unreachable: connected to NATS, but not in the group.
    const b = await startReplica(viaProxy);
    replicas.push(b);
    const seen = load.attempts;
    await waitFor(() => load.attempts >= seen + 100, { timeoutMs: 30_000, what: "100 logins" });
    assert.equal(b.service.ready, false);
    assert.equal(allowed(b.service) + refusedByService(b.service), 0, "B took no request");
    proxy.blocked = false;
    await waitFor(() => b.service.ready, { timeoutMs: 20_000, what: "B ready" });
    await waitFor(() => allowed(b.service) > 0, { timeoutMs: 20_000, what: "B serves logins" });

    // Rolling restart: A goes, A' comes; then B goes, B' comes (the chart's RollingUpdate).
    await stack.service.close();
    const a2 = await startReplica(stack.env);
    replicas.push(a2);
    await waitFor(() => a2.service.ready, { timeoutMs: 20_000, what: "A' ready" });
    await b.service.close();
    const b2 = await startReplica(viaProxy);
    replicas.push(b2);
    await waitFor(() => b2.service.ready, { timeoutMs: 20_000, what: "B' ready" });
    await waitFor(() => allowed(b2.service) > 0 && allowed(a2.service) > 0, {
      timeoutMs: 20_000,
      what: "both new replicas serve logins",
    });
    const joined = b.logs.filter((l) => l.event === "callout_joined").length;
    assert.equal(joined, 1, "B joined once, when it could decide");
    assert.ok(b.logs.some((l) => l.event === "callout_waiting"), "B said why it waited");
  } finally {
    const counts = await load.stop();
    for (const r of replicas) await r.service.close();
    assert.equal(counts.refused, 0, `valid logins refused: ${JSON.stringify(counts)}`);
    assert.deepEqual(counts.other, {}, JSON.stringify(counts));
    assert.ok(counts.ok > 50, JSON.stringify(counts));
  }
});
