/**
 * The Namespace cache: the name, labels, uid, creation time and deletion state of every Namespace
 * (nothing else is kept), so that a cluster policy rule with `labels:` (lib/decision/policy_file.ts)
 * can match a namespace by its labels, and accounts that follow namespaces (lib/accounts/) know
 * which Namespaces exist and derive their keys from the uid. It
 * is a {@linkcode startReflector} over `/api/v1/namespaces` that asks for `PartialObjectMetadata`,
 * like the Pod cache (lib/cache/pods.ts). Started by lib/service/sources.ts only when the policy uses
 * `labels:` or accounts are provisioned.
 *
 * @module
 */
import type { NamespaceLabelsLookup } from "../core/model.ts";
import type { ApiAccess } from "../kubernetes/access.ts";
import { type CacheView, cacheView, type ReflectorTuning, startReflector } from "./reflector.ts";
import type { ServiceMetrics } from "../telemetry/service_metrics.ts";

/** What the Namespace cache keeps of one Namespace (cluster-scoped: `namespace` is always ""). */
export interface NamespaceRecord {
  /** Always `""`: the index keys records by namespace, and Namespaces have none. */
  readonly namespace: "";
  /** `metadata.name`, what {@linkcode NamespaceSource.labelsOf} looks up. */
  readonly name: string;
  /** `metadata.labels` (string values only; `{}` when it has none), frozen. */
  readonly labels: Readonly<Record<string, string>>;
  /** `metadata.uid` ("" if the object had none): accounts that follow namespaces derive keys from it. */
  readonly uid: string;
  /** `metadata.creationTimestamp`, seconds since the epoch (0 if absent). */
  readonly createdAt: number;
  /** `metadata.deletionTimestamp` is set: the Namespace is being deleted. */
  readonly deleting: boolean;
}

/** Options of {@linkcode startNamespaceCache}. */
export interface NamespaceCacheOptions extends ReflectorTuning {
  /** Where the apiserver is and how to authenticate; owned by the caller (not closed here). */
  access: ApiAccess;
  /** Receives the `namespace_cache_*` size, synced, relist and watch-restart series. */
  metrics: ServiceMetrics;
}

/** The Namespaces the service knows, for policy rules by label and accounts that follow namespaces. */
export interface NamespaceSource extends CacheView {
  /** Synchronous lookup of a Namespace's labels in the current snapshot. */
  readonly labelsOf: NamespaceLabelsLookup;
  /** One Namespace's record in the current snapshot. */
  get(name: string): NamespaceRecord | undefined;
  /** Every Namespace in the current snapshot. */
  list(): NamespaceRecord[];
}

/**
 * Start the Namespace cache. It lists and watches Namespaces' metadata in the background; `synced`
 * turns true after the first complete list. Close it (or `await using` it) to stop it.
 *
 * @example
 * ```ts ignore
 * import { startNamespaceCache } from "./namespaces.ts";
 * await using namespaces = startNamespaceCache({ access, relistIntervalMs: 900_000, logger, metrics });
 * await namespaces.waitSynced();
 * namespaces.labelsOf("team-a"); // { tier: "gold", ... } | undefined
 * ```
 */
export function startNamespaceCache(options: NamespaceCacheOptions): NamespaceSource {
  const { access, metrics, ...tuning } = options;
  const reflector = startReflector<NamespaceRecord>({
    ...tuning,
    access,
    path: "/api/v1/namespaces",
    metadataOnly: true,
    toRecord: namespaceRecord,
    logPrefix: "namespace_cache",
    countField: "namespaces",
    what: "Namespace cache",
    request: "list/watch namespaces",
    metrics: {
      size: metrics.namespaceCacheSize,
      synced: metrics.namespaceCacheSynced,
      relists: metrics.namespaceRelists,
      watchRestarts: metrics.namespaceWatchRestarts,
    },
  });
  return cacheView<NamespaceRecord, Pick<NamespaceSource, "labelsOf" | "get" | "list">>(reflector, {
    labelsOf: (name) => reflector.get("", name)?.labels,
    get: (name) => reflector.get("", name),
    list: () => reflector.list(),
  });
}

/** A listed or watched Namespace → its record; `undefined` when it has no name. */
export function namespaceRecord(object: unknown): NamespaceRecord | undefined {
  if (typeof object !== "object" || object === null) return undefined;
  const md = (object as { metadata?: unknown }).metadata;
  if (typeof md !== "object" || md === null) return undefined;
  const { name, labels, uid, creationTimestamp, deletionTimestamp } = md as {
    name?: unknown;
    labels?: unknown;
    uid?: unknown;
    creationTimestamp?: unknown;
    deletionTimestamp?: unknown;
  };
  if (typeof name !== "string" || name === "") return undefined;
  const kept: Record<string, string> = {};
  if (typeof labels === "object" && labels !== null) {
    for (const [k, v] of Object.entries(labels)) if (typeof v === "string") kept[k] = v;
  }
  const created = typeof creationTimestamp === "string" ? Date.parse(creationTimestamp) : NaN;
  return Object.freeze({
    namespace: "",
    name,
    labels: Object.freeze(kept),
    uid: typeof uid === "string" ? uid : "",
    createdAt: Number.isFinite(created) ? Math.floor(created / 1000) : 0,
    deleting: typeof deletionTimestamp === "string" && deletionTimestamp !== "",
  });
}
