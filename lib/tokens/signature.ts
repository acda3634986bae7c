/**
 * The signature step of token verification: the key the header names (from the key set), then the
 * signature. The signature itself is checked synchronously when the key jose resolved is of the
 * exact kind the algorithm needs: RS256/384/512 on V8's `BigInt` (lib/tokens/rsa_pkcs1.ts, 5–7×
 * cheaper than `node:crypto` under Deno; measured there), everything else with `node:crypto`
 * (about twice as fast as WebCrypto, which Deno runs on a thread pool). Anything unusual (a `crit` header,
 * several candidate keys, a key of another kind, an undecodable part) takes jose's `compactVerify`
 * path, so its checks and error codes stay the reference. Every failure becomes an
 * {@linkcode AuthError} with its own reason.
 *
 * @module
 */
import { constants, KeyObject, verify as nodeVerify, type VerifyKeyObjectInput } from "node:crypto";
import { compactVerify, errors, type ProtectedHeaderParameters } from "jose";
import { AuthError, type DenyReason } from "../core/errors.ts";
import { quoteForMessage as quote } from "./claims.ts";
import { KeyInvalidError, type KeySource, KeysUnavailableError } from "./key_source.ts";
import { type RsaDigest, type RsaPublicKey, rsaPublicKey, verifyRsaPkcs1 } from "./rsa_pkcs1.ts";

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

function hasCode(err: unknown, code: string): boolean {
  return err instanceof errors.JOSEError && err.code === code;
}

/**
 * Check the signature with the key the header names; returns the decoded payload bytes. `header`
 * has been read and its `alg` checked against {@linkcode ALLOWED_ALGORITHMS}.
 */
export async function verifySignature(
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

/** A key in the forms the synchronous checks use: a `KeyObject`, and for RSA the numbers. */
export interface NativeKey {
  /** The key as `node:crypto` takes it. */
  readonly keyObject: KeyObject;
  /** For RS256/384/512 (lib/tokens/rsa_pkcs1.ts); undefined for other kinds and unusual keys. */
  readonly rsa: RsaPublicKey | undefined;
}

/** Native forms of jose's `CryptoKey`s, per verifier; both live as long as the key set. */
export type KeyObjectCache = WeakMap<CryptoKey, NativeKey>;

function nativeKeyOf(resolved: CryptoKey, cache: KeyObjectCache): NativeKey {
  let key = cache.get(resolved);
  if (!key) {
    const keyObject = KeyObject.from(resolved);
    let rsa: RsaPublicKey | undefined;
    if (resolved.algorithm.name === "RSASSA-PKCS1-v1_5") {
      const jwk = keyObject.export({ format: "jwk" });
      if (typeof jwk.n === "string" && typeof jwk.e === "string") rsa = rsaPublicKey(jwk.n, jwk.e);
    }
    key = { keyObject, rsa };
    cache.set(resolved, key);
  }
  return key;
}

/** The digest of RS256, RS384, RS512 (the algorithms lib/tokens/rsa_pkcs1.ts verifies). */
const RSA_PKCS1_DIGESTS: Readonly<Record<string, RsaDigest>> = {
  RS256: "sha256",
  RS384: "sha384",
  RS512: "sha512",
};

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
  const { keyObject: key, rsa } = nativeKeyOf(resolved, keyObjects);
  const data = encoder.encode(token.slice(0, dot2));
  const rsaDigest = RSA_PKCS1_DIGESTS[alg];
  if (rsa !== undefined && rsaDigest !== undefined) {
    return verifyRsaPkcs1(rsa, rsaDigest, data, signature) ? payload : false;
  }
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
