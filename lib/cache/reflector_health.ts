/**
 * The failure bookkeeping of a reflector (lib/cache/reflector.ts): how many requests failed in a
 * row (the retry delay grows with them), the report of each failure by cause (a warn line per change
 * of cause, the rest at debug: {@linkcode FailureReporter}), and when the apiserver last answered
 * (the cache's staleness).
 *
 * @module
 */
import { FailureReporter } from "../kubernetes/apiserver_errors.ts";
import type { Logger } from "../telemetry/log.ts";

/** Retry delays after failures; the defaults are the reflector's `backoff` option's. */
export interface BackoffSettings {
  /** First delay. */
  readonly initialMs: number;
  /** Cap once the first list has completed. */
  readonly maxMs: number;
  /** Cap before the first list has completed (a reflector with nothing to serve retries quickly). */
  readonly firstSyncMaxMs: number;
}

/**
 * The delay before the next attempt after `failures` failures in a row: exponential from
 * `initialMs`, capped (more tightly before the first sync), with jitter in [50 %, 100 %] so
 * replicas do not retry in step. Pure.
 *
 * @example
 * ```ts
 * import { backoffDelay } from "./reflector_health.ts";
 * const backoff = { initialMs: 500, maxMs: 30_000, firstSyncMaxMs: 2_000 };
 * console.assert(backoffDelay(backoff, { failures: 10, synced: false, random: () => 1 }) === 2_000);
 * console.assert(backoffDelay(backoff, { failures: 2, synced: true, random: () => 0 }) === 1_000);
 * ```
 */
export function backoffDelay(
  backoff: BackoffSettings,
  state: { failures: number; synced: boolean; random: () => number },
): number {
  const cap = state.synced ? backoff.maxMs : Math.min(backoff.maxMs, backoff.firstSyncMaxMs);
  const exp = Math.min(cap, backoff.initialMs * 2 ** Math.min(state.failures, 30));
  return exp * (0.5 + 0.5 * state.random());
}

/** Options of {@linkcode ReflectorHealth}. */
export interface ReflectorHealthOptions {
  /** Where failures and recoveries are logged. */
  logger: Logger;
  /** The `request` field of `apiserver_request_failed` lines, e.g. `list/watch pods`. */
  request: string;
  /** Retry delays. */
  backoff: BackoffSettings;
  /** Source of randomness for jitter. */
  random: () => number;
}

/**
 * Failures in a row, their report, and the time of the apiserver's last answer.
 *
 * @example
 * ```ts ignore
 * const health = new ReflectorHealth({ logger, request: "list/watch pods", backoff, random });
 * try { await list(); health.recovered(); } catch (err) {
 *   health.failed(err, { phase: "list", serving: 0 });
 *   await delay(health.backoffMs(false));
 * }
 * ```
 */
export class ReflectorHealth {
  readonly #report: FailureReporter;
  readonly #backoff: BackoffSettings;
  readonly #random: () => number;
  #failures = 0;
  #freshAt = Date.now();

  /** Start healthy, fresh as of now. */
  constructor(options: ReflectorHealthOptions) {
    this.#report = new FailureReporter({ logger: options.logger, request: options.request });
    this.#backoff = options.backoff;
    this.#random = options.random;
  }

  /** When the apiserver last answered (epoch ms); the start until it ever did. */
  get freshAt(): number {
    return this.#freshAt;
  }

  /** Count a failure and report it (warn once per change of cause, the rest at debug). */
  failed(err: unknown, fields: { phase: "list" | "watch"; serving: number }): void {
    this.#failures++;
    this.#report.failed(err, fields);
  }

  /** The apiserver answered: a list completed, a watch opened, or an event or bookmark arrived. */
  recovered(): void {
    this.#report.succeeded();
    this.#failures = 0;
    this.#freshAt = Date.now();
  }

  /** How long to wait before the next attempt ({@linkcode backoffDelay}). */
  backoffMs(synced: boolean): number {
    return backoffDelay(this.#backoff, { failures: this.#failures, synced, random: this.#random });
  }
}
