/**
 * The vocabulary of refusals. One reason names one thing a user can fix; the same string is the
 * `code` of the typed error, the `reason` field of the decision log line and the `reason` label of
 * `nats_auth_requests_total`, so an operator can go from a metric spike to the log lines to the fix.
 *
 * @module
 */

/** Why a login was denied. Bounded set: it is used as a metric label. */
export type DenyReason =
  | "token_missing"
  | "token_malformed"
  | "token_expired"
  | "token_not_yet_valid"
  | "token_issued_in_future"
  | "issuer_mismatch"
  | "audience_mismatch"
  | "algorithm_not_allowed"
  | "signature_invalid"
  | "unknown_key"
  | "claims_invalid"
  | "jwks_unavailable"
  | "jwks_key_invalid"
  | "serviceaccount_not_found"
  | "serviceaccount_uid_mismatch"
  | "pod_not_found"
  | "pod_uid_mismatch"
  | "cache_not_ready"
  | "connection_type_not_allowed"
  | "token_lifetime_too_long"
  | "not_in_auth_users"
  | "namespace_not_found"
  | "account_unavailable"
  | "internal_error";

/** Why a callout request was dropped without an answer (it could not be trusted). */
export type DropReason =
  | "request_malformed"
  | "request_signature_invalid"
  | "request_issuer_invalid"
  | "request_audience_invalid"
  | "request_type_invalid"
  | "request_expired"
  | "request_user_nkey_invalid"
  | "request_decrypt_failed"
  | "request_xkey_mismatch"
  | "request_not_encrypted";

/**
 * A refused login. Callers switch on `code`; `message` is for humans and may name the namespace or
 * ServiceAccount but never contains a token.
 *
 * @example
 * ```ts
 * import { AuthError } from "./errors.ts";
 * const err = new AuthError("token_expired", "token expired 30s ago");
 * console.assert(err.code === "token_expired");
 * ```
 */
export class AuthError extends Error {
  /** Stable reason, safe as a metric label. */
  readonly code: DenyReason;

  /** Create a refusal with a stable `code` and a human message. */
  constructor(code: DenyReason, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "AuthError";
    this.code = code;
  }
}

/**
 * A callout request that is not from a server we trust, or that we cannot read; it is dropped.
 */
export class RequestError extends Error {
  /** Stable reason, safe as a metric label. */
  readonly code: DropReason;

  /** Create a drop with a stable `code` and a human message. */
  constructor(code: DropReason, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RequestError";
    this.code = code;
  }
}
