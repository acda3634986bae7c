/**
 * Live revocation (issue 9 §4, DESIGN D6): the pure kick rule, and the whole loop against a real
 * 3-server nats-server cluster and the real kube-apiserver — the client on another server than the service; a deleted
 * ServiceAccount closes its connection within 2 s and its reconnect is refused; narrowed
 * annotations close it and the reconnect gets the narrower permissions; an unrelated client is
 * untouched.
 */
import assert from "node:assert/strict";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { loadConfig } from "../../lib/config/config.ts";
import { createLogger } from "../../lib/telemetry/log.ts";
import type { Permissions, ServiceAccountRecord } from "../../lib/core/model.ts";
import {
  type ApprovedConnection,
  kicksFor,
  startRevocation,
  tokenFacts,
} from "../../lib/nats/revocation.ts";
import { createServiceMetrics } from "../../lib/telemetry/service_metrics.ts";
import { createChangeFeed } from "../../lib/core/changes.ts";
import { startService } from "../../lib/service/service.ts";
import { NatsCluster } from "../support/nats_cluster.ts";
import { authCalloutConfig, tolerateClientResets } from "../support/nats_server.ts";
import { accountKey, KeyDir } from "../support/nkeys.ts";
import { errorsOf, publishRefused } from "../support/permissions.ts";
import { generateSigningKey, ISSUER, mintServiceAccountToken } from "../support/sa_tokens.ts";
import { KubeApiServer } from "../support/kube_apiserver.ts";
import { OperatorStack } from "../support/operator_stack.ts";
import { Stack } from "../support/stack.ts";
import { droppable, revocationServer } from "../support/revocation.ts";
import { waitFor } from "../support/wait.ts";

tolerateClientResets();

/**
 * The kick was counted exactly once. The server closes the client before the service has its
 * reply to the kick request, and the service counts a kick on that reply, so a client seeing its
 * close can run ahead of the count.
 */
async function kickCounted(count: () => number): Promise<void> {
  await waitFor(() => count() > 0, { what: "the kick counted" });
  assert.equal(count(), 1);
}

const PERMS: Permissions = {
  pub: { allow: ["team-a.>"] },
  sub: { allow: ["_INBOX.>"] },
  resp: { max: 1, ttlNs: 0 },
};

function approved(overrides: Partial<ApprovedConnection> = {}): ApprovedConnection {
  return {
    serverId: "NSERVER1",
    cid: 7,
    namespace: "team-a",
    serviceAccount: "orders",
    uid: "uid-1",
    permissions: PERMS,
    expiresAt: 2_000_000_000,
    ...overrides,
  };
}

const ORDERS: ServiceAccountRecord = {
  namespace: "team-a",
  name: "orders",
  uid: "uid-1",
  annotations: {},
};

Deno.test("kicksFor: one reason per connection, nothing when nothing changed", () => {
  const lookups = {
    serviceAccount: (ns: string, name: string) =>
      ns === "team-a" && name === "orders" ? ORDERS : undefined,
    permissionsOf: () => PERMS,
  };
  assert.deepEqual(kicksFor([approved()], lookups), []);

  const reasons = (c: ApprovedConnection, l: Parameters<typeof kicksFor>[1] = lookups) =>
    kicksFor([c], l).map((k) => k.reason);
  assert.deepEqual(reasons(approved({ serviceAccount: "gone" })), ["serviceaccount_deleted"]);
  assert.deepEqual(reasons(approved({ uid: "uid-0" })), ["serviceaccount_recreated"]);
  assert.deepEqual(
    reasons(approved(), {
      ...lookups,
      permissionsOf: () => ({ ...PERMS, pub: { allow: ["team-a.x"] } }),
    }),
    ["permissions_changed"],
  );
  assert.deepEqual(reasons(approved(), { ...lookups, permissionsOf: () => undefined }), [
    "permissions_changed",
  ]);

  // A policy that now places the namespace in another account changes the grant too.
  const placed = approved({ account: "TEAM_A" });
  assert.deepEqual(reasons(placed, { ...lookups, accountOf: () => "TEAM_A" }), []);
  assert.deepEqual(reasons(placed, { ...lookups, accountOf: () => "TEAM_B" }), [
    "permissions_changed",
  ]);

  const bound = approved({ podName: "web-1", podUid: "pod-1" });
  const pods = new Map([["team-a/web-1", { namespace: "team-a", name: "web-1", uid: "pod-1" }]]);
  const withPods = { ...lookups, pod: (ns: string, n: string) => pods.get(`${ns}/${n}`) };
  assert.deepEqual(reasons(bound, withPods), []);
  assert.deepEqual(reasons(approved({ podName: "web-2", podUid: "pod-2" }), withPods), [
    "pod_gone",
  ]);
  assert.deepEqual(reasons(approved({ podName: "web-1", podUid: "pod-0" }), withPods), [
    "pod_gone",
  ]);
  assert.deepEqual(reasons(approved({ podName: "web-2" }), lookups), [], "no Pod lookup: no check");

  const keyed = approved({ kid: "k1", alg: "RS256" });
  assert.deepEqual(reasons(keyed, { ...lookups, keyPresent: (kid) => kid === "k1" }), []);
  assert.deepEqual(reasons(keyed, { ...lookups, keyPresent: () => false }), [
    "signing_key_removed",
  ]);
  assert.deepEqual(reasons(approved(), { ...lookups, keyPresent: () => false }), [], "no kid");

  // Several connections: only the changed ones, in order.
  const kicks = kicksFor(
    [approved({ cid: 1 }), approved({ cid: 2, uid: "old" }), approved({ cid: 3 })],
    lookups,
  );
  assert.deepEqual(kicks.map((k) => [k.connection.cid, k.reason]), [
    [2, "serviceaccount_recreated"],
  ]);
});

Deno.test("tokenFacts reads the ServiceAccount, Pod and key of a token", async () => {
  const key = await generateSigningKey("RS256");
  const token = await mintServiceAccountToken({
    key,
    issuer: ISSUER,
    namespace: "team-a",
    serviceAccount: "orders",
    uid: "uid-1",
    pod: { name: "web-1", uid: "pod-1" },
  });
  assert.deepEqual(tokenFacts(token), {
    namespace: "team-a",
    serviceAccount: "orders",
    uid: "uid-1",
    podName: "web-1",
    podUid: "pod-1",
    kid: key.kid,
    alg: "RS256",
  });
  assert.equal(tokenFacts("not.a.token"), undefined);
});

function metric(text: string, pattern: RegExp): number {
  const m = pattern.exec(text);
  return m ? Number(m[1]) : 0;
}

Deno.test("3-server cluster: deletion and narrowed annotations close the client's connection on another server; others untouched", async () => {
  await using dir = await KeyDir.create();
  const account = accountKey();
  const { config, service: serviceUser, system } = authCalloutConfig({
    issuer: account.publicKey,
    timeoutSeconds: 5,
  });
  await using cluster = await NatsCluster.start({ config, probeUser: system });
  const [n1, n2, n3] = cluster.servers as [
    (typeof cluster.servers)[0],
    (typeof cluster.servers)[0],
    (typeof cluster.servers)[0],
  ];
  await using kube = await KubeApiServer.start();
  for (const ns of ["team-a", "team-b", "team-c"]) await kube.createNamespace(ns);
  const env = {
    K8S_IN_CLUSTER: "false",
    KUBECONFIG: await kube.writeKubeconfig("service", { clientCert: true }),
    NATS_URL: `nats://${serviceUser.user}:${serviceUser.password}@127.0.0.1:${n1.port}`,
    NATS_ACCOUNT: "APP",
    NATS_SIGNING_KEY_FILE: await dir.write("account.seed", account.seed),
    NATS_SYSTEM_USER: system.user,
    NATS_SYSTEM_PASSWORD: system.password,
  };
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({ level: "debug", write: (l) => logs.push(JSON.parse(l)) });
  await using service = await startService({ config: loadConfig(env), logger });
  await waitFor(() => service.ready, { timeoutMs: 30_000, what: "service ready" });

  const clients: NatsConnection[] = [];
  const login = async (url: string, t: string) => {
    const nc = await connect({ servers: url, token: t, reconnect: false, timeout: 5000 });
    clients.push(nc);
    return nc;
  };
  try {
    await kube.createServiceAccount("team-a", "orders");
    await kube.createServiceAccount("team-b", "billing");
    await kube.createServiceAccount("team-c", "reports", {
      "nats.io/allowed-pub-subjects": "shared.>",
    });
    const ordersToken = await kube.token("team-a", "orders");
    const reportsToken = await kube.token("team-c", "reports");
    const billingToken = await kube.token("team-b", "billing");

    // The first login of each waits for the cache to have seen the new ServiceAccounts.
    const victim = await waitFor(() => login(n2.url, ordersToken).catch(() => undefined), {
      what: "orders logs in on n2",
    });
    const bystander = await waitFor(() => login(n3.url, billingToken).catch(() => undefined), {
      what: "billing logs in on n3",
    });
    const narrowed = await waitFor(() => login(n2.url, reportsToken).catch(() => undefined), {
      what: "reports logs in on n2",
    });
    const narrowedErrors = errorsOf(narrowed);
    narrowed.publish("shared.x");
    await narrowed.flush();
    assert.deepEqual(narrowedErrors, [], "shared.> is granted at first");
    await waitFor(
      () => metric(service.metrics.registry.render(), /^nats_auth_live_connections (\d+)/m) === 3,
      { what: "three live connections remembered" },
    );

    // SA deleted: the connection on n2 is closed within 2 s; its reconnect is refused.
    const victimClosed = victim.closed();
    const deletedAt = performance.now();
    await kube.deleteServiceAccount("team-a", "orders");
    await waitFor(() => victim.isClosed(), { timeoutMs: 5000, what: "victim kicked" });
    const kickMs = performance.now() - deletedAt;
    assert.ok(kickMs < 2000, `closed ${Math.round(kickMs)} ms after the deletion`);
    await victimClosed;
    await assert.rejects(login(n2.url, ordersToken), /Authorization Violation/i);

    // Annotation narrowed: closed, and the reconnect gets the narrower permissions.
    await kube.annotateServiceAccount("team-c", "reports", {
      "nats.io/allowed-pub-subjects": null,
    });
    await waitFor(() => narrowed.isClosed(), { timeoutMs: 5000, what: "narrowed kicked" });
    const again = await waitFor(() => login(n2.url, reportsToken).catch(() => undefined), {
      what: "reports logs in again",
    });
    assert.match(await publishRefused(again, "shared.x"), /Permissions Violation/i);

    // The unrelated client is untouched.
    assert.equal(bystander.isClosed(), false);
    await bystander.flush();

    const text = service.metrics.registry.render();
    assert.equal(
      metric(text, /nats_auth_kicks_total\{reason="serviceaccount_deleted"\} (\d+)/),
      1,
    );
    assert.equal(metric(text, /nats_auth_kicks_total\{reason="permissions_changed"\} (\d+)/), 1);
    const kicked = logs.filter((l) => l.event === "connection_kicked");
    assert.deepEqual(kicked.map((l) => l.reason), [
      "serviceaccount_deleted",
      "permissions_changed",
    ]);
    assert.ok(kicked.every((l) => l.server_id !== undefined && l.client_cid !== undefined));
    // Disconnect events make the registry forget closed connections: the bystander and the
    // re-logged-in reports client remain.
    await waitFor(
      () => metric(service.metrics.registry.render(), /^nats_auth_live_connections (\d+)/m) === 2,
      { what: "registry forgets closed connections" },
    );
  } finally {
    for (const nc of clients) await nc.close().catch(() => {});
  }
});

Deno.test("startRevocation kicks over $SYS when a signing key leaves the key set, and forgets on disconnect", async () => {
  await using server = await revocationServer();
  const { sys } = server;
  const client = await server.client();
  const other = await server.client();
  const metrics = createServiceMetrics();
  const keySet = droppable(["k1", "k2"]);
  const revocation = startRevocation({
    system: sys,
    lookups: () => ({ serviceAccount: () => ORDERS, permissionsOf: () => PERMS }),
    canDecide: () => true,
    keys: keySet.keys,
    logger: createLogger({ level: "error", write: () => {} }),
    metrics,
    tickMs: 50,
  });
  try {
    const serverId = client.info!.server_id;
    revocation.remember(
      approved({ serverId, cid: client.info!.client_id, kid: "k1", alg: "RS256" }),
    );
    revocation.remember(
      approved({ serverId, cid: other.info!.client_id, kid: "k2", alg: "RS256" }),
    );
    await revocation.check();
    assert.equal(revocation.size, 2, "nothing to kick while both keys are there");

    keySet.drop("k1");
    await waitFor(() => client.isClosed(), { what: "client of the removed key kicked" });
    await kickCounted(() => metrics.kicks.value({ reason: "signing_key_removed" }));
    assert.equal(other.isClosed(), false);

    // A connection on a server that no longer exists (restarted: new id) is forgotten, not retried.
    revocation.remember(approved({ serverId: "NGONE", cid: 1, uid: "recreated-since" }));
    await waitFor(() => revocation.size === 1, { what: "entry of a vanished server forgotten" });

    // The server's disconnect advisory makes the registry forget a connection that just closed.
    await other.close();
    await waitFor(() => revocation.size === 0, { what: "forgotten after its disconnect event" });
    assert.equal(metrics.liveConnections.value(), 0);
  } finally {
    await revocation.close();
    await client.close().catch(() => {});
    await sys.close();
  }
});

Deno.test("a restarted replica adopts the live connections from the servers' connz and still revokes them", async () => {
  await using stack = await Stack.start({ captureLogs: false, revocation: true });
  stack.addServiceAccount("team-a", "orders");
  stack.addServiceAccount("team-b", "billing");
  const orders = await waitFor(
    async () => stack.connect(await stack.token("team-a", "orders")).catch(() => undefined),
    { what: "orders logs in" },
  );
  const billing = await stack.connect(await stack.token("team-b", "billing"));

  // The replica that approved them goes away; a new one has never seen them.
  await stack.service.close();
  const logs: Record<string, unknown>[] = [];
  await using replacement = await startService({
    config: loadConfig(stack.env),
    logger: createLogger({ level: "info", write: (l) => logs.push(JSON.parse(l)) }),
  });
  await waitFor(() => replacement.ready, { timeoutMs: 15_000, what: "replacement ready" });
  const adopted = await waitFor(() => logs.find((l) => l.event === "connections_adopted"), {
    what: "adoption",
  });
  assert.equal(adopted.count, 2, JSON.stringify(adopted));

  stack.api.deleteServiceAccount("team-a", "orders");
  await waitFor(() => orders.isClosed(), { what: "adopted connection kicked" });
  assert.equal(billing.isClosed(), false);
  await kickCounted(() => replacement.metrics.kicks.value({ reason: "serviceaccount_deleted" }));
});

Deno.test("operator mode: a system-account creds file; a deleted ServiceAccount's connection is kicked", async () => {
  await using stack = await OperatorStack.start({
    xkey: true,
    signer: "signing_key",
    revocation: true,
  });
  stack.addServiceAccount("team-a", "orders");
  stack.addServiceAccount("team-b", "billing");
  const ordersToken = await stack.token("team-a", "orders");
  const orders = await waitFor(() => stack.connect(ordersToken).catch(() => undefined), {
    what: "orders logs in (the cache has seen the new ServiceAccounts)",
  });
  const billing = await stack.connect(await stack.token("team-b", "billing"));
  await waitFor(() => stack.service.metrics.liveConnections.value() === 2, {
    what: "both remembered",
  });
  stack.api.deleteServiceAccount("team-a", "orders");
  await waitFor(() => orders.isClosed(), { what: "kicked in operator mode" });
  assert.equal(billing.isClosed(), false);
  // The disconnect event (subject with the account's public key) makes it forget the connection.
  await waitFor(() => stack.service.metrics.liveConnections.value() === 1, {
    what: "forgotten on the disconnect event",
  });
});

Deno.test("a token bound to a Pod: its connection is kicked when the Pod is deleted; an unbound token is not", async () => {
  await using stack = await Stack.start({ captureLogs: false, revocation: true });
  stack.addServiceAccount("team-a", "orders");
  const bound = await stack.token("team-a", "orders"); // bound to the Pod orders-pod, created now
  const unbound = await stack.token("team-a", "orders", { pod: null });
  const pod = await waitFor(() => stack.connect(bound).catch(() => undefined), {
    what: "bound token logs in",
  });
  const plain = await stack.connect(unbound);

  stack.api.deletePod("team-a", "orders-pod");
  await waitFor(() => pod.isClosed(), { what: "connection of the deleted Pod kicked" });
  assert.equal(plain.isClosed(), false, "a token bound to no Pod is not affected");
  await kickCounted(() => stack.service.metrics.kicks.value({ reason: "pod_gone" }));
  await assert.rejects(
    stack.connect(bound),
    /Authorization Violation/i,
    "and its login is refused",
  );
});

Deno.test("with change feeds, a tick looks only at what changed: idle ticks look nothing up (issue 18)", async () => {
  await using server = await revocationServer();
  const { sys } = server;
  const clients = await Promise.all([0, 1, 2].map(() => server.client()));
  const serviceAccounts = createChangeFeed();
  const pods = createChangeFeed();
  const accounts = new Map([
    ["team-a/orders", ORDERS],
    ["team-b/billing", { ...ORDERS, namespace: "team-b", name: "billing" }],
  ]);
  const livePods = new Set(["team-a/web-1", "team-b/web-2"]);
  const looked: string[] = [];
  const metrics = createServiceMetrics();
  const revocation = startRevocation({
    system: sys,
    lookups: () => ({
      serviceAccount: (n, name) => {
        looked.push(`sa ${n}/${name}`);
        return accounts.get(`${n}/${name}`);
      },
      permissionsOf: () => PERMS,
      pod: (n, name) => {
        looked.push(`pod ${n}/${name}`);
        return livePods.has(`${n}/${name}`) ? { namespace: n, name, uid: "pod-uid" } : undefined;
      },
    }),
    canDecide: () => true,
    logger: createLogger({ level: "error", write: () => {} }),
    metrics,
    tickMs: 20,
    adoptExisting: false,
    changes: { serviceAccounts, pods },
  });
  try {
    const serverId = clients[0]!.info!.server_id;
    const [orders, billing, web2] = clients.map((c) => c.info!.client_id);
    revocation.remember(approved({ serverId, cid: orders!, podName: "web-1", podUid: "pod-uid" }));
    revocation.remember(
      approved({ serverId, cid: billing!, namespace: "team-b", serviceAccount: "billing" }),
    );
    revocation.remember(approved({
      serverId,
      cid: web2!,
      namespace: "team-b",
      serviceAccount: "billing",
      podName: "web-2",
      podUid: "pod-uid",
    }));
    await waitFor(() => looked.length >= 5, { what: "the new approvals checked" });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(looked.length, 5, `each new approval checked once: ${looked}`);

    // Idle: many ticks, no lookup at all.
    looked.length = 0;
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(looked.length, 0, `${looked}`);

    // A change of another ServiceAccount touches nothing remembered; one of billing touches its two.
    serviceAccounts.emit({ namespace: "team-c", name: "other" });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(looked.length, 0, `${looked}`);
    serviceAccounts.emit({ namespace: "team-b", name: "billing" });
    await waitFor(() => looked.length >= 2, { what: "billing's connections checked" });
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(looked.filter((l) => l.startsWith("sa")), [
      "sa team-b/billing",
      "sa team-b/billing",
    ]);

    // The Pod web-2 goes: its connection alone is kicked.
    looked.length = 0;
    livePods.delete("team-b/web-2");
    pods.emit({ namespace: "team-b", name: "web-2" });
    await waitFor(() => clients[2]!.isClosed(), { what: "web-2's connection kicked" });
    await kickCounted(() => metrics.kicks.value({ reason: "pod_gone" }));
    assert.deepEqual([...looked], ["sa team-b/billing", "pod team-b/web-2"]);
    assert.equal(clients[0]!.isClosed() || clients[1]!.isClosed(), false);

    // A relist ("all") checks everything: the ServiceAccount deleted meanwhile is caught.
    accounts.delete("team-a/orders");
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(clients[0]!.isClosed(), false, "a change not announced is not seen by itself");
    serviceAccounts.emit("all");
    await waitFor(() => clients[0]!.isClosed(), { what: "orders kicked after the relist" });
    assert.equal(clients[1]!.isClosed(), false);
  } finally {
    await revocation.close();
    for (const c of clients) await c.close().catch(() => {});
    await sys.close();
  }
});
