/**
 * The list/watch/relist machinery of DESIGN §4, one piece for every kind the service keeps in memory
 * (ServiceAccounts, Pods), like client-go's reflector: a paged list, then a watch from the list's
 * resourceVersion with bookmarks; `410 Gone` (as an HTTP status or an `ERROR` event) or a broken
 * stream backs off and re-watches from the last resourceVersion, or relists when that version is
 * gone; and on a fixed interval a full relist builds a new index that replaces the old one at once,
 * so a missed event heals. Lookups are synchronous against the current snapshot, which keeps serving
 * while a relist runs or the apiserver is down.
 *
 * A reflector is parameterized by the collection path, by whether it asks for
 * `PartialObjectMetadata` (metadata only: a Pod's spec and status never cross the wire), and by a
 * function from one object to the record kept (or `undefined` to skip it). Records are keyed by
 * namespace and name; each namespace string is stored once and shared by its records.
 *
 * Transport: an {@linkcode ApiAccess} (lib/kubernetes/access.ts) says where the apiserver is and supplies
 * the credentials of each request. The HTTP requests themselves go through Deno's native `fetch`,
 * because client-node's undici `fetch` under Deno never errors a response body when the connection
 * drops or the request is aborted (Deno's `node:stream.isReadable()` returns `null` for web streams,
 * so undici skips erroring the stream): a dropped watch would hang forever, and so would a list page
 * cut mid-body.
 *
 * @module
 */
import { abortable, delay } from "../core/abort.ts";
import { ApiError, apiErrorFromResponse, FailureReporter } from "../kubernetes/apiserver_errors.ts";
import type { ApiAccess } from "../kubernetes/access.ts";
import type { Logger } from "../telemetry/log.ts";
import type { Counter, Gauge } from "../telemetry/metrics.ts";

/** What every record a reflector keeps has: the object's namespace and name. */
export interface NamespacedRecord {
  readonly namespace: string;
  readonly name: string;
}

/** The metrics one reflector maintains (each kind has its own set). */
export interface ReflectorMetrics {
  /** Records currently known. */
  readonly size: Gauge;
  /** 1 after the first complete list. */
  readonly synced: Gauge;
  /** Complete lists, by `trigger` ∈ initial|interval|resync|gone|error. */
  readonly relists: Counter;
  /** Watch streams restarted, by `reason` ∈ gone|closed|error. */
  readonly watchRestarts: Counter;
}

/**
 * Turn one listed or watched object into the record kept, or `undefined` to ignore it. `intern`
 * returns the index's own copy of a namespace string, so records share it.
 */
export type ToRecord<R extends NamespacedRecord> = (
  object: unknown,
  intern: (namespace: string) => string,
) => R | undefined;

/** `Accept` of a list that wants only metadata (what client-go's metadata informers send). */
export const METADATA_LIST_ACCEPT =
  "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
/** `Accept` of a watch that wants only metadata: each event's object is a `PartialObjectMetadata`. */
export const METADATA_WATCH_ACCEPT =
  "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";

/** Options of {@linkcode startReflector}. */
export interface ReflectorOptions<R extends NamespacedRecord> {
  /** Where the apiserver is and how to authenticate; owned by the caller (not closed here). */
  access: ApiAccess;
  /** Collection path, e.g. `/api/v1/pods` or `/api/v1/namespaces/team-a/serviceaccounts`. */
  path: string;
  /** Object → record. */
  toRecord: ToRecord<R>;
  /** Ask for `PartialObjectMetadata` lists and watch events instead of whole objects. @default {false} */
  metadataOnly?: boolean;
  /** Prefix of the log events (`<prefix>_synced`, `<prefix>_watch_closed`, …), e.g. `pod_cache`. */
  logPrefix: string;
  /** Name of the record count in the `<prefix>_synced` line, e.g. `pods`. */
  countField: string;
  /** What this is, for error messages (`Pod cache`). */
  what: string;
  /**
   * The `request` field of `apiserver_request_failed` lines (lib/kubernetes/apiserver_errors.ts), e.g.
   * `list/watch pods`.
   */
  request: string;
  /** A full relist replaces the index this often, healing any missed event. */
  relistIntervalMs: number;
  logger: Logger;
  metrics: ReflectorMetrics;
  /**
   * Retry delays after failures: exponential from `initialMs`, capped at `maxMs`, with jitter.
   * Until the first sync the cap is at most `firstSyncMaxMs`: a reflector with nothing to serve
   * yet retries quickly, so it is synced within seconds of the apiserver's return (issue 10,
   * defect 6: 27 s after a 20 s outage before).
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
 * The tuning a cache built on a reflector passes through unchanged (its option docs are the
 * reflector's).
 */
export type ReflectorTuning = Pick<
  ReflectorOptions<NamespacedRecord>,
  | "relistIntervalMs"
  | "logger"
  | "backoff"
  | "pageSize"
  | "watchTimeoutSeconds"
  | "requestTimeoutMs"
  | "random"
>;

/**
 * What a cache built on a reflector exposes besides its lookup: the reflector's readiness, size,
 * staleness, waiting, resync and close ({@linkcode Reflector} without `get`).
 */
export type CacheView = Omit<Reflector<NamespacedRecord>, "get">;

/**
 * A cache's public face: its own lookups (`extra`) plus the reflector's readiness, size, waiting,
 * resync and close, read live (getters, not copies).
 */
export function cacheView<R extends NamespacedRecord, T extends object>(
  reflector: Reflector<R>,
  extra: T,
): T & CacheView {
  const view = {
    ...extra,
    waitSynced: (signal?: AbortSignal) => reflector.waitSynced(signal),
    resync: () => reflector.resync(),
    close: () => reflector.close(),
    [Symbol.asyncDispose]: () => reflector.close(),
  };
  return Object.defineProperties(view, {
    synced: { get: () => reflector.synced, enumerable: true },
    size: { get: () => reflector.size, enumerable: true },
    freshAt: { get: () => reflector.freshAt, enumerable: true },
  }) as T & CacheView;
}

/** A running reflector: the current snapshot, its readiness, and how to stop it. */
export interface Reflector<R extends NamespacedRecord> extends AsyncDisposable {
  /** Synchronous lookup in the current snapshot. */
  get(namespace: string, name: string): R | undefined;
  /** True once the first complete list has finished. */
  readonly synced: boolean;
  /** Records currently known. */
  readonly size: number;
  /**
   * When the apiserver last answered (epoch ms): a completed list, an opened watch, a watch event
   * or bookmark; the reflector's start until it ever did. `now - freshAt` is how stale it is.
   */
  readonly freshAt: number;
  /** Resolves after the first complete list; rejects if `signal` aborts first or at close. */
  waitSynced(signal?: AbortSignal): Promise<void>;
  /** Relist now (trigger `resync`), ending the running watch; the snapshot serves meanwhile. */
  resync(): void;
  /** Stop every request and timer. Idempotent. */
  close(): Promise<void>;
}

/**
 * Start listing and watching `options.path` in the background; `synced` turns true after the first
 * complete list. Close it (or `await using` it) to stop every request and timer.
 *
 * @example
 * ```ts ignore
 * import { startReflector } from "./reflector.ts";
 * await using pods = startReflector({
 *   access,
 *   path: "/api/v1/pods",
 *   metadataOnly: true,
 *   toRecord: (obj, intern) => ...,
 *   logPrefix: "pod_cache",
 *   countField: "pods",
 *   what: "Pod cache",
 *   request: "list/watch pods",
 *   relistIntervalMs: 15 * 60_000,
 *   logger,
 *   metrics,
 * });
 * await pods.waitSynced();
 * pods.get("team-a", "worker-0");
 * ```
 */
export function startReflector<R extends NamespacedRecord>(
  options: ReflectorOptions<R>,
): Reflector<R> {
  return new ReflectorImpl(options);
}

/**
 * The `metadata` object of a listed or watched object, when it has string `namespace`, `name` and
 * `uid`; the usual first step of a {@linkcode ToRecord}.
 *
 * @example
 * ```ts
 * import { objectMeta } from "./reflector.ts";
 * const md = objectMeta({ metadata: { namespace: "a", name: "b", uid: "c" } });
 * console.assert(md?.uid === "c");
 * ```
 */
export function objectMeta(
  object: unknown,
): { namespace: string; name: string; uid: string; [key: string]: unknown } | undefined {
  if (typeof object !== "object" || object === null) return undefined;
  const md = (object as { metadata?: unknown }).metadata;
  if (typeof md !== "object" || md === null) return undefined;
  const { namespace, name, uid } = md as { namespace?: unknown; name?: unknown; uid?: unknown };
  if (typeof namespace !== "string" || typeof name !== "string" || typeof uid !== "string") {
    return undefined;
  }
  return md as { namespace: string; name: string; uid: string };
}

/** Longest wait between two attempts before the first sync (issue 10, defect 6). */
const FIRST_SYNC_MAX_BACKOFF_MS = 2_000;

/** Why a watch ended. */
type WatchEnd =
  | { kind: "gone" }
  | { kind: "closed"; events: number; durationMs: number }
  | { kind: "error"; error: unknown }
  | { kind: "relist" }
  | { kind: "stopped" };

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

/**
 * Records by namespace, then name. With 100,000 records, composite `ns/name` keys and one namespace
 * string per record are several MiB; here each namespace string is stored once.
 */
class RecordIndex<R extends NamespacedRecord> {
  readonly #byNamespace = new Map<string, { namespace: string; items: Map<string, R> }>();
  #size = 0;

  get size(): number {
    return this.#size;
  }

  get(namespace: string, name: string): R | undefined {
    return this.#byNamespace.get(namespace)?.items.get(name);
  }

  /** The copy of `namespace` already held by the index (so records share it), else `namespace`. */
  readonly intern = (namespace: string): string =>
    this.#byNamespace.get(namespace)?.namespace ?? namespace;

  set(record: R): void {
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

class ReflectorImpl<R extends NamespacedRecord> implements Reflector<R> {
  readonly #access: ApiAccess;
  readonly #path: string;
  readonly #toRecord: ToRecord<R>;
  readonly #listAccept: string | undefined;
  readonly #watchAccept: string | undefined;
  readonly #prefix: string;
  readonly #countField: string;
  readonly #what: string;
  readonly #relistIntervalMs: number;
  readonly #log: Logger;
  readonly #metrics: ReflectorMetrics;
  readonly #backoffInitialMs: number;
  readonly #backoffMaxMs: number;
  readonly #firstSyncMaxMs: number;
  readonly #pageSize: number;
  readonly #watchTimeoutSeconds: number;
  readonly #requestTimeoutMs: number;
  readonly #random: () => number;

  #index = new RecordIndex<R>();
  #synced = false;
  readonly #syncedDeferred = Promise.withResolvers<void>();
  readonly #stop = new AbortController();
  readonly #loop: Promise<void>;
  /** Last resourceVersion seen (list, event or bookmark). */
  #rv: string | undefined;
  #nextRelistAt = 0;
  /** Set by {@linkcode resync}: the next relist is one asked for, and a running watch ends now. */
  #resyncRequested = false;
  #endWatchForRelist: (() => void) | undefined;
  #failures = 0;
  #freshAt = Date.now();
  readonly #report: FailureReporter;

  constructor(options: ReflectorOptions<R>) {
    if (!(options.relistIntervalMs > 0)) {
      throw new RangeError(`relistIntervalMs must be positive, got ${options.relistIntervalMs}`);
    }
    this.#access = options.access;
    this.#path = options.path;
    this.#toRecord = options.toRecord;
    this.#listAccept = options.metadataOnly ? METADATA_LIST_ACCEPT : undefined;
    this.#watchAccept = options.metadataOnly ? METADATA_WATCH_ACCEPT : undefined;
    this.#prefix = options.logPrefix;
    this.#countField = options.countField;
    this.#what = options.what;
    this.#relistIntervalMs = options.relistIntervalMs;
    this.#log = options.logger;
    this.#report = new FailureReporter({ logger: options.logger, request: options.request });
    this.#metrics = options.metrics;
    this.#backoffInitialMs = options.backoff?.initialMs ?? 500;
    this.#backoffMaxMs = Math.max(options.backoff?.maxMs ?? 30_000, this.#backoffInitialMs);
    this.#firstSyncMaxMs = options.backoff?.firstSyncMaxMs ?? FIRST_SYNC_MAX_BACKOFF_MS;
    this.#pageSize = options.pageSize ?? 500;
    this.#watchTimeoutSeconds = options.watchTimeoutSeconds ?? 300;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.#random = options.random ?? Math.random;
    // Nobody may be waiting: a rejection at close must not surface as unhandled.
    this.#syncedDeferred.promise.catch(() => {});
    this.#metrics.synced.set(0);
    this.#loop = this.#run();
  }

  get(namespace: string, name: string): R | undefined {
    return this.#index.get(namespace, name);
  }

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

  resync(): void {
    this.#resyncRequested = true;
    this.#nextRelistAt = 0;
    this.#endWatchForRelist?.();
  }

  async close(): Promise<void> {
    if (!this.#stop.signal.aborted) {
      this.#stop.abort(new Error(`${this.#what} closed`));
      if (!this.#synced) {
        this.#syncedDeferred.reject(new Error(`${this.#what} closed before its first sync`));
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
    let trigger: "initial" | "interval" | "resync" | "gone" | "error" = "initial";
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      if (!needList && Date.now() >= this.#nextRelistAt) {
        needList = true;
        trigger = this.#resyncRequested ? "resync" : "interval";
      }
      this.#resyncRequested = false;
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
          this.#log.debug(`${this.#prefix}_watch_expired`, { resource_version: this.#rv });
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
          this.#log.debug(`${this.#prefix}_watch_closed`, {
            events: end.events,
            duration_ms: Math.round(end.durationMs),
          });
          // A stream that ends at once without news is a failure in disguise: do not spin.
          if (end.events === 0 && end.durationMs < 1000) await this.#sleep(this.#backoffDelay());
          break;
      }
    }
  }

  /** List every page into a new index and swap it in; the old index serves until then. */
  async #relist(trigger: string): Promise<void> {
    const started = performance.now();
    const index = new RecordIndex<R>();
    let cont: string | undefined;
    let listRv: string | undefined;
    let pages = 0;
    do {
      const params = new URLSearchParams({ limit: String(this.#pageSize) });
      if (cont) params.set("continue", cont);
      const page = await this.#getJson<ListPage>(`${this.#path}?${params}`);
      pages++;
      // The first page's resourceVersion is the consistent snapshot the continues belong to.
      listRv ??= page.metadata?.resourceVersion;
      for (const item of page.items ?? []) {
        const record = this.#toRecord(item, index.intern);
        if (record) index.set(record);
      }
      cont = page.metadata?.continue || undefined;
    } while (cont);
    if (listRv === undefined) throw new Error("list response has no metadata.resourceVersion");
    this.#index = index;
    this.#rv = listRv;
    // A resync asked for while this list ran may have missed what prompted it: list again.
    this.#nextRelistAt = this.#resyncRequested ? 0 : Date.now() + this.#relistIntervalMs;
    this.#metrics.size.set(index.size);
    this.#recovered();
    const fields = {
      trigger,
      [this.#countField]: index.size,
      pages,
      duration_ms: Math.round(performance.now() - started),
    };
    if (!this.#synced) {
      this.#synced = true;
      this.#metrics.synced.set(1);
      this.#syncedDeferred.resolve();
      this.#log.info(`${this.#prefix}_synced`, fields);
    } else {
      this.#log.debug(`${this.#prefix}_relisted`, fields);
    }
  }

  /** One watch stream from the last resourceVersion, until it ends or a relist is due. */
  async #watch(): Promise<WatchEnd> {
    const ctl = new AbortController();
    const onStop = () => ctl.abort();
    this.#stop.signal.addEventListener("abort", onStop, { once: true });
    if (this.#stop.signal.aborted) ctl.abort();
    let relistDue = false;
    const endForRelist = () => {
      relistDue = true;
      ctl.abort();
    };
    this.#endWatchForRelist = endForRelist;
    const relistTimer = setTimeout(endForRelist, Math.max(0, this.#nextRelistAt - Date.now()));
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
      const res = await this.#get(`${this.#path}?${params}`, ctl.signal, this.#watchAccept, true);
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
      this.#endWatchForRelist = undefined;
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
        const record = this.#toRecord(obj, this.#index.intern);
        if (record) this.#index.set(record);
        break;
      }
      case "DELETED": {
        const record = this.#toRecord(obj, this.#index.intern);
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
    this.#metrics.size.set(this.#index.size);
    this.#recovered();
    return undefined;
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

  /** Count a failure; warn once per change of cause (lib/kubernetes/apiserver_errors.ts), the rest at debug. */
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
      const res = await this.#get(path, ctl.signal, this.#listAccept, false);
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
  async #get(
    path: string,
    signal: AbortSignal,
    accept: string | undefined,
    connectTimeout: boolean,
  ): Promise<Response> {
    const headers = await this.#access.headers();
    if (accept !== undefined) headers.set("accept", accept);
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
