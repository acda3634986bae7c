/**
 * The in-process apiserver double (tests/support/test_apiserver.ts) is a claim about the real
 * kube-apiserver; this checks the claim. The same list, page, watch, expired-watch and discovery
 * calls go to both, and the answers the service depends on must have the same shape: the
 * fields our cache reads, the event types and their order, and how an expired resourceVersion is
 * refused. The double stays for faults the real one cannot produce on demand (dropped streams,
 * 500 bursts, slow answers).
 */
import assert from "node:assert/strict";
import { KubeApiServer } from "./kube_apiserver.ts";
import { TestApiServer } from "./test_apiserver.ts";

interface Peer {
  name: string;
  get(path: string): Promise<Response>;
  add(ns: string, name: string, annotations: Record<string, string>): Promise<void>;
  annotate(ns: string, name: string, annotations: Record<string, string>): Promise<void>;
  remove(ns: string, name: string): Promise<void>;
  /** Make every resourceVersion so far too old to watch from. */
  expire(): Promise<void>;
}

/** The shape of a JSON value: keys and types, values dropped. */
function shape(value: unknown): unknown {
  if (Array.isArray(value)) return value.length ? [shape(value[0])] : [];
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, shape(v)]),
    );
  }
  return typeof value;
}

/** Only what the cache reads of a ServiceAccount. */
function cacheView(obj: { metadata?: Record<string, unknown> }) {
  const md = obj.metadata ?? {};
  return {
    namespace: typeof md.namespace,
    name: typeof md.name,
    uid: typeof md.uid,
    resourceVersion: typeof md.resourceVersion,
    annotations: md.annotations,
  };
}

async function readEvents(res: Response, count: number): Promise<Record<string, unknown>[]> {
  const events: Record<string, unknown>[] = [];
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  while (events.length < count) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let nl;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, nl).trim();
      buffer = buffer.slice(nl + 1);
      if (!line) continue;
      const event = JSON.parse(line);
      if (event.type !== "BOOKMARK") events.push(event);
    }
  }
  await reader.cancel();
  return events;
}

async function observe(peer: Peer) {
  await peer.add("team-a", "one", { "nats.io/allowed-pub-subjects": "a.>" });
  await peer.add("team-a", "two", {});
  const list = await (await peer.get("/api/v1/serviceaccounts?limit=500")).json();
  const ours = list.items.filter((i: { metadata: { namespace: string } }) =>
    i.metadata.namespace === "team-a"
  );
  const page = await (await peer.get("/api/v1/namespaces/team-a/serviceaccounts?limit=1")).json();

  const watch = await peer.get(
    `/api/v1/serviceaccounts?watch=true&allowWatchBookmarks=true&timeoutSeconds=10&resourceVersion=${list.metadata.resourceVersion}`,
  );
  const watchStatus = watch.status;
  await peer.annotate("team-a", "one", { "nats.io/allowed-pub-subjects": "b.>" });
  await peer.remove("team-a", "two");
  const events = (await readEvents(watch, 2)).map((e) => ({
    type: e.type,
    object: cacheView(e.object as { metadata?: Record<string, unknown> }),
  }));

  // A resourceVersion the server no longer keeps: the real apiserver after a restart (its watch
  // cache starts anew), the double after dropping its history.
  await peer.expire();
  const expired = await peer.get(
    `/api/v1/serviceaccounts?watch=true&allowWatchBookmarks=true&timeoutSeconds=5&resourceVersion=${list.metadata.resourceVersion}`,
  );
  const expiredEvents = expired.status === 200 ? await readEvents(expired, 1) : [];
  if (expired.status !== 200) await expired.body?.cancel();

  return {
    listKind: list.kind,
    listMetadata: typeof list.metadata.resourceVersion,
    items: ours.map(cacheView),
    pageHasContinue: typeof page.metadata.continue,
    pageItems: page.items.length,
    watchStatus,
    events,
    expired: {
      status: expired.status,
      events: expiredEvents.map((e) => ({
        type: e.type,
        kind: (e.object as Record<string, unknown>).kind,
        code: (e.object as Record<string, unknown>).code,
      })),
    },
    oidcShape: shape(await (await peer.get("/.well-known/openid-configuration")).json()),
  };
}

Deno.test("the apiserver double answers the service's calls as the real kube-apiserver does", async () => {
  await using kube = await KubeApiServer.start();
  await kube.createNamespace("team-a");
  const real: Peer = {
    name: "kube-apiserver",
    get: (path) =>
      fetch(`${kube.url}${path}`, {
        headers: { authorization: `Bearer ${kube.adminToken}`, accept: "application/json" },
        client: Deno.createHttpClient({ caCerts: [kube.caPem] }),
      } as RequestInit),
    add: async (ns, name, annotations) => {
      await kube.createServiceAccount(ns, name, annotations);
    },
    annotate: (ns, name, annotations) => kube.annotateServiceAccount(ns, name, annotations),
    remove: (ns, name) => kube.deleteServiceAccount(ns, name),
    expire: () => kube.restart(),
  };
  await using double = await TestApiServer.start({ jwks: { keys: [] }, issuer: kube.issuer });
  const fake: Peer = {
    name: "double",
    get: (path) => fetch(`${double.url}${path}`),
    add: (ns, name, annotations) => {
      double.upsertServiceAccount(ns, name, { annotations });
      return Promise.resolve();
    },
    annotate: (ns, name, annotations) => {
      double.upsertServiceAccount(ns, name, { annotations });
      return Promise.resolve();
    },
    remove: (ns, name) => {
      double.deleteServiceAccount(ns, name);
      return Promise.resolve();
    },
    expire: () => {
      double.compactHistory();
      return Promise.resolve();
    },
  };
  const fromReal = await observe(real);
  const fromDouble = await observe(fake);
  // What the real one said, for the record (and so a mismatch shows both sides).
  assert.deepEqual(fromDouble, fromReal);
  assert.deepEqual(fromReal.events.map((e) => e.type), ["MODIFIED", "DELETED"]);
  assert.deepEqual(fromReal.expired, {
    status: 200,
    events: [{ type: "ERROR", kind: "Status", code: 410 }],
  });
});
