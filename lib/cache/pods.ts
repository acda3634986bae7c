/**
 * The Pod cache: the metadata of every Pod (namespace, name, uid — nothing else is kept), so that a
 * token bound to a Pod (`kubernetes.io.pod`) can be refused once that Pod is gone or was recreated
 * under the same name, as the kube-apiserver itself refuses it (DESIGN §3). It is a
 * {@linkcode startReflector} over `/api/v1/pods` that asks for `PartialObjectMetadata`, so Pod
 * specs and statuses never cross the wire and 100,000 Pods stay a few tens of MiB.
 *
 * @module
 */
import type { ApiAccess } from "../kubernetes/access.ts";
import type { PodLookup, PodRecord } from "../core/model.ts";
import {
  type CacheView,
  cacheView,
  objectMeta,
  type ReflectorTuning,
  startReflector,
} from "./reflector.ts";
import type { ServiceMetrics } from "../telemetry/service_metrics.ts";

/** Options of {@linkcode startPodCache}. */
export interface PodCacheOptions extends ReflectorTuning {
  /** Where the apiserver is and how to authenticate; owned by the caller (not closed here). */
  access: ApiAccess;
  /** Watch only this namespace. @default {undefined (all namespaces)} */
  namespace?: string;
  /** Receives the `pod_cache_*` size, synced, relist and watch-restart series. */
  metrics: ServiceMetrics;
}

/** The Pods the service knows, for the bound-token check. */
export interface PodSource extends CacheView {
  /** Synchronous lookup in the current snapshot. */
  readonly lookup: PodLookup;
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
  return cacheView<PodRecord, Pick<PodSource, "lookup">>(reflector, {
    lookup: (ns, name) => reflector.get(ns, name),
  });
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
