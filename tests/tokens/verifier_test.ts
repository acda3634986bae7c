import assert from "node:assert/strict";
import { CompactSign } from "jose";
import { AuthError, type DenyReason } from "../../lib/core/errors.ts";
import { fileKeySource, type KeySource, remoteKeySource } from "../../lib/tokens/jwks.ts";
import { silentLogger } from "../../lib/telemetry/log.ts";
import { createServiceMetrics, type ServiceMetrics } from "../../lib/telemetry/service_metrics.ts";
import { createTokenVerifier, type TokenVerifierOptions } from "../../lib/tokens/verifier.ts";
import {
  generateSigningKey,
  ISSUER,
  mintHmacConfusionToken,
  mintImpostorToken,
  mintServiceAccountToken,
  mintUnsecuredToken,
  publicJwks,
  type ServiceAccountClaimsOptions,
  type SigningKey,
} from "../support/sa_tokens.ts";
import { assertEquals, authError, rejection } from "../support/assert.ts";
import { respellings } from "../support/respell.ts";

const T0 = 1_700_000_000_000;
// Key generation is the slow part; the keys are immutable, so the tests share them.
const RSA = await generateSigningKey("RS256");
const EC = await generateSigningKey("ES256");

/** A mutable clock shared by the minting helpers, the key source and the verifier. */
function clock(start = T0) {
  const c = { t: start, now: () => c.t, advanceSec: (s: number) => (c.t += s * 1000) };
  return c;
}

/** A KeySource wrapper that counts `getKey` calls, i.e. real signature verifications. */
function counting(inner: KeySource): KeySource & { calls: number } {
  const wrapper = {
    calls: 0,
    getKey: ((header, token) => {
      wrapper.calls++;
      return inner.getKey(header, token);
    }) as KeySource["getKey"],
    get ready() {
      return inner.ready;
    },
    get generation() {
      return inner.generation;
    },
    refresh: () => inner.refresh(),
    close: () => inner.close(),
    [Symbol.asyncDispose]: () => inner.close(),
  };
  return wrapper;
}

/** A file key source over an in-memory file whose content the test can change. */
async function memoryKeys(keys: SigningKey[], now: () => number) {
  const file = { text: JSON.stringify(publicJwks(keys)) };
  const source = await fileKeySource("/test/jwks.json", {
    logger: silentLogger(),
    metrics: createServiceMetrics(),
    readTextFile: () => Promise.resolve(file.text),
    now,
  });
  return { file, keys: counting(source) };
}

interface Fixture extends AsyncDisposable {
  rsa: SigningKey;
  ec: SigningKey;
  keys: KeySource & { calls: number };
  file: { text: string };
  metrics: ServiceMetrics;
  clock: ReturnType<typeof clock>;
  verify: (token: string) => ReturnType<ReturnType<typeof createTokenVerifier>>;
  claims: (extra?: Partial<ServiceAccountClaimsOptions>) => ServiceAccountClaimsOptions;
}

async function fixture(
  options: Partial<Omit<TokenVerifierOptions, "keys" | "metrics" | "now">> = {},
): Promise<Fixture> {
  const c = clock();
  const rsa = RSA;
  const ec = EC;
  const { file, keys } = await memoryKeys([rsa, ec], c.now);
  const metrics = createServiceMetrics();
  const verify = createTokenVerifier({
    keys,
    issuer: ISSUER,
    audience: "nats",
    metrics,
    now: c.now,
    ...options,
  });
  return {
    rsa,
    ec,
    keys,
    file,
    metrics,
    clock: c,
    verify,
    claims: (extra = {}) => ({
      issuer: ISSUER,
      namespace: "team-a",
      serviceAccount: "worker",
      uid: "6b0c9a55-0000-4000-8000-000000000001",
      now: c.now,
      ...extra,
    }),
    [Symbol.asyncDispose]: () => keys.close(),
  };
}

async function assertDenied(
  promise: Promise<unknown>,
  code: DenyReason,
  token: string,
  messageIncludes?: string,
): Promise<AuthError> {
  const err = await authError(promise);
  assertEquals(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
  if (messageIncludes !== undefined) {
    assert.ok(err.message.includes(messageIncludes), `message "${err.message}"`);
  }
  for (const part of token.split(".")) {
    if (part.length > 8) assert.ok(!err.message.includes(part), "message contains the token");
  }
  return err;
}

Deno.test("a valid RS256 ServiceAccount token yields namespace, name, uid, pod and expiry", async () => {
  await using f = await fixture();
  const token = await mintServiceAccountToken({
    ...f.claims({ pod: { name: "worker-7d9f", uid: "pod-uid" } }),
    key: f.rsa,
  });
  const who = await f.verify(token);
  assertEquals(who, {
    namespace: "team-a",
    serviceAccount: "worker",
    uid: "6b0c9a55-0000-4000-8000-000000000001",
    podName: "worker-7d9f",
    podUid: "pod-uid",
    expiresAt: T0 / 1000 + 3600,
    issuedAt: T0 / 1000,
  });
});

Deno.test("a valid ES256 token and an unbound token (no pod) verify", async () => {
  await using f = await fixture();
  const who = await f.verify(
    await mintServiceAccountToken({ ...f.claims({ pod: null }), key: f.ec }),
  );
  assertEquals(who.serviceAccount, "worker");
  assertEquals(who.podName, undefined);
});

Deno.test("alg none and HS256 keyed with the public key are refused before any key lookup", async () => {
  await using f = await fixture();
  const none = mintUnsecuredToken({ ...f.claims(), kid: f.rsa.kid });
  await assertDenied(f.verify(none), "algorithm_not_allowed", none, '"none"');
  const hmac = await mintHmacConfusionToken(f.rsa, f.claims());
  await assertDenied(f.verify(hmac), "algorithm_not_allowed", hmac, '"HS256"');
  assertEquals(f.keys.calls, 0);
});

Deno.test("a token signed by another key under a trusted kid is signature_invalid", async () => {
  await using f = await fixture();
  const forged = await mintImpostorToken(f.rsa, f.claims());
  await assertDenied(f.verify(forged), "signature_invalid", forged, f.rsa.kid);
});

Deno.test("a token whose payload was altered after signing is signature_invalid", async () => {
  await using f = await fixture();
  const token = await mintServiceAccountToken({ ...f.claims(), key: f.rsa });
  const [h, , s] = token.split(".");
  const other = await mintServiceAccountToken({
    ...f.claims({ namespace: "kube-system" }),
    key: f.rsa,
  });
  const tampered = `${h}.${other.split(".")[1]}.${s}`;
  await assertDenied(f.verify(tampered), "signature_invalid", tampered);
});

Deno.test("a token from a key that is not in the key set is unknown_key", async () => {
  await using f = await fixture();
  const stranger = await generateSigningKey("RS256");
  const token = await mintServiceAccountToken({ ...f.claims(), key: stranger });
  await assertDenied(f.verify(token), "unknown_key", token, stranger.kid);
});

Deno.test("a token without kid is tried against every key of its algorithm", async () => {
  await using f = await fixture();
  const second = await generateSigningKey("RS256");
  f.file.text = JSON.stringify(publicJwks([f.rsa, second, f.ec]));
  await f.keys.refresh();
  const token = await mintServiceAccountToken({ ...f.claims(), key: second, kid: null });
  assertEquals((await f.verify(token)).serviceAccount, "worker");
  const stranger = await generateSigningKey("RS256");
  const bad = await mintServiceAccountToken({ ...f.claims(), key: stranger, kid: null });
  await assertDenied(f.verify(bad), "signature_invalid", bad);
});

Deno.test("malformed tokens are token_malformed and an empty one is token_missing", async () => {
  await using f = await fixture();
  await assertDenied(f.verify(""), "token_missing", "");
  for (const junk of ["not-a-jwt", "a.b", "a.b.c", "a.b.c.d.e", "x".repeat(20_000)]) {
    await assertDenied(f.verify(junk), "token_malformed", junk);
  }
  const notJson = await new CompactSign(new TextEncoder().encode("plain text"))
    .setProtectedHeader({ alg: "RS256", kid: f.rsa.kid })
    .sign(f.rsa.privateKey);
  await assertDenied(f.verify(notJson), "token_malformed", notJson, "JSON");
  const badSig = (await mintServiceAccountToken({ ...f.claims(), key: f.rsa })).replace(
    /\.[^.]+$/,
    ".***",
  );
  await assertDenied(f.verify(badSig), "token_malformed", badSig);
});

Deno.test("a token from another issuer is issuer_mismatch and names both issuers", async () => {
  await using f = await fixture();
  const token = await mintServiceAccountToken({
    ...f.claims({ issuer: "https://other.example" }),
    key: f.rsa,
  });
  await assertDenied(f.verify(token), "issuer_mismatch", token, "https://other.example");
});

Deno.test("audience: any of the token's audiences may match; otherwise audience_mismatch", async () => {
  await using f = await fixture();
  const many = await mintServiceAccountToken({
    ...f.claims({ audience: ["vault", "nats", "api"] }),
    key: f.rsa,
  });
  assertEquals((await f.verify(many)).namespace, "team-a");
  const single = await mintServiceAccountToken({
    ...f.claims({ extraClaims: { aud: "nats" } }),
    key: f.rsa,
  });
  assertEquals((await f.verify(single)).namespace, "team-a");
  const wrong = await mintServiceAccountToken({
    ...f.claims({ audience: ["api", "vault"] }),
    key: f.rsa,
  });
  await assertDenied(
    f.verify(wrong),
    "audience_mismatch",
    wrong,
    "audience [api, vault] does not include nats",
  );
  const none = await mintServiceAccountToken({
    ...f.claims({ extraClaims: { aud: undefined } }),
    key: f.rsa,
  });
  await assertDenied(f.verify(none), "audience_mismatch", none, "no audience");
});

Deno.test("exp: at or after exp is token_expired whatever the clock skew; before it is accepted (issue 9 §2)", async () => {
  await using f = await fixture({ clockSkewSec: 30 });
  const token = await mintServiceAccountToken({ ...f.claims({ lifetimeSec: 600 }), key: f.rsa });
  f.clock.advanceSec(599);
  f.clock.t += 999;
  await f.verify(token);
  f.clock.t += 1;
  await assertDenied(f.verify(token), "token_expired", token, "token expired 0s ago");
  f.clock.advanceSec(29);
  await assertDenied(f.verify(token), "token_expired", token, "token expired 29s ago");
  f.clock.advanceSec(13);
  await assertDenied(f.verify(token), "token_expired", token, "token expired 42s ago");
});

Deno.test("nbf: later than now plus skew is token_not_yet_valid", async () => {
  await using f = await fixture({ clockSkewSec: 30, cacheSize: 0 });
  const nowSec = T0 / 1000;
  const edge = await mintServiceAccountToken({ ...f.claims({ nbf: nowSec + 30 }), key: f.rsa });
  await f.verify(edge);
  const late = await mintServiceAccountToken({ ...f.claims({ nbf: nowSec + 31 }), key: f.rsa });
  await assertDenied(f.verify(late), "token_not_yet_valid", late, "another 31s");
});

Deno.test("iat: later than now plus skew is token_issued_in_future", async () => {
  await using f = await fixture({ clockSkewSec: 30, cacheSize: 0 });
  const nowSec = T0 / 1000;
  const edge = await mintServiceAccountToken({
    ...f.claims({ iat: nowSec + 30, nbf: nowSec }),
    key: f.rsa,
  });
  await f.verify(edge);
  const future = await mintServiceAccountToken({
    ...f.claims({ iat: nowSec + 31, nbf: nowSec }),
    key: f.rsa,
  });
  await assertDenied(f.verify(future), "token_issued_in_future", future, "31s in the future");
});

Deno.test("the default clock skew is 60 s, for nbf and iat", async () => {
  await using f = await fixture({ cacheSize: 0 });
  const nowSec = T0 / 1000;
  const edge = await mintServiceAccountToken({ ...f.claims({ nbf: nowSec + 60 }), key: f.rsa });
  await f.verify(edge);
  const late = await mintServiceAccountToken({ ...f.claims({ nbf: nowSec + 61 }), key: f.rsa });
  await assertDenied(f.verify(late), "token_not_yet_valid", late);
  const token = await mintServiceAccountToken({ ...f.claims({ lifetimeSec: 60 }), key: f.rsa });
  f.clock.advanceSec(60);
  await assertDenied(f.verify(token), "token_expired", token);
});

Deno.test("tokens without a complete kubernetes.io claim, exp or matching sub are claims_invalid", async () => {
  await using f = await fixture();
  const base = f.claims();
  const variants: Record<string, Record<string, unknown>> = {
    "no kubernetes.io": { "kubernetes.io": undefined },
    "kubernetes.io not an object": { "kubernetes.io": "team-a" },
    "uid not a string": {
      "kubernetes.io": { namespace: "team-a", serviceaccount: { name: "worker", uid: 7 } },
    },
    "no serviceaccount name": {
      "kubernetes.io": { namespace: "team-a", serviceaccount: { uid: "u" } },
    },
    "empty namespace": {
      "kubernetes.io": { namespace: "", serviceaccount: { name: "worker", uid: "u" } },
    },
    "sub for another ServiceAccount": { sub: "system:serviceaccount:kube-system:admin" },
    "no sub": { sub: undefined },
    "no exp": { exp: undefined },
    "exp not a number": { exp: "tomorrow" },
  };
  for (const [what, extraClaims] of Object.entries(variants)) {
    const token = await mintServiceAccountToken({ ...base, extraClaims, key: f.rsa });
    const err = await rejection(f.verify(token));
    assert.ok(err instanceof AuthError, what);
    assertEquals(err.code, "claims_invalid", `${what}: ${err.message}`);
  }
});

Deno.test("with no key set loaded the verifier answers jwks_unavailable", async () => {
  const c = clock();
  const metrics = createServiceMetrics();
  await using keys = await remoteKeySource("http://127.0.0.1:9/openid/v1/jwks", {
    logger: silentLogger(),
    metrics,
    now: c.now,
    fetch: () => Promise.reject(new TypeError("connection refused")),
  });
  assertEquals(keys.ready, false);
  const verify = createTokenVerifier({ keys, issuer: ISSUER, audience: "nats", metrics });
  const key = await generateSigningKey("RS256");
  const token = await mintServiceAccountToken({
    issuer: ISSUER,
    namespace: "a",
    serviceAccount: "b",
    uid: "c",
    key,
  });
  await assertDenied(verify(token), "jwks_unavailable", token, "no key set loaded");
});

Deno.test("token cache: a second login with the same token skips signature verification", async () => {
  await using f = await fixture();
  const token = await mintServiceAccountToken({ ...f.claims(), key: f.rsa });
  const first = await f.verify(token);
  assertEquals(f.keys.calls, 1);
  const second = await f.verify(token);
  assertEquals(second, first);
  assertEquals(f.keys.calls, 1);
  assertEquals(f.metrics.tokenCacheHits.value(), 1);
});

Deno.test("token cache: an entry is not served at or after the token's exp", async () => {
  await using f = await fixture({ clockSkewSec: 0 });
  const token = await mintServiceAccountToken({ ...f.claims({ lifetimeSec: 100 }), key: f.rsa });
  await f.verify(token);
  f.clock.advanceSec(99);
  await f.verify(token);
  assertEquals(f.keys.calls, 1);
  f.clock.advanceSec(1);
  await assertDenied(f.verify(token), "token_expired", token);
  assertEquals(f.keys.calls, 1, "an expired token is refused by its claims, before any key lookup");
});

Deno.test("claims before the signature: a forged token whose claims already fail costs no key lookup or RSA (issue 18)", async () => {
  await using f = await fixture();
  const expired = await mintImpostorToken(f.rsa, f.claims({ lifetimeSec: 100 }));
  const foreign = await mintImpostorToken(f.rsa, f.claims({ issuer: "https://elsewhere" }));
  const wrongAudience = await mintImpostorToken(f.rsa, f.claims({ audience: ["api"] }));
  f.clock.advanceSec(200);
  await assertDenied(f.verify(expired), "token_expired", expired);
  f.clock.advanceSec(-200);
  await assertDenied(f.verify(foreign), "issuer_mismatch", foreign);
  await assertDenied(f.verify(wrongAudience), "audience_mismatch", wrongAudience);
  assertEquals(f.keys.calls, 0);
  // The same forgery with claims that pass is refused by its signature.
  const forged = await mintImpostorToken(f.rsa, f.claims());
  await assertDenied(f.verify(forged), "signature_invalid", forged);
  assertEquals(f.keys.calls, 1);
});

Deno.test("token cache: a key set change drops entries, so a removed key stops working at once", async () => {
  await using f = await fixture();
  const token = await mintServiceAccountToken({ ...f.claims(), key: f.rsa });
  await f.verify(token);
  await f.verify(token);
  assertEquals(f.keys.calls, 1);

  const next = await generateSigningKey("RS256");
  f.file.text = JSON.stringify(publicJwks([f.rsa, next]));
  await f.keys.refresh();
  await f.verify(token);
  assertEquals(f.keys.calls, 2, "entry from the old generation was served");

  f.file.text = JSON.stringify(publicJwks([next]));
  await f.keys.refresh();
  await assertDenied(f.verify(token), "unknown_key", token);
});

Deno.test("token cache: least recently used entries are evicted when full; failures are not cached", async () => {
  await using f = await fixture({ cacheSize: 2 });
  const mint = (sa: string) =>
    mintServiceAccountToken({ ...f.claims({ serviceAccount: sa }), key: f.rsa });
  const [t1, t2, t3] = await Promise.all([mint("one"), mint("two"), mint("three")]);
  await f.verify(t1);
  await f.verify(t2);
  await f.verify(t1); // hit: t1 is now the most recently used
  assertEquals(f.keys.calls, 2);
  await f.verify(t3); // evicts t2
  await f.verify(t1);
  assertEquals(f.keys.calls, 3);
  await f.verify(t2);
  assertEquals(f.keys.calls, 4);

  const forged = await mintImpostorToken(f.rsa, f.claims());
  await assertDenied(f.verify(forged), "signature_invalid", forged);
  await assertDenied(f.verify(forged), "signature_invalid", forged);
  assertEquals(f.keys.calls, 6);
});

Deno.test("token cache: cacheSize 0 verifies every time", async () => {
  await using f = await fixture({ cacheSize: 0 });
  const token = await mintServiceAccountToken({ ...f.claims(), key: f.rsa });
  await f.verify(token);
  await f.verify(token);
  assertEquals(f.keys.calls, 2);
  assertEquals(f.metrics.tokenCacheHits.value(), 0);
});

Deno.test("createTokenVerifier rejects nonsense options", async () => {
  await using f = await fixture();
  const base = { keys: f.keys, issuer: ISSUER, audience: "nats", metrics: f.metrics };
  assert.throws(() => createTokenVerifier({ ...base, cacheSize: -1 }), {
    name: "RangeError",
    message: /cacheSize/,
  });
  assert.throws(() => createTokenVerifier({ ...base, clockSkewSec: NaN }), {
    name: "RangeError",
    message: /clockSkew/,
  });
  assert.throws(() => createTokenVerifier({ ...base, issuer: "" }), {
    name: "TypeError",
    message: /issuer/,
  });
  assert.throws(() => createTokenVerifier({ ...base, audience: "" }), {
    name: "TypeError",
    message: /audience/,
  });
});

Deno.test("one token, one spelling: whitespace, padding or changed unused bits are token_malformed (issue 10, defect 4)", async () => {
  await using f = await fixture();
  for (const key of [f.rsa, f.ec]) {
    const token = await mintServiceAccountToken({ ...f.claims(), key });
    await f.verify(token); // the canonical spelling is accepted (and cached)
    const spellings = respellings(token);
    assert.ok(spellings.length >= 12, `${key.alg}: ${spellings.length} spellings`);
    for (const [name, variant] of spellings) {
      const err = await authError(f.verify(variant));
      assertEquals(err.code, "token_malformed", `${key.alg} ${name}: ${err.code} ${err.message}`);
    }
  }
  // Every segment, every trailing-bit case: a 4n+2 header with a non-zero low nibble.
  await assertDenied(f.verify("eyB.e30.c2ln"), "token_malformed", "eyB.e30.c2ln");
  await assertDenied(f.verify("e30.eyB.c2ln"), "token_malformed", "e30.eyB.c2ln");
  await assertDenied(f.verify(".e30.c2ln"), "token_malformed", ".e30.c2ln");
});

Deno.test("a token whose kubernetes.io namespace or name is not DNS-1123 is claims_invalid (issue 10, defect 5)", async () => {
  await using f = await fixture({ cacheSize: 0 });
  for (
    const [namespace, serviceAccount] of [
      ["*", "worker"],
      [">", "worker"],
      ["team-a", "Worker"],
      ["team-a", "w*"],
      ["team.a", "worker"],
      ["x".repeat(64), "worker"],
    ]
  ) {
    const token = await mintServiceAccountToken({
      ...f.claims({ namespace: namespace!, serviceAccount: serviceAccount! }),
      key: f.rsa,
    });
    await assertDenied(f.verify(token), "claims_invalid", token, "DNS-1123");
  }
});
