import assert from "node:assert/strict";
import { calculateJwkThumbprint, createLocalJWKSet, decodeProtectedHeader, jwtVerify } from "jose";
import {
  devJwks,
  DevTokenError,
  generateDevSigningKey,
  mintDevToken,
  parseServiceAccountRef,
  readDevSigningKey,
  signDevToken,
} from "../../dev/issuer.ts";
import { fileKeySource } from "../../lib/tokens/jwks.ts";
import { silentLogger } from "../../lib/telemetry/log.ts";
import { createServiceMetrics } from "../../lib/telemetry/service_metrics.ts";
import { stableServiceAccountUid } from "../../lib/cache/serviceaccounts_file.ts";
import { createTokenVerifier } from "../../lib/tokens/verifier.ts";
import { assertEquals } from "../support/assert.ts";

const ISSUER = "https://dev.nats-k8s-oidc-callout.local";

/** The rejection of `p`, checked to be a DevTokenError whose message includes `text`. */
async function devError(p: Promise<unknown>, text: string): Promise<DevTokenError> {
  try {
    await p;
  } catch (err) {
    assert(err instanceof DevTokenError, String(err));
    assert(err.message.includes(text), err.message);
    return err;
  }
  throw new assert.AssertionError({ message: `expected a DevTokenError with "${text}"` });
}

/** A temp state dir with a key file and a ServiceAccounts file; removed by the caller. */
async function stateDir() {
  const dir = await Deno.makeTempDir();
  const key = await generateDevSigningKey();
  const keyFile = `${dir}/signing-key.jwk.json`;
  await Deno.writeTextFile(keyFile, JSON.stringify(key), { mode: 0o600 });
  const serviceAccountsFile = `${dir}/serviceaccounts.yaml`;
  await Deno.writeTextFile(
    serviceAccountsFile,
    `apiVersion: v1
kind: List
items:
  - kind: ServiceAccount
    metadata: {name: orders, namespace: team-a}
  - kind: ServiceAccount
    metadata: {name: billing, namespace: team-b, uid: 6a1c3f0e-0000-4000-8000-000000000001}
`,
  );
  return { dir, key, keyFile, serviceAccountsFile };
}

Deno.test("a dev token looks like a projected token and verifies against the dev JWKS", async () => {
  const key = await generateDevSigningKey();
  const now = 1_750_000_000_000;
  const token = await signDevToken(
    { namespace: "team-a", serviceAccount: "orders", uid: "uid-1" },
    { key, issuer: ISSUER, audience: "nats", lifetimeSeconds: 600, now: () => now, podUid: "p-1" },
  );
  assertEquals(decodeProtectedHeader(token), { alg: "RS256", kid: key.kid });
  const { payload } = await jwtVerify(token, createLocalJWKSet(devJwks(key)), {
    issuer: ISSUER,
    audience: "nats",
    algorithms: ["RS256"],
    currentDate: new Date(now),
  });
  const iat = now / 1000;
  assertEquals(payload.sub, "system:serviceaccount:team-a:orders");
  assertEquals(payload.aud, ["nats"]);
  assertEquals([payload.iat, payload.nbf, payload.exp], [iat, iat, iat + 600]);
  assertEquals(typeof payload.jti, "string");
  assertEquals(payload["kubernetes.io"], {
    namespace: "team-a",
    pod: { name: "orders-dev", uid: "p-1" },
    serviceaccount: { name: "orders", uid: "uid-1" },
    warnafter: iat + 600,
  });
});

Deno.test("the dev JWKS carries only the public key, under the key's thumbprint", async () => {
  const key = await generateDevSigningKey();
  const jwks = devJwks(key);
  assertEquals(jwks.keys.length, 1);
  const pub = jwks.keys[0]!;
  for (const member of ["d", "p", "q", "dp", "dq", "qi"]) {
    assert(!(member in pub), `public JWK must not contain ${member}`);
  }
  assertEquals(pub.kid, await calculateJwkThumbprint(key));
  assertEquals([pub.alg, pub.use], ["RS256", "sig"]);
});

Deno.test("mintDevToken copies the ServiceAccount's UID from the ServiceAccounts file", async () => {
  const s = await stateDir();
  try {
    const base = { keyFile: s.keyFile, serviceAccountsFile: s.serviceAccountsFile, issuer: ISSUER };
    const jwks = createLocalJWKSet(devJwks(s.key));

    const derived = await mintDevToken("team-a/orders", base);
    const a = await jwtVerify(derived, jwks, { issuer: ISSUER, audience: "nats" });
    assertEquals(
      (a.payload["kubernetes.io"] as { serviceaccount: { uid: string } }).serviceaccount.uid,
      stableServiceAccountUid("team-a", "orders"),
    );

    const explicit = await mintDevToken("team-b/billing", {
      ...base,
      audience: "custom-aud",
      lifetimeSeconds: 120,
    });
    const b = await jwtVerify(explicit, jwks, { issuer: ISSUER, audience: "custom-aud" });
    assertEquals(
      (b.payload["kubernetes.io"] as { serviceaccount: { uid: string } }).serviceaccount.uid,
      "6a1c3f0e-0000-4000-8000-000000000001",
    );
    assertEquals(b.payload.exp! - b.payload.iat!, 120);
  } finally {
    await Deno.remove(s.dir, { recursive: true });
  }
});

Deno.test("minting for a ServiceAccount not in the file fails and lists the known ones", async () => {
  const s = await stateDir();
  try {
    await devError(
      mintDevToken("team-a/ghost", {
        keyFile: s.keyFile,
        serviceAccountsFile: s.serviceAccountsFile,
        issuer: ISSUER,
      }),
      "team-a/ghost is not in",
    );
    await devError(
      mintDevToken("team-a/ghost", {
        keyFile: s.keyFile,
        serviceAccountsFile: s.serviceAccountsFile,
        issuer: ISSUER,
      }),
      "known: team-a/orders, team-b/billing",
    );
  } finally {
    await Deno.remove(s.dir, { recursive: true });
  }
});

Deno.test("a malformed <namespace>/<serviceaccount> is refused with the expected form", () => {
  assertEquals(parseServiceAccountRef("team-a/orders.v2"), {
    namespace: "team-a",
    serviceAccount: "orders.v2",
  });
  for (const bad of ["orders", "a/b/c", "/orders", "team-a/", "team a/orders"]) {
    assert.throws(() => parseServiceAccountRef(bad), (err: unknown) => {
      assert(err instanceof DevTokenError);
      assert(err.message.includes("<namespace>/<serviceaccount>"), err.message);
      return true;
    });
  }
});

Deno.test("a missing or public-only key file is an error naming the file, not its content", async () => {
  const s = await stateDir();
  try {
    await devError(readDevSigningKey(`${s.dir}/absent.json`), "absent.json not found");
    const publicOnly = `${s.dir}/public.json`;
    const pub = devJwks(s.key).keys[0]!;
    await Deno.writeTextFile(publicOnly, JSON.stringify(pub));
    const err = await devError(readDevSigningKey(publicOnly), "not an RSA private JWK");
    assert(!err.message.includes(String(pub.n)), "key material must not be in the message");
    const garbage = `${s.dir}/garbage.json`;
    await Deno.writeTextFile(garbage, "not json");
    await devError(readDevSigningKey(garbage), "is not JSON");
  } finally {
    await Deno.remove(s.dir, { recursive: true });
  }
});

Deno.test("lifetime and audience are validated", async () => {
  const key = await generateDevSigningKey();
  const subject = { namespace: "a", serviceAccount: "b", uid: "c" };
  await assert.rejects(
    signDevToken(subject, { key, issuer: ISSUER, lifetimeSeconds: 0 }),
    RangeError,
  );
  await assert.rejects(signDevToken(subject, { key, issuer: ISSUER, audience: [] }), RangeError);
});

Deno.test("a minted dev token passes the service's own token verifier with the dev JWKS file", async () => {
  const s = await stateDir();
  try {
    const jwksFile = `${s.dir}/jwks.json`;
    await Deno.writeTextFile(jwksFile, JSON.stringify(devJwks(s.key)));
    const metrics = createServiceMetrics();
    await using keys = await fileKeySource(jwksFile, { logger: silentLogger(), metrics });
    const verify = createTokenVerifier({ keys, issuer: ISSUER, audience: "nats", metrics });
    const token = await mintDevToken("team-a/orders", {
      keyFile: s.keyFile,
      serviceAccountsFile: s.serviceAccountsFile,
      issuer: ISSUER,
    });
    const identity = await verify(token);
    assertEquals(
      [identity.namespace, identity.serviceAccount, identity.uid, identity.podName],
      ["team-a", "orders", stableServiceAccountUid("team-a", "orders"), "orders-dev"],
    );
  } finally {
    await Deno.remove(s.dir, { recursive: true });
  }
});
