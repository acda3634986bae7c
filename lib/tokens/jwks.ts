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
 * Read this folder in the order a key travels: this module (the two key sets),
 * lib/tokens/key_cache.ts (the cache they share: cool-down, refresh on an unknown `kid`, backoff),
 * lib/tokens/key_set.ts (key validation), lib/tokens/http_json.ts (the fetch),
 * lib/tokens/discovery.ts (the issuer).
 * {@linkcode KeySource} and its errors live in lib/tokens/key_source.ts and are re-exported here.
 *
 * @module
 */
import type { ApiAccess } from "../kubernetes/access.ts";
import { redactUrl } from "../telemetry/log.ts";
import { CachedKeySource, cacheSettings } from "./key_cache.ts";
import { createClient, getJson, type HttpGetSettings } from "./http_json.ts";
import {
  checkDuration,
  type CommonKeySourceOptions,
  denoReadTextFile,
  type KeySource,
} from "./key_source.ts";

export {
  type CommonKeySourceOptions,
  KeyInvalidError,
  type KeySource,
  KeysUnavailableError,
  type ReadTextFile,
} from "./key_source.ts";
export { discoverIssuer, type DiscoverIssuerOptions } from "./discovery.ts";

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

/** Abort one fetch after this long by default. */
const DEFAULT_TIMEOUT_MS = 5_000;

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
