/**
 * The ServiceAccount cache (DESIGN §4): a {@linkcode startReflector} over
 * `/api/v1/serviceaccounts` (or one namespace's) that keeps, per ServiceAccount, its namespace,
 * name, uid and only the annotations under the configured prefix. Paging, the watch with bookmarks,
 * `410 Gone` recovery, the periodic relist and failure reporting are the reflector's
 * (lib/reflector.ts), shared with the Pod cache.
 *
 * @module
 */
import type { ApiAccess } from "./kube_access.ts";
import type { Logger } from "./log.ts";
import type { ServiceAccountRecord, ServiceAccountSource } from "./model.ts";
import { objectMeta, startReflector } from "./reflector.ts";
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
  /** Retry delays after failures: exponential from `initialMs`, capped at `maxMs`, with jitter. @default {{ initialMs: 500, maxMs: 30000 }} */
  backoff?: { initialMs?: number; maxMs?: number };
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
  const { access, namespace, annotationPrefix, metrics, ...tuning } = options;
  const reflector = startReflector<ServiceAccountRecord>({
    ...tuning,
    access,
    path: namespace === undefined
      ? "/api/v1/serviceaccounts"
      : `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts`,
    toRecord: (object, intern) => serviceAccountRecord(object, intern, annotationPrefix),
    logPrefix: "sa_cache",
    countField: "serviceaccounts",
    what: "ServiceAccount cache",
    request: "list/watch serviceaccounts",
    metrics: {
      size: metrics.cacheSize,
      synced: metrics.cacheSynced,
      relists: metrics.relists,
      watchRestarts: metrics.watchRestarts,
    },
  });
  return {
    lookup: (ns, name) => reflector.get(ns, name),
    get synced() {
      return reflector.synced;
    },
    get size() {
      return reflector.size;
    },
    waitSynced: (signal) => reflector.waitSynced(signal),
    resync: () => reflector.resync(),
    close: () => reflector.close(),
    [Symbol.asyncDispose]: () => reflector.close(),
  };
}

const EMPTY: Readonly<Record<string, string>> = Object.freeze({});

/** The record of one ServiceAccount: identity and the annotations under `prefix` only. */
function serviceAccountRecord(
  object: unknown,
  intern: (namespace: string) => string,
  prefix: string,
): ServiceAccountRecord | undefined {
  const md = objectMeta(object);
  if (!md) return undefined;
  const annotations = md.annotations;
  let kept: Record<string, string> | undefined;
  if (typeof annotations === "object" && annotations !== null) {
    for (const [k, v] of Object.entries(annotations)) {
      if (k.startsWith(prefix) && typeof v === "string") (kept ??= {})[k] = v;
    }
  }
  return Object.freeze({
    namespace: intern(md.namespace),
    name: md.name,
    uid: md.uid,
    annotations: kept ? Object.freeze(kept) : EMPTY,
  });
}
