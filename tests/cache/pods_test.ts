/**
 * The Pod cache (lib/cache/pods.ts on lib/cache/reflector.ts) and the refusal of tokens bound to a Pod that is
 * gone. The in-process test apiserver gives the faults (dropped watches, compacted history, errors)
 * and the end-to-end stack; tests/cache/pods_kube_test.ts runs the same refusals against the real
 * kube-apiserver.
 */
import assert from "node:assert/strict";
import type { CalloutRequest } from "../../lib/callout/handler.ts";
import { loadConfig } from "../../lib/config/config.ts";
import { accessFromKubeConfig } from "../../lib/kubernetes/access.ts";
import { createLogger, silentLogger } from "../../lib/telemetry/log.ts";
import { createAuthorizer } from "../../lib/decision/login.ts";
import type { PodRecord, TokenIdentity } from "../../lib/core/model.ts";
import { type PodCacheOptions, type PodSource, startPodCache } from "../../lib/cache/pods.ts";
import { startService } from "../../lib/service/service.ts";
import { createServiceMetrics, type ServiceMetrics } from "../../lib/telemetry/service_metrics.ts";
import { NatsServer, tolerateClientResets } from "../support/nats_server.ts";
import { accountKey } from "../support/nkeys.ts";
import { Stack } from "../support/stack.ts";
import { TestApiServer } from "../support/test_apiserver.ts";
import { waitFor } from "../support/wait.ts";

tolerateClientResets();

interface Started {
  pods: PodSource;
  metrics: ServiceMetrics;
  logs: Record<string, unknown>[];
}

function start(
  api: TestApiServer,
  options: Partial<PodCacheOptions> = {},
): Started & AsyncDisposable {
  const metrics = createServiceMetrics();
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({ level: "debug", write: (line) => logs.push(JSON.parse(line)) });
  const access = options.access ?? accessFromKubeConfig(api.kubeConfig());
  const pods = startPodCache({
    access,
    relistIntervalMs: 60_000,
    logger,
    metrics,
    backoff: { initialMs: 20, maxMs: 200 },
    ...options,
  });
  return {
    pods,
    metrics,
    logs,
    [Symbol.asyncDispose]: async () => {
      await pods.close();
      access[Symbol.dispose]();
    },
  };
}

Deno.test("the Pod cache lists and watches metadata only, keeps namespace, name and uid", async () => {
  await using api = await TestApiServer.start();
  api.bulkLoad(25, { namespaces: 3, resource: "pods" });
  const web = api.upsertPod("team-a", "web-0", {
    annotations: { "huge/annotation": "x".repeat(1000) },
  });
  api.upsertServiceAccount("team-a", "not-a-pod");
  await using s = start(api, { pageSize: 10 });
  await s.pods.waitSynced();
  assert.equal(s.pods.size, 26);
  assert.deepEqual(s.pods.lookup("team-a", "web-0"), {
    namespace: "team-a",
    name: "web-0",
    uid: web.uid,
  });
  assert.equal(s.pods.lookup("team-a", "not-a-pod"), undefined);
  await waitFor(() => api.openWatches === 1, { what: "watch open" });
  // Three list pages and the watch, each with the PartialObjectMetadata Accept header.
  assert.equal(api.metadataRequests, 4);
  assert.equal(s.metrics.podCacheSynced.value(), 1);
  assert.equal(s.metrics.podCacheSize.value(), 26);
  assert.equal(s.metrics.podRelists.value({ trigger: "initial" }), 1);
  assert.equal(
    s.metrics.cacheSynced.value(),
    0,
    "the ServiceAccount gauges are not the Pod cache's",
  );
  assert.equal(s.logs.filter((l) => l.event === "pod_cache_synced").length, 1);
  assert.equal(s.logs.find((l) => l.event === "pod_cache_synced")?.pods, 26);
});

Deno.test("a Pod deleted, or recreated under its name, is seen within 2 s", async () => {
  await using api = await TestApiServer.start();
  const first = api.upsertPod("team-a", "db-0");
  await using s = start(api);
  await s.pods.waitSynced();
  api.deletePod("team-a", "db-0");
  await waitFor(() => !s.pods.lookup("team-a", "db-0"), { timeoutMs: 2000, what: "delete" });
  const again = api.upsertPod("team-a", "db-0");
  await waitFor(() => s.pods.lookup("team-a", "db-0")?.uid === again.uid, { timeoutMs: 2000 });
  assert.notEqual(again.uid, first.uid);
  // A recreate seen as one event stream step (uid changes under the same name) also lands.
  const third = api.upsertPod("team-a", "db-0", { uid: crypto.randomUUID() });
  await waitFor(() => s.pods.lookup("team-a", "db-0")?.uid === third.uid, { timeoutMs: 2000 });
  assert.equal(s.metrics.podCacheSize.value(), 1);
});

Deno.test("a Pod's deletionTimestamp is kept, so a Pod stuck terminating stops vouching for its tokens", async () => {
  await using api = await TestApiServer.start();
  api.upsertPod("team-a", "stuck-0");
  await using s = start(api);
  await s.pods.waitSynced();
  assert.equal(s.pods.lookup("team-a", "stuck-0")?.deletingSince, undefined);
  const at = new Date(Date.UTC(2026, 10, 23, 12, 0, 0));
  api.markPodDeleting("team-a", "stuck-0", at);
  await waitFor(() => s.pods.lookup("team-a", "stuck-0")?.deletingSince === at.getTime(), {
    timeoutMs: 2000,
  });
});

Deno.test("namespaced: only the watched namespace's Pods are kept", async () => {
  await using api = await TestApiServer.start();
  api.upsertPod("team-a", "one");
  api.upsertPod("team-b", "two");
  await using s = start(api, { namespace: "team-a" });
  await s.pods.waitSynced();
  assert.ok(s.pods.lookup("team-a", "one"));
  assert.equal(s.pods.lookup("team-b", "two"), undefined);
  api.upsertPod("team-b", "three");
  api.upsertPod("team-a", "four");
  await waitFor(() => s.pods.lookup("team-a", "four"), { timeoutMs: 2000 });
  assert.equal(s.pods.lookup("team-b", "three"), undefined);
});

Deno.test("Pod watch faults: dropped stream resumes, compacted history relists, errors serve the snapshot", async () => {
  await using api = await TestApiServer.start();
  api.upsertPod("ns", "stays");
  api.upsertPod("ns", "goes");
  await using s = start(api);
  await s.pods.waitSynced();
  await waitFor(() => api.openWatches === 1);
  api.dropWatches();
  api.upsertPod("ns", "after-drop");
  await waitFor(() => s.pods.lookup("ns", "after-drop"), { timeoutMs: 2000, what: "resumed" });
  assert.equal(api.listCalls, 1, "resumed from the last resourceVersion without a relist");

  await waitFor(() => api.openWatches === 1);
  const warnedBefore = s.logs.filter((l) => l.level === "warn").length;
  api.setFault({ status: 503, on: "watch" });
  api.dropWatches();
  await waitFor(() => s.logs.some((l) => l.cause === "server_error"), { what: "a 503 seen" });
  await waitFor(() => s.metrics.podWatchRestarts.value({ reason: "error" }) >= 4);
  // While the watch fails, the snapshot keeps answering; one warning for the streak.
  assert.ok(s.pods.lookup("ns", "goes"));
  api.deletePod("ns", "goes");
  api.compactHistory();
  api.setFault(undefined);
  await waitFor(() => !s.pods.lookup("ns", "goes"), { timeoutMs: 3000, what: "converged" });
  assert.ok(s.pods.lookup("ns", "stays"));
  assert.equal(s.metrics.podRelists.value({ trigger: "gone" }), 1);
  // One warning per change of cause (the 503s once, however many retries), for the Pod requests.
  const warnings = s.logs.filter((l) => l.level === "warn").slice(warnedBefore);
  assert.ok(
    warnings.every((l) =>
      l.event === "apiserver_request_failed" && l.request === "list/watch pods"
    ),
    JSON.stringify(warnings),
  );
  assert.equal(warnings.filter((l) => l.cause === "server_error").length, 1);
  await waitFor(() =>
    s.logs.some((l) => l.event === "apiserver_request_recovered" && l.request === "list/watch pods")
  );
});

Deno.test("the Pod cache is not synced until its first list; close() before it rejects waitSynced", async () => {
  await using api = await TestApiServer.start();
  api.setFault({ status: 403, on: "list" });
  const s = start(api, { logger: silentLogger() });
  await waitFor(() => api.listCalls >= 2, { what: "list retried" });
  assert.equal(s.pods.synced, false);
  const waiting = s.pods.waitSynced();
  await s[Symbol.asyncDispose]();
  await assert.rejects(waiting, /Pod cache closed/);
});

// ---- the decision ----

const NOW = Date.UTC(2026, 10, 23, 12, 0, 0);

function decide(identity: Partial<TokenIdentity>, pods: PodRecord[] | undefined) {
  const metrics = createServiceMetrics();
  const byKey = new Map(pods?.map((p) => [`${p.namespace}/${p.name}`, p]));
  const authorize = createAuthorizer({
    verifyToken: () =>
      Promise.resolve({
        namespace: "team-a",
        serviceAccount: "orders",
        uid: "sa-uid",
        expiresAt: NOW / 1000 + 3600,
        ...identity,
      }),
    lookup: (ns, name) =>
      ns === "team-a" && name === "orders"
        ? { namespace: ns, name, uid: "sa-uid", annotations: {} }
        : undefined,
    ...(pods ? { pods: (ns: string, name: string) => byKey.get(`${ns}/${name}`) } : {}),
    isSynced: () => true,
    policy: { annotationPrefix: "nats.io/" },
    userJwtTtlMs: 300_000,
    logger: silentLogger(),
    metrics,
    now: () => NOW,
  });
  const request: CalloutRequest = {
    serverId: "NSERVER",
    serverName: "n1",
    userNkey: "UUSER",
    clientInfo: { host: "10.0.0.1", id: 7 },
    connectOpts: { auth_token: "t" },
    encrypted: false,
  };
  return authorize(request);
}

Deno.test("a token bound to a Pod is refused when the Pod is gone or has another uid; others are unchanged", async () => {
  const pod = { namespace: "team-a", name: "orders-0", uid: "pod-uid" };
  const bound = { podName: "orders-0", podUid: "pod-uid" };
  const reason = (r: Awaited<ReturnType<typeof decide>>) => (r.ok ? "allowed" : r.reason);
  assert.equal(reason(await decide(bound, [pod])), "allowed");
  assert.equal(reason(await decide(bound, [])), "pod_not_found");
  assert.equal(reason(await decide(bound, [{ ...pod, uid: "new-uid" }])), "pod_uid_mismatch");
  // A Pod of the same name in another namespace is not the token's.
  assert.equal(reason(await decide(bound, [{ ...pod, namespace: "team-b" }])), "pod_not_found");
  // Tokens without a pod claim: today's behaviour, with or without the Pod watch.
  assert.equal(reason(await decide({}, [])), "allowed");
  // K8S_WATCH_PODS=false: no Pod lookup, bound tokens are judged by their ServiceAccount alone.
  assert.equal(reason(await decide(bound, undefined)), "allowed");
  // The ServiceAccount is checked first: its reason wins over the Pod's.
  assert.equal(reason(await decide({ ...bound, uid: "other" }, [])), "serviceaccount_uid_mismatch");
  // Being deleted (graceful termination, a finalizer): accepted for the apiserver's 60 s leeway.
  const deleting = (agoMs: number) => [{ ...pod, deletingSince: NOW - agoMs }];
  assert.equal(reason(await decide(bound, deleting(59_000))), "allowed");
  assert.equal(reason(await decide(bound, deleting(61_000))), "pod_not_found");
  const refused = await decide(bound, []);
  assert.ok(!refused.ok);
  assert.equal(refused.fields?.pod, "orders-0");
  assert.match(refused.message, /Pod team-a\/orders-0/);
});

// ---- the service ----

Deno.test("end to end: a login with a token bound to a deleted or recreated Pod is refused with its own reason", async () => {
  await using stack = await Stack.start();
  stack.addServiceAccount("team-a", "orders");
  const denied = (reason: string) =>
    stack.service.metrics.requests.value({ result: "denied", reason });
  const token = await stack.token("team-a", "orders");
  const nc = await stack.connect(token);
  await nc.close();

  stack.api.deletePod("team-a", "orders-pod");
  await waitFor(async () => {
    try {
      await (await stack.connect(token)).close();
      return false;
    } catch (err) {
      return /authorization violation/i.test(String(err));
    }
  }, { timeoutMs: 5000, what: "pod_not_found refusal" });
  assert.equal(denied("pod_not_found"), 1);

  // Recreated under the same name: a new uid, so the old token stays refused...
  const again = stack.api.upsertPod("team-a", "orders-pod");
  await waitFor(async () => {
    try {
      await (await stack.connect(token)).close();
    } catch {
      // refused
    }
    return denied("pod_uid_mismatch") === 1;
  }, { timeoutMs: 5000, what: "pod_uid_mismatch refusal" });
  // ...and a token bound to the new Pod gets in.
  const fresh = await stack.token("team-a", "orders", {
    pod: { name: "orders-pod", uid: again.uid },
  });
  await (await stack.connect(fresh)).close();
  const line = stack.logs.find((l) =>
    l.event === "login_denied" && l.reason === "pod_uid_mismatch"
  );
  assert.equal(line?.pod, "orders-pod");
  assert.equal(line?.namespace, "team-a");
});

Deno.test("readiness includes pods when the Pod watch is on, and not when K8S_WATCH_PODS=false", async () => {
  await using api = await TestApiServer.start({ jwks: { keys: [] } });
  await using nats = await NatsServer.start();
  const dir = await Deno.makeTempDir();
  try {
    const seed = accountKey().seed;
    await Deno.writeTextFile(`${dir}/kubeconfig`, api.kubeConfig().exportConfig());
    await Deno.writeTextFile(`${dir}/account.seed`, seed);
    const env = {
      K8S_IN_CLUSTER: "false",
      KUBECONFIG: `${dir}/kubeconfig`,
      JWKS_URL: `${api.url}/openid/v1/jwks`,
      JWT_ISSUER: "https://kubernetes.default.svc",
      NATS_URL: nats.url,
      NATS_ACCOUNT: "APP",
      NATS_SIGNING_KEY_FILE: `${dir}/account.seed`,
    };
    const failing = async (service: { handler: (r: Request) => Promise<Response> }) => {
      const res = await service.handler(new Request("http://x/readyz"));
      return ((await res.json()) as { failing?: string[] }).failing ?? [];
    };
    api.setFault({ status: 403, on: "list" });
    {
      await using service = await startService({ config: loadConfig(env), logger: silentLogger() });
      await waitFor(() => api.listCalls >= 2);
      assert.ok((await failing(service)).includes("pods"));
      api.setFault(undefined);
      await waitFor(async () => !(await failing(service)).includes("pods"), {
        what: "pods synced",
      });
    }
    {
      const off = loadConfig({ ...env, K8S_WATCH_PODS: "false" });
      await using service = await startService({ config: off, logger: silentLogger() });
      api.setFault({ status: 403, on: "list" });
      assert.ok(!(await failing(service)).includes("pods"));
      assert.equal(service.metrics.podCacheSynced.value(), 0);
      api.setFault(undefined);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
