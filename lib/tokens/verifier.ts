/**
 * Verify a Kubernetes ServiceAccount token and say who it names. Every refusal is an
 * {@linkcode AuthError} whose `code` is one {@linkcode DenyReason} and whose message tells the
 * operator what to fix ("token expired 42s ago", "audience [api] does not include nats"); no message
 * ever contains the token.
 *
 * Signature checks are the expensive part of a login (DESIGN §8), and a pod presents the same token on
 * every reconnect until the kubelet rotates it, so verified tokens are remembered — by SHA-256, only
 * until their `exp`, and only for the key set they were verified with.
 *
 * The signature itself is checked with `node:crypto` (OpenSSL, synchronous) when the key jose
 * resolved is of the exact kind the algorithm needs: RS256 verifies about twice as fast that way as
 * through WebCrypto, which Deno runs on a thread pool. Anything unusual (a `crit` header, several
 * candidate keys, a key of another kind, an undecodable part) takes jose's `compactVerify` path, so
 * its checks and error codes stay the reference.
 *
 * @module
 */
import {
  constants,
  createHash,
  KeyObject,
  verify as nodeVerify,
  type VerifyKeyObjectInput,
} from "node:crypto";
import { compactVerify, decodeProtectedHeader, errors, type ProtectedHeaderParameters } from "jose";
import { AuthError, type DenyReason } from "../core/errors.ts";
import { KeyInvalidError, type KeySource, KeysUnavailableError } from "./jwks.ts";
import { serviceAccountNameProblem } from "../kubernetes/names.ts";
import type { TokenIdentity } from "../core/model.ts";
import type { ServiceMetrics } from "../telemetry/service_metrics.ts";

/**
 * Signature algorithms a ServiceAccount token may use. Kubernetes signs with RS256 by default and
 * ES256 with an EC key; `none` and the HMAC algorithms are never accepted, because a verifier that
 * lets the token pick HS256 can be fooled into using a public key as a shared secret.
 */
export const ALLOWED_ALGORITHMS: readonly string[] = Object.freeze([
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
]);

/** Longest token accepted, in characters (real ones are 1–2 KiB; CONNECT lines are 4 KiB). */
export const MAX_TOKEN_LENGTH = 16 * 1024;

/** Options of {@linkcode createTokenVerifier}. */
export interface TokenVerifierOptions {
  /** Public keys of the cluster's ServiceAccount issuer. */
  keys: KeySource;
  /**
   * Accepted `iss` values, compared exactly (`JWT_ISSUER`'s list, or `discoverIssuer`'s answer).
   * Several while a cluster migrates its `--service-account-issuer`.
   */
  issuer: string | readonly string[];
  /** The token's `aud` must contain this value (`JWT_AUDIENCE`). */
  audience: string;
  /**
   * Tolerance for clock differences between the apiserver and us, applied to `nbf` and `iat` (a
   * token minted by a node whose clock runs ahead). Not to `exp`: a token at or past its `exp` is
   * `token_expired`, because the user JWT we would issue for it cannot outlive the token and
   * nats-server enforces that JWT's `exp` on its own clock, without leeway — accepting the token
   * would only end in a grant that is already expired (issue 9 §2). @default {60}
   */
  clockSkewSec?: number;
  /** Clock in milliseconds since the epoch. @default {Date.now} */
  now?: () => number;
  /** Entries in the verified-token cache; 0 disables it. @default {10000} */
  cacheSize?: number;
  /** `tokenCacheHits` is counted here. */
  metrics: ServiceMetrics;
}

/** Verify one token; resolves to the identity, rejects with an {@linkcode AuthError}. */
export type TokenVerifier = (token: string) => Promise<TokenIdentity>;

interface CacheEntry {
  readonly identity: TokenIdentity;
  /** `exp` in milliseconds. */
  readonly expMs: number;
}

const DEFAULT_CLOCK_SKEW_SEC = 60;
const DEFAULT_CACHE_SIZE = 10_000;
const ALLOWED = new Set(ALLOWED_ALGORITHMS);

/**
 * Build a verifier for tokens from one issuer and for one audience. Checks, in order: shape,
 * `alg` against {@linkcode ALLOWED_ALGORITHMS} (from the header, before any key is looked up),
 * signature with the key named by `kid`, `iss`, `aud`, `exp`, `nbf`, `iat`, then the
 * `kubernetes.io` claim and `sub`.
 *
 * @example
 * ```ts ignore
 * import { createTokenVerifier } from "./verifier.ts";
 * const verify = createTokenVerifier({ keys, issuer: "https://kubernetes.default.svc",
 *   audience: "nats", metrics });
 * const who = await verify(token); // { namespace, serviceAccount, uid, podName?, expiresAt }
 * ```
 */
export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  const {
    keys,
    issuer,
    audience,
    clockSkewSec = DEFAULT_CLOCK_SKEW_SEC,
    now = Date.now,
    cacheSize = DEFAULT_CACHE_SIZE,
    metrics,
  } = options;
  const issuers: readonly string[] = typeof issuer === "string" ? [issuer] : [...issuer];
  if (issuers.length === 0 || issuers.some((i) => typeof i !== "string" || i === "")) {
    throw new TypeError(
      'Cannot create token verifier: "issuer" must be a non-empty string or list of them',
    );
  }
  if (typeof audience !== "string" || audience === "") {
    throw new TypeError('Cannot create token verifier: "audience" must be a non-empty string');
  }
  if (!Number.isFinite(clockSkewSec) || clockSkewSec < 0) {
    throw new RangeError(
      `Cannot create token verifier: "clockSkewSec" must be a non-negative number, got ${clockSkewSec}`,
    );
  }
  if (!Number.isSafeInteger(cacheSize) || cacheSize < 0) {
    throw new RangeError(
      `Cannot create token verifier: "cacheSize" must be a non-negative integer, got ${cacheSize}`,
    );
  }

  const cache = new Map<string, CacheEntry>();
  let cacheGeneration = keys.generation;
  const keyObjects: KeyObjectCache = new WeakMap();

  const lookup = (key: string, nowMs: number): TokenIdentity | undefined => {
    if (keys.generation !== cacheGeneration) {
      cache.clear();
      cacheGeneration = keys.generation;
      return undefined;
    }
    const entry = cache.get(key);
    if (!entry) return undefined;
    cache.delete(key);
    if (nowMs >= entry.expMs) return undefined;
    cache.set(key, entry);
    return entry.identity;
  };

  const remember = (key: string, identity: TokenIdentity, generation: number): void => {
    if (generation !== keys.generation || generation !== cacheGeneration) return;
    const expMs = identity.expiresAt * 1000;
    if (now() >= expMs) return;
    while (cache.size >= cacheSize) {
      const oldest = cache.keys().next();
      if (oldest.done) break;
      cache.delete(oldest.value);
    }
    cache.set(key, { identity, expMs });
  };

  return async (token: string): Promise<TokenIdentity> => {
    if (typeof token !== "string" || token === "") {
      throw new AuthError("token_missing", "no token was presented");
    }
    if (token.length > MAX_TOKEN_LENGTH) {
      throw new AuthError(
        "token_malformed",
        `token is ${token.length} characters long, more than the ${MAX_TOKEN_LENGTH} allowed`,
      );
    }
    // Before the cache: one credential has one spelling, so no other spelling can reach an entry.
    requireCanonicalSegments(token);
    const cacheKey = cacheSize > 0 ? sha256(token) : undefined;
    if (cacheKey !== undefined) {
      const hit = lookup(cacheKey, now());
      if (hit) {
        metrics.tokenCacheHits.inc();
        return hit;
      }
    }

    const header = readHeader(token);
    const generation = keys.generation;
    const payload = await verifySignature(token, header, keys, keyObjects);
    const nowMs = now();
    const identity = checkClaims(payload, {
      issuers,
      audience,
      nowMs,
      nowSec: Math.floor(nowMs / 1000),
      skewSec: clockSkewSec,
    });
    if (cacheKey !== undefined) remember(cacheKey, identity, generation);
    return identity;
  };
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("base64url");
}

/** Bound a text taken from a token, so a token cannot flood the logs through an error message. */
function clip(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Quote a value taken from a token for an error message. */
function quote(value: unknown): string {
  return clip(JSON.stringify(value) ?? String(value));
}

/** Base64url alphabet position of each character code, -1 outside it (no padding, no whitespace). */
const B64URL = (() => {
  const table = new Int8Array(128).fill(-1);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (let i = 0; i < alphabet.length; i++) table[alphabet.charCodeAt(i)] = i;
  return table;
})();

const SEGMENT_NAMES = ["header", "payload", "signature"] as const;

/**
 * Require the canonical compact JWS form (RFC 7515 §2, RFC 4648 §3.5): three base64url segments of `[A-Za-z0-9_-]`, no padding, no whitespace, and zero unused bits in each segment's
 * last character. Decoders are lenient (they skip whitespace and padding and ignore trailing
 * bits), so without this one signed token has many accepted spellings — each a different key for
 * the verified-token cache, a deny list or a log search. Throws `token_malformed`.
 */
function requireCanonicalSegments(token: string): void {
  let start = 0;
  for (let part = 0; part < 3; part++) {
    const end = part < 2 ? token.indexOf(".", start) : token.length;
    if (end < 0) {
      throw new AuthError(
        "token_malformed",
        "token is not a JWT (expected three dot-separated parts)",
      );
    }
    const name = SEGMENT_NAMES[part]!;
    const length = end - start;
    let last = 0;
    for (let i = start; i < end; i++) {
      const code = token.charCodeAt(i);
      const value = code < 128 ? B64URL[code]! : -1;
      if (value < 0) {
        throw new AuthError(
          "token_malformed",
          code === 0x2e
            ? "token is not a JWT (expected three dot-separated parts)"
            : `token ${name} is not canonical base64url (character ${
              JSON.stringify(String.fromCharCode(code))
            } at offset ${i})`,
        );
      }
      last = value;
    }
    // 4n+2 characters carry 4 unused bits, 4n+3 carry 2; 4n+1 cannot be a whole number of bytes.
    const rest = length % 4;
    if (rest === 1 || (rest === 2 && (last & 0x0f) !== 0) || (rest === 3 && (last & 0x03) !== 0)) {
      throw new AuthError(
        "token_malformed",
        `token ${name} is not canonical base64url (bad length or non-zero trailing bits)`,
      );
    }
    start = end + 1;
  }
}

function readHeader(token: string): ProtectedHeaderParameters {
  if (token.split(".").length !== 3) {
    throw new AuthError(
      "token_malformed",
      "token is not a JWT (expected three dot-separated parts)",
    );
  }
  let header: ProtectedHeaderParameters;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw new AuthError("token_malformed", "token header is not base64url-encoded JSON");
  }
  if (typeof header.alg !== "string" || !ALLOWED.has(header.alg)) {
    throw new AuthError(
      "algorithm_not_allowed",
      `token algorithm ${quote(header.alg)} is not allowed (allowed: ${
        ALLOWED_ALGORITHMS.join(", ")
      })`,
    );
  }
  if (header.b64 !== undefined) {
    throw new AuthError("token_malformed", 'token header must not use the "b64" parameter');
  }
  return header;
}

function hasCode(err: unknown, code: string): boolean {
  return err instanceof errors.JOSEError && err.code === code;
}

/** Check the signature with the key the header names; returns the decoded payload bytes. */
async function verifySignature(
  token: string,
  header: ProtectedHeaderParameters,
  keys: KeySource,
  keyObjects: KeyObjectCache,
): Promise<Uint8Array> {
  const options = { algorithms: [...ALLOWED_ALGORITHMS] };
  const kid = header.kid === undefined ? "(none)" : quote(header.kid);
  const alg = String(header.alg);
  try {
    if (header.crit === undefined) {
      const fast = await verifyNative(token, header, alg, keys, keyObjects);
      if (fast === false) {
        throw new AuthError("signature_invalid", `token signature does not verify with key ${kid}`);
      }
      if (fast !== undefined) return fast;
    }
    return (await compactVerify(token, keys.getKey, options)).payload;
  } catch (err) {
    if (err instanceof AuthError) throw err;
    if (err instanceof KeysUnavailableError) {
      throw new AuthError("jwks_unavailable", `cannot verify tokens yet: ${err.message}`, {
        cause: err,
      });
    }
    if (err instanceof KeyInvalidError) {
      throw new AuthError("jwks_key_invalid", `cannot verify this token: ${err.message}`, {
        cause: err,
      });
    }
    if (err instanceof errors.JWKSMultipleMatchingKeys) {
      // A token without `kid` and several keys that fit its `alg`: try each, as jose recommends.
      for await (const key of err) {
        try {
          return (await compactVerify(token, key, options)).payload;
        } catch (inner) {
          if (!(inner instanceof errors.JWSSignatureVerificationFailed)) {
            throw toAuthError(inner, kid, alg);
          }
        }
      }
      throw new AuthError(
        "signature_invalid",
        `token signature does not verify with any of the keys for ${header.alg}`,
      );
    }
    throw toAuthError(err, kid, alg);
  }
}

/** How `node:crypto` verifies one JWS algorithm, and the WebCrypto key it must be given. */
interface NativeAlgorithm {
  /** Digest for `crypto.verify` (`null` for EdDSA). */
  readonly digest: string | null;
  /** WebCrypto `algorithm.name` of the key jose imported for this `alg`. */
  readonly keyAlgorithm: string;
  /** `algorithm.hash.name` (RSA) or `algorithm.namedCurve` (EC) the key must have. */
  readonly keyDetail?: string;
  readonly options?: Omit<VerifyKeyObjectInput, "key">;
}

const NATIVE: Readonly<Record<string, NativeAlgorithm>> = {
  RS256: { digest: "sha256", keyAlgorithm: "RSASSA-PKCS1-v1_5", keyDetail: "SHA-256" },
  RS384: { digest: "sha384", keyAlgorithm: "RSASSA-PKCS1-v1_5", keyDetail: "SHA-384" },
  RS512: { digest: "sha512", keyAlgorithm: "RSASSA-PKCS1-v1_5", keyDetail: "SHA-512" },
  PS256: {
    digest: "sha256",
    keyAlgorithm: "RSA-PSS",
    keyDetail: "SHA-256",
    options: { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 },
  },
  PS384: {
    digest: "sha384",
    keyAlgorithm: "RSA-PSS",
    keyDetail: "SHA-384",
    options: { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 },
  },
  PS512: {
    digest: "sha512",
    keyAlgorithm: "RSA-PSS",
    keyDetail: "SHA-512",
    options: { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 64 },
  },
  ES256: {
    digest: "sha256",
    keyAlgorithm: "ECDSA",
    keyDetail: "P-256",
    options: { dsaEncoding: "ieee-p1363" },
  },
  ES384: {
    digest: "sha384",
    keyAlgorithm: "ECDSA",
    keyDetail: "P-384",
    options: { dsaEncoding: "ieee-p1363" },
  },
  ES512: {
    digest: "sha512",
    keyAlgorithm: "ECDSA",
    keyDetail: "P-521",
    options: { dsaEncoding: "ieee-p1363" },
  },
  EdDSA: { digest: null, keyAlgorithm: "Ed25519" },
};

/** `KeyObject`s made from jose's `CryptoKey`s, per verifier; both live as long as the key set. */
type KeyObjectCache = WeakMap<CryptoKey, KeyObject>;

function keyDetailOf(key: CryptoKey): string | undefined {
  const algorithm = key.algorithm as { hash?: { name?: string }; namedCurve?: string };
  return algorithm.hash?.name ?? algorithm.namedCurve;
}

/**
 * Verify with `node:crypto`. Resolves to the payload bytes, `false` for a signature that does not
 * verify, or `undefined` when this token needs jose's full path (errors from the key lookup
 * propagate unchanged).
 */
async function verifyNative(
  token: string,
  header: ProtectedHeaderParameters,
  alg: string,
  keys: KeySource,
  keyObjects: KeyObjectCache,
): Promise<Uint8Array | false | undefined> {
  const native = NATIVE[alg];
  if (!native) return undefined;
  const dot1 = token.indexOf(".");
  const dot2 = token.indexOf(".", dot1 + 1);
  const parts = { payload: token.slice(dot1 + 1, dot2), signature: token.slice(dot2 + 1) };
  const resolved = await keys.getKey({ ...header, alg }, {
    ...parts,
    protected: token.slice(0, dot1),
  });
  if (
    !(resolved instanceof CryptoKey) || resolved.type !== "public" ||
    resolved.algorithm.name !== native.keyAlgorithm ||
    (native.keyDetail !== undefined && keyDetailOf(resolved) !== native.keyDetail)
  ) {
    return undefined;
  }
  let signature: Uint8Array;
  let payload: Uint8Array;
  try {
    signature = Uint8Array.fromBase64(parts.signature, { alphabet: "base64url" });
    payload = Uint8Array.fromBase64(parts.payload, { alphabet: "base64url" });
  } catch {
    return undefined;
  }
  let key = keyObjects.get(resolved);
  if (!key) {
    key = KeyObject.from(resolved);
    keyObjects.set(resolved, key);
  }
  const data = encoder.encode(token.slice(0, dot2));
  let ok: boolean;
  try {
    ok = nodeVerify(
      native.digest,
      data,
      native.options ? { ...native.options, key } : key,
      signature,
    );
  } catch {
    return undefined;
  }
  return ok ? payload : false;
}

const encoder = new TextEncoder();

function toAuthError(err: unknown, kid: string, alg: string): AuthError {
  const reason = ((): [DenyReason, string] => {
    if (hasCode(err, "ERR_JWKS_NO_MATCHING_KEY")) {
      return ["unknown_key", `no ${alg} key with kid ${kid} in the key set, even after a refresh`];
    }
    if (hasCode(err, "ERR_JWS_SIGNATURE_VERIFICATION_FAILED")) {
      return ["signature_invalid", `token signature does not verify with key ${kid}`];
    }
    if (hasCode(err, "ERR_JOSE_ALG_NOT_ALLOWED")) {
      return ["algorithm_not_allowed", "token algorithm is not allowed"];
    }
    if (hasCode(err, "ERR_JWS_INVALID") || hasCode(err, "ERR_JWT_INVALID")) {
      return ["token_malformed", `token is malformed: ${(err as Error).message}`];
    }
    if (err instanceof errors.JOSEError) {
      return ["signature_invalid", `key ${kid} cannot verify this token: ${err.message}`];
    }
    return ["internal_error", `token verification failed unexpectedly: ${String(err)}`];
  })();
  return new AuthError(reason[0], reason[1], { cause: err });
}

interface ClaimRules {
  readonly issuers: readonly string[];
  readonly audience: string;
  readonly nowMs: number;
  readonly nowSec: number;
  readonly skewSec: number;
}

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

function checkClaims(payloadBytes: Uint8Array, rules: ClaimRules): TokenIdentity {
  let claims: unknown;
  try {
    claims = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payloadBytes));
  } catch {
    throw new AuthError("token_malformed", "token payload is not a JSON object");
  }
  if (!isRecord(claims)) {
    throw new AuthError("token_malformed", "token payload is not a JSON object");
  }
  const { issuers, audience, nowSec, skewSec } = rules;

  if (typeof claims.iss !== "string" || !issuers.includes(claims.iss)) {
    const expected = issuers.map(quote).join(" or ");
    throw new AuthError(
      "issuer_mismatch",
      claims.iss === undefined
        ? `token has no issuer; expected ${expected}`
        : `token issuer ${quote(claims.iss)} is not the expected ${expected}`,
    );
  }

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

  const pod = k8s.pod;
  const podName = isRecord(pod) && nonEmptyString(pod.name) ? pod.name : undefined;
  const podUid = isRecord(pod) && nonEmptyString(pod.uid) ? pod.uid : undefined;
  return Object.freeze({
    namespace: k8s.namespace,
    serviceAccount: sa.name,
    uid: sa.uid,
    ...(podName !== undefined ? { podName } : {}),
    ...(podUid !== undefined ? { podUid } : {}),
    expiresAt: expSec,
    ...(iat !== undefined ? { issuedAt: iat } : {}),
  });
}
