/**
 * RSASSA-PKCS1-v1_5 signature verification (RFC 8017 §8.2.2) on V8's `BigInt`: the RS256, RS384
 * and RS512 of ServiceAccount tokens. Kubernetes signs with RS256 unless told otherwise, so this is
 * the cost every first-seen or forged token pays.
 *
 * Why our own code and not a library (issue 18, measured on this 2-core machine with Deno 2.9.6;
 * `deno bench -A bench/rsa_bench.ts` repeats it): Deno's `node:crypto.verify` does not reach
 * OpenSSL — it is the Rust `rsa` crate on `num-bigint-dig` — and costs about 230 µs per 2048-bit
 * verification (~4,300/s), against ~27 µs for the same call in Node. WebCrypto is the same crate on
 * a thread pool (~450 µs awaited one at a time). The WebAssembly builds of kept libraries are slower
 * still (`@hazae41/rsa.wasm`, the same crate: ~660 µs; HACL*'s `hacl-wasm` bignum through its
 * bindings: ~18 ms), and so is `node-forge` (~700 µs). `micro-rsa-dsa-dh`, the kept pure-`BigInt`
 * RSA, verifies in ~140 µs: it converts bytes to numbers one byte at a time and hashes in
 * JavaScript. The verification primitive itself is one modular exponentiation by the public
 * exponent (65537: 16 squarings and a multiplication of 2048-bit numbers), which V8's `BigInt` does
 * with 64-bit limbs in ~30–70 µs; with the digest from `node:crypto` (native) and the comparison
 * done on whole numbers, a verification is 5–7× cheaper than `node:crypto`'s.
 *
 * The check is the standard's, not a parse: the signature must be exactly `k` bytes (the modulus
 * length) and less than the modulus, and `s^e mod n` must equal the one valid encoding
 * `00 01 FF…FF 00 ‖ DigestInfo ‖ H(data)` — compared whole, so no padding or ASN.1 leniency (the
 * family of Bleichenbacher's 2006 forgery) can be accepted. Only public values are involved, so
 * variable time is fine. Keys outside the shapes we verify (`e` even or above 2³², a modulus under
 * 1024 bits) return `undefined` from {@linkcode rsaPublicKey} and the caller uses `node:crypto`.
 * tests/tokens/rsa_pkcs1_test.ts cross-checks every result against `node:crypto` on random valid
 * and tampered signatures; `deno run -A bench/rsa_crosscheck.ts` does it for 100,000.
 *
 * @module
 */
import { createHash } from "node:crypto";

/** The hash functions of RS256, RS384 and RS512. */
export type RsaDigest = "sha256" | "sha384" | "sha512";

/** An RSA public key ready for {@linkcode verifyRsaPkcs1}. */
export interface RsaPublicKey {
  /** The modulus. */
  readonly n: bigint;
  /** The public exponent. */
  readonly e: bigint;
  /** Length of the modulus in bytes (`k` of RFC 8017): every signature has exactly this length. */
  readonly bytes: number;
  /** The constant head of the encoding per digest, `00 01 FF…FF 00 ‖ DigestInfo`, shifted in place. */
  readonly heads: Map<RsaDigest, bigint>;
}

/** DER `DigestInfo` prefixes (RFC 8017 §9.2, note 1) and digest lengths. */
const DIGEST_INFO: Readonly<Record<RsaDigest, { prefix: string; bytes: number }>> = {
  sha256: { prefix: "3031300d060960864801650304020105000420", bytes: 32 },
  sha384: { prefix: "3041300d060960864801650304020205000430", bytes: 48 },
  sha512: { prefix: "3051300d060960864801650304020305000440", bytes: 64 },
};

/** Smallest modulus verified here; node:crypto handles anything smaller (and refuses most). */
const MIN_MODULUS_BITS = 1024;

/**
 * The key in the form {@linkcode verifyRsaPkcs1} uses, from a JWK's base64url `n` and `e`, or
 * `undefined` when this module does not verify such a key (the caller falls back to `node:crypto`).
 *
 * @example
 * ```ts
 * import { generateKeyPairSync } from "node:crypto";
 * import { rsaPublicKey } from "./rsa_pkcs1.ts";
 * const { publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
 * const jwk = publicKey.export({ format: "jwk" });
 * console.assert(rsaPublicKey(jwk.n!, jwk.e!)?.bytes === 256);
 * ```
 */
export function rsaPublicKey(n: string, e: string): RsaPublicKey | undefined {
  let modulus: Uint8Array;
  let exponent: Uint8Array;
  try {
    modulus = Uint8Array.fromBase64(n, { alphabet: "base64url" });
    exponent = Uint8Array.fromBase64(e, { alphabet: "base64url" });
  } catch {
    return undefined;
  }
  if (modulus.length === 0 || exponent.length === 0 || exponent.length > 4) return undefined;
  const nValue = BigInt(`0x${modulus.toHex()}`);
  const eValue = BigInt(`0x${exponent.toHex()}`);
  if (nValue.toString(2).length < MIN_MODULUS_BITS || (nValue & 1n) === 0n) return undefined;
  if (eValue < 3n || (eValue & 1n) === 0n) return undefined;
  const bytes = Math.ceil(nValue.toString(16).length / 2);
  return { n: nValue, e: eValue, bytes, heads: new Map() };
}

/**
 * Whether `signature` is a valid RSASSA-PKCS1-v1_5 signature of `data` under `key` with `digest`
 * (RFC 8017 §8.2.2): the same answer as `node:crypto.verify(digest, data, key, signature)`.
 *
 * @example
 * ```ts
 * import { generateKeyPairSync, sign } from "node:crypto";
 * import { rsaPublicKey, verifyRsaPkcs1 } from "./rsa_pkcs1.ts";
 * const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
 * const jwk = publicKey.export({ format: "jwk" });
 * const key = rsaPublicKey(jwk.n!, jwk.e!)!;
 * const data = new TextEncoder().encode("header.payload");
 * const signature = new Uint8Array(sign("sha256", data, privateKey));
 * console.assert(verifyRsaPkcs1(key, "sha256", data, signature));
 * ```
 */
export function verifyRsaPkcs1(
  key: RsaPublicKey,
  digest: RsaDigest,
  data: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (signature.length !== key.bytes) return false; // §8.2.2 step 1
  const s = BigInt(`0x${signature.toHex()}`); // OS2IP
  if (s >= key.n) return false; // RSAVP1 step 1
  const m = modPow(s, key.e, key.n); // RSAVP1 step 2
  const hash = createHash(digest).update(data).digest("hex");
  return m === (headOf(key, digest) | BigInt(`0x${hash}`)); // EMSA-PKCS1-v1_5 encoding, compared
}

/** `00 01 FF…FF 00 ‖ DigestInfo` followed by room for the hash, as a number (memoized per key). */
function headOf(key: RsaPublicKey, digest: RsaDigest): bigint {
  let head = key.heads.get(digest);
  if (head === undefined) {
    const { prefix, bytes } = DIGEST_INFO[digest];
    const tLength = prefix.length / 2 + bytes;
    const padding = "ff".repeat(key.bytes - tLength - 3);
    head = BigInt(`0x0001${padding}00${prefix}`) << BigInt(8 * bytes);
    key.heads.set(digest, head);
  }
  return head;
}

/** `base^exponent mod modulus`, left to right; for 65537, 16 squarings and one multiplication. */
function modPow(base: bigint, exponent: bigint, modulus: bigint): bigint {
  const bits = exponent.toString(2);
  let result = base;
  for (let i = 1; i < bits.length; i++) {
    result = (result * result) % modulus;
    if (bits.charCodeAt(i) === 0x31) result = (result * base) % modulus;
  }
  return result;
}
