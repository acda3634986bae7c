import assert from "node:assert/strict";
import { createHash, generateKeyPairSync, type KeyObject, sign, verify } from "node:crypto";
import {
  type RsaDigest,
  type RsaPublicKey,
  rsaPublicKey,
  verifyRsaPkcs1,
} from "../../lib/tokens/rsa_pkcs1.ts";
import { crossCheckRsa } from "../support/rsa_crosscheck.ts";

function pair(bits = 2048, exponent = 65537): { publicKey: KeyObject; privateKey: KeyObject } {
  return generateKeyPairSync("rsa", { modulusLength: bits, publicExponent: exponent });
}

function nAndE(publicKey: KeyObject): [string, string] {
  const jwk = publicKey.export({ format: "jwk" });
  return [jwk.n!, jwk.e!];
}

function keyOf(publicKey: KeyObject): RsaPublicKey {
  const jwk = publicKey.export({ format: "jwk" });
  const key = rsaPublicKey(jwk.n!, jwk.e!);
  assert.ok(key, "a usual RSA key is verified here");
  return key;
}

// Key generation is the slow part (seconds under Deno); the tests share one pair.
const PAIR = pair();
const DATA = new TextEncoder().encode("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0");

Deno.test("RS256/384/512: the answer is node:crypto's for 1,500 random valid and tampered signatures", () => {
  // The 100,000-token run (and other key sizes) is `deno run -A bench/rsa_crosscheck.ts`.
  const { publicKey, privateKey } = PAIR;
  const result = crossCheckRsa({ publicKey, privateKey, key: keyOf(publicKey), count: 1500 });
  assert.equal(result.disagreements, 0, JSON.stringify(result.firstDisagreement));
  assert.ok(result.valid > 300 && result.invalid > 300, "both answers were exercised");
});

Deno.test("a signature of the wrong length, equal to or above the modulus, or over other data is refused", () => {
  const { publicKey, privateKey } = PAIR;
  const key = keyOf(publicKey);
  const signature = new Uint8Array(sign("sha256", DATA, privateKey));
  assert.equal(verifyRsaPkcs1(key, "sha256", DATA, signature), true);
  assert.equal(verifyRsaPkcs1(key, "sha256", DATA, signature.subarray(1)), false);
  assert.equal(verifyRsaPkcs1(key, "sha256", DATA, new Uint8Array([0, ...signature])), false);
  const n = Uint8Array.fromHex(key.n.toString(16).padStart(key.bytes * 2, "0"));
  assert.equal(verifyRsaPkcs1(key, "sha256", DATA, n), false);
  assert.equal(verifyRsaPkcs1(key, "sha256", DATA, new Uint8Array(key.bytes).fill(0xff)), false);
  assert.equal(verifyRsaPkcs1(key, "sha256", DATA, new Uint8Array(key.bytes)), false);
  assert.equal(verifyRsaPkcs1(key, "sha256", new Uint8Array([...DATA, 0x2e]), signature), false);
  // The same signature under another digest's encoding is not valid.
  for (const digest of ["sha384", "sha512"] as RsaDigest[]) {
    assert.equal(verifyRsaPkcs1(key, digest, DATA, signature), false);
  }
});

/** `EM^d mod n`: a "signature" of any encoding, made with the raw private operation. */
function rawSign(privateKey: KeyObject, encoded: Uint8Array): Uint8Array {
  const jwk = privateKey.export({ format: "jwk" });
  const num = (b64: string) =>
    BigInt(`0x${Uint8Array.fromBase64(b64, { alphabet: "base64url" }).toHex()}`);
  const n = num(jwk.n!);
  let result = 1n;
  let base = BigInt(`0x${encoded.toHex()}`) % n;
  for (let d = num(jwk.d!); d > 0n; d >>= 1n) {
    if (d & 1n) result = (result * base) % n;
    base = (base * base) % n;
  }
  const bytes = Math.ceil(n.toString(16).length / 2);
  return Uint8Array.fromHex(result.toString(16).padStart(bytes * 2, "0"));
}

Deno.test("an encoding other than the one valid encoding is refused, as node:crypto refuses it", () => {
  const { publicKey, privateKey } = PAIR;
  const key = keyOf(publicKey);
  const k = key.bytes;
  const digestInfo = Uint8Array.fromHex("3031300d060960864801650304020105000420");
  const hash = new Uint8Array(createHash("sha256").update(DATA).digest());
  const encode = (head: number[], padding: number, tail: Uint8Array[]): Uint8Array => {
    const parts = [new Uint8Array(head), new Uint8Array(padding).fill(0xff), new Uint8Array([0])];
    const body = [...parts, ...tail];
    const out = new Uint8Array(k);
    let at = 0;
    for (const p of body) {
      out.set(p.subarray(0, Math.max(0, k - at)), at);
      at += p.length;
    }
    return out;
  };
  const tLength = digestInfo.length + hash.length;
  const good = encode([0, 1], k - tLength - 3, [digestInfo, hash]);
  const cases: [string, Uint8Array][] = [
    ["the valid encoding, signed raw", good],
    // Short padding with garbage after the hash (the Bleichenbacher 2006 e=3 forgery's shape).
    ["hash followed by garbage", encode([0, 1], 8, [digestInfo, hash, new Uint8Array(k)])],
    ["block type 2", encode([0, 2], k - tLength - 3, [digestInfo, hash])],
    [
      "padding byte not 0xff",
      (() => {
        const e = good.slice();
        e[5] = 0xfe;
        return e;
      })(),
    ],
    [
      "DigestInfo without NULL parameters",
      encode([0, 1], k - tLength - 1, [
        Uint8Array.fromHex("302f300b0609608648016503040201" + "0420"),
        hash,
      ]),
    ],
  ];
  for (const [how, encoded] of cases) {
    const signature = rawSign(privateKey, encoded);
    const node = verify("sha256", DATA, publicKey, signature);
    assert.equal(verifyRsaPkcs1(key, "sha256", DATA, signature), node, how);
    assert.equal(node, how === "the valid encoding, signed raw", how);
  }
});

Deno.test("keys this module does not verify are left to node:crypto", () => {
  const b64 = (hex: string) => Uint8Array.fromHex(hex).toBase64({ alphabet: "base64url" });
  const jwk = PAIR.publicKey.export({ format: "jwk" });
  assert.equal(rsaPublicKey(jwk.n!, b64("010000")), undefined, "even exponent");
  assert.equal(rsaPublicKey(jwk.n!, b64("01")), undefined, "exponent 1");
  assert.equal(rsaPublicKey(jwk.n!, b64("0100000001")), undefined, "exponent above 2^32");
  assert.equal(rsaPublicKey(b64("c5"), jwk.e!), undefined, "tiny modulus");
  assert.equal(rsaPublicKey("not base64url!", jwk.e!), undefined);
  assert.equal(rsaPublicKey(jwk.n!, "")?.bytes, undefined);
  assert.equal(rsaPublicKey(jwk.n!, jwk.e!)?.bytes, 256);
  const three = pair(1024, 3);
  const small = rsaPublicKey(...nAndE(three.publicKey))!;
  assert.equal(small.e, 3n);
  const signature = new Uint8Array(sign("sha256", DATA, three.privateKey));
  assert.equal(verifyRsaPkcs1(small, "sha256", DATA, signature), true);
  assert.equal(verifyRsaPkcs1(small, "sha256", DATA, signature.reverse()), false);
});
