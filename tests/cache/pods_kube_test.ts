/**
 * Tokens bound to a Pod, against the real kube-apiserver (tests/support/kube_apiserver.ts): tokens
 * from the TokenRequest API with a `boundObjectRef` to a Pod, the service running with the chart's
 * own RBAC objects (rendered by helm, applied to the apiserver) and its ServiceAccount's token, a
 * real nats-server with auth callout and real NATS clients. The apiserver's own TokenReview is the
 * reference: whenever it stops accepting a bound token, so must we.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../../lib/config/config.ts";
import { createLogger } from "../../lib/telemetry/log.ts";
import { METADATA_LIST_ACCEPT, METADATA_WATCH_ACCEPT } from "../../lib/cache/reflector.ts";
import { startService } from "../../lib/service/service.ts";
import { findAll, type Manifest, renderChart } from "../support/chart.ts";
import { KubeApiServer, type KubeObject } from "../support/kube_apiserver.ts";
import { tolerateClientResets } from "../support/nats_server.ts";
import { Stack } from "../support/stack.ts";
import { TestApiServer } from "../support/test_apiserver.ts";
import { waitFor } from "../support/wait.ts";

tolerateClientResets();

const RELEASE_NS = "nats-system";
const RBAC_KINDS = ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"];

/**
 * Apply the chart's ServiceAccount and RBAC objects for `values` and write a kubeconfig with that
 * ServiceAccount's token: the service then has exactly the chart's permissions.
 */
async function chartIdentity(kube: KubeApiServer, values: object): Promise<string> {
  const docs = await renderChart({
    nats: { account: "APP", signingKey: { existingSecret: "signing" } },
    ...values,
  }, { namespace: RELEASE_NS });
  // `helm template` leaves the release namespace to `helm install`: put it on namespaced objects.
  const objects = RBAC_KINDS.flatMap((kind) => findAll(docs, kind)).map((o) => {
    const md = o.metadata as Record<string, unknown>;
    return o.kind?.toString().startsWith("Cluster") || md.namespace
      ? o
      : { ...o, metadata: { ...md, namespace: RELEASE_NS } };
  }) as Manifest[];
  await kube.createNamespace(RELEASE_NS);
  await kube.apply(objects as unknown as KubeObject[]);
  const sa = objects.find((o) => o.kind === "ServiceAccount") as KubeObject;
  // The apiserver's own audience (its issuer), as the kubelet's default projected token has.
  const token = await kube.token(RELEASE_NS, sa.metadata.name, { audiences: [kube.issuer] });
  return await kube.writeKubeconfig("callout", { token });
}

function serviceEnv(kube: KubeApiServer, kubeconfig: string, extra: Record<string, string> = {}) {
  return {
    KUBECONFIG: kubeconfig,
    JWKS_URL: `${kube.url}/openid/v1/jwks`,
    JWT_ISSUER: kube.issuer,
    ...extra,
  };
}

async function loginWorks(stack: Stack, token: string): Promise<boolean> {
  try {
    await (await stack.connect(token)).close();
    return true;
  } catch (err) {
    assert.match(String(err), /authorization violation/i);
    return false;
  }
}

/** What the apiserver itself says of `token` (TokenReview with the NATS audience). */
async function apiserverAccepts(kube: KubeApiServer, token: string): Promise<boolean> {
  const review = await kube.request<{ status: { authenticated?: boolean } }>(
    "POST",
    "/apis/authentication.k8s.io/v1/tokenreviews",
    {
      apiVersion: "authentication.k8s.io/v1",
      kind: "TokenReview",
      spec: { token, audiences: ["nats"] },
    },
  );
  return review.status.authenticated === true;
}

Deno.test("real apiserver: a token bound to a Pod is refused once the Pod is deleted, and after it is recreated under its name", async () => {
  await using kube = await KubeApiServer.start();
  const kubeconfig = await chartIdentity(kube, {});
  await kube.createNamespace("team-a");
  await kube.createServiceAccount("team-a", "orders");
  const first = await kube.createPod("team-a", "orders-0", "orders");
  const bound = await kube.token("team-a", "orders", { pod: { name: "orders-0", uid: first.uid } });
  const unbound = await kube.token("team-a", "orders");
  await using stack = await Stack.start({ env: serviceEnv(kube, kubeconfig) });
  const denied = (reason: string) =>
    stack.service.metrics.requests.value({ result: "denied", reason });
  assert.equal(stack.service.metrics.podCacheSynced.value(), 1);

  assert.equal(await apiserverAccepts(kube, bound), true);
  assert.equal(await loginWorks(stack, bound), true);
  assert.equal(await loginWorks(stack, unbound), true);

  await kube.deletePod("team-a", "orders-0");
  // The apiserver refuses it too (after its own token cache expires, ~10 s).
  await waitFor(async () => !(await apiserverAccepts(kube, bound)), {
    timeoutMs: 30_000,
    intervalMs: 500,
    what: "the apiserver's TokenReview to refuse the token",
  });
  await waitFor(async () => !(await loginWorks(stack, bound)), {
    timeoutMs: 5000,
    what: "the bound token refused",
  });
  assert.equal(denied("pod_not_found"), 1);
  assert.equal(await loginWorks(stack, unbound), true, "a token without a pod claim is unchanged");

  // Same name, new Pod (a StatefulSet replica coming back): a new uid, so the old token stays out.
  const second = await kube.createPod("team-a", "orders-0", "orders");
  assert.notEqual(second.uid, first.uid);
  assert.equal(await apiserverAccepts(kube, bound), false, "still refused by the apiserver");
  await waitFor(async () => {
    await loginWorks(stack, bound);
    return denied("pod_uid_mismatch") >= 1;
  }, { timeoutMs: 5000, what: "pod_uid_mismatch" });
  const fresh = await kube.token("team-a", "orders", {
    pod: { name: "orders-0", uid: second.uid },
  });
  assert.equal(await loginWorks(stack, fresh), true);
  const line = stack.logs.find((l) =>
    l.event === "login_denied" && l.reason === "pod_uid_mismatch"
  );
  assert.equal(line?.pod, "orders-0");
  assert.ok(!JSON.stringify(stack.logs).includes(bound.split(".")[2]!), "no token in the logs");
});

Deno.test("real apiserver: with config.watchPods=false the chart grants nothing on Pods; the service then needs nothing, and with the watch on it stays not ready naming the RBAC cause", async () => {
  await using kube = await KubeApiServer.start();
  const kubeconfig = await chartIdentity(kube, { config: { watchPods: false } });
  await kube.createNamespace("team-a");
  await kube.createServiceAccount("team-a", "orders");
  const pod = await kube.createPod("team-a", "orders-0", "orders");
  const bound = await kube.token("team-a", "orders", { pod: { name: "orders-0", uid: pod.uid } });
  await using stack = await Stack.start({
    env: serviceEnv(kube, kubeconfig, { K8S_WATCH_PODS: "false" }),
  });
  assert.equal(stack.service.ready, true);
  assert.equal(await loginWorks(stack, bound), true);
  await kube.deletePod("team-a", "orders-0");
  // Without the Pod watch the token is judged by its ServiceAccount alone (documented trade).
  assert.equal(await loginWorks(stack, bound), true);
  assert.equal(stack.service.metrics.podCacheSynced.value(), 0);
  // The same identity with the Pod watch on: RBAC refuses the Pod list, the cause is named once at
  // warn, and the replica stays not ready on `pods` (so it takes no logins it could not check).
  const logs: Record<string, unknown>[] = [];
  {
    await using watching = await startService({
      config: loadConfig({ ...stack.env, K8S_WATCH_PODS: "true" }),
      logger: createLogger({ level: "info", write: (l) => logs.push(JSON.parse(l)) }),
    });
    const refused = await waitFor(
      () =>
        logs.find((l) => l.event === "apiserver_request_failed" && l.request === "list/watch pods"),
      { timeoutMs: 15_000, what: "the Pod list refused" },
    );
    assert.equal(refused.cause, "forbidden");
    assert.equal(refused.level, "warn");
    assert.match(String(refused.error), /cannot list resource "pods"/);
    const failing = async () => {
      const res = await watching.handler(new Request("http://x/readyz"));
      return ((await res.json()) as { failing?: string[] }).failing ?? [];
    };
    await waitFor(async () => !(await failing()).includes("serviceaccounts"), {
      timeoutMs: 15_000,
      what: "ServiceAccounts synced",
    });
    assert.ok((await failing()).includes("pods"));
    assert.equal(watching.ready, false);
  }
  // The chart's identity may not list Pods (the RBAC rule is gone with the setting).
  const client = Deno.createHttpClient({ caCerts: [kube.caPem] });
  try {
    const podsList = await fetch(`${kube.url}/api/v1/pods?limit=1`, {
      headers: { authorization: `Bearer ${await tokenOf(kubeconfig)}` },
      client,
    });
    await podsList.body?.cancel();
    assert.equal(podsList.status, 403);
  } finally {
    client.close();
  }
});

async function tokenOf(kubeconfig: string): Promise<string> {
  const doc = JSON.parse(await Deno.readTextFile(kubeconfig)) as {
    users: { user: { token: string } }[];
  };
  return doc.users[0]!.user.token;
}

interface MetadataPeer {
  get(path: string, accept: string, signal?: AbortSignal): Promise<Response>;
  deletePod(namespace: string, name: string): Promise<void>;
}

/** List and watch Pods as the Pod cache does; what came back, in the terms the cache reads. */
async function observeMetadata(peer: MetadataPeer, uid: string) {
  const list = await (await peer.get("/api/v1/pods?limit=500", METADATA_LIST_ACCEPT)).json();
  const item = list.items.find((i: KubeObject) => i.metadata.name === "orders-0");
  const ctl = new AbortController();
  const res = await peer.get(
    `/api/v1/pods?watch=true&allowWatchBookmarks=true&resourceVersion=${list.metadata.resourceVersion}`,
    METADATA_WATCH_ACCEPT,
    ctl.signal,
  );
  const watchStatus = res.status;
  await peer.deletePod("team-a", "orders-0");
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes('"DELETED"')) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  ctl.abort();
  await reader.cancel().catch(() => {});
  const event = text.split("\n").map((l) => l.trim()).filter(Boolean).map((l) => JSON.parse(l))
    .find((e) => e.type === "DELETED");
  return {
    list: {
      kind: list.kind,
      apiVersion: list.apiVersion,
      rv: typeof list.metadata.resourceVersion,
    },
    item: {
      namespace: item.metadata.namespace,
      uidMatches: item.metadata.uid === uid,
      hasSpec: "spec" in item,
      hasStatus: "status" in item,
    },
    watchStatus,
    event: {
      kind: event.object.kind,
      apiVersion: event.object.apiVersion,
      uidMatches: event.object.metadata.uid === uid,
      hasSpec: "spec" in event.object,
    },
  };
}

Deno.test("real apiserver: the PartialObjectMetadata Accept headers return metadata only, for lists and watches, as the double claims", async () => {
  await using kube = await KubeApiServer.start();
  await kube.createNamespace("team-a");
  await kube.createServiceAccount("team-a", "orders");
  const { uid } = await kube.createPod("team-a", "orders-0", "orders");
  const client = Deno.createHttpClient({ caCerts: [kube.caPem] });
  try {
    const fromReal = await observeMetadata({
      get: (path, accept, signal) =>
        fetch(`${kube.url}${path}`, {
          headers: { authorization: `Bearer ${kube.adminToken}`, accept },
          client,
          ...(signal ? { signal } : {}),
        }),
      deletePod: (ns, name) => kube.deletePod(ns, name),
    }, uid);
    assert.deepEqual(fromReal, {
      list: { kind: "PartialObjectMetadataList", apiVersion: "meta.k8s.io/v1", rv: "string" },
      item: { namespace: "team-a", uidMatches: true, hasSpec: false, hasStatus: false },
      watchStatus: 200,
      event: {
        kind: "PartialObjectMetadata",
        apiVersion: "meta.k8s.io/v1",
        uidMatches: true,
        hasSpec: false,
      },
    });

    await using double = await TestApiServer.start();
    const pod = double.upsertPod("team-a", "orders-0");
    const fromDouble = await observeMetadata({
      get: (path, accept, signal) =>
        fetch(`${double.url}${path}`, { headers: { accept }, ...(signal ? { signal } : {}) }),
      deletePod: (ns, name) => Promise.resolve(void double.deletePod(ns, name)),
    }, pod.uid);
    assert.deepEqual(fromDouble, fromReal);
  } finally {
    client.close();
  }
});
