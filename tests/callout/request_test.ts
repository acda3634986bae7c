import assert from "node:assert/strict";
import { RequestError } from "../../lib/core/errors.ts";
import type { NatsJwtClaims } from "../../lib/callout/nkey_jwt.ts";
import { checkRequestClaims, RequestExpiredError } from "../../lib/callout/request.ts";
import { REQUEST_CLOCK_TOLERANCE_SEC } from "../../lib/callout/clock_skew.ts";
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
    ["expired beyond the tolerance", requestClaims({ exp: NOW_S - 61 }), "request_expired"],
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

Deno.test("checkRequestClaims: a request is accepted up to the clock tolerance past its exp, by our clock, and no further", () => {
  const claims = requestClaims({ exp: NOW_S });
  const at = (ms: number) => ({ now: ms, sealedBy: undefined });
  const toleranceMs = REQUEST_CLOCK_TOLERANCE_SEC * 1000;
  assert.equal(REQUEST_CLOCK_TOLERANCE_SEC, 60);
  assert.equal(checkRequestClaims(claims, at(NOW_MS + 5_000)).expires, NOW_S, "5 s ahead");
  assert.equal(checkRequestClaims(claims, at(NOW_MS + toleranceMs + 999)).expires, NOW_S);
  assert.equal(
    dropReason(() => checkRequestClaims(claims, at(NOW_MS + toleranceMs + 1000))),
    "request_expired",
  );
  // Behind the server, a request never looks expired.
  assert.equal(checkRequestClaims(claims, at(NOW_MS - 3_600_000)).expires, NOW_S);
  // A tolerance of 0 is the old check: the second of exp itself still counts, the next does not.
  const strict = (ms: number) => ({ ...at(ms), clockToleranceSec: 0 });
  assert.equal(checkRequestClaims(claims, strict(NOW_MS + 999)).expires, NOW_S);
  assert.equal(
    dropReason(() => checkRequestClaims(claims, strict(NOW_MS + 1000))),
    "request_expired",
  );
});

Deno.test("checkRequestClaims: the request's iat is the server's clock, kept for the skew and the user JWT's expiry", () => {
  const claims = requestClaims({ iat: NOW_S - 2, exp: NOW_S });
  assert.equal(checkRequestClaims(claims, inTheClear).request.issuedAt, NOW_S - 2);
  assert.equal(checkRequestClaims(requestClaims(), inTheClear).request.issuedAt, undefined);
});

Deno.test("checkRequestClaims: a request expired beyond the tolerance says how far ahead our clock is, and carries the server's clock", () => {
  const claims = requestClaims({ iat: NOW_S - 2, exp: NOW_S });
  const now = NOW_MS + 65_000;
  let caught: unknown;
  try {
    checkRequestClaims(claims, { now, sealedBy: undefined });
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof RequestExpiredError, String(caught));
  assert.equal(caught.code, "request_expired");
  assert.match(caught.message, /expired 65s ago by this host's clock, beyond the 60s tolerated/);
  assert.match(caught.message, /about 66.5s ahead of the server's, or this replica was stalled/);
  assert.deepEqual(caught.serverClock, {
    serverId: claims.iss,
    serverName: "s1",
    issuedAt: NOW_S - 2,
    checkedAt: now,
  });
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
