/**
 * Force a resync on demand (SIGHUP, `POST /resync`): relist ServiceAccounts and refetch the
 * token-signing keys now instead of at the next interval — for an operator who just fixed RBAC,
 * rotated the cluster's keys, or suspects a missed watch event. Requests closer together than
 * `minIntervalMs` are refused, so a loop of POSTs cannot turn the service into a relist storm
 * against the apiserver.
 *
 * @module
 */
import type { Logger } from "../telemetry/log.ts";
import type { ServiceAccountSource } from "../core/model.ts";

/** What can be resynced: the ServiceAccount source and the key source. */
export interface ResyncTargets {
  /** Its `resync()` starts a relist and returns at once; a throw is logged (`resync_failed`). */
  readonly serviceAccounts: Pick<ServiceAccountSource, "resync">;
  /** Its `refresh()` refetches the signing keys, in the background; a rejection is logged. */
  readonly keys: { refresh(): Promise<void> };
}

/** Options of {@linkcode createResync}. */
export interface ResyncOptions {
  /** Receives `resync_requested`, `resync_refused`, `resync_failed` and `resync_keys_refetched`. */
  logger: Logger;
  /** Shortest time between two accepted resyncs. @default {5000} */
  minIntervalMs?: number;
  /** Clock in milliseconds. @default {() => performance.now()} */
  now?: () => number;
}

/** The outcome of one request: started, or refused for `retryAfterMs` more. */
export type ResyncOutcome =
  | { readonly started: true }
  | { readonly started: false; readonly retryAfterMs: number };

/** Start a resync on behalf of `trigger` ("SIGHUP", "http"). Never throws. */
export type Resync = (trigger: string) => ResyncOutcome;

/**
 * Build the resync action over `targets()` (a function: the sources may be built later than the
 * action). The key refetch runs in the background; its failure is logged, and the previous key set
 * stays in use.
 *
 * @example
 * ```ts
 * import { createResync } from "./resync.ts";
 * import { silentLogger } from "../telemetry/log.ts";
 * const resync = createResync(() => ({
 *   serviceAccounts: { resync() {} },
 *   keys: { refresh: () => Promise.resolve() },
 * }), { logger: silentLogger() });
 * console.assert(resync("SIGHUP").started);
 * console.assert(!resync("SIGHUP").started);
 * ```
 */
export function createResync(targets: () => ResyncTargets, options: ResyncOptions): Resync {
  const { logger, minIntervalMs = 5000, now = () => performance.now() } = options;
  let last: number | undefined;
  return (trigger) => {
    const t = now();
    if (last !== undefined && t - last < minIntervalMs) {
      const retryAfterMs = Math.ceil(minIntervalMs - (t - last));
      logger.warn("resync_refused", { trigger, retry_after_ms: retryAfterMs });
      return { started: false, retryAfterMs };
    }
    last = t;
    logger.info("resync_requested", { trigger });
    const { serviceAccounts, keys } = targets();
    try {
      serviceAccounts.resync();
    } catch (err) {
      logger.warn("resync_failed", { trigger, what: "serviceaccounts", error: err });
    }
    keys.refresh().then(
      () => logger.info("resync_keys_refetched", { trigger }),
      (err) => logger.warn("resync_failed", { trigger, what: "keys", error: err }),
    );
    return { started: true };
  };
}
