/**
 * The cache both key sets (lib/tokens/jwks.ts) share; they differ only in how they load and how they
 * start. It keeps the last good set in memory and loads again: on a timer (backing off after
 * failures), when a token names a `kid` it does not know (at most once per cool-down, so a flood of
 * forged `kid`s cannot turn into a flood of fetches), and when asked. A failed, empty or broken load
 * never replaces a good set (lib/tokens/key_set.ts decides what is broken). The cool-down is jose's
 * `createRemoteJWKSet`'s, measured from the last *attempt*.
 *
 * @module
 */
import { errors, type JWTVerifyGetKey } from "jose";
import { classifyApiFailure } from "../kubernetes/apiserver_errors.ts";
import type { Logger } from "../telemetry/log.ts";
import type { ServiceMetrics } from "../telemetry/service_metrics.ts";
import {
  checkDuration,
  type CommonKeySourceOptions,
  describeError,
  KeyInvalidError,
  type KeySource,
  KeysUnavailableError,
} from "./key_source.ts";
import { KeySetRejected, type LoadedSet, toKeySet } from "./key_set.ts";

const DEFAULT_COOLDOWN_MS = 5_000;
const DEFAULT_REFRESH_INTERVAL_MS = 3_600_000;
const DEFAULT_RETRY_MS = 1_000;
const MAX_RETRY_MS = 60_000;
const FIRST_LOAD_MAX_RETRY_MS = 2_000;

/** What a {@linkcode CachedKeySource} needs: its loader and its checked timings. */
export interface CacheSettings {
  /** Where the keys come from, for logs and errors (a path, or a redacted URL). */
  readonly source: string;
  /** Read the raw key set (JSON), aborted by `signal` at close. */
  readonly load: (signal: AbortSignal) => Promise<unknown>;
  /** Receives `jwks_loaded`, `jwks_keys_ignored` and failed loads (warn when the cause changes). */
  readonly logger: Logger;
  /** Counts `jwks_refresh_total{result}` on every load; sets `jwks_keys` on a good one. */
  readonly metrics: ServiceMetrics;
  /** Least time between two loads asked for by an unknown `kid`, in ms (checked; may be 0). */
  readonly cooldownMs: number;
  /** Load again this often while loads succeed, in ms (checked, positive). */
  readonly refreshIntervalMs: number;
  /** First retry after a failed load, in ms, doubling per failure ({@linkcode nextLoadDelay}). */
  readonly retryMs: number;
  /** Clock in ms since the epoch, for the cool-down. */
  readonly now: () => number;
  /** Called once at close (the remote key set releases its HTTP client). */
  readonly onClose?: () => void;
}

/** Check the common options and unpack their defaults, in one place. */
export function cacheSettings(
  source: string,
  load: (signal: AbortSignal) => Promise<unknown>,
  options: CommonKeySourceOptions,
  onClose?: () => void,
): CacheSettings {
  const {
    logger,
    metrics,
    cooldownMs = DEFAULT_COOLDOWN_MS,
    refreshIntervalMs = DEFAULT_REFRESH_INTERVAL_MS,
    retryMs = DEFAULT_RETRY_MS,
    now = Date.now,
  } = options;
  return {
    source,
    load,
    logger,
    metrics,
    cooldownMs: checkDuration("cooldownMs", cooldownMs, true),
    refreshIntervalMs: checkDuration("refreshIntervalMs", refreshIntervalMs, false),
    retryMs: checkDuration("retryMs", retryMs, false),
    now,
    ...(onClose ? { onClose } : {}),
  };
}

/**
 * When to load next: after the refresh interval while loads succeed; after a failure, `retryMs`
 * doubling per further failure, capped at 60 s — 2 s while no set has ever loaded, so keys are back
 * seconds after the endpoint — and at the refresh interval. Pure.
 *
 * @example
 * ```ts
 * import { nextLoadDelay } from "./key_cache.ts";
 * const timings = { refreshIntervalMs: 3_600_000, retryMs: 1_000 };
 * console.assert(nextLoadDelay(0, true, timings) === 3_600_000);
 * console.assert(nextLoadDelay(3, false, timings) === 2_000);
 * ```
 */
export function nextLoadDelay(
  failures: number,
  haveSet: boolean,
  timings: Pick<CacheSettings, "refreshIntervalMs" | "retryMs">,
): number {
  const { refreshIntervalMs, retryMs } = timings;
  if (failures === 0) return refreshIntervalMs;
  return Math.min(
    retryMs * 2 ** (failures - 1),
    haveSet ? MAX_RETRY_MS : FIRST_LOAD_MAX_RETRY_MS,
    refreshIntervalMs,
  );
}

/**
 * A key set kept current: resolves keys for jose from the last good set, loads again on a
 * timer, on an unknown `kid` (cool-down permitting) and on {@linkcode CachedKeySource.refresh}.
 *
 * @example
 * ```ts ignore
 * const keys = new CachedKeySource(cacheSettings(path, () => readJson(path), options));
 * await keys.refresh();
 * keys.startTimer();
 * ```
 */
export class CachedKeySource implements KeySource {
  readonly #s: CacheSettings;
  #current: LoadedSet | undefined;
  /** Broken keys of the last rejected set (cleared by the next accepted one). */
  #rejectedInvalid: ReadonlyMap<string, string> = new Map();
  #generation = 0;
  #inflight: Promise<void> | undefined;
  #lastAttempt = Number.NEGATIVE_INFINITY;
  #failures = 0;
  #lastFailureCause: string | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  readonly #abort = new AbortController();

  /** Create the cache; nothing is loaded until {@linkcode refresh} or {@linkcode startTimer}. */
  constructor(settings: CacheSettings) {
    this.#s = settings;
  }

  /** A usable key set is loaded. */
  get ready(): boolean {
    return this.#current !== undefined;
  }

  /** Bumps whenever the content of the key set changes. */
  get generation(): number {
    return this.#generation;
  }

  /** jose's key resolver: the current set, loaded again once for a `kid` it does not know. */
  readonly getKey: JWTVerifyGetKey = async (header, token) => {
    if (!this.#current) {
      await this.#refreshIfCool();
      if (!this.#current) {
        throw new KeysUnavailableError(`no key set loaded yet from ${this.#s.source}`);
      }
    }
    try {
      return await this.#current.resolve(header, token);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey)) throw err;
      const before = this.#current;
      await this.#refreshIfCool();
      if (this.#current === before) throw this.#explain(err, header.kid);
      try {
        return await this.#current.resolve(header, token);
      } catch (again) {
        throw again instanceof errors.JWKSNoMatchingKey ? this.#explain(again, header.kid) : again;
      }
    }
  };

  /** Load now, ignoring the cool-down; concurrent calls share one load. */
  refresh(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error(`key source ${this.#s.source} is closed`));
    if (!this.#inflight) {
      this.#lastAttempt = this.#s.now();
      const p = this.#loadOnce().finally(() => {
        if (this.#inflight === p) this.#inflight = undefined;
      });
      this.#inflight = p;
    }
    return this.#inflight;
  }

  /** Start the periodic refresh; the first tick is soon when the first load failed. */
  startTimer(): void {
    this.#schedule();
  }

  /** Stop the timer, abort a load in flight, release what the source holds. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#abort.abort(new Error("key source closed"));
    await this.#inflight?.catch(() => {});
    this.#s.onClose?.();
  }

  /** Same as {@linkcode close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** A no-match for a kid the endpoint publishes with a broken key is that key's fault. */
  #explain(err: Error, kid: unknown): Error {
    const why = typeof kid === "string"
      ? this.#current?.invalid.get(kid) ?? this.#rejectedInvalid.get(kid)
      : undefined;
    if (why === undefined) return err;
    return new KeyInvalidError(`key ${JSON.stringify(kid)} from ${this.#s.source} ${why}`, {
      cause: err,
    });
  }

  /** Share a load in flight, or start one if the cool-down has passed; never throws. */
  async #refreshIfCool(): Promise<void> {
    if (this.#closed) return;
    if (!this.#inflight && this.#s.now() - this.#lastAttempt < this.#s.cooldownMs) return;
    await this.refresh().catch(() => {});
  }

  /** Load, validate, and take the set — or keep the current one and say why. */
  async #loadOnce(): Promise<void> {
    let next: LoadedSet;
    try {
      next = await toKeySet(await this.#s.load(this.#abort.signal), this.#current);
    } catch (err) {
      this.#loadFailed(err);
      throw new Error(`cannot load JWKS from ${this.#s.source}: ${describeError(err)}`, {
        cause: err,
      });
    }
    this.#loaded(next);
  }

  /** Count a failed or rejected load; warn when the cause changes, not per retry. */
  #loadFailed(err: unknown): void {
    const { source, logger, metrics } = this.#s;
    this.#failures++;
    const rejected = err instanceof KeySetRejected;
    if (rejected) this.#rejectedInvalid = err.invalid;
    metrics.jwksRefreshes.inc({ result: rejected ? "rejected" : "error" });
    if (this.#closed) return;
    const cause = rejected ? "rejected" : classifyApiFailure(err);
    const level = cause === this.#lastFailureCause ? "debug" : "warn";
    this.#lastFailureCause = cause;
    logger[level](rejected ? "jwks_rejected" : "jwks_refresh_failed", {
      source,
      cause,
      error: describeError(err),
      keys_in_use: this.#current?.kids.length ?? 0,
      failures: this.#failures,
    });
  }

  /** Take a validated set; a set with the same content keeps the generation. */
  #loaded(next: LoadedSet): void {
    const { source, logger, metrics } = this.#s;
    this.#failures = 0;
    this.#lastFailureCause = undefined;
    this.#rejectedInvalid = new Map();
    metrics.jwksRefreshes.inc({ result: "ok" });
    metrics.jwksKeys.set(next.kids.length);
    if (next.invalid.size > 0 && this.#current?.fingerprint !== next.fingerprint) {
      logger.warn("jwks_keys_ignored", {
        source,
        keys: next.kids.length,
        ignored: [...next.invalid].map(([kid, why]) => ({ kid, why })),
      });
    }
    if (this.#current?.fingerprint === next.fingerprint) {
      logger.debug("jwks_unchanged", { source, keys: next.kids.length });
      return;
    }
    this.#current = next;
    this.#generation++;
    logger.info("jwks_loaded", {
      source,
      keys: next.kids.length,
      kids: next.kids,
      generation: this.#generation,
    });
  }

  #schedule(): void {
    if (this.#closed) return;
    const delay = nextLoadDelay(this.#failures, this.#current !== undefined, this.#s);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.refresh().catch(() => {}).finally(() => this.#schedule());
    }, delay);
  }
}
