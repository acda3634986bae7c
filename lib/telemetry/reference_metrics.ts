/**
 * The Go reference's documented metric names, computed at scrape time from our own families, so
 * a dashboard or alert written for the reference keeps working. None of them is counted twice in
 * code: each is a view of a family in lib/telemetry/service_metrics.ts. docs/differences.md lists the documented names we cannot reproduce and the one whose labels differ
 * (`nats_auth_requests_total`: `result` is allowed|denied|dropped|error and the reason label is
 * `reason`, where the reference documents success|failure and `failure_reason`).
 *
 * @module
 */
import type { Counter, Gauge, Registry } from "./metrics.ts";

/** The families the aliases read. */
export interface ReferenceSources {
  /**
   * `nats_auth_requests_total`, behind `nats_auth_requests_success`, `nats_auth_requests_denied`
   * and `nats_messages_processed_total`.
   */
  readonly requests: Counter;
  /** `nats_auth_cache_hits_total`, behind `nats_auth_cache_hits` and `sa_cache_hits_total`. */
  readonly cacheHits: Counter;
  /** `nats_auth_cache_misses_total`, behind `nats_auth_cache_misses`, `sa_cache_misses_total`. */
  readonly cacheMisses: Counter;
  /** `nats_connected`, behind `nats_connection_status{status}`. */
  readonly natsConnected: Gauge;
}

/** Every name {@linkcode registerReferenceAliases} adds, for the docs' metric table (docs/operations.md) and tests. */
export const REFERENCE_ALIASES: readonly string[] = [
  "nats_auth_requests_success",
  "nats_auth_requests_denied",
  "nats_auth_cache_hits",
  "nats_auth_cache_misses",
  "sa_cache_hits_total",
  "sa_cache_misses_total",
  "nats_messages_processed_total",
  "nats_connection_status",
];

/**
 * Register the reference's names on `registry` as views of `sources`.
 *
 * @example
 * ```ts
 * import { createServiceMetrics } from "./service_metrics.ts";
 * const m = createServiceMetrics();
 * m.requests.inc({ result: "allowed", reason: "" });
 * console.assert(m.registry.render().includes("nats_auth_requests_success 1"));
 * ```
 */
export function registerReferenceAliases(registry: Registry, sources: ReferenceSources): void {
  const { requests, cacheHits, cacheMisses, natsConnected } = sources;
  const counter = (name: string, help: string, value: () => number) =>
    registry.collector(name, help, "counter", () => [[undefined, value()]]);
  counter(
    "nats_auth_requests_success",
    'Allowed logins (the Go reference\'s name; = nats_auth_requests_total{result="allowed"}).',
    () => requests.sum({ result: "allowed" }),
  );
  counter(
    "nats_auth_requests_denied",
    'Refused logins (the Go reference\'s name; = nats_auth_requests_total{result="denied"}).',
    () => requests.sum({ result: "denied" }),
  );
  counter(
    "nats_auth_cache_hits",
    "ServiceAccount cache hits (the Go reference's name for nats_auth_cache_hits_total).",
    () => cacheHits.sum(),
  );
  counter(
    "nats_auth_cache_misses",
    "ServiceAccount cache misses (the Go reference's name for nats_auth_cache_misses_total).",
    () => cacheMisses.sum(),
  );
  counter(
    "sa_cache_hits_total",
    "ServiceAccount cache hits (the Go reference's design name for nats_auth_cache_hits_total).",
    () => cacheHits.sum(),
  );
  counter(
    "sa_cache_misses_total",
    "ServiceAccount cache misses (the Go reference's design name for nats_auth_cache_misses_total).",
    () => cacheMisses.sum(),
  );
  counter(
    "nats_messages_processed_total",
    "Callout requests handled, any result (the Go reference's name).",
    () => requests.sum(),
  );
  registry.collector(
    "nats_connection_status",
    "1 for the state the service's own NATS connection is in (the Go reference's name).",
    "gauge",
    () => {
      const up = natsConnected.value() === 1 ? 1 : 0;
      return [[{ status: "connected" }, up], [{ status: "disconnected" }, 1 - up]];
    },
  );
}
