/**
 * `deno bench` of the RS256 verification candidates of issue 18, on one 2048-bit key and token-sized
 * data: `node:crypto.verify` with a cached `KeyObject` (what the service used until issue 18),
 * WebCrypto `subtle.verify` awaited one at a time, the kept pure-`BigInt` RSA `micro-rsa-dsa-dh`,
 * and lib/tokens/rsa_pkcs1.ts. The WebAssembly candidates (`@hazae41/rsa.wasm`, `hacl-wasm`) and
 * `node-forge` were measured once, slower than all of these (docs/performance.md), and are not
 * dependencies of the project. Run with `deno bench -A bench/rsa_bench.ts`.
 *
 * @module
 */
import { generateKeyPairSync, sign, verify } from "node:crypto";
import { PKCS1_SHA256 } from "micro-rsa-dsa-dh/rsa.js";
import { rsaPublicKey, verifyRsaPkcs1 } from "../lib/tokens/rsa_pkcs1.ts";

const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const jwk = publicKey.export({ format: "jwk" });
const ours = rsaPublicKey(jwk.n!, jwk.e!)!;
const big = (b64: string) =>
  BigInt(`0x${Uint8Array.fromBase64(b64, { alphabet: "base64url" }).toHex()}`);
const micro = { n: big(jwk.n!), e: big(jwk.e!) };
const webKey = await crypto.subtle.importKey(
  "jwk",
  { kty: "RSA", n: jwk.n!, e: jwk.e! } as JsonWebKey,
  { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
  false,
  ["verify"],
);
// 64 distinct tokens' signing inputs (a real one is about 1 KiB), signed once.
const cases = Array.from({ length: 64 }, (_, i) => {
  const data = new TextEncoder().encode(`eyJhbGciOiJSUzI1NiJ9.${"x".repeat(900)}${i}`);
  return { data, signature: new Uint8Array(sign("sha256", data, privateKey)) };
});
let i = 0;
const next = () => cases[i++ % cases.length]!;

Deno.bench("node:crypto verify, cached KeyObject (before)", {
  group: "RS256 verify",
  baseline: true,
}, () => {
  const c = next();
  if (!verify("sha256", c.data, publicKey, c.signature)) throw new Error("refused");
});

Deno.bench("WebCrypto subtle.verify, awaited", { group: "RS256 verify" }, async () => {
  const c = next();
  if (!await crypto.subtle.verify("RSASSA-PKCS1-v1_5", webKey, c.signature, c.data)) {
    throw new Error("refused");
  }
});

Deno.bench("micro-rsa-dsa-dh PKCS1_SHA256.verify (BigInt)", { group: "RS256 verify" }, () => {
  const c = next();
  if (!PKCS1_SHA256.verify(micro, c.data, c.signature)) throw new Error("refused");
});

Deno.bench("lib/tokens/rsa_pkcs1.ts (BigInt, native SHA-256)", { group: "RS256 verify" }, () => {
  const c = next();
  if (!verifyRsaPkcs1(ours, "sha256", c.data, c.signature)) throw new Error("refused");
});
