/**
 * An in-process Kubernetes apiserver double for ServiceAccounts and Pods. It speaks the real REST
 * list/watch protocol closely enough that the unmodified `@kubernetes/client-node` works against it
 * as against a cluster; the real kube-apiserver is the suite's apiserver, this double stays for the
 * faults that one cannot produce on demand:
 *
 * - `GET /api/v1/serviceaccounts`, `GET /api/v1/namespaces/{ns}/serviceaccounts[/{name}]`: a v1
 *   `ServiceAccountList` (items without `kind`/`apiVersion`, as real lists), `limit` + `continue`
 *   paging with `remainingItemCount`, a continue token older than the event history answers
 *   `410 Expired` like a compacted etcd.
 * - `?watch=true|1`: a chunked stream of newline-delimited `{"type","object"}` events replayed from a
 *   bounded history after `resourceVersion`; `resourceVersion` absent or `"0"` starts with synthetic
 *   `ADDED` events for every object. A version older than the history answers, by
 *   {@linkcode TestApiServer.expiredWatchMode}, either an `ERROR` event carrying a 410 `Status` (what
 *   most apiserver versions do) or an HTTP 410. `BOOKMARK`s (only with `allowWatchBookmarks`) carry
 *   just `metadata.resourceVersion`. `timeoutSeconds` ends the stream cleanly.
 * - One global, monotonically increasing resourceVersion; each object has its own
 *   `metadata.resourceVersion`, `uid` and `creationTimestamp`; `DELETED` events carry the deletion's
 *   resourceVersion.
 * - The same for Pods (`/api/v1/pods`, `/api/v1/namespaces/{ns}/pods`), metadata only. An `Accept`
 *   of `application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1` (lists) or
 *   `…as=PartialObjectMetadata…` (watches) answers `PartialObjectMetadataList`/`PartialObjectMetadata`
 *   like the real apiserver, for either kind; without it, objects carry their own kind (and Pods a
 *   token `spec`).
 * - `GET /openid/v1/jwks` and `/.well-known/openid-configuration`, `GET /version`; `401` when a bearer
 *   token is required and missing or wrong.
 *
 * Note: client-node's `Watch` (undici `fetch`) under Deno does not notice a stream cut by
 * {@linkcode TestApiServer.dropWatches}, nor its own abort, because undici never errors the body
 * stream there; Deno's native `fetch` does, which is why lib/cache/serviceaccounts.ts watches with it.
 *
 * Fault switches for resilience tests: {@linkcode TestApiServer.dropWatches} (abrupt mid-stream
 * close), {@linkcode TestApiServer.compactHistory}, {@linkcode TestApiServer.setFault} (answer
 * errors for a while).
 *
 * @module
 */
import { KubeConfig } from "@kubernetes/client-node";
import { ISSUER } from "./sa_tokens.ts";

/** How a watch from a resourceVersion older than the history is refused. */
export type ExpiredWatchMode = "error-event" | "http-410";

/** Options of {@linkcode TestApiServer.start}. */
export interface TestApiServerOptions {
  /** Key set served at `/openid/v1/jwks`. @default {undefined (404)} */
  jwks?: object;
  /** Issuer named in `/.well-known/openid-configuration`. @default {"https://kubernetes.default.svc.cluster.local"} */
  issuer?: string;
  /** When set, every request must carry `Authorization: Bearer <this>` or gets 401. @default {undefined} */
  requireBearerToken?: string;
  /**
   * Serve HTTPS with this PEM certificate and key; `caFile` (default `certFile`) goes into
   * {@linkcode TestApiServer.kubeConfig}. See {@linkcode createTestCertificates}. @default {plain HTTP}
   */
  tls?: { certFile: string; keyFile: string; caFile?: string };
  /** Watch events kept for replay; older resourceVersions are expired. @default {1000} */
  historyLimit?: number;
  /** How an expired watch is refused. @default {"error-event"} */
  expiredWatchMode?: ExpiredWatchMode;
}

/** Which requests a fault from {@linkcode TestApiServer.setFault} hits. */
export type FaultTarget = "all" | "list" | "watch" | "oidc";

/** A fault: matching requests answer `status` with a `Status` body. */
export interface Fault {
  status: number;
  /** @default {"all"} */
  on?: FaultTarget;
}

/** The kinds the double serves, by their collection name. */
export type Resource = "serviceaccounts" | "pods";

const KINDS: Readonly<Record<Resource, string>> = {
  serviceaccounts: "ServiceAccount",
  pods: "Pod",
};

/** Metadata of a stored ServiceAccount or Pod, as returned by the control API. */
export interface StoredMeta {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly resourceVersion: string;
}

/** One stored object version; immutable so history entries can share it. */
interface Stored {
  readonly resource: Resource;
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly rv: number;
  readonly created: string;
  readonly annotations: Readonly<Record<string, string>> | undefined;
  /** `metadata.deletionTimestamp` (a Pod in graceful termination or held by a finalizer). */
  readonly deletionTimestamp?: string;
}

type EventType = "ADDED" | "MODIFIED" | "DELETED";

interface HistoryEvent {
  readonly type: EventType;
  readonly obj: Stored;
}

interface Watcher {
  readonly resource: Resource;
  readonly metadataOnly: boolean;
  readonly namespace: string | undefined;
  readonly bookmarks: boolean;
  readonly controller: ReadableStreamDefaultController<Uint8Array>;
  timer: ReturnType<typeof setTimeout> | undefined;
  closed: boolean;
}

const encoder = new TextEncoder();

function k8sTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

function status(code: number, reason: string, message: string): Record<string, unknown> {
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    code,
  };
}

const REASONS: Record<number, string> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  405: "MethodNotAllowed",
  410: "Expired",
  429: "TooManyRequests",
  500: "InternalError",
  503: "ServiceUnavailable",
  504: "Timeout",
};

function json(body: unknown, code = 200, contentType = "application/json"): Response {
  return new Response(JSON.stringify(body), {
    status: code,
    headers: { "content-type": contentType },
  });
}

function statusResponse(code: number, message: string, reason?: string): Response {
  return json(status(code, reason ?? REASONS[code] ?? "Unknown", message), code);
}

function objectJson(s: Stored, withKind: boolean, metadataOnly = false): Record<string, unknown> {
  const metadata: Record<string, unknown> = {
    name: s.name,
    namespace: s.namespace,
    uid: s.uid,
    resourceVersion: String(s.rv),
    creationTimestamp: s.created,
  };
  if (s.annotations) metadata.annotations = s.annotations;
  if (s.deletionTimestamp) metadata.deletionTimestamp = s.deletionTimestamp;
  if (metadataOnly) {
    return withKind ? { kind: "PartialObjectMetadata", apiVersion: "meta.k8s.io/v1", metadata } : {
      metadata,
    };
  }
  const spec = s.resource === "pods"
    ? { spec: { serviceAccountName: "default", containers: [{ name: "app", image: "app" }] } }
    : {};
  return withKind
    ? { kind: KINDS[s.resource], apiVersion: "v1", metadata, ...spec }
    : { metadata, ...spec };
}

function keyOf(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/** Index of the first element of sorted `arr` that is `>= value`. */
function lowerBound(arr: readonly string[], value: string): number {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (arr[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** PEM files written by {@linkcode createTestCertificates}. */
export interface TestCertificates {
  /** The CA certificate (what a pod sees as `ca.crt`). */
  readonly caFile: string;
  /** The server certificate for `127.0.0.1` and `localhost`, signed by the CA. */
  readonly certFile: string;
  /** The server's private key. */
  readonly keyFile: string;
}

async function openssl(args: string[]): Promise<void> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("openssl", { args, stdout: "null", stderr: "piped" }).output();
  } catch (err) {
    throw new Error("openssl not found: it is needed to create test certificates", { cause: err });
  }
  if (!out.success) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/**
 * Write a throwaway CA and a server certificate it signs (P-256, valid one day) into `dir`, for
 * `TestApiServer.start({ tls })`. A separate CA matters: rustls (Deno's fetch) refuses a self-signed
 * certificate that is both CA and server.
 */
export async function createTestCertificates(dir: string): Promise<TestCertificates> {
  const caFile = `${dir}/ca.crt`;
  await openssl([
    "req",
    "-x509",
    ...EC_KEY,
    "-days",
    "1",
    "-subj",
    "/CN=test-apiserver-ca",
    "-keyout",
    `${dir}/ca.key`,
    "-out",
    caFile,
  ]);
  const { certFile, keyFile } = await issueCertificate(dir, "tls", {
    subject: "/CN=127.0.0.1",
    extensions: "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n" +
      "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
  });
  return { caFile, certFile, keyFile };
}

const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

/**
 * Issue a certificate (P-256, one day) signed by the CA that {@linkcode createTestCertificates}
 * wrote into `dir`: `<dir>/<name>.crt` and its key `<dir>/<name>.key`. `extensions` is an openssl
 * extension file's text (e.g. `extendedKeyUsage=clientAuth` for a client certificate).
 */
export async function issueCertificate(
  dir: string,
  name: string,
  options: { subject: string; extensions: string },
): Promise<{ certFile: string; keyFile: string }> {
  const certFile = `${dir}/${name}.crt`;
  const keyFile = `${dir}/${name}.key`;
  const csr = `${dir}/${name}.csr`;
  const ext = `${dir}/${name}.ext`;
  await openssl(["req", ...EC_KEY, "-subj", options.subject, "-keyout", keyFile, "-out", csr]);
  await Deno.writeTextFile(ext, options.extensions);
  await openssl([
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    `${dir}/ca.crt`,
    "-CAkey",
    `${dir}/ca.key`,
    "-CAcreateserial",
    "-days",
    "1",
    "-extfile",
    ext,
    "-out",
    certFile,
  ]);
  return { certFile, keyFile };
}

/**
 * A Kubernetes apiserver double serving ServiceAccounts over real HTTP on 127.0.0.1. Start it with
 * {@linkcode TestApiServer.start}, point `@kubernetes/client-node` at it with
 * {@linkcode TestApiServer.kubeConfig}, and change the world through the control methods.
 *
 * @example
 * ```ts ignore
 * await using api = await TestApiServer.start();
 * api.upsertServiceAccount("team-a", "worker", { annotations: { "nats.io/allowed-pub-subjects": "x.>" } });
 * const core = api.kubeConfig().makeApiClient(CoreV1Api);
 * const list = await core.listServiceAccountForAllNamespaces();
 * ```
 */
export class TestApiServer implements AsyncDisposable {
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  /** How an expired watch is refused; may be changed at any time. */
  expiredWatchMode: ExpiredWatchMode;
  /** List requests served (each page counts). */
  listCalls = 0;
  /** Watch requests received (including refused ones). */
  watchCalls = 0;
  /** List and watch requests that asked for `PartialObjectMetadata` (see the module doc). */
  metadataRequests = 0;

  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #options: TestApiServerOptions;
  readonly #historyLimit: number;
  readonly #stores: Readonly<Record<Resource, Map<string, Stored>>> = {
    serviceaccounts: new Map(),
    pods: new Map(),
  };
  readonly #sortedKeys: Partial<Record<Resource, string[]>> = {};
  #rv = 0;
  /** Events with resourceVersion > #historyStart are all in #history, oldest first. */
  #history: HistoryEvent[] = [];
  #historyStart = 0;
  readonly #watchers = new Set<Watcher>();
  #jwks: object | undefined;
  #fault: Required<Fault> | undefined;
  #stopped = false;

  private constructor(server: Deno.HttpServer<Deno.NetAddr>, options: TestApiServerOptions) {
    this.#server = server;
    this.#options = options;
    this.#historyLimit = options.historyLimit ?? 1000;
    this.#jwks = options.jwks;
    this.expiredWatchMode = options.expiredWatchMode ?? "error-event";
    const scheme = options.tls ? "https" : "http";
    this.url = `${scheme}://127.0.0.1:${server.addr.port}`;
  }

  /** Start a server on 127.0.0.1 with a free port. */
  static async start(options: TestApiServerOptions = {}): Promise<TestApiServer> {
    const ref: { self?: TestApiServer } = {};
    const handler = (req: Request): Response => {
      return ref.self ? ref.self.#handle(req) : statusResponse(503, "starting");
    };
    const base = {
      hostname: "127.0.0.1",
      port: 0,
      onListen: () => {},
      // Also reached when a watch body is errored on purpose (dropWatches): answer quietly.
      onError: () => statusResponse(500, "internal error"),
      handler,
    };
    let server: Deno.HttpServer<Deno.NetAddr>;
    if (options.tls) {
      const [cert, key] = await Promise.all([
        Deno.readTextFile(options.tls.certFile),
        Deno.readTextFile(options.tls.keyFile),
      ]);
      server = Deno.serve({ ...base, cert, key });
    } else {
      server = Deno.serve(base);
    }
    ref.self = new TestApiServer(server, options);
    return ref.self;
  }

  /** Watch streams currently open. */
  get openWatches(): number {
    return this.#watchers.size;
  }

  /** The current global resourceVersion. */
  get resourceVersion(): string {
    return String(this.#rv);
  }

  /** ServiceAccounts stored. */
  get size(): number {
    return this.#stores.serviceaccounts.size;
  }

  /** Pods stored. */
  get podCount(): number {
    return this.#stores.pods.size;
  }

  /** Replace the key set served at `/openid/v1/jwks`. */
  setJwks(jwks: object | undefined): void {
    this.#jwks = jwks;
  }

  /** Make matching requests fail with `fault.status` until called again without a fault. */
  setFault(fault: Fault | undefined): void {
    this.#fault = fault ? { status: fault.status, on: fault.on ?? "all" } : undefined;
  }

  /**
   * Create the ServiceAccount (ADDED) or update it (MODIFIED). `annotations`, when given, replace the
   * current set (`{}` removes all). A different `uid` for an existing name is a delete and re-create.
   */
  upsertServiceAccount(
    namespace: string,
    name: string,
    options: { annotations?: Record<string, string>; uid?: string } = {},
  ): StoredMeta {
    return this.#upsert("serviceaccounts", namespace, name, options);
  }

  /** Delete the ServiceAccount (DELETED event). Returns false when it did not exist. */
  deleteServiceAccount(namespace: string, name: string): boolean {
    return this.#delete("serviceaccounts", namespace, name);
  }

  /**
   * Create the Pod (ADDED) or update it (MODIFIED); a different `uid` for an existing name is a
   * delete and re-create, like a StatefulSet Pod coming back under its name.
   */
  upsertPod(
    namespace: string,
    name: string,
    options: { annotations?: Record<string, string>; uid?: string } = {},
  ): StoredMeta {
    return this.#upsert("pods", namespace, name, options);
  }

  /**
   * Start a Pod's graceful deletion: it stays, with `metadata.deletionTimestamp` = `at` (MODIFIED),
   * as while its kubelet stops it or a finalizer holds it. Returns false when it did not exist.
   */
  markPodDeleting(namespace: string, name: string, at: Date = new Date()): boolean {
    const objects = this.#stores.pods;
    const prev = objects.get(keyOf(namespace, name));
    if (!prev) return false;
    const stored: Stored = { ...prev, rv: ++this.#rv, deletionTimestamp: k8sTime(at.getTime()) };
    objects.set(keyOf(namespace, name), stored);
    this.#record({ type: "MODIFIED", obj: stored });
    return true;
  }

  /** Delete the Pod (DELETED event). Returns false when it did not exist. */
  deletePod(namespace: string, name: string): boolean {
    return this.#delete("pods", namespace, name);
  }

  #upsert(
    resource: Resource,
    namespace: string,
    name: string,
    options: { annotations?: Record<string, string>; uid?: string },
  ): StoredMeta {
    const objects = this.#stores[resource];
    const key = keyOf(namespace, name);
    let prev = objects.get(key);
    if (prev && options.uid !== undefined && options.uid !== prev.uid) {
      this.#delete(resource, namespace, name);
      prev = undefined;
    }
    const rv = ++this.#rv;
    const annotations = options.annotations !== undefined
      ? (Object.keys(options.annotations).length ? { ...options.annotations } : undefined)
      : prev?.annotations;
    const stored: Stored = {
      resource,
      namespace,
      name,
      uid: prev?.uid ?? options.uid ?? crypto.randomUUID(),
      rv,
      created: prev?.created ?? k8sTime(Date.now()),
      annotations,
    };
    if (!prev) delete this.#sortedKeys[resource];
    objects.set(key, stored);
    this.#record({ type: prev ? "MODIFIED" : "ADDED", obj: stored });
    return { namespace, name, uid: stored.uid, resourceVersion: String(rv) };
  }

  #delete(resource: Resource, namespace: string, name: string): boolean {
    const objects = this.#stores[resource];
    const key = keyOf(namespace, name);
    const prev = objects.get(key);
    if (!prev) return false;
    objects.delete(key);
    delete this.#sortedKeys[resource];
    this.#record({ type: "DELETED", obj: { ...prev, rv: ++this.#rv } });
    return true;
  }

  /**
   * Create `n` ServiceAccounts (or, with `resource: "pods"`, Pods) quickly (`sa-<i>`/`pod-<i>`
   * spread over `namespaces` namespaces named `<prefix>-<j>`), each an ADDED event like a real
   * create. Objects share their timestamp and annotations to keep memory low for 100k-object
   * benchmarks.
   */
  bulkLoad(
    n: number,
    options: {
      namespaces?: number;
      prefix?: string;
      annotations?: Record<string, string>;
      resource?: Resource;
    } = {},
  ): void {
    const { namespaces = 100, prefix = "bulk", resource = "serviceaccounts" } = options;
    const objects = this.#stores[resource];
    const namePrefix = resource === "pods" ? "pod" : "sa";
    const annotations = options.annotations && Object.keys(options.annotations).length
      ? Object.freeze({ ...options.annotations })
      : undefined;
    const created = k8sTime(Date.now());
    const start = objects.size;
    for (let i = 0; i < n; i++) {
      const namespace = `${prefix}-${(start + i) % namespaces}`;
      const name = `${namePrefix}-${start + i}`;
      const key = keyOf(namespace, name);
      const prev = objects.get(key);
      const stored: Stored = {
        resource,
        namespace,
        name,
        uid: prev?.uid ?? crypto.randomUUID(),
        rv: ++this.#rv,
        created: prev?.created ?? created,
        annotations,
      };
      objects.set(key, stored);
      this.#record({ type: prev ? "MODIFIED" : "ADDED", obj: stored });
    }
    delete this.#sortedKeys[resource];
  }

  /** Close every open watch stream abruptly, mid-stream (no terminating chunk). */
  dropWatches(): void {
    for (const w of [...this.#watchers]) {
      this.#closeWatcher(w, new Error("watch dropped by test"));
    }
  }

  /** Forget the event history: the next watch or continue from an older resourceVersion gets 410. */
  compactHistory(): void {
    this.#history = [];
    this.#historyStart = this.#rv;
  }

  /** Send a BOOKMARK with the current resourceVersion to every watch that allowed bookmarks. */
  sendBookmarks(): void {
    for (const w of this.#watchers) {
      if (w.bookmarks) this.#send(w, this.#bookmark(w));
    }
  }

  /**
   * A real `KubeConfig` pointing at this server: the configured bearer token (or `token`), and the
   * CA when serving TLS (plain HTTP needs `skipTLSVerify`, which client-node demands).
   */
  kubeConfig(options: { token?: string } = {}): KubeConfig {
    const kc = new KubeConfig();
    const tls = this.#options.tls;
    const token = options.token ?? this.#options.requireBearerToken;
    kc.loadFromClusterAndUser(
      tls
        ? {
          name: "test",
          server: this.url,
          skipTLSVerify: false,
          caFile: tls.caFile ?? tls.certFile,
        }
        : { name: "test", server: this.url, skipTLSVerify: true },
      token !== undefined ? { name: "test", token } : { name: "test" },
    );
    return kc;
  }

  /** Close all watches cleanly and stop listening. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const w of [...this.#watchers]) this.#closeWatcher(w);
    await this.#server.shutdown();
  }

  /** Same as {@linkcode TestApiServer.stop}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  // ---- internals ----

  #record(event: HistoryEvent): void {
    this.#history.push(event);
    if (this.#history.length > this.#historyLimit * 2) {
      const drop = this.#history.length - this.#historyLimit;
      this.#historyStart = this.#history[drop - 1]!.obj.rv;
      this.#history = this.#history.slice(drop);
    }
    if (this.#watchers.size === 0) return;
    for (const w of this.#watchers) {
      if (w.resource !== event.obj.resource) continue;
      if (w.namespace === undefined || w.namespace === event.obj.namespace) {
        this.#send(w, this.#eventLine(event, w.metadataOnly));
      }
    }
  }

  #eventLine(event: HistoryEvent, metadataOnly: boolean): Uint8Array {
    return encoder.encode(
      JSON.stringify({ type: event.type, object: objectJson(event.obj, true, metadataOnly) }) +
        "\n",
    );
  }

  #bookmark(w: Watcher): Uint8Array {
    return encoder.encode(
      JSON.stringify({
        type: "BOOKMARK",
        object: {
          kind: w.metadataOnly ? "PartialObjectMetadata" : KINDS[w.resource],
          apiVersion: w.metadataOnly ? "meta.k8s.io/v1" : "v1",
          metadata: { resourceVersion: String(this.#rv) },
        },
      }) + "\n",
    );
  }

  #send(w: Watcher, line: Uint8Array): void {
    if (w.closed) return;
    try {
      w.controller.enqueue(line);
    } catch {
      this.#closeWatcher(w);
    }
  }

  #closeWatcher(w: Watcher, error?: Error): void {
    if (w.closed) return;
    w.closed = true;
    if (w.timer !== undefined) clearTimeout(w.timer);
    this.#watchers.delete(w);
    try {
      if (error) w.controller.error(error);
      else w.controller.close();
    } catch {
      // already closed by the client
    }
  }

  #sorted(resource: Resource): string[] {
    return this.#sortedKeys[resource] ??= [...this.#stores[resource].keys()].sort();
  }

  #faulted(target: Exclude<FaultTarget, "all">): Response | undefined {
    const f = this.#fault;
    if (!f || (f.on !== "all" && f.on !== target)) return undefined;
    return statusResponse(f.status, `injected fault (${f.status})`);
  }

  #handle(req: Request): Response {
    const url = new URL(req.url);
    const token = this.#options.requireBearerToken;
    if (token !== undefined && req.headers.get("authorization") !== `Bearer ${token}`) {
      return statusResponse(401, "Unauthorized");
    }
    const path = url.pathname;
    if (path === "/openid/v1/jwks" || path === "/.well-known/openid-configuration") {
      if (req.method !== "GET") return statusResponse(405, "the server does not allow this method");
      const fault = this.#faulted("oidc");
      if (fault) return fault;
      if (path === "/.well-known/openid-configuration") {
        return json({
          issuer: this.#options.issuer ?? ISSUER,
          jwks_uri: `${this.url}/openid/v1/jwks`,
          response_types_supported: ["id_token"],
          subject_types_supported: ["public"],
          id_token_signing_alg_values_supported: ["RS256"],
        });
      }
      if (!this.#jwks) {
        return statusResponse(404, "the server could not find the requested resource");
      }
      return json(this.#jwks, 200, "application/jwk-set+json");
    }
    if (path === "/version") {
      return json({ major: "1", minor: "34", gitVersion: "v1.34.0-test", platform: "linux/amd64" });
    }
    const m = /^\/api\/v1\/(?:namespaces\/([^/]+)\/)?(serviceaccounts|pods)(?:\/([^/]+))?$/.exec(
      path,
    );
    if (!m) return statusResponse(404, "the server could not find the requested resource");
    if (req.method !== "GET") return statusResponse(405, "the server does not allow this method");
    const namespace = m[1] !== undefined ? decodeURIComponent(m[1]) : undefined;
    const resource = m[2] as Resource;
    const name = m[3] !== undefined ? decodeURIComponent(m[3]) : undefined;
    if (name !== undefined) {
      if (namespace === undefined) return statusResponse(404, "not found");
      const fault = this.#faulted("list");
      if (fault) return fault;
      const obj = this.#stores[resource].get(keyOf(namespace, name));
      if (!obj) return statusResponse(404, `${resource} "${name}" not found`);
      return json(objectJson(obj, true));
    }
    const watch = url.searchParams.get("watch");
    const accept = req.headers.get("accept") ?? "";
    const metadataOnly = /;\s*as=PartialObjectMetadata(List)?\s*;\s*g=meta\.k8s\.io\s*;\s*v=v1/
      .test(accept);
    if (metadataOnly) this.metadataRequests++;
    if (watch === "true" || watch === "1") {
      return this.#watch(url, resource, namespace, metadataOnly);
    }
    return this.#list(url, resource, namespace, metadataOnly);
  }

  #list(
    url: URL,
    resource: Resource,
    namespace: string | undefined,
    metadataOnly: boolean,
  ): Response {
    this.listCalls++;
    const fault = this.#faulted("list");
    if (fault) return fault;
    const limitParam = url.searchParams.get("limit");
    const limit = limitParam ? Number(limitParam) : 0;
    if (!Number.isInteger(limit) || limit < 0) return statusResponse(400, "invalid limit");
    const cont = url.searchParams.get("continue");
    let listRv = this.#rv;
    const keys = this.#sorted(resource);
    const objects = this.#stores[resource];
    const prefix = namespace !== undefined ? `${namespace}/` : "";
    let from = lowerBound(keys, prefix);
    if (cont) {
      let token: { rv?: unknown; start?: unknown };
      try {
        token = JSON.parse(atob(cont));
      } catch {
        return statusResponse(400, "continue key is not valid");
      }
      if (typeof token.rv !== "number" || typeof token.start !== "string") {
        return statusResponse(400, "continue key is not valid");
      }
      if (token.rv < this.#historyStart) {
        return statusResponse(
          410,
          "The provided continue parameter is too old to display a consistent list result. " +
            "You can start a new list without the continue parameter.",
          "Expired",
        );
      }
      listRv = token.rv;
      from = Math.max(from, lowerBound(keys, token.start));
    }
    const end = prefix ? lowerBound(keys, namespace + "/\uffff") : keys.length;
    const stop = limit > 0 ? Math.min(end, from + limit) : end;
    const items: Record<string, unknown>[] = [];
    for (let i = from; i < stop; i++) {
      items.push(objectJson(objects.get(keys[i]!)!, metadataOnly, metadataOnly));
    }
    const metadata: Record<string, unknown> = { resourceVersion: String(listRv) };
    if (stop < end) {
      metadata.continue = btoa(
        JSON.stringify({ v: "meta.k8s.io/v1", rv: listRv, start: keys[stop - 1]! + "\u0000" }),
      );
      metadata.remainingItemCount = end - stop;
    }
    return json(
      metadataOnly
        ? { kind: "PartialObjectMetadataList", apiVersion: "meta.k8s.io/v1", metadata, items }
        : { kind: `${KINDS[resource]}List`, apiVersion: "v1", metadata, items },
    );
  }

  #watch(
    url: URL,
    resource: Resource,
    namespace: string | undefined,
    metadataOnly: boolean,
  ): Response {
    this.watchCalls++;
    const fault = this.#faulted("watch");
    if (fault) return fault;
    const rvParam = url.searchParams.get("resourceVersion") ?? "";
    const fromStart = rvParam === "" || rvParam === "0";
    const since = fromStart ? this.#rv : Number(rvParam);
    if (!Number.isSafeInteger(since) || since < 0) {
      return statusResponse(400, `invalid resource version: ${rvParam}`);
    }
    const expired = !fromStart && since < this.#historyStart;
    if (expired && this.expiredWatchMode === "http-410") {
      return statusResponse(
        410,
        `too old resource version: ${since} (${this.#historyStart})`,
        "Gone",
      );
    }
    const bookmarks = url.searchParams.get("allowWatchBookmarks") === "true";
    const timeoutSeconds = Number(url.searchParams.get("timeoutSeconds") ?? "0");
    let watcher: Watcher | undefined;
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        if (expired) {
          const ev = {
            type: "ERROR",
            object: status(
              410,
              "Expired",
              `too old resource version: ${since} (${this.#historyStart})`,
            ),
          };
          controller.enqueue(encoder.encode(JSON.stringify(ev) + "\n"));
          controller.close();
          return;
        }
        const w: Watcher = {
          resource,
          metadataOnly,
          namespace,
          bookmarks,
          controller,
          timer: undefined,
          closed: false,
        };
        watcher = w;
        if (fromStart) {
          const objects = this.#stores[resource];
          for (const key of this.#sorted(resource)) {
            const obj = objects.get(key)!;
            if (namespace === undefined || obj.namespace === namespace) {
              controller.enqueue(this.#eventLine({ type: "ADDED", obj }, metadataOnly));
            }
          }
        } else {
          for (const ev of this.#history) {
            if (ev.obj.rv <= since || ev.obj.resource !== resource) continue;
            if (namespace === undefined || ev.obj.namespace === namespace) {
              controller.enqueue(this.#eventLine(ev, metadataOnly));
            }
          }
        }
        if (timeoutSeconds > 0) {
          w.timer = setTimeout(() => this.#closeWatcher(w), timeoutSeconds * 1000);
        }
        this.#watchers.add(w);
      },
      cancel: () => {
        if (watcher) {
          watcher.closed = true;
          if (watcher.timer !== undefined) clearTimeout(watcher.timer);
          this.#watchers.delete(watcher);
        }
      },
    });
    return new Response(body, {
      status: 200,
      headers: { "content-type": "application/json", "cache-control": "no-cache, private" },
    });
  }
}
