import assert from "node:assert/strict";
import type { Permissions } from "../../lib/core/model.ts";
import { responseClaims, userClaims } from "../../lib/callout/response.ts";
import type { VerifiedRequest } from "../../lib/callout/request.ts";

// The claims are pure; signing, sealing and what nats-server makes of them are covered through the
// handler and a real server in handler_test.ts.

const PERMISSIONS: Permissions = {
  pub: { allow: ["app.>"], deny: ["app.secret"] },
  sub: { allow: [] },
  resp: { max: 1, ttlNs: 60_000_000_000 },
};

Deno.test("userClaims: aud is the target, an empty allow list is deny-all, ttl stays in nanoseconds", () => {
  const claims = userClaims("Uuser", "APP", {
    name: "team-a/app",
    permissions: PERMISSIONS,
    expiresAt: 1_750_000_000.7,
  }, undefined);
  assert.deepEqual(claims, {
    sub: "Uuser",
    aud: "APP",
    name: "team-a/app",
    exp: 1_750_000_000,
    nats: {
      pub: { allow: ["app.>"], deny: ["app.secret"] },
      sub: { deny: [">"] },
      resp: { max: 1, ttl: 60_000_000_000 },
      subs: -1,
      data: -1,
      payload: -1,
      type: "user",
      version: 2,
    },
  });
});

Deno.test("userClaims: issuer_account only when a signing key signs for the target", () => {
  const grant = { name: "n", permissions: PERMISSIONS, expiresAt: 1 };
  assert.equal(userClaims("U", "Atarget", grant, "Atarget").nats?.issuer_account, "Atarget");
  assert.equal("issuer_account" in (userClaims("U", "APP", grant, undefined).nats ?? {}), false);
});

Deno.test("responseClaims: bound to the user_nkey and the server, expiring with the request", () => {
  const verified: VerifiedRequest = {
    request: {
      serverId: "Nserver",
      serverName: "s1",
      userNkey: "Uuser",
      clientInfo: {},
      connectOpts: {},
      encrypted: false,
    },
    expires: 1_750_000_002,
    sealTo: undefined,
  };
  assert.deepEqual(responseClaims(verified, { error: "token_expired: expired" }), {
    sub: "Uuser",
    aud: "Nserver",
    exp: 1_750_000_002,
    nats: { error: "token_expired: expired", type: "authorization_response", version: 2 },
  });
  assert.deepEqual(responseClaims(verified, { jwt: "a.b.c" }).nats, {
    jwt: "a.b.c",
    type: "authorization_response",
    version: 2,
  });
});
