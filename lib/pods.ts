/**
 * The Pod cache: the metadata of every Pod (namespace, name, uid — nothing else is kept), so that a
 * token bound to a Pod (`kubernetes.io.pod`) can be refused once that Pod is gone or was recreated
 * under the same name, as the kube-apiserver itself refuses it (DESIGN §3). It is a
 * {@linkcode startReflector} over `/api/v1/pods` that asks for `PartialObjectMetadata`, so Pod
 * specs and statuses never cross the wire and 100,000 Pods stay a few tens of MiB.
 *
 * @module
 */
import type { ApiAccess } from "./kube_access.ts";
import type { Logger } from "./log.ts";
import type { PodLookup, PodRecord } from "./model.ts";
import { objectMeta, startReflector } from "./reflector.ts";
import type { ServiceMetrics } from "./service_metrics.ts";

/** Options of {@linkcode startPodCache}. */
export interface PodCacheOptions {
  /** Where the apiserver is and how to authenticate; owned by the caller (not closed here). */
  access: ApiAccess;
  /** Watch only this namespace. @default {undefined (all namespaces)} */
  namespace?: string;
  /** A full relist replaces the map this often, healing any missed event. */
  relistIntervalMs: number;
  logger: Logger;
  metrics: ServiceMetrics;
  /** Retry delays after failures. @default {{ initialMs: 500, maxMs: 30000 }} */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Items per list page (`limit`). @default {500} */
  pageSize?: number;
  /** Watch stream rotation, seconds (jittered up to 2×). @default {300} */
  watchTimeoutSeconds?: number;
  /** Limit for one list page, and for a watch to answer with headers. @default {30000} */
  requestTimeoutMs?: number;
  /** Source of randomness for jitter. @default {Math.random} */
  random?: () => number;
}

/** The Pods the service knows, for the bound-token check. */
export interface PodSource extends AsyncDisposable {
  /** Synchronous lookup in the current snapshot. */
  readonly lookup: PodLookup;
  /** True once the first complete list has finished (readiness). */
  readonly synced: boolean;
  /** Pods currently known. */
  readonly size: number;
  /** Resolves after the first complete list; rejects if `signal` aborts first or at close. */
  waitSynced(signal?: AbortSignal): Promise<void>;
  /** Stop watching and release every timer and stream. */
  close(): Promise<void>;
}

/**
 * Start the Pod cache. It lists and watches Pods' metadata in the background; `synced` turns true
 * after the first complete list. Close it (or `await using` it) to stop every request and timer.
 *
 * @example
 * ```ts ignore
 * import { startPodCache } from "./pods.ts";
 * await using pods = startPodCache({ access, relistIntervalMs: 15 * 60_000, logger, metrics });
 * await pods.waitSynced();
 * const pod = pods.lookup("team-a", "worker-7d9f-abcde"); // { namespace, name, uid } | undefined
 * ```
 */
export function startPodCache(options: PodCacheOptions): PodSource {
  const { access, namespace, metrics, ...tuning } = options;
  const reflector = startReflector<PodRecord>({
    ...tuning,
    access,
    path: namespace === undefined
      ? "/api/v1/pods"
      : `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`,
    metadataOnly: true,
    toRecord: podRecord,
    logPrefix: "pod_cache",
    countField: "pods",
    what: "Pod cache",
    request: "list/watch pods",
    metrics: {
      size: metrics.podCacheSize,
      synced: metrics.podCacheSynced,
      relists: metrics.podRelists,
      watchRestarts: metrics.podWatchRestarts,
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
    close: () => reflector.close(),
    [Symbol.asyncDispose]: () => reflector.close(),
  };
}

function podRecord(object: unknown, intern: (namespace: string) => string): PodRecord | undefined {
  const md = objectMeta(object);
  if (!md) return undefined;
  const namespace = intern(md.namespace);
  const deleting = typeof md.deletionTimestamp === "string"
    ? Date.parse(md.deletionTimestamp)
    : NaN;
  return Object.freeze(
    Number.isFinite(deleting)
      ? { namespace, name: md.name, uid: md.uid, deletingSince: deleting }
      : { namespace, name: md.name, uid: md.uid },
  );
}
