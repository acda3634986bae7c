/**
 * Issue 17 §5: what the server refuses after the service allowed it. An account connection limit
 * on a real nats-server (`limits { max_connections: 1 }`), real clients with valid tokens.
 *
 * Before: the service logged `login_allowed` for the second pod and nothing else; nats-server
 * refused it ("maximum account active connections exceeded", then its auth error event) and the
 * client's connection was closed. No metric showed logins allowed that never became connections.
 */
import assert from "node:assert/strict";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { loadConfig } from "../../lib/config/config.ts";
import { startService } from "../../lib/service/service.ts";
import { createLogger } from "../../lib/telemetry/log.ts";
import { KubeApiServer } from "../support/kube_apiserver.ts";
import { NatsCluster } from "../support/nats_cluster.ts";
import { authCalloutConfig, tolerateClientResets } from "../support/nats_server.ts";
import { accountKey, KeyDir } from "../support/nkeys.ts";
import { Stack } from "../support/stack.ts";
import { waitFor } from "../support/wait.ts";

tolerateClientResets();

const ONE_CONNECTION = { APP: { limits: { max_connections: 1 } } };

Deno.test("account connection limit: the login the service allowed and the server refused is logged and counted, once; refusals of its own are not", async () => {
  await using stack = await Stack.start({ accounts: ONE_CONNECTION });
  stack.addServiceAccount("team-a", "orders");
  stack.addServiceAccount("team-a", "billing");
  const first = await stack.connect(await stack.token("team-a", "orders"));
  const second = await stack.connect(await stack.token("team-a", "billing")).then(
    () => "connected",
    (err: unknown) => String(err),
  );
  assert.notEqual(second, "connected", "the account is full");
  // The service's own refusal (a token of another cluster's key) is no refusal by the server.
  await assert.rejects(stack.connect(await stack.token("team-a", "gone")));

  const refused = await waitFor(
    () => stack.logs.find((l) => l.event === "login_refused_by_server"),
    { timeoutMs: 5000, what: "login_refused_by_server" },
  );
  const allowed = stack.logs.filter((l) => l.event === "login_allowed");
  assert.equal(allowed.length, 2, "the service allowed both");
  assert.equal(refused.level, "warn");
  assert.equal(refused.serviceaccount, "billing");
  assert.equal(refused.client_cid, allowed[1]!.client_cid);
  assert.equal(refused.user, "system:serviceaccount:team-a:billing");
  assert.equal(refused.reason, "account_connections_exceeded");
  assert.match(
    String(refused.server_reason),
    /^Could not register auth callout user: maximum account active connections exceeded$/,
  );
  assert.match(String(refused.message), /the client is not connected/);
  const text = await (await stack.service.handler(new Request("http://x/metrics"))).text();
  assert.match(
    text,
    /^nats_auth_logins_refused_by_server_total\{reason="account_connections_exceeded"\} 1$/m,
  );
  assert.doesNotMatch(text, /^nats_auth_logins_refused_by_server_total\{reason="other"\}/m);
  // The first pod is still connected and was never counted.
  assert.equal(first.isClosed(), false);
  assert.match(stack.nats.log, /maximum account active connections exceeded/);
});

Deno.test("3-server cluster: a login refused by another server than the service's is counted there too", async () => {
  await using dir = await KeyDir.create();
  const account = accountKey();
  const { config, service: serviceUser, system } = authCalloutConfig({
    issuer: account.publicKey,
    timeoutSeconds: 5,
    accounts: ONE_CONNECTION,
  });
  await using cluster = await NatsCluster.start({ config, probeUser: system });
  const [n1, n2] = cluster.servers as [NatsCluster["servers"][0], NatsCluster["servers"][0]];
  await using kube = await KubeApiServer.start();
  await kube.createNamespace("team-a");
  const env = {
    K8S_IN_CLUSTER: "false",
    KUBECONFIG: await kube.writeKubeconfig("service", { clientCert: true }),
    NATS_URL: `nats://${serviceUser.user}:${serviceUser.password}@127.0.0.1:${n1.port}`,
    NATS_ACCOUNT: "APP",
    NATS_SIGNING_KEY_FILE: await dir.write("account.seed", account.seed),
  };
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({ level: "info", write: (l) => logs.push(JSON.parse(l)) });
  await using service = await startService({ config: loadConfig(env), logger });
  await waitFor(() => service.ready, { timeoutMs: 30_000, what: "service ready" });

  const clients: NatsConnection[] = [];
  try {
    await kube.createServiceAccount("team-a", "orders");
    const token = await kube.token("team-a", "orders");
    const login = () => connect({ servers: n2.url, token, reconnect: false, timeout: 5000 });
    // The first login waits for the cache to have seen the new ServiceAccount.
    clients.push(await waitFor(() => login().catch(() => undefined), { what: "orders on n2" }));
    await assert.rejects(login());
    const refused = await waitFor(
      () => logs.find((l) => l.event === "login_refused_by_server"),
      { timeoutMs: 5000, what: "login_refused_by_server from n2" },
    );
    assert.equal(refused.server, "n2");
    assert.equal(
      service.metrics.refusedByServer.value({ reason: "account_connections_exceeded" }),
      1,
    );
  } finally {
    for (const nc of clients) await nc.close().catch(() => {});
  }
});

Deno.test("a service user that may not subscribe to the auth error events: one warning, no error, logins go on", async () => {
  // Found by trying to break issue 17: the same refusal was also logged as an error-level
  // nats_error, which pages someone for an optional feature.
  await using stack = await Stack.start({
    servicePermissions: {
      publish: { allow: [">"] },
      subscribe: { allow: ["$SYS.REQ.USER.AUTH", "_INBOX.>"] },
    },
  });
  stack.addServiceAccount("team-a", "orders");
  const nc = await stack.connect(await stack.token("team-a", "orders"));
  await nc.close();
  const unobserved = await waitFor(
    () => stack.logs.find((l) => l.event === "server_refusals_unobserved"),
    { timeoutMs: 5000, what: "server_refusals_unobserved" },
  );
  assert.equal(unobserved.level, "warn");
  assert.match(
    String(unobserved.message),
    /may not subscribe to \$SYS\.ACCOUNT\.CLIENT\.AUTH\.ERR/,
  );
  assert.deepEqual(
    stack.logs.filter((l) => l.level === "error").map((l) => l.event),
    [],
    "nothing at error level",
  );
  assert.equal(stack.logs.filter((l) => l.event === "server_refusals_unobserved").length, 1);
  assert.ok(stack.logs.some((l) => l.event === "login_allowed"), "logins go on");
});
