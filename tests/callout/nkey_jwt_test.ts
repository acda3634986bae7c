import assert from "node:assert/strict";
import { decode as jwtDecode, encodeUser } from "@nats-io/jwt";
import {
  createNkeySigner,
  decodeAndVerifyNatsJwt,
  decodeNkeySeed,
  decodePublicNkey,
  encodeNatsJwt,
  encodePublicNkey,
  isPublicNkey,
  NatsJwtError,
  NkeyKeyCache,
  verifyNkeySignature,
} from "../../lib/callout/nkey_jwt.ts";
import { accountKey, curveKey, serverKey, userKey } from "../support/nkeys.ts";

const te = new TextEncoder();

async function jwtErrorCode(token: string): Promise<string> {
  try {
    await decodeAndVerifyNatsJwt(token);
  } catch (err) {
    assert.ok(err instanceof NatsJwtError, `expected NatsJwtError, got ${err}`);
    return err.code;
  }
  throw new assert.AssertionError({ message: "token was accepted" });
}

function b64urlJson(value: unknown): string {
  return te.encode(JSON.stringify(value)).toBase64({ alphabet: "base64url", omitPadding: true });
}

Deno.test("signer produces the same signature and public key as @nats-io/nkeys", async () => {
  for (const key of [accountKey(), userKey(), serverKey()]) {
    const signer = await createNkeySigner(key.seed);
    assert.deepEqual(signer.publicKey, key.publicKey);
    const data = te.encode(`some data to sign ${key.publicKey}`);
    assert.deepEqual(await signer.sign(data), key.pair.sign(data));
  }
});

Deno.test("verifyNkeySignature accepts nkeys signatures and refuses wrong key, data or length", async () => {
  const key = userKey();
  const other = userKey();
  const data = te.encode("payload");
  const sig = key.pair.sign(data);
  const cache = new NkeyKeyCache({ maxKeys: 1 });
  assert.ok(await verifyNkeySignature(key.publicKey, data, sig, { keyCache: cache }));
  assert.ok(!await verifyNkeySignature(other.publicKey, data, sig, { keyCache: cache }));
  assert.ok(!await verifyNkeySignature(key.publicKey, te.encode("payloaD"), sig));
  assert.ok(!await verifyNkeySignature(key.publicKey, data, sig.subarray(1)));
  assert.ok(!await verifyNkeySignature("UNOTAKEY", data, sig));
  assert.ok(!await verifyNkeySignature(curveKey().publicKey, data, sig));
  assert.deepEqual(cache.size, 1, "the cache stays within its bound");
});

Deno.test("a JWT we encode decodes and verifies with @nats-io/jwt decode()", async () => {
  const account = accountKey();
  const user = userKey();
  const signer = await createNkeySigner(account.seed);
  const token = await encodeNatsJwt(
    { sub: user.publicKey, aud: "APP", name: "ns/sa", exp: 2_000_000_000, nats: { type: "user" } },
    signer,
    { now: () => 1_700_000_000_123 },
  );
  const claims = jwtDecode<Record<string, unknown>>(token);
  assert.deepEqual(claims.iss, account.publicKey);
  assert.deepEqual(claims.sub, user.publicKey);
  assert.deepEqual(claims.aud, "APP");
  assert.deepEqual(claims.iat, 1_700_000_000);
  assert.deepEqual(claims.exp, 2_000_000_000);
  assert.ok(
    /^[A-Z2-7]{52}$/.test(claims.jti),
    "jti is 32 bytes in base32 (random, unique per JWT)",
  );
  const [head] = token.split(".");
  assert.deepEqual(
    JSON.parse(new TextDecoder().decode(Uint8Array.fromBase64(head!, { alphabet: "base64url" }))),
    {
      typ: "JWT",
      alg: "ed25519-nkey",
    },
  );
});

Deno.test("every JWT gets its own jti, also two with the same claims in the same second", async () => {
  const signer = await createNkeySigner(accountKey().seed);
  const claims = { sub: userKey().publicKey, aud: "APP", nats: { type: "user", version: 2 } };
  const now = () => 1_700_000_000_000;
  const ids = new Set<unknown>();
  for (let i = 0; i < 50; i++) {
    const token = await encodeNatsJwt(claims, signer, { now });
    ids.add((await decodeAndVerifyNatsJwt(token)).claims.jti);
  }
  assert.equal(ids.size, 50);
});

Deno.test("a JWT encoded by @nats-io/jwt verifies with decodeAndVerifyNatsJwt", async () => {
  const account = accountKey();
  const user = userKey();
  const token = await encodeUser("someone", user.pair, account.pair, {}, { aud: "APP" });
  const { header, claims } = await decodeAndVerifyNatsJwt(token);
  assert.deepEqual(header.alg, "ed25519-nkey");
  assert.deepEqual(claims.iss, account.publicKey);
  assert.deepEqual(claims.sub, user.publicKey);
  assert.deepEqual(claims.nats?.type, "user");
});

Deno.test("decodeAndVerifyNatsJwt refuses tampered, foreign-signed and malformed tokens", async () => {
  const account = accountKey();
  const signer = await createNkeySigner(account.seed);
  const token = await encodeNatsJwt({ sub: "x", nats: { type: "generic" } }, signer);
  const [h, p, s] = token.split(".") as [string, string, string];
  const claims = JSON.parse(
    new TextDecoder().decode(Uint8Array.fromBase64(p, { alphabet: "base64url" })),
  );

  const tampered = `${h}.${b64urlJson({ ...claims, sub: "y" })}.${s}`;
  assert.equal(await jwtErrorCode(tampered), "jwt_signature_invalid");
  const foreignIss = `${h}.${b64urlJson({ ...claims, iss: accountKey().publicKey })}.${s}`;
  assert.equal(await jwtErrorCode(foreignIss), "jwt_signature_invalid");
  const v1 = `${b64urlJson({ typ: "JWT", alg: "ed25519" })}.${p}.${s}`;
  assert.equal(await jwtErrorCode(v1), "jwt_algorithm_invalid");
  const none = `${b64urlJson({ typ: "JWT", alg: "none" })}.${p}.`;
  assert.equal(await jwtErrorCode(none), "jwt_algorithm_invalid");
  const noIss = `${h}.${b64urlJson({ sub: "x" })}.${s}`;
  assert.equal(await jwtErrorCode(noIss), "jwt_issuer_invalid");
  for (const bad of ["", "a.b", "a.b.c", `${h}.${p}.!!!`, `${h}.${p}`, `${h}.bm90IGpzb24.${s}`]) {
    assert.equal(await jwtErrorCode(bad), "jwt_malformed", bad);
  }
});

Deno.test("nkey encoding round-trips with @nats-io/nkeys and catches bad checksums and roles", () => {
  const account = accountKey();
  const { role, raw } = decodeNkeySeed(account.seed);
  assert.deepEqual(role, "A");
  assert.deepEqual(raw.length, 32);
  const pub = decodePublicNkey(account.publicKey, "A");
  assert.ok(pub);
  assert.deepEqual(encodePublicNkey("A", pub), account.publicKey);
  assert.deepEqual(decodeNkeySeed(curveKey().seed).role, "X");

  assert.ok(isPublicNkey(account.publicKey, "A"));
  assert.ok(!isPublicNkey(account.publicKey, "U"), "role is checked");
  assert.ok(!isPublicNkey(account.seed, "A"), "a seed is not a public key");
  const last = account.publicKey.at(-1) === "A" ? "B" : "A";
  assert.ok(!isPublicNkey(account.publicKey.slice(0, -1) + last, "A"), "checksum is checked");
  assert.ok(!isPublicNkey(42, "A"));

  assert.throws(() => decodeNkeySeed(account.publicKey), TypeError);
  assert.throws(() => decodeNkeySeed("SAgarbage"), TypeError);
});

Deno.test("a curve seed cannot make a signer", async () => {
  await assert.rejects(() => createNkeySigner(curveKey().seed), TypeError);
});
