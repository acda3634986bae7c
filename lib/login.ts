/**
 * One login, top to bottom: extract the token from the CONNECT options → verify it → look its
 * ServiceAccount up → derive permissions → grant. This is the `Authorizer` the callout protocol
 * module calls; it owns the decision and nothing of the protocol (request checks, signing).
 *
 * @module
 */
import type { Authorizer, AuthorizeResult, CalloutRequest } from "./callout.ts";
import { AuthError } from "./errors.ts";
import type { Logger } from "./log.ts";
import type { ServiceAccountLookup, ServiceAccountRecord } from "./model.ts";
import { permissionsFor, type PolicyOptions, type PolicyResult } from "./policy.ts";
import type { ServiceMetrics } from "./service_metrics.ts";
import type { TokenVerifier } from "./tokens.ts";

/** Options of {@linkcode createAuthorizer}. */
export interface AuthorizerOptions {
  /** Verifies a ServiceAccount token; throws {@linkcode AuthError}. */
  verifyToken: TokenVerifier;
  /** ServiceAccount lookup in the current snapshot. */
  lookup: ServiceAccountLookup;
  /** Whether the ServiceAccount snapshot is complete; before that every login is refused. */
  isSynced: () => boolean;
  /** Annotation prefix and response settings for the policy. */
  policy: PolicyOptions;
  /** Longest life of a user JWT; a shorter-lived token shortens it further. */
  userJwtTtlMs: number;
  logger: Logger;
  metrics: ServiceMetrics;
  /** Clock in milliseconds. @default {() => Date.now()} */
  now?: () => number;
}

/**
 * Pick the Kubernetes token out of the CONNECT options: `auth_token`, else `pass`, else `jwt` —
 * the last only when it is not a NATS JWT (in operator mode `jwt` carries the sentinel user, and
 * the Go reference's habit of reading it first breaks that mode).
 *
 * @example
 * ```ts
 * import { extractToken } from "./login.ts";
 * console.assert(extractToken({ auth_token: "t" }) === "t");
 * console.assert(extractToken({}) === undefined);
 * ```
 */
export function extractToken(
  connectOpts: CalloutRequest["connectOpts"],
): string | undefined {
  if (connectOpts.auth_token) return connectOpts.auth_token;
  if (connectOpts.pass) return connectOpts.pass;
  if (connectOpts.jwt && !isNatsJwt(connectOpts.jwt)) return connectOpts.jwt;
  return undefined;
}

/** True when `token`'s header says it is signed with an nkey (a NATS JWT, not a Kubernetes one). */
export function isNatsJwt(token: string): boolean {
  const dot = token.indexOf(".");
  if (dot <= 0) return false;
  try {
    const header = JSON.parse(atob(token.slice(0, dot).replace(/-/g, "+").replace(/_/g, "/")));
    return typeof header?.alg === "string" && header.alg.toLowerCase().startsWith("ed25519");
  } catch {
    return false;
  }
}

/** The NATS user name of a ServiceAccount, as Kubernetes writes the subject of its tokens. */
export function userName(namespace: string, serviceAccount: string): string {
  return `system:serviceaccount:${namespace}:${serviceAccount}`;
}

/**
 * Build the login decision. Every refusal is an {@linkcode AuthorizeResult} with a stable reason;
 * nothing here throws for a bad input.
 *
 * @example
 * ```ts ignore
 * const authorize = createAuthorizer({ verifyToken, lookup, isSynced, policy, userJwtTtlMs, logger, metrics });
 * const result = await authorize(request);
 * ```
 */
export function createAuthorizer(options: AuthorizerOptions): Authorizer {
  const { verifyToken, lookup, isSynced, policy, userJwtTtlMs, logger, metrics } = options;
  const now = options.now ?? (() => Date.now());
  // Records are immutable and replaced on every change, so the permissions derived from one can be
  // remembered (the policy is pure and its options fixed), and the first derivation is the one
  // moment to warn about its ignored annotation entries: once per ServiceAccount version.
  const derived = new WeakMap<ServiceAccountRecord, PolicyResult>();
  const policyFor = (sa: ServiceAccountRecord): PolicyResult => {
    let result = derived.get(sa);
    if (!result) {
      result = permissionsFor(sa, policy);
      derived.set(sa, result);
      if (result.filteredInternal.length > 0 || result.invalid.length > 0) {
        logger.warn("annotation_subjects_ignored", {
          namespace: sa.namespace,
          serviceaccount: sa.name,
          filtered_internal: result.filteredInternal,
          invalid: result.invalid,
        });
      }
    }
    return result;
  };

  return async (request: CalloutRequest): Promise<AuthorizeResult> => {
    const token = extractToken(request.connectOpts);
    if (!token) {
      return deny("token_missing", "no token in auth_token, pass or a non-NATS jwt field");
    }
    if (!isSynced()) {
      return deny("cache_not_ready", "ServiceAccount cache has not completed its first sync");
    }
    let identity;
    try {
      identity = await verifyToken(token);
    } catch (err) {
      if (err instanceof AuthError) return deny(err.code, err.message);
      throw err;
    }
    const fields = { namespace: identity.namespace, serviceaccount: identity.serviceAccount };
    const sa = lookup(identity.namespace, identity.serviceAccount);
    if (!sa) {
      metrics.cacheMisses.inc();
      return deny(
        "serviceaccount_not_found",
        `ServiceAccount ${identity.namespace}/${identity.serviceAccount} does not exist`,
        fields,
      );
    }
    metrics.cacheHits.inc();
    if (sa.uid !== identity.uid) {
      return deny(
        "serviceaccount_uid_mismatch",
        `ServiceAccount ${sa.namespace}/${sa.name} was recreated (uid ${sa.uid}, token for ${identity.uid})`,
        fields,
      );
    }
    const { permissions, filteredInternal, invalid } = policyFor(sa);
    if (filteredInternal.length > 0) {
      metrics.filteredInternalSubjects.inc(undefined, filteredInternal.length);
    }
    if (invalid.length > 0) metrics.invalidSubjects.inc(undefined, invalid.length);
    const expiresAt = Math.floor(Math.min(now() + userJwtTtlMs, identity.expiresAt * 1000) / 1000);
    return {
      ok: true,
      user: { name: userName(sa.namespace, sa.name), permissions, expiresAt },
      fields: { ...fields, expires_at: expiresAt },
      grantFields: {
        dropped: [
          ...filteredInternal.map((subject) => ({ subject, why: "internal_subject" })),
          ...invalid.map((subject) => ({ subject, why: "invalid_subject" })),
        ],
      },
    };
  };
}

function deny(
  reason: AuthError["code"],
  message: string,
  fields?: Record<string, unknown>,
): AuthorizeResult {
  return fields ? { ok: false, reason, message, fields } : { ok: false, reason, message };
}
