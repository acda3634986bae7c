/**
 * Every metric the service emits, named in one place, so the metric table of docs/operations.md and the code
 * cannot drift apart. Names match the Go reference where it has one.
 *
 * @module
 */
import { type Counter, type Gauge, type Histogram, Registry } from "./metrics.ts";
import { registerReferenceAliases } from "./reference_metrics.ts";

/** The service's metrics. Label values: `result` ∈ allowed|denied|dropped|error, `reason` a DenyReason/DropReason. */
export interface ServiceMetrics {
  /** Where these families and the reference's aliases are registered; `/metrics` renders it. */
  readonly registry: Registry;
  /** `nats_auth_requests_total{result,reason}`: one per callout request. */
  readonly requests: Counter;
  /** `nats_auth_request_duration_seconds{result}`: receive → reply sent. */
  readonly requestDuration: Histogram;
  /** `nats_auth_cache_hits_total`: ServiceAccount found in the cache. */
  readonly cacheHits: Counter;
  /** `nats_auth_cache_misses_total`: ServiceAccount not in the cache. */
  readonly cacheMisses: Counter;
  /** `nats_auth_filtered_internal_subjects_total`: `_INBOX`/`_REPLY` annotation entries dropped. */
  readonly filteredInternalSubjects: Counter;
  /** `nats_auth_invalid_subjects_total`: syntactically invalid annotation entries refused. */
  readonly invalidSubjects: Counter;
  /** `sa_cache_size`: ServiceAccounts in the cache (set by the cache owner). */
  readonly cacheSize: Gauge;
  /** `sa_cache_synced`: 1 after the first complete list. */
  readonly cacheSynced: Gauge;
  /** `sa_cache_relists_total{trigger}`: trigger ∈ initial|interval|resync|gone|error. */
  readonly relists: Counter;
  /** `sa_cache_watch_restarts_total{reason}`: reason ∈ gone|closed|error. */
  readonly watchRestarts: Counter;
  /** `pod_cache_size`: Pods in the Pod cache (K8S_WATCH_PODS). */
  readonly podCacheSize: Gauge;
  /** `pod_cache_synced`: 1 after the Pod cache's first complete list. */
  readonly podCacheSynced: Gauge;
  /** `pod_cache_relists_total{trigger}`: trigger ∈ initial|interval|gone|error. */
  readonly podRelists: Counter;
  /** `pod_cache_watch_restarts_total{reason}`: reason ∈ gone|closed|error. */
  readonly podWatchRestarts: Counter;
  /** `namespace_cache_size`: Namespaces in the Namespace cache (policy `labels:`). */
  readonly namespaceCacheSize: Gauge;
  /** `namespace_cache_synced`: 1 after the Namespace cache's first complete list. */
  readonly namespaceCacheSynced: Gauge;
  /** `namespace_cache_relists_total{trigger}`: trigger ∈ initial|interval|gone|error. */
  readonly namespaceRelists: Counter;
  /** `namespace_cache_watch_restarts_total{reason}`: reason ∈ gone|closed|error. */
  readonly namespaceWatchRestarts: Counter;
  /**
   * `sa_cache_staleness_seconds`: seconds since the ServiceAccount source last heard from the
   * apiserver (list, watch opened, event or bookmark); 0 for a file source. Read at scrape time
   * from the probe passed to `trackStaleness`.
   */
  readonly cacheStaleness: Gauge;
  /** Name the function `sa_cache_staleness_seconds` reads (the service does, once it has a cache). */
  trackStaleness(probe: () => number): void;
  /** `sa_records_refused_total`: ServiceAccounts never stored (namespace/name not DNS-1123, no uid). */
  readonly recordsRefused: Counter;
  /** `sa_file_reloads_total{result}`: SERVICEACCOUNTS_FILE reloads, result ∈ ok|error. */
  readonly fileReloads: Counter;
  /** `jwks_refresh_total{result}`: result ∈ ok|error|rejected (a set with no usable key, kept out). */
  readonly jwksRefreshes: Counter;
  /** `jwks_keys`: keys in the current key set. */
  readonly jwksKeys: Gauge;
  /** `nats_connected`: 1 while the service's own NATS connection is up. */
  readonly natsConnected: Gauge;
  /**
   * `nats_system_connected`: 1 while live revocation's system-account connection is up; 0 while it
   * is down or off (revocation then kicks nobody; the `starting` line says whether it is on).
   */
  readonly natsSystemConnected: Gauge;
  /** `token_verify_cache_hits_total`: logins answered from the verified-token cache. */
  readonly tokenCacheHits: Counter;
  /** `nats_auth_live_connections`: approved connections remembered for live revocation. */
  readonly liveConnections: Gauge;
  /** `nats_auth_kicks_total{reason}`: connections closed by live revocation, reason a KickReason. */
  readonly kicks: Counter;
  /** `nats_auth_policy_dropped_subjects_total`: annotation entries outside the policy's bound. */
  readonly policyDroppedSubjects: Counter;
  /** `policy_file_reloads_total{result}`: POLICY_FILE reloads after the first, result ∈ ok|error. */
  readonly policyReloads: Counter;
  /**
   * `nats_auth_server_clock_skew_seconds{server}`: this host's clock minus the NATS server's
   * (`server`: its `server_name`, else its id; the servers of one cluster), the least of its
   * callout requests' readings (their `iat`) over the last 10 s; positive when this host runs ahead.
   */
  readonly serverClockSkew: Gauge;
  /**
   * `nats_auth_logins_refused_by_server_total{reason}`: logins this replica allowed that the server
   * then refused (its `$SYS.ACCOUNT.CLIENT.AUTH.ERR` event for that server and cid); reason ∈
   * account_connections_exceeded|user_jwt_invalid|response_rejected|other.
   */
  readonly refusedByServer: Counter;
}

/**
 * Register the service's metrics on a new registry.
 *
 * @example
 * ```ts
 * import { createServiceMetrics } from "./service_metrics.ts";
 * const m = createServiceMetrics();
 * m.requests.inc({ result: "allowed", reason: "" });
 * console.assert(m.registry.render().includes("nats_auth_requests_total"));
 * ```
 */
export function createServiceMetrics(registry: Registry = new Registry()): ServiceMetrics {
  let stalenessProbe = (): number => 0;
  const metrics: ServiceMetrics = {
    registry,
    requests: registry.counter(
      "nats_auth_requests_total",
      "Auth callout requests by result and reason.",
    ),
    requestDuration: registry.histogram(
      "nats_auth_request_duration_seconds",
      "Time from receiving a callout request to sending the reply.",
    ),
    cacheHits: registry.counter(
      "nats_auth_cache_hits_total",
      "ServiceAccount lookups found in the cache.",
    ),
    cacheMisses: registry.counter(
      "nats_auth_cache_misses_total",
      "ServiceAccount lookups not in the cache.",
    ),
    filteredInternalSubjects: registry.counter(
      "nats_auth_filtered_internal_subjects_total",
      "Annotation subjects dropped because they name _INBOX or _REPLY subjects.",
    ),
    invalidSubjects: registry.counter(
      "nats_auth_invalid_subjects_total",
      "Annotation subjects refused because they are not valid NATS subjects.",
    ),
    cacheSize: registry.gauge("sa_cache_size", "ServiceAccounts in the cache."),
    cacheSynced: registry.gauge(
      "sa_cache_synced",
      "1 once the first complete list has been loaded.",
    ),
    cacheStaleness: registry.gauge(
      "sa_cache_staleness_seconds",
      "Seconds since the ServiceAccount cache last heard from the apiserver (list, event, bookmark).",
      () => stalenessProbe(),
    ),
    trackStaleness: (probe) => {
      stalenessProbe = probe;
    },
    relists: registry.counter(
      "sa_cache_relists_total",
      "Complete lists of ServiceAccounts, by trigger.",
    ),
    watchRestarts: registry.counter(
      "sa_cache_watch_restarts_total",
      "Watch streams restarted, by reason.",
    ),
    recordsRefused: registry.counter(
      "sa_records_refused_total",
      "ServiceAccounts refused by the cache: namespace or name not DNS-1123, or no uid.",
    ),
    podCacheSize: registry.gauge("pod_cache_size", "Pods in the Pod cache (metadata only)."),
    podCacheSynced: registry.gauge(
      "pod_cache_synced",
      "1 once the Pod cache's first complete list has been loaded.",
    ),
    podRelists: registry.counter("pod_cache_relists_total", "Complete lists of Pods, by trigger."),
    podWatchRestarts: registry.counter(
      "pod_cache_watch_restarts_total",
      "Pod watch streams restarted, by reason.",
    ),
    namespaceCacheSize: registry.gauge(
      "namespace_cache_size",
      "Namespaces in the Namespace cache (metadata only; policy labels).",
    ),
    namespaceCacheSynced: registry.gauge(
      "namespace_cache_synced",
      "1 once the Namespace cache's first complete list has been loaded.",
    ),
    namespaceRelists: registry.counter(
      "namespace_cache_relists_total",
      "Complete lists of Namespaces, by trigger.",
    ),
    namespaceWatchRestarts: registry.counter(
      "namespace_cache_watch_restarts_total",
      "Namespace watch streams restarted, by reason.",
    ),
    fileReloads: registry.counter(
      "sa_file_reloads_total",
      "Reloads of the SERVICEACCOUNTS_FILE manifest file, by result.",
    ),
    jwksRefreshes: registry.counter("jwks_refresh_total", "JWKS fetches, by result."),
    jwksKeys: registry.gauge("jwks_keys", "Keys in the current JWKS."),
    natsConnected: registry.gauge("nats_connected", "1 while the service's NATS connection is up."),
    natsSystemConnected: registry.gauge(
      "nats_system_connected",
      "1 while live revocation's system-account connection is up (0 while it is configured but down).",
    ),
    tokenCacheHits: registry.counter(
      "token_verify_cache_hits_total",
      "Logins whose token was found in the verified-token cache.",
    ),
    liveConnections: registry.gauge(
      "nats_auth_live_connections",
      "Approved connections remembered for live revocation (0 when revocation is off).",
    ),
    kicks: registry.counter(
      "nats_auth_kicks_total",
      "Connections closed by live revocation, by reason.",
    ),
    policyDroppedSubjects: registry.counter(
      "nats_auth_policy_dropped_subjects_total",
      "Annotation subjects dropped because the cluster policy does not allow them.",
    ),
    policyReloads: registry.counter(
      "policy_file_reloads_total",
      "Reloads of the POLICY_FILE cluster policy after the first load, by result.",
    ),
    serverClockSkew: registry.gauge(
      "nats_auth_server_clock_skew_seconds",
      "This host's clock minus the NATS server's (label server: its server_name), the least of " +
        "its callout requests' readings over the last 10 s.",
    ),
    refusedByServer: registry.counter(
      "nats_auth_logins_refused_by_server_total",
      "Logins allowed by this replica that the NATS server then refused (auth error event).",
    ),
  };
  registerReferenceAliases(registry, metrics);
  return metrics;
}
