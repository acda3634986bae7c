/**
 * What the token verifier needs from a key set ({@linkcode KeySource}), the two ways a key lookup
 * fails that are not the token's fault ({@linkcode KeysUnavailableError},
 * {@linkcode KeyInvalidError}), and the options every key set shares. The key sets themselves are
 * in lib/tokens/jwks.ts.
 *
 * @module
 */
import type { JWTVerifyGetKey } from "jose";
import { redactUrl } from "../telemetry/log.ts";
import type { Logger } from "../telemetry/log.ts";
import type { ServiceMetrics } from "../telemetry/service_metrics.ts";

/** A set of token-signing public keys that stays current on its own. */
export interface KeySource extends AsyncDisposable {
  /**
   * Key resolver for jose's `jwtVerify`/`compactVerify`. Throws jose's `JWKSNoMatchingKey` when no
   * key matches the token's `kid`/`alg` (after a rate-limited refresh), and
   * {@linkcode KeysUnavailableError} while no key set has ever been loaded.
   */
  readonly getKey: JWTVerifyGetKey;
  /** A usable key set is loaded (readiness: `/readyz` reports "keys" while false). */
  readonly ready: boolean;
  /**
   * Bumps whenever the content of the key set changes (0 before the first load). Caches of verified
   * tokens drop entries made under an older generation, so a removed key stops being trusted at once.
   */
  readonly generation: number;
  /**
   * Load the key set now, ignoring the cool-down. Rejects when the load fails; the previous key set
   * stays in use. Concurrent calls share one load.
   */
  refresh(): Promise<void>;
  /** Stop the refresh timer, abort a load in flight and release the HTTP client. Idempotent. */
  close(): Promise<void>;
}

/**
 * Thrown by {@linkcode KeySource.getKey} while no key set has been loaded yet (the apiserver was
 * unreachable at start and every retry since failed). The token verifier turns it into the
 * `jwks_unavailable` denial.
 */
export class KeysUnavailableError extends Error {
  /** Stable code, in the style of jose's error codes. */
  readonly code = "ERR_KEYS_UNAVAILABLE";

  /** Create the error; `message` says which source and why. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "KeysUnavailableError";
  }
}

/**
 * Thrown by {@linkcode KeySource.getKey} for a token whose `kid` names a key the endpoint publishes
 * but that cannot be used (it does not import, or is too weak). The token verifier turns it into
 * the `jwks_key_invalid` denial: a problem of the key set, not of the service.
 */
export class KeyInvalidError extends Error {
  /** Stable code, in the style of jose's error codes. */
  readonly code = "ERR_JWKS_KEY_INVALID";

  /** Create the error; `message` names the kid and why its key is unusable. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "KeyInvalidError";
  }
}

/** Reads a text file; injected so tests can count and fail reads. */
export type ReadTextFile = (path: string) => Promise<string>;

/** Options shared by both key sets (the file and the remote one). */
export interface CommonKeySourceOptions {
  /** Where load results and failures are logged. */
  logger: Logger;
  /** `jwksRefreshes{result}` and `jwksKeys` are updated on every load. */
  metrics: ServiceMetrics;
  /**
   * Minimum time between two loads triggered by a token with an unknown `kid` (or by a token
   * arriving while no key set is loaded). Short, because it is also how long a token signed by a
   * freshly rotated key can be refused after the previous load (measured against the real
   * apiserver: a rotation just after start was refused for 30 s with 30 s); a flood of forged
   * `kid`s still costs the apiserver one request per cool-down. @default {5000}
   */
  cooldownMs?: number;
  /** Re-load the key set this often, so removed keys stop being trusted. @default {3600000} (1 h) */
  refreshIntervalMs?: number;
  /**
   * After a failed load, retry after this long, doubling on each further failure up to the smaller
   * of 60 s (2 s while no key set has ever loaded) and `refreshIntervalMs`. @default {1000}
   */
  retryMs?: number;
  /** Clock in milliseconds, for the cool-down. @default {Date.now} */
  now?: () => number;
  /** File reader. @default {Deno.readTextFile} */
  readTextFile?: ReadTextFile;
}

/** The reader used when none is injected. */
export function denoReadTextFile(path: string): Promise<string> {
  return Deno.readTextFile(path);
}

/** Longest delay `setTimeout` honours; larger values fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Check a duration option of a key set: a finite number of milliseconds a timer can honour,
 * positive unless `allowZero`. Misuse is a `RangeError` naming the option.
 *
 * @example
 * ```ts
 * import { checkDuration } from "./key_source.ts";
 * console.assert(checkDuration("cooldownMs", 0, true) === 0);
 * ```
 */
export function checkDuration(name: string, value: number, allowZero: boolean): number {
  if (!Number.isFinite(value) || value < 0 || (!allowZero && value === 0) || value > MAX_TIMER_MS) {
    throw new RangeError(
      `Cannot create key source: "${name}" must be a ${
        allowZero ? "non-negative" : "positive"
      } number of milliseconds up to ${MAX_TIMER_MS}, got ${value}`,
    );
  }
  return value;
}

/**
 * An error's message followed by its causes' ("fetch failed: invalid peer certificate: …"), URLs
 * redacted: what the key sets and discovery put in logs and in their own errors.
 *
 * @example
 * ```ts
 * import { describeError } from "./key_source.ts";
 * const err = new Error("fetch failed", { cause: new Error("connection refused") });
 * console.assert(describeError(err) === "fetch failed: connection refused");
 * ```
 */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err, depth = 0; e !== undefined && depth < 4; depth++) {
    const message = e instanceof Error ? e.message : String(e);
    if (!parts.some((p) => p.includes(message))) parts.push(message);
    e = e instanceof Error ? e.cause : undefined;
  }
  return redactUrl(parts.join(": "));
}
