/**
 * The list/watch/relist machinery of DESIGN §4, one piece for every kind the service keeps in memory
 * (ServiceAccounts, Pods, Namespaces), like client-go's reflector: a paged list, then a watch from
 * the list's resourceVersion with bookmarks; `410 Gone` (as an HTTP status or an `ERROR` event) or
 * a broken stream backs off and re-watches from the last resourceVersion, or relists when that
 * version is gone; and on a fixed interval a full relist builds a new index that replaces the old
 * one at once, so a missed event heals. Lookups are synchronous against the current snapshot, which
 * keeps serving while a relist runs or the apiserver is down.
 *
 * A reflector is parameterized by the collection path, by whether it asks for
 * `PartialObjectMetadata` (metadata only: a Pod's spec and status never cross the wire), and by a
 * function from one object to the record kept (or `undefined` to skip it). Records are keyed by
 * namespace and name; each namespace string is stored once and shared by its records.
 *
 * This module is the loop that ties the parts together; read them in this order:
 * - lib/cache/record_index.ts: the index a reflector keeps and swaps;
 * - lib/cache/reflector_list.ts: the paged list into a new index;
 * - lib/cache/reflector_watch.ts: one watch stream, its events, and why it ended;
 * - lib/cache/reflector_health.ts: failures in a row, their backoff and report, freshness;
 * - lib/kubernetes/api_get.ts: the GET beneath both (Deno's `fetch`, and why not client-node's).
 *
 * @module
 */
import { abortable, delay } from "../core/abort.ts";
import type { RecordChange } from "../core/changes.ts";
import type { ApiAccess } from "../kubernetes/access.ts";
import { apiGet } from "../kubernetes/api_get.ts";
import type { Logger } from "../telemetry/log.ts";
import type { Counter, Gauge } from "../telemetry/metrics.ts";
import { type NamespacedRecord, RecordIndex, type ToRecord } from "./record_index.ts";
import { listAll, type ListResult } from "./reflector_list.ts";
import { type BackoffSettings, ReflectorHealth } from "./reflector_health.ts";
import {
  applyWatchEvent,
  openedWatch,
  type WatchEnd,
  watchEvents,
  watchPath,
  WatchRequest,
} from "./reflector_watch.ts";

export type { NamespacedRecord, ToRecord };

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
  /** Receives `<logPrefix>_synced` (info), watch and relist lines (debug), failed requests. */
  logger: Logger;
  /** The cache's own series (size, synced, relists, watch restarts) the reflector keeps current. */
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
  /**
   * Told of every change to the snapshot: the record a watch event added, changed or deleted, and
   * `"all"` when a relist swapped a new snapshot in (live revocation follows these, issue 18).
   * @default {undefined (nobody is told)}
   */
  onChange?: (change: RecordChange) => void;
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
  | "onChange"
>;

/**
 * What a cache built on a reflector exposes besides its lookup: the reflector's readiness, size,
 * staleness, waiting, resync and close ({@linkcode Reflector} without `get`).
 */
export type CacheView = Omit<Reflector<NamespacedRecord>, "get" | "list">;

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
  /** Every record in the current snapshot (a new array per call; the records are shared). */
  list(): R[];
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

/** Why a list runs: the first, the periodic one, one asked for, after `410 Gone`, after a failure. */
type RelistTrigger = "initial" | "interval" | "resync" | "gone" | "error";

/** Longest wait between two attempts before the first sync (issue 10, defect 6). */
const FIRST_SYNC_MAX_BACKOFF_MS = 2_000;

/** {@linkcode ReflectorOptions} checked, with every default filled in. */
interface ReflectorSettings<R extends NamespacedRecord> {
  readonly access: ApiAccess;
  readonly path: string;
  readonly toRecord: ToRecord<R>;
  readonly listAccept: string | undefined;
  readonly watchAccept: string | undefined;
  readonly prefix: string;
  readonly countField: string;
  readonly what: string;
  readonly request: string;
  readonly relistIntervalMs: number;
  readonly logger: Logger;
  readonly metrics: ReflectorMetrics;
  readonly backoff: BackoffSettings;
  readonly pageSize: number;
  readonly watchTimeoutSeconds: number;
  readonly requestTimeoutMs: number;
  readonly random: () => number;
  readonly onChange: ((change: RecordChange) => void) | undefined;
}

/** Check the options and unpack their defaults, in one place. */
function reflectorSettings<R extends NamespacedRecord>(
  options: ReflectorOptions<R>,
): ReflectorSettings<R> {
  if (!(options.relistIntervalMs > 0)) {
    throw new RangeError(`relistIntervalMs must be positive, got ${options.relistIntervalMs}`);
  }
  const initialMs = options.backoff?.initialMs ?? 500;
  return {
    access: options.access,
    path: options.path,
    toRecord: options.toRecord,
    listAccept: options.metadataOnly ? METADATA_LIST_ACCEPT : undefined,
    watchAccept: options.metadataOnly ? METADATA_WATCH_ACCEPT : undefined,
    prefix: options.logPrefix,
    countField: options.countField,
    what: options.what,
    request: options.request,
    relistIntervalMs: options.relistIntervalMs,
    logger: options.logger,
    metrics: options.metrics,
    backoff: {
      initialMs,
      maxMs: Math.max(options.backoff?.maxMs ?? 30_000, initialMs),
      firstSyncMaxMs: options.backoff?.firstSyncMaxMs ?? FIRST_SYNC_MAX_BACKOFF_MS,
    },
    pageSize: options.pageSize ?? 500,
    watchTimeoutSeconds: options.watchTimeoutSeconds ?? 300,
    requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
    random: options.random ?? Math.random,
    onChange: options.onChange,
  };
}

/**
 * The loop of list → watch → (relist | re-watch) and the state it keeps: the current index, the
 * last resourceVersion, when the next periodic relist is due, and readiness.
 */
class ReflectorImpl<R extends NamespacedRecord> implements Reflector<R> {
  readonly #s: ReflectorSettings<R>;
  readonly #health: ReflectorHealth;
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

  constructor(options: ReflectorOptions<R>) {
    const s = reflectorSettings(options);
    this.#s = s;
    this.#health = new ReflectorHealth({
      logger: s.logger,
      request: s.request,
      backoff: s.backoff,
      random: s.random,
    });
    // Nobody may be waiting: a rejection at close must not surface as unhandled.
    this.#syncedDeferred.promise.catch(() => {});
    s.metrics.synced.set(0);
    this.#loop = this.#run();
  }

  list(): R[] {
    return [...this.#index.values()];
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
    return this.#health.freshAt;
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
      this.#stop.abort(new Error(`${this.#s.what} closed`));
      if (!this.#synced) {
        this.#syncedDeferred.reject(new Error(`${this.#s.what} closed before its first sync`));
      }
    }
    await this.#loop;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---- the loop ----

  /** List when a list is due (backing off after a failure), then watch; until closed. */
  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    let relist: RelistTrigger | undefined = "initial";
    while (!signal.aborted) {
      relist ??= this.#periodicRelistDue();
      this.#resyncRequested = false;
      if (relist !== undefined) {
        this.#s.metrics.relists.inc({ trigger: relist });
        try {
          await this.#relist(relist);
          relist = undefined;
        } catch (err) {
          if (signal.aborted) break;
          this.#health.failed(err, { phase: "list", serving: this.#index.size });
          relist = "error";
          await this.#sleep(this.#health.backoffMs(this.#synced));
          continue;
        }
      }
      const end = await this.#watch();
      if (end.kind === "stopped") return;
      relist = await this.#afterWatch(end);
    }
  }

  /** The trigger of the periodic (or asked-for) relist, once it is due. */
  #periodicRelistDue(): RelistTrigger | undefined {
    if (Date.now() < this.#nextRelistAt) return undefined;
    return this.#resyncRequested ? "resync" : "interval";
  }

  /**
   * Count and log how a watch ended and wait as its cause asks; returns `gone` when the next step
   * is a relist from scratch (a due relist is found by {@linkcode #periodicRelistDue}).
   */
  async #afterWatch(end: Exclude<WatchEnd, { kind: "stopped" }>): Promise<"gone" | undefined> {
    const { metrics, logger, prefix } = this.#s;
    switch (end.kind) {
      case "relist":
        return undefined;
      case "gone":
        metrics.watchRestarts.inc({ reason: "gone" });
        logger.debug(`${prefix}_watch_expired`, { resource_version: this.#rv });
        await this.#sleep(this.#health.backoffMs(this.#synced));
        return "gone";
      case "error":
        metrics.watchRestarts.inc({ reason: "error" });
        this.#health.failed(end.error, { phase: "watch", serving: this.#index.size });
        await this.#sleep(this.#health.backoffMs(this.#synced));
        return undefined;
      case "closed":
        metrics.watchRestarts.inc({ reason: "closed" });
        logger.debug(`${prefix}_watch_closed`, {
          events: end.events,
          duration_ms: Math.round(end.durationMs),
        });
        // A stream that ends at once without news is a failure in disguise: do not spin.
        if (end.events === 0 && end.durationMs < 1000) {
          await this.#sleep(this.#health.backoffMs(this.#synced));
        }
        return undefined;
    }
  }

  /** List every page into a new index and swap it in; the old index serves until then. */
  async #relist(trigger: RelistTrigger): Promise<void> {
    const s = this.#s;
    const started = performance.now();
    const list = await listAll({
      access: s.access,
      path: s.path,
      accept: s.listAccept,
      pageSize: s.pageSize,
      timeoutMs: s.requestTimeoutMs,
      signal: this.#stop.signal,
      toRecord: s.toRecord,
    });
    this.#swapIn(list);
    const fields = {
      trigger,
      [s.countField]: list.index.size,
      pages: list.pages,
      duration_ms: Math.round(performance.now() - started),
    };
    if (!this.#synced) {
      this.#synced = true;
      s.metrics.synced.set(1);
      this.#syncedDeferred.resolve();
      s.logger.info(`${s.prefix}_synced`, fields);
    } else {
      s.logger.debug(`${s.prefix}_relisted`, fields);
    }
  }

  /** Make a complete list the current snapshot, and schedule the next periodic relist. */
  #swapIn(list: ListResult<R>): void {
    this.#index = list.index;
    this.#rv = list.resourceVersion;
    // A resync asked for while this list ran may have missed what prompted it: list again.
    this.#nextRelistAt = this.#resyncRequested ? 0 : Date.now() + this.#s.relistIntervalMs;
    this.#s.metrics.size.set(list.index.size);
    this.#health.recovered();
    this.#s.onChange?.("all");
  }

  /** One watch stream from the last resourceVersion, until it ends or a relist is due. */
  async #watch(): Promise<WatchEnd> {
    const s = this.#s;
    const timeoutSeconds = Math.round(s.watchTimeoutSeconds * (1 + s.random()));
    using request = new WatchRequest(this.#stop.signal, {
      relistInMs: Math.max(0, this.#nextRelistAt - Date.now()),
      deadlineMs: timeoutSeconds * 1000 + s.requestTimeoutMs,
    });
    this.#endWatchForRelist = request.endForRelist;
    try {
      const res = await apiGet(s.access, watchPath(s.path, this.#rv, timeoutSeconds), {
        signal: request.signal,
        accept: s.watchAccept,
        headersTimeoutMs: s.requestTimeoutMs,
      });
      const opened = await openedWatch(res);
      if (opened.kind !== "open") return request.ended(opened);
      this.#health.recovered();
      return request.ended(await this.#follow(opened.body, request));
    } catch (err) {
      return request.ended({ kind: "error", error: err });
    } finally {
      this.#endWatchForRelist = undefined;
    }
  }

  /** Apply the events of an open watch stream to the index until the stream or an event ends it. */
  async #follow(body: ReadableStream<Uint8Array>, request: WatchRequest): Promise<WatchEnd> {
    const started = performance.now();
    let events = 0;
    const { toRecord, onChange } = this.#s;
    // With a listener, the record an event touched is noted on its way into the index.
    const touched: { record?: R | undefined } = {};
    const noting: ToRecord<R> = (object, intern) => (touched.record = toRecord(object, intern));
    for await (const event of watchEvents(body)) {
      events++;
      touched.record = undefined;
      const outcome = applyWatchEvent(event, this.#index, onChange ? noting : toRecord);
      const record = touched.record as R | undefined; // set by `noting` during the call
      if (outcome.kind === "applied" && record) {
        onChange?.({ namespace: record.namespace, name: record.name });
      }
      if (outcome.kind === "gone" || outcome.kind === "error") {
        request.abort();
        return outcome;
      }
      if (outcome.kind === "applied") {
        if (outcome.resourceVersion) this.#rv = outcome.resourceVersion;
        this.#s.metrics.size.set(this.#index.size);
        this.#health.recovered();
      }
    }
    return { kind: "closed", events, durationMs: performance.now() - started };
  }

  /** Wait `ms`, cut short by close or by a due relist. */
  #sleep(ms: number): Promise<void> {
    const signal = this.#stop.signal;
    const wait = this.#synced ? Math.max(0, Math.min(ms, this.#nextRelistAt - Date.now())) : ms;
    return delay(wait, signal);
  }
}
