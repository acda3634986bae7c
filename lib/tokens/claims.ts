/**
 * The claims of a ServiceAccount token whose signature has been checked: `iss`, `aud`, the times
 * (`exp`, `nbf`, `iat`), then the `kubernetes.io` claim and `sub` — each refusal an
 * {@linkcode AuthError} with its own reason and a message that quotes the token's values bounded,
 * never the token. Pure: the clock comes in {@linkcode ClaimRules}.
 *
 * @module
 */
import { AuthError } from "../core/errors.ts";
import type { TokenIdentity } from "../core/model.ts";
import { serviceAccountNameProblem } from "../kubernetes/names.ts";

/** What the claims are checked against. */
export interface ClaimRules {
  /** Accepted `iss` values. */
  readonly issuers: readonly string[];
  /** The audience `aud` must include. */
  readonly audience: string;
  /** Now, in milliseconds (for `exp`, which has no leeway). */
  readonly nowMs: number;
  /** Now, in whole seconds (for `nbf` and `iat`). */
  readonly nowSec: number;
  /** Leeway for `nbf` and `iat`, in seconds. */
  readonly skewSec: number;
}

/**
 * Bound a text taken from a token, so a token cannot flood the logs through an error message.
 *
 * @example
 * ```ts
 * import { clip } from "./claims.ts";
 * console.assert(clip("x".repeat(100)).length === 80);
 * ```
 */
export function clip(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * Quote a value taken from a token for an error message (JSON, bounded by {@linkcode clip}).
 *
 * @example
 * ```ts
 * import { quoteForMessage } from "./claims.ts";
 * console.assert(quoteForMessage("nats") === '"nats"');
 * ```
 */
export function quoteForMessage(value: unknown): string {
  return clip(JSON.stringify(value) ?? String(value));
}

const quote = quoteForMessage;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function nonEmptyString(value: unknown): value is string {
  return typeof value === "string" && value !== "";
}

function numericDate(claims: Record<string, unknown>, name: string): number | undefined {
  const value = claims[name];
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new AuthError("claims_invalid", `token "${name}" claim is not a number`);
  }
  return value;
}

/**
 * Check the claims of a verified token's payload and say who it names. Checks, in order: the
 * payload is a JSON object, `iss`, `aud`, `exp` (no leeway), `nbf`, `iat`, the `kubernetes.io`
 * claim, `sub`.
 *
 * @example
 * ```ts ignore
 * import { checkClaims } from "./claims.ts";
 * const rules = { issuers: [issuer], audience: "nats", nowMs, nowSec, skewSec: 60 };
 * const who = checkClaims(payload, rules);
 * ```
 */
export function checkClaims(payloadBytes: Uint8Array, rules: ClaimRules): TokenIdentity {
  const claims = parseClaims(payloadBytes);
  checkIssuer(claims, rules.issuers);
  checkAudience(claims, rules.audience);
  const { expSec, iat } = checkTimes(claims, rules);
  const { namespace, sa, pod } = serviceAccountOf(claims);
  const podName = isRecord(pod) && nonEmptyString(pod.name) ? pod.name : undefined;
  const podUid = isRecord(pod) && nonEmptyString(pod.uid) ? pod.uid : undefined;
  return Object.freeze({
    namespace,
    serviceAccount: sa.name,
    uid: sa.uid,
    ...(podName !== undefined ? { podName } : {}),
    ...(podUid !== undefined ? { podUid } : {}),
    expiresAt: expSec,
    ...(iat !== undefined ? { issuedAt: iat } : {}),
  });
}

/** The payload as a JSON object (strict UTF-8), or `token_malformed`. */
function parseClaims(payloadBytes: Uint8Array): Record<string, unknown> {
  let claims: unknown;
  try {
    claims = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payloadBytes));
  } catch {
    throw new AuthError("token_malformed", "token payload is not a JSON object");
  }
  if (!isRecord(claims)) {
    throw new AuthError("token_malformed", "token payload is not a JSON object");
  }
  return claims;
}

/** `iss` is one of the accepted issuers, compared exactly. */
function checkIssuer(claims: Record<string, unknown>, issuers: readonly string[]): void {
  if (typeof claims.iss !== "string" || !issuers.includes(claims.iss)) {
    const expected = issuers.map(quote).join(" or ");
    throw new AuthError(
      "issuer_mismatch",
      claims.iss === undefined
        ? `token has no issuer; expected ${expected}`
        : `token issuer ${quote(claims.iss)} is not the expected ${expected}`,
    );
  }
}

/** `aud` (a string or a list of strings) includes `audience`. */
function checkAudience(claims: Record<string, unknown>, audience: string): void {
  const aud = typeof claims.aud === "string" ? [claims.aud] : claims.aud;
  if (!Array.isArray(aud) || !aud.every((a) => typeof a === "string")) {
    throw new AuthError(
      "audience_mismatch",
      claims.aud === undefined
        ? `token has no audience; expected one including ${quote(audience)}`
        : `token audience ${quote(claims.aud)} is not a string or a list of strings`,
    );
  }
  if (!aud.includes(audience)) {
    throw new AuthError(
      "audience_mismatch",
      `audience [${aud.slice(0, 5).map(clip).join(", ")}${
        aud.length > 5 ? ", ..." : ""
      }] does not include ${audience}`,
    );
  }
}

/**
 * `exp` is present and in the future (no leeway: the user JWT cannot outlive the token), `nbf` and
 * `iat` are not beyond now plus the leeway. Returns `exp` in whole seconds and `iat`.
 */
function checkTimes(
  claims: Record<string, unknown>,
  rules: ClaimRules,
): { expSec: number; iat: number | undefined } {
  const { nowSec, skewSec } = rules;
  const exp = numericDate(claims, "exp");
  if (exp === undefined) {
    throw new AuthError("claims_invalid", 'token has no "exp" claim; it would never expire');
  }
  // A user JWT's exp is whole seconds: a fractional exp counts as its second's start.
  const expSec = Math.floor(exp);
  if (expSec * 1000 <= rules.nowMs) {
    throw new AuthError("token_expired", `token expired ${Math.max(0, nowSec - expSec)}s ago`);
  }
  const nbf = numericDate(claims, "nbf");
  if (nbf !== undefined && nbf > nowSec + skewSec) {
    throw new AuthError("token_not_yet_valid", `token is not valid for another ${nbf - nowSec}s`);
  }
  const iat = numericDate(claims, "iat");
  if (iat !== undefined && iat > nowSec + skewSec) {
    throw new AuthError(
      "token_issued_in_future",
      `token was issued ${iat - nowSec}s in the future; check the clocks`,
    );
  }
  return { expSec, iat };
}

/**
 * The `kubernetes.io` claim's namespace and ServiceAccount, with valid names, and a `sub` that
 * names the same ServiceAccount; its `pod` as found (checked by the caller).
 */
function serviceAccountOf(claims: Record<string, unknown>): {
  namespace: string;
  sa: { name: string; uid: string };
  pod: unknown;
} {
  const k8s = claims["kubernetes.io"];
  if (!isRecord(k8s)) {
    throw new AuthError(
      "claims_invalid",
      'token has no "kubernetes.io" claim; it is not a ServiceAccount token',
    );
  }
  const sa = k8s.serviceaccount;
  if (
    !nonEmptyString(k8s.namespace) || !isRecord(sa) || !nonEmptyString(sa.name) ||
    !nonEmptyString(sa.uid)
  ) {
    throw new AuthError(
      "claims_invalid",
      'token "kubernetes.io" claim lacks namespace, serviceaccount.name or serviceaccount.uid',
    );
  }
  const nameProblem = serviceAccountNameProblem(k8s.namespace, sa.name);
  if (nameProblem !== undefined) {
    throw new AuthError("claims_invalid", `token "kubernetes.io" claim: ${nameProblem}`);
  }
  const expectedSub = `system:serviceaccount:${k8s.namespace}:${sa.name}`;
  if (claims.sub !== expectedSub) {
    throw new AuthError(
      "claims_invalid",
      `token subject ${quote(claims.sub)} does not match its kubernetes.io claim (${
        quote(expectedSub)
      })`,
    );
  }
  return { namespace: k8s.namespace, sa: { name: sa.name, uid: sa.uid }, pod: k8s.pod };
}
