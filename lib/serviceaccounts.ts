/**
 * The ServiceAccount cache (DESIGN §4): a paged list, then a watch from the list's resourceVersion
 * with bookmarks; `410 Gone` (as an HTTP status or an `ERROR` event) or a broken stream backs off and
 * re-watches from the last resourceVersion, or relists when that version is gone; and on a fixed
 * interval a full relist builds a new map that replaces the old one at once, so a missed event heals.
 * Lookups are synchronous against the current snapshot, which keeps serving while a relist runs or
 * the apiserver is down.
 *
 * Transport: an {@linkcode ApiAccess} (lib/kube_access.ts) says where the apiserver is and supplies
 * the credentials of each request (in-cluster: the pod's rotating token and the cluster CA;
 * otherwise a kubeconfig through `@kubernetes/client-node`). The HTTP requests themselves go through
 * Deno's native `fetch`, because client-node's undici `fetch` under Deno never
 * errors a response body when the connection drops or the request is aborted (Deno's
 * `node:stream.isReadable()` returns `null` for web streams, so undici skips erroring the stream): a
 * dropped watch would hang forever, and so would a list page cut mid-body.
 *
 * @module
 */
import { abortable, delay } from "./abort.ts";
import { ApiError, apiErrorFromResponse, FailureReporter } from "./apiserver_errors.ts";
import type { ApiAccess } from "./kube_access.ts";
import { serviceAccountNameProblem } from "./k8s_names.ts";
import type { Logger } from "./log.ts";
import type { ServiceAccountRecord, ServiceAccountSource } from "./model.ts";
import type { ServiceMetrics } from "./service_metrics.ts";

/** Options of {@linkcode startServiceAccountCache}. */
export interface ServiceAccountCacheOptions {
  /** Where the apiserver is and how to authenticate; owned by the caller (not closed here). */
  access: ApiAccess;
  /** Watch only this namespace. @default {undefined (all namespaces)} */
  namespace?: string;
  /** Annotations kept per ServiceAccount are those whose key starts with this (e.g. `nats.io/`). */
  annotationPrefix: string;
  /** A full relist replaces the map this often, healing any missed event. */
  relistIntervalMs: number;
  logger: Logger;
  metrics: ServiceMetrics;
  /**
   * Retry delays after failures: exponential from `initialMs`, capped at `maxMs`, with jitter.
   * Until the first sync the cap is at most `firstSyncMaxMs`: a replica that has nothing to serve
   * yet retries quickly, so it is ready within seconds of the apiserver's return.
   * @default {{ initialMs: 500, maxMs: 30000, firstSyncMaxMs: 2000 }}
   */
  backoff?: { initialMs?: number; maxMs?: number; firstSyncMaxMs?: number };
  /** Items per list page (`limit`). @default {500} */
  pageSize?: number;
  /** Each watch asks the apiserver to end it after this many seconds (jittered up to 2×), so streams rotate cleanly. @default {300} */
  watchTimeoutSeconds?: number;
  /** Limit for one list page, and for a watch to answer with headers. @default {30000} */
  requestTimeoutMs?: number;
  /** Source of randomness for jitter. @default {Math.random} */
  random?: () => number;
}

/**
 * Start the ServiceAccount cache. It lists and watches in the background; `synced` turns true after
 * the first complete list. Close it (or `await using` it) to stop every request and timer.
 *
 * @example
 * ```ts ignore
 * import { startServiceAccountCache } from "./serviceaccounts.ts";
 * import { inClusterAccess } from "./kube_access.ts";
 * await using cache = startServiceAccountCache({
 *   access: inClusterAccess({ server, caFile, tokenFile }),
 *   annotationPrefix: "nats.io/",
 *   relistIntervalMs: 15 * 60_000,
 *   logger,
 *   metrics,
 * });
 * await cache.waitSynced();
 * const sa = cache.lookup("team-a", "worker");
 * ```
 */
export function startServiceAccountCache(
  options: ServiceAccountCacheOptions,
): ServiceAccountSource {
  return new ServiceAccountCache(options);
}

/** Why a watch ended. */
type WatchEnd =
  | { kind: "gone" }
  | { kind: "closed"; events: number; durationMs: number }
  | { kind: "error"; error: unknown }
  | { kind: "relist" }
  | { kind: "stopped" };

/** A failure with the apiserver's answer attached. */

interface ListPage {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: unknown[];
}

interface WatchEvent {
  type?: string;
  object?: {
    code?: number;
    message?: string;
    metadata?: { resourceVersion?: string };
  };
}

const EMPTY: Readonly<Record<string, string>> = Object.freeze({});

/** Longest wait between two attempts before the first sync (issue 10, defect 6). */
const FIRST_SYNC_MAX_BACKOFF_MS = 2_000;

/**
 * ServiceAccounts by namespace, then name. With 100,000 records, composite `ns/name` keys and one
 * namespace string per record are several MiB; here each namespace string is stored once.
 */
class RecordIndex {
  readonly #byNamespace = new Map<
    string,
    { namespace: string; items: Map<string, ServiceAccountRecord> }
  >();
  #size = 0;

  get size(): number {
    return this.#size;
  }

  get(namespace: string, name: string): ServiceAccountRecord | undefined {
    return this.#byNamespace.get(namespace)?.items.get(name);
  }

  /** The copy of `namespace` already held by the index (so records share it), else `namespace`. */
  intern(namespace: string): string {
    return this.#byNamespace.get(namespace)?.namespace ?? namespace;
  }

  set(record: ServiceAccountRecord): void {
    let bucket = this.#byNamespace.get(record.namespace);
    if (!bucket) {
      bucket = { namespace: record.namespace, items: new Map() };
      this.#byNamespace.set(record.namespace, bucket);
    }
    const before = bucket.items.size;
    bucket.items.set(record.name, record);
    this.#size += bucket.items.size - before;
  }

  delete(namespace: string, name: string): void {
    const bucket = this.#byNamespace.get(namespace);
    if (!bucket?.items.delete(name)) return;
    this.#size--;
    if (bucket.items.size === 0) this.#byNamespace.delete(namespace);
  }
}

class ServiceAccountCache implements ServiceAccountSource {
  readonly #access: ApiAccess;
  readonly #namespace: string | undefined;
  readonly #prefix: string;
  readonly #relistIntervalMs: number;
  readonly #log: Logger;
  readonly #metrics: ServiceMetrics;
  readonly #backoffInitialMs: number;
  readonly #backoffMaxMs: number;
  readonly #firstSyncMaxMs: number;
  readonly #pageSize: number;
  readonly #watchTimeoutSeconds: number;
  readonly #requestTimeoutMs: number;
  readonly #random: () => number;
  /** Objects already warned about by {@linkcode ServiceAccountCache.#refuse}. */
  readonly #refusedSeen = new Set<string>();
  readonly #basePath: string;

  #index = new RecordIndex();
  #synced = false;
  readonly #syncedDeferred = Promise.withResolvers<void>();
  readonly #stop = new AbortController();
  readonly #loop: Promise<void>;
  /** Last resourceVersion seen (list, event or bookmark). */
  #rv: string | undefined;
  #nextRelistAt = 0;
  #failures = 0;
  /** When the apiserver last answered (epoch ms); the cache's start before it ever did. */
  #freshAt = Date.now();
  readonly #report: FailureReporter;

  constructor(options: ServiceAccountCacheOptions) {
    if (!(options.relistIntervalMs > 0)) {
      throw new RangeError(`relistIntervalMs must be positive, got ${options.relistIntervalMs}`);
    }
    this.#access = options.access;
    this.#namespace = options.namespace;
    this.#prefix = options.annotationPrefix;
    this.#relistIntervalMs = options.relistIntervalMs;
    this.#log = options.logger;
    this.#report = new FailureReporter({
      logger: options.logger,
      request: "list/watch serviceaccounts",
    });
    this.#metrics = options.metrics;
    this.#backoffInitialMs = options.backoff?.initialMs ?? 500;
    this.#backoffMaxMs = Math.max(options.backoff?.maxMs ?? 30_000, this.#backoffInitialMs);
    this.#firstSyncMaxMs = options.backoff?.firstSyncMaxMs ?? FIRST_SYNC_MAX_BACKOFF_MS;
    this.#pageSize = options.pageSize ?? 500;
    this.#watchTimeoutSeconds = options.watchTimeoutSeconds ?? 300;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.#random = options.random ?? Math.random;
    this.#basePath = this.#namespace === undefined
      ? "/api/v1/serviceaccounts"
      : `/api/v1/namespaces/${encodeURIComponent(this.#namespace)}/serviceaccounts`;
    // Nobody may be waiting: a rejection at close must not surface as unhandled.
    this.#syncedDeferred.promise.catch(() => {});
    this.#metrics.cacheSynced.set(0);
    this.#loop = this.#run();
  }

  readonly lookup = (namespace: string, name: string): ServiceAccountRecord | undefined =>
    this.#index.get(namespace, name);

  get synced(): boolean {
    return this.#synced;
  }

  get size(): number {
    return this.#index.size;
  }

  get freshAt(): number {
    return this.#freshAt;
  }

  waitSynced(signal?: AbortSignal): Promise<void> {
    if (this.#synced) return Promise.resolve();
    return abortable(this.#syncedDeferred.promise, signal);
  }

  async close(): Promise<void> {
    if (!this.#stop.signal.aborted) {
      this.#stop.abort(new Error("ServiceAccount cache closed"));
      if (!this.#synced) {
        this.#syncedDeferred.reject(new Error("ServiceAccount cache closed before its first sync"));
      }
    }
    await this.#loop;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---- the loop ----

  async #run(): Promise<void> {
    let needList = true;
    let trigger: "initial" | "interval" | "gone" | "error" = "initial";
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      if (!needList && Date.now() >= this.#nextRelistAt) {
        needList = true;
        trigger = "interval";
      }
      if (needList) {
        this.#metrics.relists.inc({ trigger });
        try {
          await this.#relist(trigger);
          needList = false;
        } catch (err) {
          if (signal.aborted) break;
          this.#failure("list", err);
          trigger = "error";
          await this.#sleep(this.#backoffDelay());
          continue;
        }
      }
      const end = await this.#watch();
      switch (end.kind) {
        case "stopped":
          return;
        case "relist":
          break;
        case "gone":
          this.#metrics.watchRestarts.inc({ reason: "gone" });
          this.#log.debug("sa_cache_watch_expired", { resource_version: this.#rv });
          needList = true;
          trigger = "gone";
          await this.#sleep(this.#backoffDelay());
          break;
        case "error":
          this.#metrics.watchRestarts.inc({ reason: "error" });
          this.#failure("watch", end.error);
          await this.#sleep(this.#backoffDelay());
          break;
        case "closed":
          this.#metrics.watchRestarts.inc({ reason: "closed" });
          this.#log.debug("sa_cache_watch_closed", {
            events: end.events,
            duration_ms: Math.round(end.durationMs),
          });
          // A stream that ends at once without news is a failure in disguise: do not spin.
          if (end.events === 0 && end.durationMs < 1000) await this.#sleep(this.#backoffDelay());
          break;
      }
    }
  }

  /** List every page into a new map and swap it in; the old map serves until then. */
  async #relist(trigger: string): Promise<void> {
    const started = performance.now();
    const index = new RecordIndex();
    let cont: string | undefined;
    let listRv: string | undefined;
    let pages = 0;
    do {
      const params = new URLSearchParams({ limit: String(this.#pageSize) });
      if (cont) params.set("continue", cont);
      const page = await this.#getJson<ListPage>(`${this.#basePath}?${params}`);
      pages++;
      // The first page's resourceVersion is the consistent snapshot the continues belong to.
      listRv ??= page.metadata?.resourceVersion;
      for (const item of page.items ?? []) {
        const record = this.#toRecord(item, index);
        if (record) index.set(record);
      }
      cont = page.metadata?.continue || undefined;
    } while (cont);
    if (listRv === undefined) throw new Error("list response has no metadata.resourceVersion");
    this.#index = index;
    this.#rv = listRv;
    this.#nextRelistAt = Date.now() + this.#relistIntervalMs;
    this.#metrics.cacheSize.set(index.size);
    this.#recovered();
    const fields = {
      trigger,
      serviceaccounts: index.size,
      pages,
      duration_ms: Math.round(performance.now() - started),
    };
    if (!this.#synced) {
      this.#synced = true;
      this.#metrics.cacheSynced.set(1);
      this.#syncedDeferred.resolve();
      this.#log.info("sa_cache_synced", fields);
    } else {
      this.#log.debug("sa_cache_relisted", fields);
    }
  }

  /** One watch stream from the last resourceVersion, until it ends or a relist is due. */
  async #watch(): Promise<WatchEnd> {
    const ctl = new AbortController();
    const onStop = () => ctl.abort();
    this.#stop.signal.addEventListener("abort", onStop, { once: true });
    if (this.#stop.signal.aborted) ctl.abort();
    let relistDue = false;
    const relistTimer = setTimeout(() => {
      relistDue = true;
      ctl.abort();
    }, Math.max(0, this.#nextRelistAt - Date.now()));
    const timeoutSeconds = Math.round(this.#watchTimeoutSeconds * (1 + this.#random()));
    // The apiserver ends the stream at timeoutSeconds; past that plus grace, the connection is dead.
    const deadline = setTimeout(() => ctl.abort(), timeoutSeconds * 1000 + this.#requestTimeoutMs);
    const started = performance.now();
    let events = 0;
    const ended = (end: WatchEnd): WatchEnd => {
      if (this.#stop.signal.aborted) return { kind: "stopped" };
      if (relistDue) return { kind: "relist" };
      return end;
    };
    try {
      const params = new URLSearchParams({
        watch: "true",
        allowWatchBookmarks: "true",
        timeoutSeconds: String(timeoutSeconds),
      });
      if (this.#rv !== undefined) params.set("resourceVersion", this.#rv);
      const res = await this.#get(`${this.#basePath}?${params}`, ctl.signal, true);
      if (res.status === 410) {
        await res.body?.cancel();
        return ended({ kind: "gone" });
      }
      if (res.status !== 200) {
        return ended({ kind: "error", error: await apiErrorFromResponse(res) });
      }
      if (!res.body) {
        return ended({ kind: "error", error: new Error("watch response has no body") });
      }
      this.#recovered();
      const lines = res.body.pipeThrough(new TextDecoderStream()).pipeThrough(lineSplitter());
      for await (const line of lines) {
        if (!line.trim()) continue;
        let event: WatchEvent;
        try {
          event = JSON.parse(line);
        } catch {
          continue;
        }
        events++;
        const outcome = this.#apply(event);
        if (outcome) {
          ctl.abort();
          return ended(outcome);
        }
      }
      return ended({ kind: "closed", events, durationMs: performance.now() - started });
    } catch (err) {
      return ended({ kind: "error", error: err });
    } finally {
      clearTimeout(relistTimer);
      clearTimeout(deadline);
      this.#stop.signal.removeEventListener("abort", onStop);
    }
  }

  /** Apply one watch event; returns how the watch must end, if it must. */
  #apply(event: WatchEvent): WatchEnd | undefined {
    const obj = event.object;
    switch (event.type) {
      case "ADDED":
      case "MODIFIED": {
        const record = this.#toRecord(obj, this.#index);
        if (record) this.#index.set(record);
        break;
      }
      case "DELETED": {
        const record = this.#toRecord(obj, this.#index);
        if (record) this.#index.delete(record.namespace, record.name);
        break;
      }
      case "BOOKMARK":
        break;
      case "ERROR":
        if (obj?.code === 410) return { kind: "gone" };
        return {
          kind: "error",
          error: new ApiError(obj?.code ?? 0, obj?.message ?? "watch ERROR event"),
        };
      default:
        return undefined;
    }
    const rv = obj?.metadata?.resourceVersion;
    if (rv) this.#rv = rv;
    this.#metrics.cacheSize.set(this.#index.size);
    this.#recovered();
    return undefined;
  }

  #toRecord(obj: unknown, index: RecordIndex): ServiceAccountRecord | undefined {
    if (typeof obj !== "object" || obj === null) return undefined;
    const md = (obj as { metadata?: unknown }).metadata;
    if (typeof md !== "object" || md === null) return undefined;
    const { namespace, name, uid, annotations } = md as {
      namespace?: unknown;
      name?: unknown;
      uid?: unknown;
      annotations?: unknown;
    };
    const problem = serviceAccountNameProblem(namespace, name) ??
      (typeof uid !== "string" || uid === "" ? "uid is missing" : undefined);
    if (problem !== undefined) {
      this.#refuse(namespace, name, uid, problem);
      return undefined;
    }
    let kept: Record<string, string> | undefined;
    if (typeof annotations === "object" && annotations !== null) {
      for (const [k, v] of Object.entries(annotations)) {
        if (k.startsWith(this.#prefix) && typeof v === "string") (kept ??= {})[k] = v;
      }
    }
    return Object.freeze({
      namespace: index.intern(namespace as string),
      name: name as string,
      uid: uid as string,
      annotations: kept ? Object.freeze(kept) : EMPTY,
    });
  }

  /**
   * A ServiceAccount that cannot be a record (its namespace or name is not what the apiserver
   * itself allows, or it has no uid): never stored, so it can never reach permissions. Warned once
   * per object (relists see it again), counted every time.
   */
  #refuse(namespace: unknown, name: unknown, uid: unknown, problem: string): void {
    this.#metrics.recordsRefused.inc();
    const key = `${String(uid)}/${String(namespace)}/${String(name)}`;
    const fields = {
      namespace: clipName(namespace),
      serviceaccount: clipName(name),
      problem,
    };
    if (this.#refusedSeen.has(key)) {
      this.#log.debug("sa_record_refused", fields);
      return;
    }
    if (this.#refusedSeen.size >= 1000) this.#refusedSeen.clear();
    this.#refusedSeen.add(key);
    this.#log.warn("sa_record_refused", fields);
  }

  // ---- failure bookkeeping ----

  #backoffDelay(): number {
    const exp = Math.min(
      this.#synced ? this.#backoffMaxMs : Math.min(this.#backoffMaxMs, this.#firstSyncMaxMs),
      this.#backoffInitialMs * 2 ** Math.min(this.#failures, 30),
    );
    // Jitter in [50 %, 100 %] so replicas do not retry in step.
    return exp * (0.5 + 0.5 * this.#random());
  }

  /** Count a failure; warn once per change of cause (lib/apiserver_errors.ts), the rest at debug. */
  #failure(phase: "list" | "watch", err: unknown): void {
    this.#failures++;
    this.#report.failed(err, { phase, serving: this.#index.size });
  }

  /** The apiserver answered: a list completed, a watch opened, or an event or bookmark arrived. */
  #recovered(): void {
    this.#report.succeeded();
    this.#failures = 0;
    this.#freshAt = Date.now();
  }

  /** Wait `ms`, cut short by close or by a due relist. */
  #sleep(ms: number): Promise<void> {
    const signal = this.#stop.signal;
    const wait = this.#synced ? Math.max(0, Math.min(ms, this.#nextRelistAt - Date.now())) : ms;
    return delay(wait, signal);
  }

  // ---- HTTP ----

  async #getJson<T>(path: string): Promise<T> {
    const ctl = new AbortController();
    const onStop = () => ctl.abort();
    this.#stop.signal.addEventListener("abort", onStop, { once: true });
    if (this.#stop.signal.aborted) ctl.abort();
    const timer = setTimeout(() => ctl.abort(), this.#requestTimeoutMs);
    try {
      const res = await this.#get(path, ctl.signal, false);
      if (res.status !== 200) throw await apiErrorFromResponse(res);
      return await res.json() as T;
    } finally {
      clearTimeout(timer);
      this.#stop.signal.removeEventListener("abort", onStop);
    }
  }

  /**
   * GET `path` on the apiserver with credentials from the access (recomputed per request, so
   * rotated tokens are picked up). For a watch, the connect timeout is applied here.
   */
  async #get(path: string, signal: AbortSignal, connectTimeout: boolean): Promise<Response> {
    const headers = await this.#access.headers();
    const url = this.#access.server + path;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let reqSignal = signal;
    if (connectTimeout) {
      const ctl = new AbortController();
      timer = setTimeout(() => ctl.abort(), this.#requestTimeoutMs);
      reqSignal = AbortSignal.any([signal, ctl.signal]);
    }
    try {
      const client = this.#access.client;
      return await fetch(url, { headers, signal: reqSignal, ...(client ? { client } : {}) });
    } finally {
      clearTimeout(timer);
    }
  }
}

/** An untrusted name for a log line: JSON-quoted and bounded. */
function clipName(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Split a text stream into lines (the watch protocol is newline-delimited JSON). */
function lineSplitter(): TransformStream<string, string> {
  let buffer = "";
  return new TransformStream<string, string>({
    transform(chunk, controller) {
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        controller.enqueue(buffer.slice(0, nl));
        buffer = buffer.slice(nl + 1);
      }
    },
    flush(controller) {
      if (buffer) controller.enqueue(buffer);
    },
  });
}
