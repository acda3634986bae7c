/**
 * Where the public keys that sign ServiceAccount tokens come from: a JWKS file (dev mode, or a
 * ConfigMap mount) or the apiserver's `/openid/v1/jwks` over HTTPS. Both keep the last good key set in
 * memory, re-load it on a timer and when a token names a `kid` they do not know (rate limited, so a
 * flood of forged `kid`s cannot turn into a flood of fetches), and never trade a good key set for a
 * failed, empty or broken load.
 *
 * Every key of a new set is imported before the set is used. A set with no importable key, or one
 * that has broken keys and keeps none of the keys in use, is rejected as a whole (logged as
 * `jwks_rejected`, counted as `jwks_refresh_total{result="rejected"}`) and the last good set stays:
 * an endpoint serving garbage must not turn every valid login into `unknown_key`. A set that is
 * good apart from some broken keys is used without them; a token naming one of those is refused as
 * `jwks_key_invalid`, a key problem, not `internal_error`.
 *
 * Why not jose's `createRemoteJWKSet` (evaluated for issue 12; a `customFetch` could add the cluster
 * CA client and the rotating bearer token): its `reload()` swaps in whatever JSON arrives as soon as
 * it has the shape of a key set, and keys are imported only when a token needs them, so it cannot
 * refuse a set with no importable key and keep the last good one (defect 1 of issue 10, exactly);
 * it reads `Date.now()` directly (no injected clock for the cool-down tests); it measures the
 * cool-down from the last *successful* fetch, so while the endpoint fails every unknown `kid`
 * triggers a fetch; and it offers no signal when the set's content changes, which the verified-token
 * cache needs (`generation`) to stop trusting a removed key at once, nor a hook for metrics and
 * logs. The small cache below keeps jose's cool-down semantics on top of jose's
 * `createLocalJWKSet` and `importJWK`, with those four things added.
 *
 * @module
 */
import {
  createLocalJWKSet,
  errors,
  importJWK,
  type JWK,
  type JWTVerifyGetKey,
  type LocalJWKSet,
} from "jose";
import { apiErrorFromResponse, classifyApiFailure } from "../kubernetes/apiserver_errors.ts";
import type { ApiAccess } from "../kubernetes/access.ts";
import { type Logger, redactUrl } from "../telemetry/log.ts";
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

/** Options shared by both key sources. */
interface CommonKeySourceOptions {
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

/** Options of {@linkcode fileKeySource}. */
export type FileKeySourceOptions = CommonKeySourceOptions;

/** Options of {@linkcode remoteKeySource}. */
export interface RemoteKeySourceOptions extends CommonKeySourceOptions {
  /**
   * PEM file with the CA(s) that sign the server's certificate (in-cluster:
   * `/var/run/secrets/kubernetes.io/serviceaccount/ca.crt`). Read once, at creation.
   * @default {the system trust store}
   */
  caCertFile?: string;
  /**
   * File with a bearer token sent as `Authorization: Bearer …` (in-cluster: the pod's own
   * `/var/run/secrets/kubernetes.io/serviceaccount/token`). Re-read on every fetch, because the
   * kubelet rotates it. @default {no Authorization header}
   */
  bearerTokenFile?: string;
  /** Abort one fetch after this long. @default {5000} */
  timeoutMs?: number;
  /** `fetch` implementation. @default {globalThis.fetch} */
  fetch?: typeof fetch;
  /**
   * The apiserver's access (lib/kubernetes/access.ts): its CA/client certificate and per-request
   * credentials, used instead of `caCertFile`/`bearerTokenFile` when the URL is on the apiserver.
   * Owned by the caller (not closed here).
   */
  access?: Pick<ApiAccess, "headers" | "client">;
}

/** Options of {@linkcode discoverIssuer}. */
export interface DiscoverIssuerOptions {
  /** PEM CA file for the apiserver's certificate. @default {the system trust store} */
  caCertFile?: string;
  /** Bearer token file sent as `Authorization`. @default {no Authorization header} */
  bearerTokenFile?: string;
  /** `fetch` implementation. @default {globalThis.fetch} */
  fetch?: typeof fetch;
  /** Abort the request after this long. @default {5000} */
  timeoutMs?: number;
  /** File reader. @default {Deno.readTextFile} */
  readTextFile?: ReadTextFile;
  /** The apiserver's access, used instead of `caCertFile`/`bearerTokenFile`. Not closed here. */
  access?: Pick<ApiAccess, "headers" | "client">;
}

const DEFAULT_COOLDOWN_MS = 5_000;
const DEFAULT_REFRESH_INTERVAL_MS = 3_600_000;
const DEFAULT_RETRY_MS = 1_000;
const MAX_RETRY_MS = 60_000;
const FIRST_LOAD_MAX_RETRY_MS = 2_000;
const DEFAULT_TIMEOUT_MS = 5_000;

function denoReadTextFile(path: string): Promise<string> {
  return Deno.readTextFile(path);
}

/** Longest delay `setTimeout` honours; larger values fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

function checkDuration(name: string, value: number, allowZero: boolean): number {
  if (!Number.isFinite(value) || value < 0 || (!allowZero && value === 0) || value > MAX_TIMER_MS) {
    throw new RangeError(
      `Cannot create key source: "${name}" must be a ${
        allowZero ? "non-negative" : "positive"
      } number of milliseconds up to ${MAX_TIMER_MS}, got ${value}`,
    );
  }
  return value;
}

/** An error's message followed by its causes' ("fetch failed: invalid peer certificate: …"). */
function describe(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err, depth = 0; e !== undefined && depth < 4; depth++) {
    const message = e instanceof Error ? e.message : String(e);
    if (!parts.some((p) => p.includes(message))) parts.push(message);
    e = e instanceof Error ? e.cause : undefined;
  }
  return redactUrl(parts.join(": "));
}

/** Key types that can verify an allowed token algorithm; others (e.g. `oct`) are ignored. */
const SIGNING_KEY_TYPES = new Set(["RSA", "EC", "OKP"]);

/** The algorithm a key is checked with when its JWK names none. */
const DEFAULT_ALG: Readonly<Record<string, string>> = {
  RSA: "RS256",
  "EC:P-256": "ES256",
  "EC:P-384": "ES384",
  "EC:P-521": "ES512",
  "OKP:Ed25519": "EdDSA",
};

/** Smallest RSA modulus jose verifies with (shorter ones fail at verification time). */
const MIN_RSA_BITS = 2048;

interface LoadedSet {
  readonly resolve: LocalJWKSet;
  readonly fingerprint: string;
  readonly kids: readonly string[];
  /** kid → why its key was left out of the set. */
  readonly invalid: ReadonlyMap<string, string>;
}

/** A load that produced a key set we refuse to use; the previous set stays. */
class KeySetRejected extends Error {
  /** kid → why its key cannot be used, for the keys of the rejected set that are broken. */
  readonly invalid: ReadonlyMap<string, string>;
  constructor(message: string, invalid: ReadonlyMap<string, string>) {
    super(message);
    this.name = "KeySetRejected";
    this.invalid = invalid;
  }
}

function kidOf(key: JWK): string {
  return typeof key.kid === "string" ? key.kid : "(no kid)";
}

/** Import `key` the way a token would use it; resolves to why it cannot be used, or undefined. */
async function keyProblem(key: JWK): Promise<string | undefined> {
  const alg = typeof key.alg === "string"
    ? key.alg
    : DEFAULT_ALG[key.kty === "RSA" ? "RSA" : `${key.kty}:${String(key.crv)}`];
  if (alg === undefined) return `unsupported key type ${key.kty} ${String(key.crv ?? "")}`.trim();
  let imported: unknown;
  try {
    imported = await importJWK(key, alg);
  } catch (err) {
    return `does not import as ${alg}: ${err instanceof Error ? err.message : String(err)}`;
  }
  if (!(imported instanceof CryptoKey) || imported.type !== "public") {
    return "is not a public key";
  }
  const bits = (imported.algorithm as { modulusLength?: number }).modulusLength;
  if (bits !== undefined && bits < MIN_RSA_BITS) {
    return `RSA modulus is ${bits} bits, fewer than the ${MIN_RSA_BITS} required`;
  }
  return undefined;
}

/**
 * Turn raw JSON into a usable key set, or throw saying why it is not one. Keys are imported here,
 * not when a token first names them. `previous` is the set in use: a new set with broken keys that
 * keeps none of its keys is refused rather than trusted (the endpoint is more likely broken than
 * rotated).
 */
async function toKeySet(json: unknown, previous: LoadedSet | undefined): Promise<LoadedSet> {
  const all = typeof json === "object" && json !== null
    ? (json as { keys?: unknown }).keys
    : undefined;
  if (!Array.isArray(all)) {
    throw new Error('not a JSON Web Key Set (expected an object with a "keys" array)');
  }
  const keys = all.filter((k): k is JWK =>
    typeof k === "object" && k !== null && SIGNING_KEY_TYPES.has((k as JWK).kty ?? "")
  );
  if (keys.length === 0) throw new Error("JSON Web Key Set has no RSA, EC or OKP keys");
  const usable: JWK[] = [];
  const invalid = new Map<string, string>();
  for (const key of keys) {
    const problem = await keyProblem(key);
    if (problem === undefined) usable.push(key);
    else invalid.set(kidOf(key), problem);
  }
  const brokenList = () =>
    [...invalid].slice(0, 5).map(([kid, why]) => `kid ${JSON.stringify(kid)} ${why}`).join("; ");
  if (usable.length === 0) {
    throw new KeySetRejected(`no usable key in the set: ${brokenList()}`, invalid);
  }
  const kids = usable.map(kidOf);
  if (invalid.size > 0 && previous && !previous.kids.some((kid) => kids.includes(kid))) {
    throw new KeySetRejected(
      `the set drops every key in use (${previous.kids.join(", ")}) while ${invalid.size} of ` +
        `its keys are broken: ${brokenList()}`,
      invalid,
    );
  }
  let resolve: LocalJWKSet;
  try {
    resolve = createLocalJWKSet({ keys: usable });
  } catch (cause) {
    throw new Error("JSON Web Key Set is malformed", { cause });
  }
  return { resolve, fingerprint: JSON.stringify(keys), kids, invalid };
}

interface CacheSettings {
  readonly source: string;
  readonly load: (signal: AbortSignal) => Promise<unknown>;
  readonly logger: Logger;
  readonly metrics: ServiceMetrics;
  readonly cooldownMs: number;
  readonly refreshIntervalMs: number;
  readonly retryMs: number;
  readonly now: () => number;
  readonly onClose?: () => void;
}

/** The cache both sources share; the sources differ only in how they load and how they start. */
class CachedKeySource implements KeySource {
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

  constructor(settings: CacheSettings) {
    this.#s = settings;
  }

  get ready(): boolean {
    return this.#current !== undefined;
  }

  get generation(): number {
    return this.#generation;
  }

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

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#abort.abort(new Error("key source closed"));
    await this.#inflight?.catch(() => {});
    this.#s.onClose?.();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Share a load in flight, or start one if the cool-down has passed; never throws. */
  async #refreshIfCool(): Promise<void> {
    if (this.#closed) return;
    if (!this.#inflight && this.#s.now() - this.#lastAttempt < this.#s.cooldownMs) return;
    await this.refresh().catch(() => {});
  }

  async #loadOnce(): Promise<void> {
    const { source, logger, metrics } = this.#s;
    let next: LoadedSet;
    try {
      next = await toKeySet(await this.#s.load(this.#abort.signal), this.#current);
    } catch (err) {
      this.#failures++;
      const rejected = err instanceof KeySetRejected;
      if (rejected) this.#rejectedInvalid = err.invalid;
      metrics.jwksRefreshes.inc({ result: rejected ? "rejected" : "error" });
      if (!this.#closed) {
        // A failing endpoint is retried with backoff: warn when the cause changes, not per retry.
        const cause = rejected ? "rejected" : classifyApiFailure(err);
        const level = cause === this.#lastFailureCause ? "debug" : "warn";
        this.#lastFailureCause = cause;
        logger[level](rejected ? "jwks_rejected" : "jwks_refresh_failed", {
          source,
          cause,
          error: describe(err),
          keys_in_use: this.#current?.kids.length ?? 0,
          failures: this.#failures,
        });
      }
      throw new Error(`cannot load JWKS from ${source}: ${describe(err)}`, { cause: err });
    }
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
    const { refreshIntervalMs, retryMs } = this.#s;
    const delay = this.#failures === 0 ? refreshIntervalMs : Math.min(
      retryMs * 2 ** (this.#failures - 1),
      // Nothing to serve yet: retry on a short cap, so keys are back seconds after the endpoint.
      this.#current ? MAX_RETRY_MS : FIRST_LOAD_MAX_RETRY_MS,
      refreshIntervalMs,
    );
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.refresh().catch(() => {}).finally(() => this.#schedule());
    }, delay);
  }
}

function cacheSettings(
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
 * Keys from a JWKS file (`JWKS_PATH`): dev mode, air-gapped clusters, or a ConfigMap the operator
 * fills from `kubectl get --raw /openid/v1/jwks`. The file is re-read on the refresh timer and when a
 * token names an unknown `kid`, so an updated ConfigMap is picked up without a restart.
 *
 * A file that cannot be read or parsed at start is a configuration error: the returned promise
 * rejects (the service should not start and look healthy with no keys). Later failures keep the
 * last good key set.
 *
 * @example
 * ```ts ignore
 * import { fileKeySource } from "./jwks.ts";
 * import { silentLogger } from "../telemetry/log.ts";
 * import { createServiceMetrics } from "../telemetry/service_metrics.ts";
 * await using keys = await fileKeySource("/etc/callout/jwks.json", {
 *   logger: silentLogger(),
 *   metrics: createServiceMetrics(),
 * });
 * console.assert(keys.ready);
 * ```
 */
export async function fileKeySource(
  path: string,
  options: FileKeySourceOptions,
): Promise<KeySource> {
  const read = options.readTextFile ?? denoReadTextFile;
  const source = new CachedKeySource(
    cacheSettings(path, async () => {
      const text = await read(path);
      try {
        return JSON.parse(text);
      } catch (cause) {
        throw new Error("file is not valid JSON", { cause });
      }
    }, options),
  );
  try {
    await source.refresh();
  } catch (err) {
    await source.close();
    throw err;
  }
  source.startTimer();
  return source;
}

/** What a fetch needs besides the URL: CA client, bearer token, timeout. */
interface HttpGetSettings {
  readonly fetch: typeof fetch;
  readonly access: Pick<ApiAccess, "headers" | "client"> | undefined;
  readonly client: Deno.HttpClient | undefined;
  readonly bearerTokenFile: string | undefined;
  readonly readTextFile: ReadTextFile;
  readonly timeoutMs: number;
}

async function createClient(
  caCertFile: string | undefined,
  read: ReadTextFile,
): Promise<Deno.HttpClient | undefined> {
  if (caCertFile === undefined) return undefined;
  let pem: string;
  try {
    pem = await read(caCertFile);
  } catch (err) {
    throw new Error(`cannot read CA certificate file ${caCertFile}: ${describe(err)}`, {
      cause: err,
    });
  }
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
    throw new Error(`CA certificate file ${caCertFile} contains no PEM certificate`);
  }
  return Deno.createHttpClient({ caCerts: [pem] });
}

/** GET `url` and parse a JSON body; every failure is an Error whose message never has a secret. */
async function getJson(url: string, s: HttpGetSettings, signal?: AbortSignal): Promise<unknown> {
  const headers = s.access
    ? await s.access.headers()
    : new Headers({ accept: "application/json, application/jwk-set+json" });
  headers.set("accept", "application/json, application/jwk-set+json");
  if (!s.access && s.bearerTokenFile !== undefined) {
    let token: string;
    try {
      token = (await s.readTextFile(s.bearerTokenFile)).trim();
    } catch (err) {
      throw new Error(`cannot read bearer token file ${s.bearerTokenFile}: ${describe(err)}`);
    }
    if (!token) throw new Error(`bearer token file ${s.bearerTokenFile} is empty`);
    headers.set("authorization", `Bearer ${token}`);
  }
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new Error(`timed out after ${s.timeoutMs} ms`)),
    s.timeoutMs,
  );
  const onAbort = () => controller.abort(signal?.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    if (signal?.aborted) throw signal.reason;
    const init: RequestInit & { client?: Deno.HttpClient } = {
      method: "GET",
      headers,
      redirect: "manual",
      signal: controller.signal,
    };
    const client = s.access ? s.access.client : s.client;
    if (client) init.client = client;
    let response: Response;
    try {
      response = await s.fetch(url, init);
    } catch (err) {
      throw controller.signal.aborted ? controller.signal.reason : err;
    }
    if (response.status !== 200) throw await apiErrorFromResponse(response);
    try {
      return await response.json();
    } catch (cause) {
      throw new Error("response body is not JSON", { cause });
    }
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
}

/**
 * Keys from an HTTP(S) JWKS endpoint (`JWKS_URL`; in-cluster the apiserver's
 * `https://kubernetes.default.svc/openid/v1/jwks`, which needs the cluster CA and, unless anonymous
 * discovery is enabled, the pod's bearer token).
 *
 * If the first fetch fails the promise still resolves, with `ready === false`: the apiserver being
 * briefly unreachable is an outage to ride out, not a configuration error, so the source keeps
 * retrying in the background (backing off from `retryMs`) and readiness reports "keys" until it
 * succeeds. Logins meanwhile are denied with `jwks_unavailable`. A CA file that cannot be read is a
 * configuration error and rejects.
 *
 * @example
 * ```ts ignore
 * import { remoteKeySource } from "./jwks.ts";
 * import { silentLogger } from "../telemetry/log.ts";
 * import { createServiceMetrics } from "../telemetry/service_metrics.ts";
 * await using keys = await remoteKeySource("https://kubernetes.default.svc/openid/v1/jwks", {
 *   caCertFile: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
 *   bearerTokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token",
 *   logger: silentLogger(),
 *   metrics: createServiceMetrics(),
 * });
 * ```
 */
export async function remoteKeySource(
  url: string,
  options: RemoteKeySourceOptions,
): Promise<KeySource> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`Cannot create key source: "${redactUrl(url)}" is not a URL`);
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") {
    throw new TypeError(`Cannot create key source: "${redactUrl(url)}" is not an http(s) URL`);
  }
  const read = options.readTextFile ?? denoReadTextFile;
  const timeoutMs = checkDuration("timeoutMs", options.timeoutMs ?? DEFAULT_TIMEOUT_MS, false);
  const client = options.access ? undefined : await createClient(options.caCertFile, read);
  const http: HttpGetSettings = {
    fetch: options.fetch ?? fetch,
    access: options.access,
    client,
    bearerTokenFile: options.bearerTokenFile,
    readTextFile: read,
    timeoutMs,
  };
  let source: CachedKeySource;
  try {
    source = new CachedKeySource(
      cacheSettings(
        redactUrl(url),
        (signal) => getJson(parsed.href, http, signal),
        options,
        () => client?.close(),
      ),
    );
  } catch (err) {
    client?.close();
    throw err;
  }
  await source.refresh().catch(() => {});
  source.startTimer();
  return source;
}

/**
 * Ask the apiserver which issuer it puts in ServiceAccount tokens, from
 * `<apiServerUrl>/.well-known/openid-configuration`. The in-cluster default
 * `https://kubernetes.default.svc` is wrong on many clusters (kubeadm, k3s, EKS), and a wrong issuer
 * denies every login, so discovering it beats guessing.
 *
 * @example
 * ```ts ignore
 * import { discoverIssuer } from "./jwks.ts";
 * const issuer = await discoverIssuer("https://kubernetes.default.svc", {
 *   caCertFile: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
 *   bearerTokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token",
 * });
 * ```
 */
export async function discoverIssuer(
  apiServerUrl: string,
  options: DiscoverIssuerOptions = {},
): Promise<string> {
  const url = `${apiServerUrl.replace(/\/+$/, "")}/.well-known/openid-configuration`;
  const where = redactUrl(url);
  const read = options.readTextFile ?? denoReadTextFile;
  const client = options.access ? undefined : await createClient(options.caCertFile, read);
  try {
    let doc: unknown;
    try {
      doc = await getJson(url, {
        fetch: options.fetch ?? fetch,
        access: options.access,
        client,
        bearerTokenFile: options.bearerTokenFile,
        readTextFile: read,
        timeoutMs: checkDuration("timeoutMs", options.timeoutMs ?? DEFAULT_TIMEOUT_MS, false),
      });
    } catch (err) {
      throw new Error(`cannot discover the token issuer from ${where}: ${describe(err)}`, {
        cause: err,
      });
    }
    const issuer = typeof doc === "object" && doc !== null
      ? (doc as Record<string, unknown>).issuer
      : undefined;
    if (typeof issuer !== "string" || issuer === "") {
      throw new Error(
        `cannot discover the token issuer from ${where}: no "issuer" in the document`,
      );
    }
    return issuer;
  } finally {
    client?.close();
  }
}
