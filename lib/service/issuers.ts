/**
 * Which token issuers the service accepts, settled once at start-up: the configured ones
 * (`JWT_ISSUER`), or the apiserver's own, discovered and retried until it answers. Before either,
 * `JWT_AUDIENCE` is checked against the audiences the apiserver itself accepts: a service that
 * would let every pod's default token log in to NATS does not start ({@linkcode StartupError}).
 *
 * @module
 */
import { delay } from "../core/abort.ts";
import { apiAudienceRisk, type Config } from "../config/config.ts";
import type { ApiAccess } from "../kubernetes/access.ts";
import { FailureReporter } from "../kubernetes/apiserver_errors.ts";
import type { Logger } from "../telemetry/log.ts";
import { discoverIssuer } from "../tokens/jwks.ts";

/** A configuration problem found during start-up that no retry can fix. */
export class StartupError extends Error {
  /** Create the error. */
  constructor(message: string) {
    super(message);
    this.name = "StartupError";
  }
}

/**
 * The issuers to accept: `config.jwt.issuers`, else the one discovered through `access` (retried
 * with backoff until found). Resolves to undefined when `signal` aborts first; rejects with
 * {@linkcode StartupError} when `JWT_AUDIENCE` is one of the apiserver's own audiences.
 */
export async function resolveIssuers(
  config: Config,
  access: ApiAccess | undefined,
  options: { logger: Logger; signal: AbortSignal },
): Promise<readonly string[] | undefined> {
  if (access) {
    const risk = await apiAudienceRiskOf(access, config, config.jwt.issuers ?? []);
    if (risk) throw new StartupError(risk);
  }
  if (config.jwt.issuers !== undefined) return config.jwt.issuers;
  // Without JWT_ISSUER the apiserver is always used (see lib/service/sources.ts).
  const api = access!;
  const discover = new FailureReporter({ logger: options.logger, request: "issuer discovery" });
  const found = await retry(
    () => discoverIssuer(api.server, { access: api }),
    { what: discover, signal: options.signal },
  );
  if (found === undefined) return undefined;
  options.logger.info("issuer_discovered", { issuer: found });
  if (!config.jwt.allowApiAudience && config.jwt.audience === found) {
    throw new StartupError(apiAudienceRisk(found, [found]) ?? "");
  }
  return [found];
}

/**
 * Check `JWT_AUDIENCE` against the audiences the apiserver itself accepts, as far as they can be
 * known without extra RBAC: the `aud` of the service's own API token (the kubelet requests it with
 * the apiserver's `--api-audiences`). Undefined when safe or when the token is not a JWT.
 */
async function apiAudienceRiskOf(
  access: ApiAccess,
  config: Config,
  issuers: readonly string[],
): Promise<string | undefined> {
  if (config.jwt.allowApiAudience) return undefined;
  let audiences: readonly string[] = [];
  try {
    const bearer = (await access.headers()).get("authorization") ?? "";
    const payload = bearer.startsWith("Bearer ") ? bearer.slice(7).split(".")[1] : undefined;
    if (payload) {
      const aud = JSON.parse(new TextDecoder().decode(decodeBase64Url(payload))).aud;
      audiences = typeof aud === "string" ? [aud] : Array.isArray(aud) ? aud : [];
    }
  } catch {
    // Not a JWT, or unreadable now: the requests that need it will say why.
  }
  if (!audiences.includes(config.jwt.audience)) {
    return apiAudienceRisk(config.jwt.audience, issuers);
  }
  return `JWT_AUDIENCE: ${JSON.stringify(config.jwt.audience)} is one of the apiserver's own API ` +
    "audiences (found in the service's own token): every pod's default ServiceAccount token would " +
    'log in to NATS. Use a dedicated audience such as "nats", or set ' +
    "JWT_AUDIENCE_ALLOW_API_AUDIENCE=true to accept that risk";
}

function decodeBase64Url(text: string): Uint8Array {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(b64 + "=".repeat((4 - b64.length % 4) % 4)), (c) => c.charCodeAt(0));
}

/**
 * Retry `fn` with capped exponential backoff until it succeeds or `signal` aborts (→ undefined);
 * failures are reported (warn once per change of cause) by `what`.
 */
async function retry<T>(
  fn: () => Promise<T>,
  options: { what: FailureReporter; signal: AbortSignal },
): Promise<T | undefined> {
  let backoff = 500;
  while (!options.signal.aborted) {
    try {
      const value = await fn();
      options.what.succeeded();
      return value;
    } catch (err) {
      options.what.failed(err);
      await delay(backoff * (0.8 + Math.random() * 0.4), options.signal);
      // Only ever before the service can work: a short cap (issue 10, defect 6).
      backoff = Math.min(backoff * 2, 2_000);
    }
  }
  return undefined;
}
