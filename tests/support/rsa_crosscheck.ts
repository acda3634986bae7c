/**
 * Cross-check of lib/tokens/rsa_pkcs1.ts against `node:crypto`: random token-shaped data signed
 * with RS256/384/512, each verified as signed and in tampered forms (a flipped bit in the
 * signature or in the signed data, a truncated or extended signature, another digest, random bytes
 * of the right length), and each answer compared with `node:crypto.verify`. Used by
 * tests/tokens/rsa_pkcs1_test.ts (a few thousand cases) and bench/rsa_crosscheck.ts (100,000).
 *
 * @module
 */
import { type KeyObject, randomBytes, sign, verify } from "node:crypto";
import { type RsaDigest, type RsaPublicKey, verifyRsaPkcs1 } from "../../lib/tokens/rsa_pkcs1.ts";

const DIGESTS: readonly RsaDigest[] = ["sha256", "sha384", "sha512"];
const ALG: Readonly<Record<RsaDigest, string>> = {
  sha256: "RS256",
  sha384: "RS384",
  sha512: "RS512",
};

/** One case: the bytes verified and the signature presented. */
export interface RsaCase {
  readonly digest: RsaDigest;
  readonly data: Uint8Array;
  readonly signature: Uint8Array;
  readonly how: string;
}

/** Options of {@linkcode crossCheckRsa}. */
export interface CrossCheckOptions {
  readonly publicKey: KeyObject;
  readonly privateKey: KeyObject;
  /** The same public key in rsa_pkcs1's form. */
  readonly key: RsaPublicKey;
  /** Cases to compare (about a third valid). */
  readonly count: number;
}

/** What {@linkcode crossCheckRsa} found. */
export interface CrossCheckResult {
  readonly cases: number;
  /** Cases node:crypto accepted. */
  readonly valid: number;
  readonly invalid: number;
  readonly disagreements: number;
  readonly firstDisagreement?: { how: string; ours: boolean; node: boolean };
}

/** A token-shaped `header.payload` of random claims, as bytes. */
function randomSigningInput(digest: RsaDigest): Uint8Array {
  const b64 = (v: unknown) =>
    new TextEncoder().encode(JSON.stringify(v)).toBase64({
      alphabet: "base64url",
      omitPadding: true,
    });
  const header = b64({ alg: ALG[digest], kid: randomBytes(8).toString("hex") });
  const payload = b64({
    iss: "https://kubernetes.default.svc.cluster.local",
    sub: `system:serviceaccount:ns-${randomBytes(2).toString("hex")}:sa`,
    exp: 1_700_000_000 + Math.floor(Math.random() * 1e6),
    jti: randomBytes(Math.floor(Math.random() * 64)).toString("base64url"),
  });
  return new TextEncoder().encode(`${header}.${payload}`);
}

/** The tampered forms of one signed case (each a different way a forger might try). */
export function tamper(valid: RsaCase, key: RsaPublicKey): RsaCase[] {
  const { data, signature, digest } = valid;
  const flip = (bytes: Uint8Array) => {
    const copy = bytes.slice();
    const i = Math.floor(Math.random() * copy.length);
    copy[i]! ^= 1 << Math.floor(Math.random() * 8);
    return copy;
  };
  const other = DIGESTS.filter((d) => d !== digest);
  return [
    { ...valid, signature: flip(signature), how: "signature bit flipped" },
    { ...valid, data: flip(data), how: "signed data bit flipped" },
    { ...valid, signature: signature.subarray(1), how: "signature truncated" },
    { ...valid, signature: new Uint8Array([0, ...signature]), how: "signature extended" },
    { ...valid, digest: other[Math.floor(Math.random() * other.length)]!, how: "other digest" },
    {
      ...valid,
      signature: new Uint8Array(randomBytes(key.bytes)),
      how: "random bytes of the right length",
    },
  ];
}

/** Compare rsa_pkcs1's answers with node:crypto's on `count` random valid and tampered cases. */
export function crossCheckRsa(options: CrossCheckOptions): CrossCheckResult {
  const { publicKey, privateKey, key, count } = options;
  let cases = 0;
  let valid = 0;
  let disagreements = 0;
  let firstDisagreement: CrossCheckResult["firstDisagreement"];
  const compare = (c: RsaCase) => {
    const ours = verifyRsaPkcs1(key, c.digest, c.data, c.signature);
    let node: boolean;
    try {
      node = verify(c.digest, c.data, publicKey, c.signature);
    } catch {
      node = false;
    }
    cases++;
    if (node) valid++;
    if (ours !== node) {
      disagreements++;
      firstDisagreement ??= { how: c.how, ours, node };
    }
  };
  while (cases < count) {
    const digest = DIGESTS[Math.floor(Math.random() * DIGESTS.length)]!;
    const data = randomSigningInput(digest);
    const signed: RsaCase = {
      digest,
      data,
      signature: new Uint8Array(sign(digest, data, privateKey)),
      how: "as signed",
    };
    compare(signed);
    // Two signed cases per tampered set keeps about a third of the cases valid.
    compare({ ...signed, how: "as signed, again" });
    for (const t of tamper(signed, key)) if (cases < count) compare(t);
  }
  return {
    cases,
    valid,
    invalid: cases - valid,
    disagreements,
    ...(firstDisagreement ? { firstDisagreement } : {}),
  };
}
