/**
 * Resync on demand: the rate limit and error handling of lib/operations/resync.ts; against the real
 * kube-apiserver, a resync relists ServiceAccounts and refetches the JWKS with the service's own
 * least-privilege credentials; and (test apiserver, whose watch can be broken on demand) the
 * cache's `resync()` healing a delete its broken watch missed, long before the relist interval.
 */
import assert from "node:assert/strict";
import { remoteKeySource } from "../../lib/tokens/jwks.ts";
import { accessFromKubeConfig, kubeconfigAccess } from "../../lib/kubernetes/access.ts";
import { createLogger } from "../../lib/telemetry/log.ts";
import { createResync } from "../../lib/operations/resync.ts";
import { createServiceMetrics } from "../../lib/telemetry/service_metrics.ts";
import { startServiceAccountCache } from "../../lib/cache/serviceaccounts.ts";
import { KubeApiServer } from "../support/kube_apiserver.ts";
import { TestApiServer } from "../support/test_apiserver.ts";
import { waitFor } from "../support/wait.ts";

function capture(): { logs: Record<string, unknown>[]; logger: ReturnType<typeof createLogger> } {
  const logs: Record<string, unknown>[] = [];
  return {
    logs,
    logger: createLogger({ level: "debug", write: (l) => logs.push(JSON.parse(l)) }),
  };
}

Deno.test("resync: relists and refetches, refuses a second one within minIntervalMs", async () => {
  const { logs, logger } = capture();
  let clock = 0;
  let relists = 0;
  let refetches = 0;
  let keysFail = false;
  const resync = createResync(() => ({
    serviceAccounts: { resync: () => void relists++ },
    keys: {
      refresh: () => {
        refetches++;
        return keysFail ? Promise.reject(new Error("JWKS 503")) : Promise.resolve();
      },
    },
  }), { logger, minIntervalMs: 5000, now: () => clock });

  assert.deepEqual(resync("SIGHUP"), { started: true });
  clock = 1000;
  assert.deepEqual(resync("http"), { started: false, retryAfterMs: 4000 });
  assert.equal(relists, 1);
  assert.equal(refetches, 1);
  clock = 5000;
  keysFail = true;
  assert.deepEqual(resync("http"), { started: true });
  await waitFor(() => logs.some((l) => l.event === "resync_failed"), { what: "key failure log" });
  assert.equal(relists, 2);
  const events = logs.map((l) => `${l.event}:${l.trigger}`);
  assert.deepEqual(events.slice(0, 3), [
    "resync_requested:SIGHUP",
    "resync_refused:http",
    "resync_requested:http",
  ]);
  const failed = logs.find((l) => l.event === "resync_failed")!;
  assert.equal(failed.what, "keys");
  assert.equal((failed.error as { message: string }).message, "JWKS 503");
});

Deno.test("serviceaccounts: resync() sees a delete the broken watch missed, well before the interval", async () => {
  await using api = await TestApiServer.start();
  api.upsertServiceAccount("ns", "doomed");
  api.upsertServiceAccount("ns", "kept");
  const metrics = createServiceMetrics();
  const access = accessFromKubeConfig(api.kubeConfig());
  const cache = startServiceAccountCache({
    access,
    annotationPrefix: "nats.io/",
    relistIntervalMs: 3_600_000,
    logger: capture().logger,
    metrics,
    backoff: { initialMs: 20, maxMs: 200 },
  });
  try {
    await cache.waitSynced();
    await waitFor(() => api.openWatches === 1, { what: "the watch" });
    // The watch cannot come back, and the interval relist is an hour away.
    api.setFault({ status: 500, on: "watch" });
    api.dropWatches();
    api.deleteServiceAccount("ns", "doomed");
    await waitFor(() => metrics.watchRestarts.value({ reason: "error" }) >= 2, {
      what: "the watch to fail again",
    });
    assert.ok(cache.lookup("ns", "doomed"), "not seen without a resync");

    cache.resync();
    await waitFor(() => !cache.lookup("ns", "doomed"), { timeoutMs: 5000, what: "resync" });
    assert.ok(cache.lookup("ns", "kept"));
    assert.equal(metrics.relists.value({ trigger: "resync" }), 1);
    assert.equal(metrics.relists.value({ trigger: "interval" }), 0);

    // With the watch healthy again, a resync ends it and relists at once too.
    api.setFault(undefined);
    await waitFor(() => api.openWatches === 1, { what: "the watch back" });
    api.upsertServiceAccount("ns", "late");
    cache.resync();
    await waitFor(() => metrics.relists.value({ trigger: "resync" }) === 2, { what: "relist 2" });
    assert.ok(cache.lookup("ns", "late"));
  } finally {
    await cache.close();
    access[Symbol.dispose]();
  }
});

Deno.test("resync against the real kube-apiserver: relists and refetches the JWKS with the service's own RBAC", async () => {
  await using kube = await KubeApiServer.start();
  await kube.createNamespace("callout");
  await kube.createNamespace("team-a");
  await kube.createServiceAccount("callout", "callout");
  await kube.createServiceAccount("team-a", "orders");
  // What the chart grants: list/watch ServiceAccounts; JWKS access comes from the default
  // system:service-account-issuer-discovery binding of every ServiceAccount.
  await kube.apply([
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "callout" },
      rules: [{ apiGroups: [""], resources: ["serviceaccounts"], verbs: ["list", "watch"] }],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: "callout" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "callout" },
      subjects: [{ kind: "ServiceAccount", name: "callout", namespace: "callout" }],
    },
  ]);
  const tokenFile = `${kube.dir}/callout.token`;
  await Deno.writeTextFile(
    tokenFile,
    await kube.token("callout", "callout", { audiences: [kube.issuer] }),
  );
  const access = await kubeconfigAccess([await kube.writeKubeconfig("callout", { tokenFile })]);
  const { logs, logger } = capture();
  const metrics = createServiceMetrics();
  const cache = startServiceAccountCache({
    access,
    annotationPrefix: "nats.io/",
    relistIntervalMs: 3_600_000,
    logger,
    metrics,
  });
  const keys = await remoteKeySource(`${kube.url}/openid/v1/jwks`, { access, logger, metrics });
  try {
    await cache.waitSynced();
    await waitFor(() => keys.ready, { what: "JWKS loaded" });
    assert.ok(cache.lookup("team-a", "orders"));
    const fetchesBefore = metrics.jwksRefreshes.value({ result: "ok" });

    const resync = createResync(() => ({ serviceAccounts: cache, keys }), { logger });
    assert.deepEqual(resync("http"), { started: true });
    await waitFor(
      () =>
        metrics.relists.value({ trigger: "resync" }) === 1 &&
        logs.some((l) => l.event === "resync_keys_refetched"),
      { timeoutMs: 15_000, what: "relist and JWKS refetch" },
    );
    assert.equal(metrics.jwksRefreshes.value({ result: "ok" }), fetchesBefore + 1);
    assert.equal(metrics.jwksRefreshes.value({ result: "error" }), 0);
    assert.ok(!logs.some((l) => l.event === "resync_failed"), JSON.stringify(logs));

    // The watch is back after the resync's relist: a new ServiceAccount shows up.
    await kube.createServiceAccount("team-a", "late");
    await waitFor(() => cache.lookup("team-a", "late"), { timeoutMs: 10_000, what: "watch" });
  } finally {
    await keys.close();
    await cache.close();
    access[Symbol.dispose]();
  }
});
