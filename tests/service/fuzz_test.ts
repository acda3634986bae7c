/**
 * No input yields `internal_error` (issue 9 §2, STYLE "internal_error means our bug"): thousands of
 * adversarial tokens and callout requests go through the real pipeline — key source, token
 * verifier, login decision, callout protocol with real signing — and every one must end as an
 * allowed login, a denial with a reason of its own, or a dropped request; never `internal_error`,
 * never an `error` log line, never a throw.
 *
 * Deterministic: the inputs come from a seeded generator, so a failure names the input that caused
 * it and reproduces.
 */
import assert from "node:assert/strict";
import { type Authorizer, createCalloutHandler } from "../../lib/callout/handler.ts";
import type { DenyReason } from "../../lib/core/errors.ts";
import { fileKeySource } from "../../lib/tokens/jwks.ts";
import { createLogger } from "../../lib/telemetry/log.ts";
import { createAuthorizer } from "../../lib/decision/login.ts";
import type { ServiceAccountRecord } from "../../lib/core/model.ts";
import { createNkeySigner, encodeNatsJwt } from "../../lib/callout/nkey_jwt.ts";
import { createServiceMetrics } from "../../lib/telemetry/service_metrics.ts";
import { createTokenVerifier } from "../../lib/tokens/verifier.ts";
import { accountKey, serverKey, userKey } from "../support/nkeys.ts";
import { respellings } from "../support/respell.ts";
import {
  generateSigningKey,
  ISSUER,
  mintServiceAccountToken,
  publicJwks,
  type SigningKey,
} from "../support/sa_tokens.ts";

const NOW_MS = 1_750_000_000_000;
const NOW_S = NOW_MS / 1000;
const te = new TextEncoder();
const RSA = await generateSigningKey("RS256");
const EC = await generateSigningKey("ES256");

/** mulberry32: a small seeded generator, so every run sees the same inputs. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function b64url(bytes: Uint8Array): string {
  return bytes.toBase64({ alphabet: "base64url", omitPadding: true });
}

/** Sign any header and payload bytes with `key` (no library checks the header on the way). */
async function signRaw(key: SigningKey, header: unknown, payload: Uint8Array): Promise<string> {
  const input = `${b64url(te.encode(JSON.stringify(header)))}.${b64url(payload)}`;
  const algorithm = key.alg === "ES256"
    ? { name: "ECDSA", hash: "SHA-256" }
    : { name: "RSASSA-PKCS1-v1_5" };
  const sig = new Uint8Array(
    await crypto.subtle.sign(algorithm, key.privateKey as unknown as CryptoKey, te.encode(input)),
  );
  return `${input}.${b64url(sig)}`;
}

function claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    iss: ISSUER,
    aud: ["nats"],
    sub: "system:serviceaccount:team-a:worker",
    iat: NOW_S - 60,
    nbf: NOW_S - 60,
    exp: NOW_S + 3600,
    "kubernetes.io": {
      namespace: "team-a",
      serviceaccount: { name: "worker", uid: "uid-1" },
      pod: { name: "worker-1", uid: "pod-1" },
    },
    ...overrides,
  };
}

const WEIRD: unknown[] = [
  null,
  true,
  0,
  -1,
  1.5,
  1e308,
  -1e308,
  "",
  " ",
  "*",
  ">",
  "a.b",
  "a b",
  "../x",
  "ns\u0000x",
  "ünï",
  "x".repeat(5000),
  [],
  ["nats"],
  [1, 2],
  {},
  { a: 1 },
  NOW_S - 30, // expired within the old 60 s leeway: issue 9 §2's input
  NOW_S - 5,
  NOW_S,
  NOW_S + 0.5,
];

/** Signed tokens whose header or claims are hostile: they pass the signature, then the checks. */
async function hostileSignedTokens(random: () => number): Promise<string[]> {
  const out: string[] = [];
  const header = { alg: "RS256", kid: RSA.kid, typ: "JWT" };
  for (const field of ["iss", "aud", "sub", "exp", "nbf", "iat", "kubernetes.io"]) {
    for (const value of WEIRD) {
      out.push(await signRaw(RSA, header, te.encode(JSON.stringify(claims({ [field]: value })))));
    }
  }
  for (const path of ["namespace", "serviceaccount", "pod", "name", "uid", "podname", "poduid"]) {
    for (const value of WEIRD) {
      const k8s = {
        namespace: "team-a",
        serviceaccount: { name: "worker", uid: "uid-1" } as Record<string, unknown>,
        pod: { name: "worker-1", uid: "pod-1" } as Record<string, unknown>,
      } as Record<string, unknown>;
      if (path === "name" || path === "uid") {
        (k8s.serviceaccount as Record<string, unknown>)[path] = value;
      } else if (path === "podname") (k8s.pod as Record<string, unknown>).name = value;
      else if (path === "poduid") (k8s.pod as Record<string, unknown>).uid = value;
      else k8s[path] = value;
      const ns = typeof k8s.namespace === "string" ? k8s.namespace : "x";
      const sa = k8s.serviceaccount as Record<string, unknown> | undefined;
      const name = typeof sa?.name === "string" ? sa.name : "x";
      const c = claims({
        "kubernetes.io": k8s,
        sub: `system:serviceaccount:${ns}:${name}`,
      });
      out.push(await signRaw(RSA, header, te.encode(JSON.stringify(c))));
    }
  }
  for (const value of WEIRD) {
    for (const field of ["kid", "alg", "crit", "b64", "typ", "jku", "x5c", "jwk"]) {
      out.push(
        await signRaw(RSA, { ...header, [field]: value }, te.encode(JSON.stringify(claims()))),
      );
    }
  }
  for (
    const payload of [
      "",
      "null",
      "[]",
      "42",
      '"str"',
      "{",
      "\xff\xfe",
      JSON.stringify(claims()) + " ",
      JSON.stringify({ ...claims(), extra: "y".repeat(10_000) }),
    ]
  ) {
    out.push(await signRaw(RSA, header, te.encode(payload)));
  }
  out.push(
    await signRaw(EC, { alg: "ES256", kid: RSA.kid }, te.encode(JSON.stringify(claims()))),
  );
  out.push(
    await signRaw(RSA, { alg: "PS256", kid: RSA.kid }, te.encode(JSON.stringify(claims()))),
  );
  out.push(
    await signRaw(RSA, { alg: "ES256", kid: EC.kid }, te.encode(JSON.stringify(claims()))),
  );
  // Random claim soup.
  for (let i = 0; i < 200; i++) {
    const c = claims();
    for (const key of Object.keys(c)) {
      if (random() < 0.3) c[key] = WEIRD[Math.floor(random() * WEIRD.length)];
    }
    out.push(await signRaw(RSA, header, te.encode(JSON.stringify(c))));
  }
  return out;
}

/** Byte-level mutations of a valid token: flips, truncations, insertions, segment games. */
function mutations(token: string, random: () => number, count: number): string[] {
  const chars = 'AZaz09-_.=+/ \n\t\f\r\u0000\u00e9\u{1f600}{}"\\';
  const pick = () => chars[Math.floor(random() * chars.length)]!;
  const out: string[] = [...respellings(token).map(([, t]) => t)];
  const [h, p, s] = token.split(".") as [string, string, string];
  out.push(`${h}.${p}`, `${h}.${p}.${s}.${s}`, `${p}.${h}.${s}`, `${h}..${s}`, `..`, `.`, "");
  out.push(`${h}.${p}.${s.slice(0, -4)}`, `${h}.${p}.${s}${s}`, token.repeat(3));
  for (let i = 0; i < count; i++) {
    const at = Math.floor(random() * token.length);
    switch (Math.floor(random() * 4)) {
      case 0:
        out.push(token.slice(0, at) + pick() + token.slice(at + 1));
        break;
      case 1:
        out.push(token.slice(0, at) + pick() + token.slice(at));
        break;
      case 2:
        out.push(token.slice(0, at));
        break;
      default:
        out.push(token.slice(0, at) + token.slice(at + 1 + Math.floor(random() * 20)));
    }
  }
  return out;
}

/** The real pipeline around a lookup that knows every ServiceAccount a token could name. */
async function pipeline() {
  const metrics = createServiceMetrics();
  const errors: string[] = [];
  const logger = createLogger({
    level: "warn",
    write: (line) => {
      if (line.includes('"level":"error"')) errors.push(line);
    },
  });
  const keys = await fileKeySource("/fuzz/jwks.json", {
    logger,
    metrics,
    readTextFile: () => Promise.resolve(JSON.stringify(publicJwks([RSA, EC]))),
    now: () => NOW_MS,
  });
  const verifyToken = createTokenVerifier({
    keys,
    issuer: ISSUER,
    audience: "nats",
    metrics,
    now: () => NOW_MS,
  });
  // Whatever a verified token names exists, with its uid: the fuzz reaches policy and signing.
  const lookup = (namespace: string, name: string): ServiceAccountRecord => ({
    namespace,
    name,
    uid: "uid-1",
    annotations: {},
  });
  const authorizer: Authorizer = createAuthorizer({
    verifyToken,
    lookup,
    isSynced: () => true,
    policy: { annotationPrefix: "nats.io/" },
    userJwtTtlMs: 300_000,
    logger,
    metrics,
    now: () => NOW_MS,
  });
  const handler = await createCalloutHandler({
    accountSeed: accountKey().seed,
    account: "APP",
    authorizer,
    logger,
    metrics,
    now: () => NOW_MS,
  });
  const server = serverKey();
  const signer = await createNkeySigner(server.seed);
  const request = (nats: Record<string, unknown>, top: Record<string, unknown> = {}) =>
    encodeNatsJwt(
      {
        sub: "AUTHISSUER",
        aud: "nats-authorization-request",
        exp: NOW_S + 2,
        ...top,
        nats: {
          server_id: { name: "s", host: "127.0.0.1", id: server.publicKey, version: "2.15.1" },
          user_nkey: userKey().publicKey,
          client_info: { host: "10.1.2.3", id: 42, kind: "Client", type: "nats" },
          connect_opts: { lang: "deno", version: "3.4.0" },
          type: "authorization_request",
          version: 2,
          ...nats,
        },
      },
      signer,
      { now: () => NOW_MS },
    );
  return { metrics, errors, keys, handler, request };
}

const REASONS: DenyReason[] = [
  "token_missing",
  "token_malformed",
  "token_expired",
  "token_not_yet_valid",
  "token_issued_in_future",
  "issuer_mismatch",
  "audience_mismatch",
  "algorithm_not_allowed",
  "signature_invalid",
  "unknown_key",
  "claims_invalid",
  "jwks_unavailable",
  "jwks_key_invalid",
  "serviceaccount_not_found",
  "serviceaccount_uid_mismatch",
  "cache_not_ready",
];

Deno.test("fuzz: no token, however hostile, yields internal_error over the real pipeline (issue 9 §2)", async () => {
  const random = prng(0x5eed);
  const p = await pipeline();
  try {
    const valid = await mintServiceAccountToken({
      key: RSA,
      issuer: ISSUER,
      namespace: "team-a",
      serviceAccount: "worker",
      uid: "uid-1",
      now: () => NOW_MS,
    });
    const inputs = [
      valid,
      ...mutations(valid, random, 1000),
      ...await hostileSignedTokens(random),
    ];
    let answered = 0;
    for (const [i, token] of inputs.entries()) {
      const before = p.metrics.requests.value({ result: "error", reason: "internal_error" }) +
        p.metrics.requests.value({ result: "denied", reason: "internal_error" });
      const reply = await p.handler(
        te.encode(await p.request({ connect_opts: { auth_token: token } })),
        undefined,
      );
      if (reply) answered++;
      const after = p.metrics.requests.value({ result: "error", reason: "internal_error" }) +
        p.metrics.requests.value({ result: "denied", reason: "internal_error" });
      assert.equal(
        after,
        before,
        `input ${i} (${JSON.stringify(token.slice(0, 60))}) → internal_error: ${p.errors.at(-1)}`,
      );
    }
    assert.deepEqual(p.errors, []);
    assert.equal(answered, inputs.length, "every token login is answered");
    const allowed = p.metrics.requests.value({ result: "allowed", reason: "" });
    const denied = REASONS.reduce(
      (n, r) => n + p.metrics.requests.value({ result: "denied", reason: r }),
      0,
    );
    assert.equal(allowed + denied, inputs.length, "each ended allowed or with a reason of its own");
    assert.ok(allowed >= 1, "the valid token is allowed");
    assert.ok(inputs.length > 1500, `${inputs.length} inputs`);
  } finally {
    await p.keys.close();
  }
});

Deno.test("fuzz: no callout request, however malformed, yields internal_error", async () => {
  const random = prng(0xca11);
  const p = await pipeline();
  try {
    const fields = [
      "server_id",
      "user_nkey",
      "client_info",
      "connect_opts",
      "client_tls",
      "type",
      "version",
      "request_nonce",
    ];
    const inputs: Uint8Array[] = [];
    for (const field of fields) {
      for (const value of WEIRD) inputs.push(te.encode(await p.request({ [field]: value })));
    }
    for (const field of ["auth_token", "pass", "jwt", "user", "name"]) {
      for (const value of WEIRD) {
        inputs.push(te.encode(await p.request({ connect_opts: { [field]: value } })));
      }
    }
    for (const field of ["exp", "aud", "iss", "sub", "iat", "nats"]) {
      for (const value of WEIRD) inputs.push(te.encode(await p.request({}, { [field]: value })));
    }
    const good = await p.request({ connect_opts: { auth_token: "x" } });
    for (const token of mutations(good, random, 500)) inputs.push(te.encode(token));
    for (let i = 0; i < 200; i++) {
      inputs.push(crypto.getRandomValues(new Uint8Array(Math.floor(random() * 600))));
    }
    for (const [i, data] of inputs.entries()) {
      await p.handler(data, random() < 0.1 ? "XBADXKEY" : undefined);
      assert.equal(
        p.metrics.requests.value({ result: "error", reason: "internal_error" }) +
          p.metrics.requests.value({ result: "denied", reason: "internal_error" }),
        0,
        `request ${i} → internal_error`,
      );
    }
    assert.deepEqual(p.errors, []);
  } finally {
    await p.keys.close();
  }
});
