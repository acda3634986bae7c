/**
 * The test apiserver must behave like a real one for the unmodified `@kubernetes/client-node`:
 * these tests drive it with `CoreV1Api` and client-node's `Watch`.
 */
import assert from "node:assert/strict";
import { ApiException, CoreV1Api, Watch } from "@kubernetes/client-node";
import { createTestCertificates, TestApiServer } from "./test_apiserver.ts";
import { waitFor } from "./wait.ts";

interface SeenEvent {
  type: string;
  name: string | undefined;
  rv: string | undefined;
  object: { code?: number; reason?: string; kind?: string };
}

/** The error `fn` rejects with (fails when it resolves). */
async function rejection(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  assert.fail("expected a rejection");
}

/** Start a client-node watch that records events and how it ended. */
async function clientWatch(
  api: TestApiServer,
  path: string,
  query: Record<string, string | number | boolean | undefined>,
) {
  const events: SeenEvent[] = [];
  let ended: { err: unknown } | undefined;
  const controller = await new Watch(api.kubeConfig()).watch(
    path,
    query,
    (type, obj) =>
      events.push({
        type,
        name: obj?.metadata?.name,
        rv: obj?.metadata?.resourceVersion,
        object: obj,
      }),
    (err) => {
      ended = { err };
    },
  );
  return {
    events,
    get ended() {
      return ended;
    },
    stop: () => controller.abort(),
  };
}

Deno.test("list pages through all ServiceAccounts with limit and continue, at one resourceVersion", async () => {
  await using api = await TestApiServer.start();
  for (const [ns, name] of [["b", "x"], ["a", "y"], ["a", "z"], ["c", "w"], ["a", "x"]]) {
    api.upsertServiceAccount(ns!, name!, {
      annotations: { "nats.io/allowed-pub-subjects": "p.>" },
    });
  }
  const core = api.kubeConfig().makeApiClient(CoreV1Api);
  const seen: string[] = [];
  let cont: string | undefined;
  const rvs = new Set<string | undefined>();
  let pages = 0;
  do {
    const page = await core.listServiceAccountForAllNamespaces(
      cont ? { limit: 2, _continue: cont } : { limit: 2 },
    );
    pages++;
    rvs.add(page.metadata?.resourceVersion);
    for (const sa of page.items) {
      seen.push(`${sa.metadata?.namespace}/${sa.metadata?.name}`);
      assert(sa.metadata?.uid, "each object has a uid");
      assert(sa.metadata?.creationTimestamp instanceof Date, "creationTimestamp parses as a date");
      assert.deepEqual(sa.metadata?.annotations?.["nats.io/allowed-pub-subjects"], "p.>");
    }
    if (page.metadata?._continue) assert((page.metadata.remainingItemCount ?? 0) > 0);
    cont = page.metadata?._continue;
  } while (cont);
  assert.deepEqual(pages, 3);
  assert.deepEqual(seen, ["a/x", "a/y", "a/z", "b/x", "c/w"]);
  assert.deepEqual([...rvs], [api.resourceVersion]);

  const ns = await core.listNamespacedServiceAccount({ namespace: "a" });
  assert.deepEqual(ns.items.map((sa) => sa.metadata?.name), ["x", "y", "z"]);
  assert.deepEqual(ns.metadata?._continue, undefined);
  assert.deepEqual(api.listCalls, 4);

  const one = await core.readNamespacedServiceAccount({ namespace: "c", name: "w" });
  assert.deepEqual(one.metadata?.name, "w");
  const missing = await rejection(() =>
    core.readNamespacedServiceAccount({ namespace: "c", name: "nope" })
  );
  assert(missing instanceof ApiException && missing.code === 404);
});

Deno.test("a continue token older than the history answers 410 Expired", async () => {
  await using api = await TestApiServer.start();
  api.bulkLoad(10, { namespaces: 2 });
  const core = api.kubeConfig().makeApiClient(CoreV1Api);
  const first = await core.listServiceAccountForAllNamespaces({ limit: 3 });
  const cont = first.metadata?._continue;
  assert(cont);
  api.upsertServiceAccount("bulk-0", "late");
  api.compactHistory();
  const err = await rejection(() =>
    core.listServiceAccountForAllNamespaces({ limit: 3, _continue: cont })
  );
  assert(err instanceof ApiException, String(err));
  assert.deepEqual(err.code, 410);
});

Deno.test("watch replays events after a resourceVersion, streams new ones and bookmarks", async () => {
  await using api = await TestApiServer.start();
  api.upsertServiceAccount("a", "one");
  const core = api.kubeConfig().makeApiClient(CoreV1Api);
  const list = await core.listServiceAccountForAllNamespaces();
  const listRv = list.metadata?.resourceVersion;
  // Happens between list and watch: must be replayed.
  api.upsertServiceAccount("a", "two");
  const w = await clientWatch(api, "/api/v1/serviceaccounts", {
    resourceVersion: listRv,
    allowWatchBookmarks: true,
  });
  try {
    await waitFor(() => api.openWatches === 1, { what: "watch open" });
    api.upsertServiceAccount("a", "one", { annotations: { "nats.io/x": "y" } });
    api.upsertServiceAccount("b", "other");
    api.deleteServiceAccount("a", "two");
    api.sendBookmarks();
    await waitFor(() => w.events.length >= 5, { what: "five events" });
    assert.deepEqual(
      w.events.map((e) => `${e.type} ${e.name ?? ""}`),
      ["ADDED two", "MODIFIED one", "ADDED other", "DELETED two", "BOOKMARK "],
    );
    const rvs = w.events.slice(0, 4).map((e) => Number(e.rv));
    assert(rvs.every((rv, i) => i === 0 || rv > rvs[i - 1]!), `increasing: ${rvs}`);
    assert.deepEqual(w.events.at(-1)?.rv, api.resourceVersion);
    assert.deepEqual(w.ended, undefined);
  } finally {
    w.stop();
  }
  await waitFor(() => api.openWatches === 0, { what: "watch closed on the server" });
});

Deno.test("a namespaced watch from resourceVersion 0 starts with ADDED for what exists", async () => {
  await using api = await TestApiServer.start();
  api.upsertServiceAccount("a", "one");
  api.upsertServiceAccount("b", "skip");
  const w = await clientWatch(api, "/api/v1/namespaces/a/serviceaccounts", {
    resourceVersion: "0",
  });
  try {
    await waitFor(() => api.openWatches === 1);
    api.upsertServiceAccount("b", "skip2");
    api.upsertServiceAccount("a", "two");
    api.sendBookmarks(); // not allowed on this watch: nothing arrives
    await waitFor(() => w.events.length >= 2);
    assert.deepEqual(w.events.map((e) => `${e.type} ${e.name}`), ["ADDED one", "ADDED two"]);
  } finally {
    w.stop();
  }
});

Deno.test("a watch from a compacted resourceVersion gets an ERROR event with a 410 Status", async () => {
  await using api = await TestApiServer.start();
  api.upsertServiceAccount("a", "one");
  const old = api.resourceVersion;
  api.upsertServiceAccount("a", "two");
  api.compactHistory();
  const w = await clientWatch(api, "/api/v1/serviceaccounts", {
    resourceVersion: old,
    allowWatchBookmarks: true,
  });
  await waitFor(() => w.ended, { what: "watch end" });
  assert.deepEqual(w.events.length, 1);
  assert.deepEqual(w.events[0]!.type, "ERROR");
  assert.deepEqual(w.events[0]!.object.kind, "Status");
  assert.deepEqual(w.events[0]!.object.code, 410);
  assert.deepEqual(w.events[0]!.object.reason, "Expired");
  // The current resourceVersion is still watchable.
  const ok = await clientWatch(api, "/api/v1/serviceaccounts", {
    resourceVersion: api.resourceVersion,
  });
  await waitFor(() => api.openWatches === 1);
  ok.stop();
});

Deno.test("in http-410 mode an expired watch is refused with HTTP 410", async () => {
  await using api = await TestApiServer.start({ expiredWatchMode: "http-410", historyLimit: 2 });
  api.upsertServiceAccount("a", "one");
  const old = api.resourceVersion;
  api.bulkLoad(10); // more than twice the history limit: the old version falls out
  const w = await clientWatch(api, "/api/v1/serviceaccounts", { resourceVersion: old });
  await waitFor(() => w.ended, { what: "watch end" });
  assert.deepEqual((w.ended?.err as { statusCode?: number }).statusCode, 410);
  assert.deepEqual(w.events.length, 0);
  assert.deepEqual(api.watchCalls, 1);
});

Deno.test("timeoutSeconds ends a watch cleanly", async () => {
  await using api = await TestApiServer.start();
  const w = await clientWatch(api, "/api/v1/serviceaccounts", {
    resourceVersion: api.resourceVersion,
    timeoutSeconds: 1,
  });
  await waitFor(() => w.ended, { what: "watch end", timeoutMs: 5000 });
  assert.deepEqual(w.ended?.err, null);
  assert.deepEqual(api.openWatches, 0);
});

Deno.test("dropWatches cuts open streams mid-way: the client sees an error, not an end", async () => {
  await using api = await TestApiServer.start();
  api.upsertServiceAccount("a", "one");
  const res = await fetch(`${api.url}/api/v1/serviceaccounts?watch=1&resourceVersion=0`);
  const reader = res.body!.getReader();
  const first = await reader.read();
  assert(!first.done && new TextDecoder().decode(first.value).includes('"ADDED"'));
  api.dropWatches();
  await assert.rejects(async () => {
    while (!(await reader.read()).done) { /* drain */ }
  });
  assert.deepEqual(api.openWatches, 0);
});

Deno.test("a required bearer token is enforced; OIDC discovery and JWKS are served", async () => {
  const jwks = { keys: [{ kty: "RSA", kid: "k1", n: "AQAB", e: "AQAB" }] };
  await using api = await TestApiServer.start({
    requireBearerToken: "secret-token",
    jwks,
    issuer: "https://issuer.example",
  });
  const good = api.kubeConfig().makeApiClient(CoreV1Api);
  assert.deepEqual((await good.listServiceAccountForAllNamespaces()).items.length, 0);
  const bad = api.kubeConfig({ token: "wrong" }).makeApiClient(CoreV1Api);
  const err = await rejection(() => bad.listServiceAccountForAllNamespaces());
  assert(err instanceof ApiException && err.code === 401);

  const auth = { headers: { authorization: "Bearer secret-token" } };
  const config = await (await fetch(`${api.url}/.well-known/openid-configuration`, auth)).json();
  assert.deepEqual(config.issuer, "https://issuer.example");
  assert.deepEqual(config.jwks_uri, `${api.url}/openid/v1/jwks`);
  const keys = await fetch(config.jwks_uri, auth);
  assert.deepEqual(keys.headers.get("content-type"), "application/jwk-set+json");
  assert.deepEqual(await keys.json(), jwks);
  api.setJwks({ keys: [] });
  assert.deepEqual(await (await fetch(config.jwks_uri, auth)).json(), { keys: [] });
  const anonymous = await fetch(config.jwks_uri);
  assert.deepEqual(anonymous.status, 401);
  await anonymous.body?.cancel();
});

Deno.test("setFault makes the apiserver answer errors until cleared", async () => {
  await using api = await TestApiServer.start();
  const core = api.kubeConfig().makeApiClient(CoreV1Api);
  api.setFault({ status: 500 });
  const err = await rejection(() => core.listServiceAccountForAllNamespaces());
  assert(err instanceof ApiException && err.code === 500);
  api.setFault({ status: 503, on: "watch" });
  await core.listServiceAccountForAllNamespaces();
  const w = await clientWatch(api, "/api/v1/serviceaccounts", {});
  await waitFor(() => w.ended);
  assert.deepEqual((w.ended?.err as { statusCode?: number }).statusCode, 503);
  api.setFault(undefined);
  await core.listServiceAccountForAllNamespaces();
});

Deno.test("serves HTTPS with a CA that client-node trusts", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const tls = await createTestCertificates(dir);
    await using api = await TestApiServer.start({
      tls,
    });
    assert(api.url.startsWith("https://127.0.0.1:"));
    api.upsertServiceAccount("a", "one");
    const core = api.kubeConfig().makeApiClient(CoreV1Api);
    const list = await core.listServiceAccountForAllNamespaces();
    assert.deepEqual(list.items.map((sa) => sa.metadata?.name), ["one"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
