/**
 * Queue-group membership follows readiness (DESIGN D5, issue 9 §1): a replica that cannot decide
 * stays out of the queue group, so no valid login is refused while another replica can decide —
 * neither when a replica starts during an apiserver outage nor in a rolling restart.
 */
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { loadConfig } from "../../lib/config/config.ts";
import { createLogger } from "../../lib/telemetry/log.ts";
import { serveCallout } from "../../lib/nats/callout_subscription.ts";
import { connectNats } from "../../lib/nats/connection.ts";
import { type Service, startService } from "../../lib/service/service.ts";
import { createServiceMetrics } from "../../lib/telemetry/service_metrics.ts";
import { LoginLoad } from "../support/login_load.ts";
import { authCalloutConfig, NatsServer, tolerateClientResets } from "../support/nats_server.ts";
import { KubeApiServer } from "../support/kube_apiserver.ts";
import { accountKey, KeyDir } from "../support/nkeys.ts";
import { TcpProxy } from "../support/tcp_proxy.ts";
import { waitFor } from "../support/wait.ts";

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

Deno.test("two replicas, real kube-apiserver: a start during an apiserver outage and a rolling restart refuse no valid login", async () => {
  await using dir = await KeyDir.create();
  const account = accountKey();
  const { config, service: serviceUser } = authCalloutConfig({
    issuer: account.publicKey,
    timeoutSeconds: 5,
  });
  await using ns = await NatsServer.start({ config });
  await using kube = await KubeApiServer.start();
  await kube.createNamespace("team-a");
  await kube.createServiceAccount("team-a", "orders");
  const token = await kube.token("team-a", "orders");

  // Replica B reaches the apiserver (list, watch, discovery, JWKS) only through a proxy that
  // starts blocked: an outage as the network shows it.
  const api = new URL(kube.url);
  await using proxy = TcpProxy.start(
    { hostname: api.hostname, port: Number(api.port) },
    { blocked: true },
  );
  const direct = await kube.writeKubeconfig("direct", { clientCert: true });
  const viaProxy = `${dir.path}/via-proxy.kubeconfig`;
  await Deno.writeTextFile(
    viaProxy,
    (await Deno.readTextFile(direct)).replaceAll(kube.url, `https://127.0.0.1:${proxy.port}`),
  );
  const env = {
    K8S_IN_CLUSTER: "false",
    KUBECONFIG: direct,
    NATS_URL: `nats://${serviceUser.user}:${serviceUser.password}@127.0.0.1:${ns.port}`,
    NATS_ACCOUNT: "APP",
    NATS_SIGNING_KEY_FILE: await dir.write("account.seed", account.seed),
  };
  const envB = { ...env, KUBECONFIG: viaProxy };

  const replicas: Replica[] = [];
  const a = await startReplica(env);
  replicas.push(a);
  await waitFor(() => a.service.ready, { timeoutMs: 30_000, what: "A ready" });
  await waitFor(async () => {
    const nc = await connect({ servers: ns.url, token, reconnect: false }).catch(() => undefined);
    await nc?.close();
    return nc !== undefined;
  }, { timeoutMs: 10_000, what: "first login" });

  const load = LoginLoad.start(ns.url, () => token, { workers: 4 });
  try {
    // B starts while its apiserver is unreachable: connected to NATS, but not in the group.
    const b = await startReplica(envB);
    replicas.push(b);
    const seen = load.attempts;
    await waitFor(() => load.attempts >= seen + 100, { timeoutMs: 30_000, what: "100 logins" });
    assert.equal(b.service.ready, false);
    assert.equal(allowed(b.service) + refusedByService(b.service), 0, "B took no request");
    proxy.blocked = false;
    await waitFor(() => b.service.ready, { timeoutMs: 30_000, what: "B ready" });
    await waitFor(() => allowed(b.service) > 0, { timeoutMs: 20_000, what: "B serves logins" });

    // Rolling restart: A goes, A' comes; then B goes, B' comes (the chart's RollingUpdate).
    await a.service.close();
    const a2 = await startReplica(env);
    replicas.push(a2);
    await waitFor(() => a2.service.ready, { timeoutMs: 30_000, what: "A' ready" });
    await b.service.close();
    const b2 = await startReplica(envB);
    replicas.push(b2);
    await waitFor(() => b2.service.ready, { timeoutMs: 30_000, what: "B' ready" });
    await waitFor(() => allowed(b2.service) > 0 && allowed(a2.service) > 0, {
      timeoutMs: 20_000,
      what: "both new replicas serve logins",
    });
    const joined = b.logs.filter((l) => l.event === "callout_joined").length;
    assert.equal(joined, 1, "B joined once, when it could decide");
  } finally {
    const counts = await load.stop();
    for (const r of replicas) await r.service.close();
    assert.equal(counts.refused, 0, `valid logins refused: ${JSON.stringify(counts)}`);
    assert.deepEqual(counts.other, {}, JSON.stringify(counts));
    assert.ok(counts.ok > 50, JSON.stringify(counts));
  }
});
