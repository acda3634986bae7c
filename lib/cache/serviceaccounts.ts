/**
 * The ServiceAccount cache (DESIGN §4): a {@linkcode startReflector} over
 * `/api/v1/serviceaccounts` (or one namespace's) that keeps, per ServiceAccount, its namespace,
 * name, uid and only the annotations under the configured prefix. Paging, the watch with bookmarks,
 * `410 Gone` recovery, the periodic relist and failure reporting are the reflector's
 * (lib/cache/reflector.ts), shared with the Pod cache.
 *
 * A ServiceAccount whose namespace is not a DNS-1123 label or whose name is not a DNS-1123
 * subdomain (or that has no uid) is never stored: those names end up in NATS subjects, and the
 * apiserver path is checked like every other source (issue 10, defect 5). It is logged
 * (`sa_record_refused`, warn once per object) and counted (`sa_records_refused_total`).
 *
 * @module
 */
import type { ApiAccess } from "../kubernetes/access.ts";
import { serviceAccountNameProblem } from "../kubernetes/names.ts";
import type { Logger } from "../telemetry/log.ts";
import type { ServiceAccountRecord, ServiceAccountSource } from "../core/model.ts";
import { cacheView, objectMeta, type ReflectorTuning, startReflector } from "./reflector.ts";
import type { ServiceMetrics } from "../telemetry/service_metrics.ts";

/** Options of {@linkcode startServiceAccountCache}. */
export interface ServiceAccountCacheOptions extends ReflectorTuning {
  /** Where the apiserver is and how to authenticate; owned by the caller (not closed here). */
  access: ApiAccess;
  /** Watch only this namespace. @default {undefined (all namespaces)} */
  namespace?: string;
  /** Annotations kept per ServiceAccount are those whose key starts with this (e.g. `nats.io/`). */
  annotationPrefix: string;
  /**
   * Receives the `sa_cache_*` size, synced, relist and watch-restart series, and
   * `sa_records_refused_total`.
   */
  metrics: ServiceMetrics;
}

/**
 * Start the ServiceAccount cache. It lists and watches in the background; `synced` turns true after
 * the first complete list. Close it (or `await using` it) to stop every request and timer.
 *
 * @example
 * ```ts ignore
 * import { startServiceAccountCache } from "./serviceaccounts.ts";
 * import { inClusterAccess } from "../kubernetes/access.ts";
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
  const refuse = refuser(options.logger, metrics);
  const reflector = startReflector<ServiceAccountRecord>({
    ...tuning,
    access,
    path: namespace === undefined
      ? "/api/v1/serviceaccounts"
      : `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts`,
    toRecord: (object, intern) => serviceAccountRecord(object, intern, annotationPrefix, refuse),
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
  return cacheView(reflector, {
    lookup: (ns: string, name: string) => reflector.get(ns, name),
  });
}

const EMPTY: Readonly<Record<string, string>> = Object.freeze({});

type Refuse = (namespace: unknown, name: unknown, uid: unknown, problem: string) => void;

/**
 * Log (warn once per object, then debug: every relist sees it again) and count a ServiceAccount
 * that cannot be a record.
 */
function refuser(logger: Logger, metrics: ServiceMetrics): Refuse {
  const seen = new Set<string>();
  return (namespace, name, uid, problem) => {
    metrics.recordsRefused.inc();
    const key = `${String(uid)}/${String(namespace)}/${String(name)}`;
    const fields = { namespace: clipName(namespace), serviceaccount: clipName(name), problem };
    if (seen.has(key)) {
      logger.debug("sa_record_refused", fields);
      return;
    }
    if (seen.size >= 1000) seen.clear();
    seen.add(key);
    logger.warn("sa_record_refused", fields);
  };
}

/** An untrusted name for a log line: JSON-quoted and bounded. */
function clipName(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * The record of one ServiceAccount: identity and the annotations under `prefix` only; `undefined`
 * (and `refuse` called) when its namespace or name is not what the apiserver itself allows.
 */
function serviceAccountRecord(
  object: unknown,
  intern: (namespace: string) => string,
  prefix: string,
  refuse: Refuse,
): ServiceAccountRecord | undefined {
  const raw = typeof object === "object" && object !== null
    ? (object as { metadata?: unknown }).metadata
    : undefined;
  if (typeof raw !== "object" || raw === null) return undefined;
  const { namespace, name, uid } = raw as { namespace?: unknown; name?: unknown; uid?: unknown };
  const problem = serviceAccountNameProblem(namespace, name) ??
    (typeof uid !== "string" || uid === "" ? "uid is missing" : undefined);
  if (problem !== undefined) {
    refuse(namespace, name, uid, problem);
    return undefined;
  }
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
