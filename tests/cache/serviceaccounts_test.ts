/**
 * The ServiceAccount cache against the in-process test apiserver, through real HTTP.
 */
import assert from "node:assert/strict";
import {
  type ServiceAccountCacheOptions,
  startServiceAccountCache,
} from "../../lib/cache/serviceaccounts.ts";
import {
  accessFromKubeConfig,
  inClusterAccess,
  kubeconfigAccess,
} from "../../lib/kubernetes/access.ts";
import { createLogger, silentLogger } from "../../lib/telemetry/log.ts";
import { createServiceMetrics, type ServiceMetrics } from "../../lib/telemetry/service_metrics.ts";
import type { ServiceAccountSource } from "../../lib/core/model.ts";
import type { RecordChange } from "../../lib/core/changes.ts";
import {
  createTestCertificates,
  type ExpiredWatchMode,
  TestApiServer,
} from "../support/test_apiserver.ts";
import { waitFor } from "../support/wait.ts";

const PUB = "nats.io/allowed-pub-subjects";

interface Started {
  cache: ServiceAccountSource;
  metrics: ServiceMetrics;
  logs: Record<string, unknown>[];
}

function start(
  api: TestApiServer,
  options: Partial<ServiceAccountCacheOptions> = {},
): Started & AsyncDisposable {
  const metrics = createServiceMetrics();
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({ level: "debug", write: (line) => logs.push(JSON.parse(line)) });
  const access = options.access ?? accessFromKubeConfig(api.kubeConfig());
  const cache = startServiceAccountCache({
    access,
    annotationPrefix: "nats.io/",
    relistIntervalMs: 60_000,
    logger,
    metrics,
    backoff: { initialMs: 20, maxMs: 200 },
    ...options,
  });
  return {
    cache,
    metrics,
    logs,
    [Symbol.asyncDispose]: async () => {
      await cache.close();
      access[Symbol.dispose]();
    },
  };
}

Deno.test("first sync lists every page; lookups answer from the snapshot", async () => {
  await using api = await TestApiServer.start();
  api.bulkLoad(25, { namespaces: 3 });
  const worker = api.upsertServiceAccount("team-a", "worker", { annotations: { [PUB]: "a.>" } });
  await using s = start(api, { pageSize: 10 });
  assert.equal(s.cache.synced, false);
  await s.cache.waitSynced();
  assert.equal(s.cache.synced, true);
  assert.equal(s.cache.size, 26);
  assert.equal(api.listCalls, 3);
  assert.deepEqual(s.cache.lookup("team-a", "worker"), {
    namespace: "team-a",
    name: "worker",
    uid: worker.uid,
    annotations: { [PUB]: "a.>" },
  });
  assert.equal(s.cache.lookup("bulk-1", "sa-1")?.name, "sa-1");
  assert.equal(s.cache.lookup("team-a", "nobody"), undefined);
  assert.equal(s.metrics.cacheSynced.value(), 1);
  assert.equal(s.metrics.cacheSize.value(), 26);
  assert.equal(s.metrics.relists.value({ trigger: "initial" }), 1);
  assert.equal(s.logs.filter((l) => l.event === "sa_cache_synced").length, 1);
});

Deno.test("namespaced mode sees only its namespace", async () => {
  await using api = await TestApiServer.start();
  api.upsertServiceAccount("team-a", "one");
  api.upsertServiceAccount("team-b", "two");
  await using s = start(api, { namespace: "team-a" });
  await s.cache.waitSynced();
  assert.equal(s.cache.size, 1);
  assert.ok(s.cache.lookup("team-a", "one"));
  assert.equal(s.cache.lookup("team-b", "two"), undefined);
  api.upsertServiceAccount("team-b", "three");
  api.upsertServiceAccount("team-a", "four");
  await waitFor(() => s.cache.lookup("team-a", "four"), { timeoutMs: 2000 });
  assert.equal(s.cache.lookup("team-b", "three"), undefined);
  assert.equal(s.cache.size, 2);
});

Deno.test("create, annotate and delete become visible within 2 s", async () => {
  await using api = await TestApiServer.start();
  await using s = start(api);
  await s.cache.waitSynced();
  assert.equal(s.cache.size, 0);
  const created = api.upsertServiceAccount("team-a", "app");
  await waitFor(() => s.cache.lookup("team-a", "app"), { timeoutMs: 2000, what: "create" });
  assert.equal(s.cache.lookup("team-a", "app")?.uid, created.uid);
  api.upsertServiceAccount("team-a", "app", { annotations: { [PUB]: "orders.>" } });
  await waitFor(() => s.cache.lookup("team-a", "app")?.annotations[PUB] === "orders.>", {
    timeoutMs: 2000,
    what: "annotation",
  });
  api.deleteServiceAccount("team-a", "app");
  await waitFor(() => !s.cache.lookup("team-a", "app"), { timeoutMs: 2000, what: "delete" });
  // Re-created under the same name: a new uid, so old tokens stop matching.
  const again = api.upsertServiceAccount("team-a", "app");
  await waitFor(() => s.cache.lookup("team-a", "app")?.uid === again.uid, { timeoutMs: 2000 });
  assert.notEqual(again.uid, created.uid);
  assert.equal(s.metrics.cacheSize.value(), 1);
});

Deno.test("only annotations under the prefix are kept", async () => {
  await using api = await TestApiServer.start();
  api.upsertServiceAccount("ns", "sa", {
    annotations: {
      [PUB]: "x.>",
      "nats.io/allowed-sub-subjects": "y.>",
      "kubectl.kubernetes.io/last-applied-configuration": "{...huge...}",
      "example.com/nats.io/fake": "z",
    },
  });
  api.upsertServiceAccount("ns", "plain");
  await using s = start(api);
  await s.cache.waitSynced();
  assert.deepEqual(s.cache.lookup("ns", "sa")?.annotations, {
    [PUB]: "x.>",
    "nats.io/allowed-sub-subjects": "y.>",
  });
  assert.deepEqual(s.cache.lookup("ns", "plain")?.annotations, {});
  await using custom = start(api, { annotationPrefix: "example.com/" });
  await custom.cache.waitSynced();
  assert.deepEqual(custom.cache.lookup("ns", "sa")?.annotations, {
    "example.com/nats.io/fake": "z",
  });
});

Deno.test("after dropWatches() the cache re-watches and updates still arrive", async () => {
  await using api = await TestApiServer.start();
  await using s = start(api);
  await s.cache.waitSynced();
  await waitFor(() => api.openWatches === 1, { what: "watch open" });
  api.dropWatches();
  api.upsertServiceAccount("team-a", "after-drop");
  await waitFor(() => s.cache.lookup("team-a", "after-drop"), { timeoutMs: 2000 });
  assert.equal(s.metrics.watchRestarts.value({ reason: "error" }), 1);
  // Resumed from the last resourceVersion: no relist was needed.
  assert.equal(api.listCalls, 1);
  await waitFor(() => api.openWatches === 1);
  api.dropWatches();
  api.deleteServiceAccount("team-a", "after-drop");
  await waitFor(() => !s.cache.lookup("team-a", "after-drop"), { timeoutMs: 2000 });
});

for (const mode of ["error-event", "http-410"] as ExpiredWatchMode[]) {
  Deno.test(`when the resourceVersion is compacted away (${mode}) the cache relists and converges`, async () => {
    await using api = await TestApiServer.start({ expiredWatchMode: mode });
    api.upsertServiceAccount("ns", "stays");
    api.upsertServiceAccount("ns", "goes");
    await using s = start(api);
    await s.cache.waitSynced();
    await waitFor(() => api.openWatches === 1);
    // Keep the watch down while things change and the history is compacted.
    api.setFault({ status: 503, on: "watch" });
    api.dropWatches();
    await waitFor(() => s.metrics.watchRestarts.value({ reason: "error" }) >= 2);
    api.deleteServiceAccount("ns", "goes");
    api.upsertServiceAccount("ns", "new", { annotations: { [PUB]: "n.>" } });
    api.compactHistory();
    api.setFault(undefined);
    await waitFor(() => s.cache.lookup("ns", "new") && !s.cache.lookup("ns", "goes"), {
      timeoutMs: 2000,
      what: "converged",
    });
    assert.ok(s.cache.lookup("ns", "stays"));
    assert.equal(s.metrics.watchRestarts.value({ reason: "gone" }), 1);
    assert.equal(s.metrics.relists.value({ trigger: "gone" }), 1);
    await waitFor(() => api.openWatches === 1, { what: "watching again" });
    api.upsertServiceAccount("ns", "later");
    await waitFor(() => s.cache.lookup("ns", "later"), { timeoutMs: 2000 });
  });
}

Deno.test("a delete missed while the watch is down is healed by the periodic relist", async () => {
  await using api = await TestApiServer.start();
  api.upsertServiceAccount("ns", "doomed");
  api.upsertServiceAccount("ns", "kept");
  await using s = start(api, { relistIntervalMs: 300 });
  await s.cache.waitSynced();
  await waitFor(() => api.openWatches === 1);
  // The watch cannot come back; only the periodic list can notice the delete.
  api.setFault({ status: 500, on: "watch" });
  api.dropWatches();
  api.deleteServiceAccount("ns", "doomed");
  await waitFor(() => !s.cache.lookup("ns", "doomed"), { timeoutMs: 3000, what: "healed" });
  assert.ok(s.cache.lookup("ns", "kept"));
  assert.ok(s.metrics.relists.value({ trigger: "interval" }) >= 1);
  assert.equal(s.cache.synced, true);
});

Deno.test("while the apiserver fails the cache serves its snapshot, warns once per cause, and recovers", async () => {
  await using api = await TestApiServer.start();
  api.upsertServiceAccount("ns", "known");
  await using s = start(api, { relistIntervalMs: 200 });
  await s.cache.waitSynced();
  await waitFor(() => api.openWatches === 1);
  api.setFault({ status: 500 });
  api.dropWatches();
  const calls = api.watchCalls + api.listCalls;
  // Several failed watches and at least one failed interval relist.
  await waitFor(
    () =>
      api.watchCalls + api.listCalls >= calls + 5 &&
      s.metrics.relists.value({ trigger: "error" }) >= 1,
    {
      what: "retries",
    },
  );
  assert.equal(s.cache.lookup("ns", "known")?.name, "known");
  assert.equal(s.cache.synced, true);
  const warnings = s.logs.filter((l) => l.level === "warn");
  // The dropped stream (network) and then the 500s (server_error): one line per change of cause.
  const serverErrors = warnings.filter((l) => l.cause === "server_error");
  assert.equal(serverErrors.length, 1, JSON.stringify(warnings));
  assert.equal(serverErrors[0]!.event, "apiserver_request_failed");
  assert.equal(serverErrors[0]!.status, 500);
  assert.equal(
    new Set(warnings.map((w) => w.cause)).size,
    warnings.length,
    JSON.stringify(warnings),
  );
  api.setFault(undefined);
  api.upsertServiceAccount("ns", "fresh");
  await waitFor(() => s.cache.lookup("ns", "fresh"), { timeoutMs: 2000, what: "recovered" });
  await waitFor(() => s.logs.some((l) => l.event === "apiserver_request_recovered"));
});

Deno.test("not ready until the first complete list; waitSynced honours its signal", async () => {
  await using api = await TestApiServer.start();
  api.upsertServiceAccount("ns", "a");
  api.setFault({ status: 503 });
  await using s = start(api);
  await waitFor(() => api.listCalls >= 2, { what: "list retried" });
  assert.equal(s.cache.synced, false);
  assert.equal(s.cache.lookup("ns", "a"), undefined);
  assert.equal(s.metrics.cacheSynced.value(), 0);
  const ctl = new AbortController();
  const waiting = s.cache.waitSynced(ctl.signal);
  ctl.abort(new Error("gave up"));
  await assert.rejects(waiting, /gave up/);
  api.setFault(undefined);
  await s.cache.waitSynced();
  assert.ok(s.cache.lookup("ns", "a"));
});

Deno.test("close() before the first sync rejects waitSynced and stops every request", async () => {
  await using api = await TestApiServer.start();
  api.setFault({ status: 500 });
  const s = start(api, { logger: silentLogger() });
  await waitFor(() => api.listCalls >= 1);
  const waiting = s.cache.waitSynced();
  await s.cache.close();
  await assert.rejects(waiting, /closed/);
  await s.cache.close(); // idempotent
});

Deno.test("in-cluster access: cluster CA over HTTPS, token file re-read on every request", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const tls = await createTestCertificates(dir);
    await using api = await TestApiServer.start({ tls, requireBearerToken: "pod-token" });
    const tokenFile = `${dir}/token`;
    await Deno.writeTextFile(tokenFile, "pod-token\n");
    api.upsertServiceAccount("ns", "tls");
    await using s = start(api, {
      access: inClusterAccess({ server: api.url, caFile: tls.caFile, tokenFile }),
    });
    await s.cache.waitSynced();
    assert.ok(s.cache.lookup("ns", "tls"));
    await waitFor(() => api.openWatches === 1);

    // The kubelet rotates the token: a stale one is refused, the current one is used at once.
    await Deno.writeTextFile(tokenFile, "rotated-away");
    api.dropWatches();
    const refused = await waitFor(
      () =>
        s.logs.find((l) => l.event === "apiserver_request_failed" && l.cause === "unauthorized"),
      { what: "the stale token refused" },
    );
    assert.equal(refused.level, "warn");
    assert.ok(!JSON.stringify(s.logs).includes("rotated-away"), "the token is never logged");
    await Deno.writeTextFile(tokenFile, "pod-token");
    api.upsertServiceAccount("ns", "tls2");
    await waitFor(() => s.cache.lookup("ns", "tls2"), { timeoutMs: 5000 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("in-cluster access: an unreadable cluster CA is a clear error at start", () => {
  assert.throws(
    () =>
      inClusterAccess({
        server: "https://10.0.0.1:443",
        caFile: "/nonexistent/ca.crt",
        tokenFile: "/x",
      }),
    /Cannot read the cluster CA \/nonexistent\/ca.crt/,
  );
});

Deno.test("kubeconfigAccess reads a kubeconfig file the cache can use", async () => {
  await using api = await TestApiServer.start({ requireBearerToken: "file-token" });
  api.upsertServiceAccount("ns", "from-file");
  const path = await Deno.makeTempFile({ suffix: ".yaml" });
  try {
    await Deno.writeTextFile(path, api.kubeConfig().exportConfig());
    await using s = start(api, { access: await kubeconfigAccess([path]) });
    await s.cache.waitSynced();
    assert.ok(s.cache.lookup("ns", "from-file"));
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("ServiceAccounts whose namespace or name is not DNS-1123 are refused and logged, from the list and the watch (issue 10, defect 5)", async () => {
  await using api = await TestApiServer.start();
  // The double stores what the real apiserver would refuse: the apiserver path is checked anyway.
  const bad: [string, string][] = [
    ["*", "orders"],
    [">", "orders"],
    ["team-a", "Orders"],
    ["team-a", "a*b"],
    ["team a", "orders"],
    ["x".repeat(64), "orders"],
    ["team-a", `${"y".repeat(64)}.z`],
  ];
  for (const [ns, name] of bad.slice(0, 4)) api.upsertServiceAccount(ns, name);
  api.upsertServiceAccount("team-a", "worker.v2");
  await using s = start(api);
  await s.cache.waitSynced();
  assert.equal(s.cache.size, 1);
  assert.ok(s.cache.lookup("team-a", "worker.v2"));
  // After the first sync, through watch events.
  for (const [ns, name] of bad.slice(4)) api.upsertServiceAccount(ns, name);
  api.upsertServiceAccount("team-b", "late");
  await waitFor(() => s.cache.lookup("team-b", "late"), { what: "watch event applied" });
  assert.equal(s.cache.size, 2);
  for (const [ns, name] of bad) {
    assert.equal(s.cache.lookup(ns, name), undefined, `${ns}/${name} is not stored`);
  }
  assert.equal(s.metrics.recordsRefused.value(), bad.length);
  const refused = s.logs.filter((l) => l.event === "sa_record_refused");
  assert.equal(refused.length, bad.length);
  assert.ok(refused.every((l) => l.level === "warn"));
  assert.ok(refused.some((l) => l.namespace === '"*"' && /DNS-1123 label/.test(String(l.problem))));
  // A relist sees them again: counted, but warned only once per object.
  api.setFault({ status: 503, on: "watch" });
  api.dropWatches();
  await waitFor(() => s.metrics.watchRestarts.value({ reason: "error" }) >= 1);
  api.upsertServiceAccount("team-b", "later");
  api.compactHistory();
  api.setFault(undefined);
  await waitFor(() => s.metrics.recordsRefused.value() >= 2 * bad.length, {
    what: "relist after 410",
  });
  assert.equal(
    s.logs.filter((l) => l.event === "sa_record_refused" && l.level === "warn").length,
    bad.length,
  );
});

Deno.test("before the first sync, retries stay on the short cap; freshAt follows the last answer (issue 10, defect 6)", async () => {
  await using api = await TestApiServer.start();
  api.upsertServiceAccount("team-a", "worker");
  api.setFault({ status: 500, on: "list" });
  // Full jitter and a long maxMs: only the first-sync cap keeps the retries close together.
  await using s = start(api, {
    backoff: { initialMs: 100, maxMs: 30_000, firstSyncMaxMs: 300 },
    random: () => 0.999,
  });
  const started = s.cache.freshAt!;
  // Uncapped, the sixth attempt would come after 0.2+0.4+0.8+1.6+3.2 s; capped, after ~1.3 s.
  await waitFor(() => api.listCalls >= 6, { timeoutMs: 4000, what: "six list attempts" });
  assert.equal(s.cache.synced, false);
  assert.equal(s.cache.freshAt, started, "no answer yet: freshAt stays at the start");
  api.setFault(undefined);
  await s.cache.waitSynced();
  assert.ok(s.cache.freshAt! > started);
  // After the sync, failures back off on the long cap again and freshAt stops moving.
  await waitFor(() => api.openWatches === 1, { what: "watching" });
  api.setFault({ status: 500, on: "all" });
  api.dropWatches();
  await waitFor(() => s.metrics.watchRestarts.value({ reason: "error" }) >= 1);
  const last = s.cache.freshAt!;
  await waitFor(() => s.metrics.watchRestarts.value({ reason: "error" }) >= 3, {
    what: "more failed watches",
  });
  assert.equal(s.cache.freshAt, last);
  api.setFault(undefined);
  await waitFor(() => s.cache.freshAt! > last, { timeoutMs: 10_000, what: "fresh again" });
});

Deno.test("the default first-sync cap is 2 s (issue 10, defect 6)", async () => {
  await using api = await TestApiServer.start();
  api.setFault({ status: 500, on: "list" });
  await using s = start(api, { backoff: { initialMs: 500, maxMs: 30_000 }, random: () => 0.999 });
  // Attempts at 0, 1, 3, 5 s with the cap; at 0, 1, 3, 7 s without it.
  await waitFor(() => api.listCalls >= 4, { timeoutMs: 6_500, what: "four list attempts" });
  api.setFault(undefined);
  await s.cache.waitSynced();
});

Deno.test('onChange names each record a watch event changed, and says "all" when a relist swaps the snapshot (issue 18)', async () => {
  await using api = await TestApiServer.start();
  api.upsertServiceAccount("team-a", "old");
  const changes: RecordChange[] = [];
  await using s = start(api, { onChange: (c) => changes.push(c) });
  await s.cache.waitSynced();
  assert.deepEqual(changes, ["all"], "the first list");
  api.upsertServiceAccount("team-a", "app");
  api.upsertServiceAccount("team-a", "app", { annotations: { [PUB]: "orders.>" } });
  api.deleteServiceAccount("team-a", "old");
  await waitFor(() => changes.length === 4, { timeoutMs: 2000, what: "three events" });
  assert.deepEqual(changes.slice(1), [
    { namespace: "team-a", name: "app" },
    { namespace: "team-a", name: "app" },
    { namespace: "team-a", name: "old" },
  ]);
  s.cache.resync();
  await waitFor(() => changes.length === 5, { timeoutMs: 2000, what: "the relist" });
  assert.equal(changes[4], "all");
});
