/**
 * Verify a Kubernetes ServiceAccount token and say who it names. Every refusal is an
 * {@linkcode AuthError} whose `code` is one `DenyReason` (lib/core/errors.ts) and whose message
 * tells the operator what to fix ("token expired 42s ago", "audience [api] does not include nats");
 * no message ever contains the token.
 *
 * Signature checks are the expensive part of a login (DESIGN §8), and a pod presents the same token on
 * every reconnect until the kubelet rotates it, so verified tokens are remembered — by SHA-256, only
 * until their `exp`, and only for the key set they were verified with.
 *
 * The steps, in the order a token meets them: its shape (canonical base64url, here), its header
 * (`alg` allowed, here), its claims (lib/tokens/claims.ts), its signature (lib/tokens/signature.ts:
 * RSA on `BigInt` and `node:crypto` where they can, jose otherwise). The keys come from a {@linkcode KeySource}
 * (lib/tokens/jwks.ts).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { decodeProtectedHeader, type ProtectedHeaderParameters } from "jose";
import { AuthError } from "../core/errors.ts";
import type { KeySource } from "./key_source.ts";
import { checkClaims, quoteForMessage as quote } from "./claims.ts";
import { ALLOWED_ALGORITHMS, type KeyObjectCache, verifySignature } from "./signature.ts";
import type { TokenIdentity } from "../core/model.ts";
import type { ServiceMetrics } from "../telemetry/service_metrics.ts";

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

export { ALLOWED_ALGORITHMS };

/**
 * Build a verifier for tokens from one issuer and for one audience. Checks, in order: shape,
 * `alg` against {@linkcode ALLOWED_ALGORITHMS} (from the header, before any key is looked up),
 * `iss`, `aud`, `exp`, `nbf`, `iat`, the `kubernetes.io` claim and `sub`, then the signature with
 * the key named by `kid` (the cheap checks first: a forged token whose claims already fail costs no
 * signature check).
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
    // The claims before the signature: a JSON parse against a modular exponentiation, and a token
    // whose claims already say no (expired, another issuer or audience) is refused either way.
    // The refusal then names what the token says of itself, signed or not (issue 18).
    const nowMs = now();
    const identity = checkClaims(payloadOf(token), {
      issuers,
      audience,
      nowMs,
      nowSec: Math.floor(nowMs / 1000),
      skewSec: clockSkewSec,
    });
    const generation = keys.generation;
    await verifySignature(token, header, keys, keyObjects);
    if (cacheKey !== undefined) remember(cacheKey, identity, generation);
    return identity;
  };
}

/** The payload segment's bytes; the token's segments are canonical base64url already. */
function payloadOf(token: string): Uint8Array {
  const start = token.indexOf(".") + 1;
  return Uint8Array.fromBase64(token.slice(start, token.indexOf(".", start)), {
    alphabet: "base64url",
  });
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("base64url");
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
