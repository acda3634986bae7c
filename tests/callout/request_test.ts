import assert from "node:assert/strict";
import { RequestError } from "../../lib/core/errors.ts";
import type { NatsJwtClaims } from "../../lib/callout/nkey_jwt.ts";
import { checkRequestClaims } from "../../lib/callout/request.ts";
import { accountKey, curveKey, serverKey, userKey } from "../support/nkeys.ts";

// The claims checks are pure: no signature, no clock but the one given. The signature and the
// xkey seal are covered through the handler in handler_test.ts.

const NOW_MS = 1_750_000_000_000;
const NOW_S = NOW_MS / 1000;

function requestClaims(
  overrides: Record<string, unknown> = {},
  nats: Record<string, unknown> = {},
): NatsJwtClaims & { iss: string } {
  const server = serverKey().publicKey;
  return {
    iss: server,
    sub: "AUTHISSUER",
    aud: "nats-authorization-request",
    exp: NOW_S + 2,
    ...overrides,
    nats: {
      server_id: { name: "s1", host: "127.0.0.1", id: server, version: "2.14.4" },
      user_nkey: userKey().publicKey,
      client_info: { host: "10.1.2.3", id: 42, kind: "Client", type: "nats", extra: "x" },
      connect_opts: { auth_token: "t", lang: "deno", protocol: 1 },
      type: "authorization_request",
      version: 2,
      ...nats,
    },
  } as NatsJwtClaims & { iss: string };
}

function dropReason(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof RequestError, String(err));
    return err.code;
  }
  assert.fail("the request was not dropped");
}

const inTheClear = { now: NOW_MS, sealedBy: undefined };

Deno.test("checkRequestClaims picks what the authorizer reads and nothing else", () => {
  const claims = requestClaims();
  const verified = checkRequestClaims(claims, inTheClear);
  const nats = claims.nats as { user_nkey: string };
  assert.deepEqual(verified, {
    request: {
      serverId: claims.iss,
      serverName: "s1",
      userNkey: nats.user_nkey,
      clientInfo: { host: "10.1.2.3", id: 42, kind: "Client", type: "nats" },
      connectOpts: { auth_token: "t", lang: "deno" },
      encrypted: false,
    },
    expires: NOW_S + 2,
    sealTo: undefined,
  });
});

Deno.test("checkRequestClaims: each broken claim has its own drop reason", () => {
  const cases: [string, NatsJwtClaims & { iss: string }, string][] = [
    [
      "iss is not server_id.id",
      requestClaims({ iss: serverKey().publicKey }),
      "request_issuer_invalid",
    ],
    [
      "iss is an account key",
      { ...requestClaims(), iss: accountKey().publicKey },
      "request_issuer_invalid",
    ],
    ["wrong audience", requestClaims({ aud: "NATS" }), "request_audience_invalid"],
    ["wrong type", requestClaims({}, { type: "authorization_response" }), "request_type_invalid"],
    ["no exp", requestClaims({ exp: undefined }), "request_malformed"],
    ["expired", requestClaims({ exp: NOW_S - 1 }), "request_expired"],
    [
      "user_nkey is an account key",
      requestClaims({}, { user_nkey: accountKey().publicKey }),
      "request_user_nkey_invalid",
    ],
  ];
  for (const [name, claims, reason] of cases) {
    assert.equal(dropReason(() => checkRequestClaims(claims, inTheClear)), reason, name);
  }
  // The first broken claim names the drop: wrong audience and expired is an audience problem.
  const both = requestClaims({ aud: "NATS", exp: NOW_S - 10 });
  assert.equal(dropReason(() => checkRequestClaims(both, inTheClear)), "request_audience_invalid");
});

Deno.test("checkRequestClaims: expiry has no leeway, and the second of exp itself still counts", () => {
  const claims = requestClaims({ exp: NOW_S });
  assert.equal(
    checkRequestClaims(claims, { now: NOW_MS + 999, sealedBy: undefined }).expires,
    NOW_S,
  );
  assert.equal(
    dropReason(() => checkRequestClaims(claims, { now: NOW_MS + 1000, sealedBy: undefined })),
    "request_expired",
  );
});

Deno.test("checkRequestClaims: a sealed request's header must be server_id.xkey, and the answer goes back to it", () => {
  const xkey = curveKey().publicKey;
  const base = requestClaims();
  const nats = base.nats as Record<string, Record<string, unknown>>;
  const claims = { ...base, nats: { ...nats, server_id: { ...nats.server_id, xkey } } };
  const verified = checkRequestClaims(claims, { now: NOW_MS, sealedBy: xkey });
  assert.equal(verified.sealTo, xkey);
  assert.equal(verified.request.encrypted, true);
  assert.equal(
    dropReason(() => checkRequestClaims(claims, { now: NOW_MS, sealedBy: curveKey().publicKey })),
    "request_xkey_mismatch",
  );
});
