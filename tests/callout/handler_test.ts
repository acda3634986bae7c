import assert from "node:assert/strict";
import { decode as jwtDecode } from "@nats-io/jwt";
import { connect, type NatsConnection, type Status } from "@nats-io/transport-node";
import {
  type Authorizer,
  type CalloutHandler,
  type CalloutRequest,
  createCalloutHandler,
} from "../../lib/callout/handler.ts";
import { createLogger, type Logger } from "../../lib/telemetry/log.ts";
import type { Permissions } from "../../lib/core/model.ts";
import { serveCallout } from "../../lib/nats/callout_subscription.ts";
import { connectNats } from "../../lib/nats/connection.ts";
import { createNkeySigner, encodeNatsJwt } from "../../lib/callout/nkey_jwt.ts";
import { createServiceMetrics, type ServiceMetrics } from "../../lib/telemetry/service_metrics.ts";
import { accountKey, curveKey, serverKey, type TestKey, userKey } from "../support/nkeys.ts";
import { authCalloutConfig, NatsServer, tolerateClientResets } from "../support/nats_server.ts";
import { waitFor } from "../support/wait.ts";

// Denied clients are closed by the server mid-handshake; see tolerateClientResets.
tolerateClientResets();

const te = new TextEncoder();
const td = new TextDecoder();
const NOW_MS = 1_750_000_000_000;
const NOW_S = NOW_MS / 1000;

const GRANTED: Permissions = {
  pub: { allow: ["app.>"] },
  sub: { allow: ["app.>", "_INBOX.>"] },
  resp: { max: 1, ttlNs: 60_000_000_000 },
};

/** Allow `auth_token == "good"`, deny everything else. */
function tokenAuthorizer(
  clock: () => number = () => Date.now(),
  permissions: Permissions = GRANTED,
): Authorizer {
  return (req) =>
    Promise.resolve(
      req.connectOpts.auth_token === "good"
        ? {
          ok: true,
          user: { name: "tester", permissions, expiresAt: Math.floor(clock() / 1000) + 3600 },
          fields: { namespace: "team-a" },
        }
        : { ok: false, reason: "signature_invalid", message: "not the good token" },
    );
}

interface Recorder {
  logger: Logger;
  records: () => Record<string, unknown>[];
}

function recorder(): Recorder {
  const lines: string[] = [];
  return {
    logger: createLogger({ level: "debug", write: (l) => lines.push(l), now: () => NOW_MS }),
    records: () => lines.map((l) => JSON.parse(l)),
  };
}

function decodePart(token: string, index: number): Record<string, unknown> {
  const part = token.split(".")[index]!;
  return JSON.parse(td.decode(Uint8Array.fromBase64(part, { alphabet: "base64url" })));
}

/** A request JWT as nats-server writes it (auth_callout.go), signed by `server`'s N key. */
async function craftRequest(options: {
  server: TestKey;
  user?: string;
  token?: string;
  serverXkey?: string;
  claims?: Record<string, unknown>;
  nats?: Record<string, unknown>;
  signWith?: TestKey;
}): Promise<string> {
  const { server } = options;
  const signer = await createNkeySigner((options.signWith ?? server).seed);
  return await encodeNatsJwt(
    {
      sub: "AUTHISSUER",
      aud: "nats-authorization-request",
      exp: NOW_S + 2,
      ...options.claims,
      nats: {
        server_id: {
          name: "test-server",
          host: "127.0.0.1",
          id: server.publicKey,
          version: "2.15.1",
          ...(options.serverXkey ? { xkey: options.serverXkey } : {}),
        },
        user_nkey: options.user ?? userKey().publicKey,
        client_info: { host: "10.1.2.3", id: 42, kind: "Client", type: "nats" },
        connect_opts: { auth_token: options.token ?? "good", lang: "deno", version: "3.4.0" },
        type: "authorization_request",
        version: 2,
        ...options.nats,
      },
    },
    signer,
    { now: () => NOW_MS },
  );
}

async function unitHandler(options: {
  account?: TestKey;
  xkey?: TestKey;
  authorizer?: Authorizer;
  metrics?: ServiceMetrics;
  logger?: Logger;
  now?: () => number;
}): Promise<CalloutHandler> {
  return await createCalloutHandler({
    accountSeed: (options.account ?? accountKey()).seed,
    account: "APP",
    ...(options.xkey ? { xkeySeed: options.xkey.seed } : {}),
    authorizer: options.authorizer ?? tokenAuthorizer(() => NOW_MS),
    logger: options.logger ?? recorder().logger,
    metrics: options.metrics ?? createServiceMetrics(),
    now: options.now ?? (() => NOW_MS),
  });
}

// ---------------------------------------------------------------- unit level: crafted requests

Deno.test("an allowed login is answered with a response for that user_nkey and server, wrapping a user JWT for the target account", async () => {
  const account = accountKey();
  const server = serverKey();
  const user = userKey();
  const metrics = createServiceMetrics();
  const rec = recorder();
  let seen: CalloutRequest | undefined;
  const inner = tokenAuthorizer(() => NOW_MS);
  const handler = await unitHandler({
    account,
    metrics,
    logger: rec.logger,
    authorizer: (req) => {
      seen = req;
      return inner(req);
    },
  });
  const reply = await handler(
    te.encode(await craftRequest({ server, user: user.publicKey })),
    undefined,
  );
  assert.ok(reply);

  assert.deepEqual(seen, {
    serverId: server.publicKey,
    serverName: "test-server",
    userNkey: user.publicKey,
    clientInfo: { host: "10.1.2.3", id: 42, kind: "Client", type: "nats" },
    connectOpts: { auth_token: "good", lang: "deno", version: "3.4.0" },
    encrypted: false,
    issuedAt: NOW_S,
  });

  // @nats-io/jwt's decode() verifies the signatures we made.
  const response = jwtDecode<Record<string, unknown>>(td.decode(reply));
  assert.equal(response.iss, account.publicKey);
  assert.equal(response.sub, user.publicKey);
  assert.equal(response.aud, server.publicKey);
  assert.equal(response.exp, NOW_S + 2, "the response lives as long as the server waits");
  assert.equal(response.nats.type, "authorization_response");
  assert.equal(response.nats.version, 2);
  assert.equal(response.nats.error, undefined);

  const userJwt = jwtDecode<Record<string, unknown>>(String(response.nats.jwt));
  assert.equal(userJwt.iss, account.publicKey);
  assert.equal(userJwt.sub, user.publicKey);
  assert.equal(userJwt.aud, "APP");
  assert.equal(userJwt.name, "tester");
  assert.equal(userJwt.exp, NOW_S + 3600);
  assert.deepEqual(userJwt.nats, {
    pub: { allow: ["app.>"] },
    sub: { allow: ["app.>", "_INBOX.>"] },
    resp: { max: 1, ttl: 60_000_000_000 },
    subs: -1,
    data: -1,
    payload: -1,
    type: "user",
    version: 2,
  });
  assert.equal(decodePart(String(response.nats.jwt), 0).alg, "ed25519-nkey");

  assert.equal(metrics.requests.value({ result: "allowed", reason: "" }), 1);
  assert.equal(metrics.requestDuration.count({ result: "allowed" }), 1);
  const all = rec.records();
  const lines = all.filter((l) => l.level !== "debug");
  assert.equal(lines.length, 1, "exactly one line per decision above debug");
  const line = lines[0]!;
  assert.equal(line.event, "login_allowed");
  // At debug, one more line says what was granted.
  const granted = all.filter((l) => l.event === "login_granted");
  assert.equal(granted.length, 1);
  assert.equal(granted[0]!.level, "debug");
  assert.equal(granted[0]!.account, "APP");
  assert.deepEqual(granted[0]!.pub, ["app.>"]);
  assert.deepEqual(granted[0]!.sub, ["app.>", "_INBOX.>"]);
  assert.equal(granted[0]!.resp_max, 1);
  assert.equal(granted[0]!.resp_ttl_ms, 60_000);
  assert.equal(granted[0]!.expires_at, NOW_S + 3600);
  assert.equal(line.level, "info");
  assert.equal(line.server, "test-server");
  assert.equal(line.client_host, "10.1.2.3");
  assert.equal(line.client_cid, 42);
  assert.equal(line.namespace, "team-a", "the authorizer's fields are on the line");
  assert.equal(typeof line.duration_ms, "number");
  assert.ok(!JSON.stringify(lines).includes('"good"'), "the token is never logged");
});

Deno.test("an empty allow list is sent as deny-all, never as 'no restriction'", async () => {
  const handler = await unitHandler({
    authorizer: tokenAuthorizer(() => NOW_MS, {
      pub: { allow: [] },
      sub: { allow: ["_INBOX.>"] },
      resp: { max: 1, ttlNs: 1 },
    }),
  });
  const reply = await handler(te.encode(await craftRequest({ server: serverKey() })), undefined);
  const response = jwtDecode<Record<string, unknown>>(td.decode(reply!));
  const user = jwtDecode<Record<string, unknown>>(String(response.nats.jwt));
  assert.deepEqual(user.nats.pub, { deny: [">"] });
  assert.deepEqual(user.nats.sub, { allow: ["_INBOX.>"] });
});

Deno.test("a denial is answered with nats.error and logged as login_denied with its reason", async () => {
  const server = serverKey();
  const user = userKey();
  const metrics = createServiceMetrics();
  const rec = recorder();
  const handler = await unitHandler({ metrics, logger: rec.logger });
  const reply = await handler(
    te.encode(await craftRequest({ server, user: user.publicKey, token: "bad" })),
    undefined,
  );
  const response = jwtDecode<Record<string, unknown>>(td.decode(reply!));
  assert.equal(response.sub, user.publicKey);
  assert.equal(response.aud, server.publicKey);
  assert.equal(response.nats.jwt, undefined);
  assert.match(String(response.nats.error), /signature_invalid/);
  assert.equal(metrics.requests.value({ result: "denied", reason: "signature_invalid" }), 1);
  const lines = rec.records();
  assert.equal(lines.length, 1);
  assert.equal(lines[0]!.event, "login_denied");
  assert.equal(lines[0]!.level, "warn");
  assert.equal(lines[0]!.reason, "signature_invalid");
  assert.equal(lines[0]!.message, "not the good token");
  assert.ok(!JSON.stringify(lines).includes('"bad"'), "the token is never logged");
});

Deno.test("an authorizer that throws denies with internal_error, logged at error", async () => {
  const metrics = createServiceMetrics();
  const rec = recorder();
  const handler = await unitHandler({
    metrics,
    logger: rec.logger,
    authorizer: () => Promise.reject(new Error("database on fire")),
  });
  const reply = await handler(te.encode(await craftRequest({ server: serverKey() })), undefined);
  const response = jwtDecode<Record<string, unknown>>(td.decode(reply!));
  assert.match(String(response.nats.error), /internal_error/);
  assert.equal(metrics.requests.value({ result: "denied", reason: "internal_error" }), 1);
  const [line] = rec.records();
  assert.equal(line!.event, "login_denied");
  assert.equal(line!.level, "error");
  assert.equal(line!.reason, "internal_error");
  assert.match(JSON.stringify(line!.error), /database on fire/);
});

Deno.test("requests that cannot be trusted are dropped without an answer, logged and counted", async () => {
  const server = serverKey();
  const other = serverKey();
  const valid = await craftRequest({ server });
  const [h, , s] = valid.split(".") as [string, string, string];
  const claims = decodePart(valid, 1);
  const b64 = (v: unknown) =>
    te.encode(JSON.stringify(v)).toBase64({ alphabet: "base64url", omitPadding: true });
  const nats = claims.nats as Record<string, unknown>;

  const cases: [string, string, string][] = [
    ["garbage", "not a jwt", "request_malformed"],
    [
      "tampered payload",
      `${h}.${b64({ ...claims, nats: { ...nats, user_nkey: userKey().publicKey } })}.${s}`,
      "request_signature_invalid",
    ],
    [
      "signed by another server",
      await craftRequest({ server, signWith: other }),
      "request_issuer_invalid",
    ],
    [
      "iss is an account key",
      await craftRequest({ server: accountKey() }),
      "request_issuer_invalid",
    ],
    [
      "wrong audience",
      await craftRequest({ server, claims: { aud: "NATS" } }),
      "request_audience_invalid",
    ],
    [
      "wrong type",
      await craftRequest({ server, nats: { type: "authorization_response" } }),
      "request_type_invalid",
    ],
    ["expired", await craftRequest({ server, claims: { exp: NOW_S - 61 } }), "request_expired"],
    ["no exp", await craftRequest({ server, claims: { exp: undefined } }), "request_malformed"],
    [
      "user_nkey is not a U key",
      await craftRequest({ server, user: accountKey().publicKey }),
      "request_user_nkey_invalid",
    ],
    [
      "no user_nkey",
      await craftRequest({ server, nats: { user_nkey: undefined } }),
      "request_user_nkey_invalid",
    ],
  ];
  for (const [name, token, reason] of cases) {
    const metrics = createServiceMetrics();
    const rec = recorder();
    let called = false;
    const handler = await unitHandler({
      metrics,
      logger: rec.logger,
      authorizer: () => {
        called = true;
        return Promise.reject(new Error("must not be called"));
      },
    });
    assert.equal(await handler(te.encode(token), undefined), undefined, name);
    assert.equal(called, false, `${name}: the authorizer is not asked`);
    assert.equal(metrics.requests.value({ result: "dropped", reason }), 1, `${name}: ${reason}`);
    const lines = rec.records();
    assert.equal(lines.length, 1, name);
    assert.equal(lines[0]!.event, "request_dropped", name);
    assert.equal(lines[0]!.level, "warn", name);
    assert.equal(lines[0]!.reason, reason, name);
  }
});

Deno.test("clock skew (issue 17 §1): requests 5 s behind our clock are answered; the gauge holds the skew per server; one burst of readings warns of nothing", async () => {
  const metrics = createServiceMetrics();
  const rec = recorder();
  const ahead = 5_000;
  const handler = await unitHandler({ metrics, logger: rec.logger, now: () => NOW_MS + ahead });
  const [a, b] = [serverKey(), serverKey()];
  for (const server of [a, a, a, b]) {
    const reply = await handler(te.encode(await craftRequest({ server })), undefined);
    assert.ok(reply, "answered though its exp has passed by our clock");
  }
  assert.equal(metrics.requests.value({ result: "allowed", reason: "" }), 4);
  // iat is the second NOW_S: the server's clock was NOW_S + 0.5 ± 0.5 when it asked.
  assert.equal(metrics.serverClockSkew.value({ server: "test-server" }), 4.5);
  // All read at one instant of our clock: a stall's backlog looks the same. A skew is warned
  // about when it persists (tests/callout/clock_skew_test.ts, tests/service/clock_skew_test.ts).
  assert.deepEqual(rec.records().filter((r) => r.event === "server_clock_skew"), []);
});

Deno.test("clock skew (issue 17 §1): within the noise (≤ 2 s) and behind, the gauge holds the reading, negative behind", async () => {
  for (const [offset, skew] of [[1_000, 0.5], [-5_000, -5.5]] as const) {
    const metrics = createServiceMetrics();
    const rec = recorder();
    const handler = await unitHandler({ metrics, logger: rec.logger, now: () => NOW_MS + offset });
    assert.ok(await handler(te.encode(await craftRequest({ server: serverKey() })), undefined));
    assert.equal(metrics.serverClockSkew.value({ server: "test-server" }), skew);
  }
});

Deno.test("clock skew (issue 17 §1): a request expired beyond the tolerance is dropped and measured; the drop names both causes, a clock ahead or a stall", async () => {
  const metrics = createServiceMetrics();
  const rec = recorder();
  const handler = await unitHandler({ metrics, logger: rec.logger, now: () => NOW_MS + 65_000 });
  assert.equal(
    await handler(te.encode(await craftRequest({ server: serverKey() })), undefined),
    undefined,
  );
  assert.equal(metrics.requests.value({ result: "dropped", reason: "request_expired" }), 1);
  assert.equal(metrics.serverClockSkew.value({ server: "test-server" }), 64.5);
  const [dropped] = rec.records();
  assert.equal(dropped!.event, "request_dropped");
  assert.match(
    String(dropped!.message),
    /about 64\.5s ahead of the server's, or this replica was stalled that long/,
  );
});

Deno.test("clock skew (issue 17 §1): a token expired by the server's clock but not ours is refused as token_expired, never answered with a JWT the server would refuse", async () => {
  const metrics = createServiceMetrics();
  const rec = recorder();
  const behind = -5_000;
  const handler = await unitHandler({
    metrics,
    logger: rec.logger,
    now: () => NOW_MS + behind,
    // The verifier (our clock) accepts a token expiring at NOW_S - 2: 3 s left by our clock.
    authorizer: () =>
      Promise.resolve({
        ok: true,
        user: { name: "tester", permissions: GRANTED, expiresAt: NOW_S - 2 },
      }),
  });
  const reply = await handler(te.encode(await craftRequest({ server: serverKey() })), undefined);
  assert.ok(reply);
  const response = jwtDecode<Record<string, unknown>>(td.decode(reply));
  assert.equal(response.nats.jwt, undefined, "no user JWT");
  assert.match(String(response.nats.error), /^token_expired: /);
  assert.equal(metrics.requests.value({ result: "denied", reason: "token_expired" }), 1);
  const denied = rec.records().find((r) => r.event === "login_denied")!;
  assert.equal(denied.reason, "token_expired");
  assert.match(
    String(denied.message),
    /token expired 2s ago by nats-server test-server's clock, which is about 5\.5s ahead of this host's/,
  );
});

Deno.test("xkey: a sealed request gets a sealed answer the server's key opens", async () => {
  const ours = curveKey();
  const serverX = curveKey();
  const server = serverKey();
  const user = userKey();
  const handler = await unitHandler({ xkey: ours });
  const request = await craftRequest({
    server,
    user: user.publicKey,
    serverXkey: serverX.publicKey,
  });
  const sealed = serverX.pair.seal(te.encode(request), ours.publicKey);
  const reply = await handler(sealed, serverX.publicKey);
  assert.ok(reply);
  assert.equal(td.decode(reply.subarray(0, 4)), "xkv1");
  const opened = serverX.pair.open(reply, ours.publicKey);
  assert.ok(opened);
  const response = jwtDecode<Record<string, unknown>>(td.decode(opened));
  assert.equal(response.sub, user.publicKey);
  assert.ok(response.nats.jwt);
});

Deno.test("xkey: mismatched encryption is dropped", async () => {
  const ours = curveKey();
  const serverX = curveKey();
  const server = serverKey();
  const request = await craftRequest({ server, serverXkey: serverX.publicKey });
  const sealed = serverX.pair.seal(te.encode(request), ours.publicKey);
  const cases: [string, Uint8Array, string | undefined, boolean, string][] = [
    [
      "plain request, xkey configured",
      te.encode(request),
      undefined,
      true,
      "request_not_encrypted",
    ],
    ["sealed, no header", sealed, undefined, true, "request_xkey_mismatch"],
    [
      "sealed to someone else",
      serverX.pair.seal(te.encode(request), curveKey().publicKey),
      serverX.publicKey,
      true,
      "request_decrypt_failed",
    ],
    ["sealed, no xkey configured", sealed, serverX.publicKey, false, "request_decrypt_failed"],
  ];
  // A server key that differs from the one in the claims (header and server_id.xkey disagree).
  const liar = curveKey();
  cases.push([
    "header differs from server_id.xkey",
    liar.pair.seal(te.encode(request), ours.publicKey),
    liar.publicKey,
    true,
    "request_xkey_mismatch",
  ]);
  for (const [name, data, header, withXkey, reason] of cases) {
    const metrics = createServiceMetrics();
    const handler = await unitHandler({ metrics, ...(withXkey ? { xkey: ours } : {}) });
    assert.equal(await handler(data, header), undefined, name);
    assert.equal(metrics.requests.value({ result: "dropped", reason }), 1, `${name}: ${reason}`);
  }
});

Deno.test("createCalloutHandler refuses a non-account seed, a non-curve xkey and an empty account", async () => {
  const base = {
    authorizer: tokenAuthorizer(),
    logger: recorder().logger,
    metrics: createServiceMetrics(),
  };
  await assert.rejects(
    createCalloutHandler({ ...base, accountSeed: userKey().seed, account: "APP" }),
    TypeError,
  );
  await assert.rejects(
    createCalloutHandler({ ...base, accountSeed: accountKey().seed, account: "" }),
    TypeError,
  );
  await assert.rejects(
    createCalloutHandler({
      ...base,
      accountSeed: accountKey().seed,
      account: "APP",
      xkeySeed: accountKey().seed,
    }),
    TypeError,
  );
});

// ---------------------------------------------------------------- end to end: real nats-server

interface Fixture extends AsyncDisposable {
  readonly ns: NatsServer;
  readonly metrics: ServiceMetrics;
  readonly records: () => Record<string, unknown>[];
  /** Connect a client with `token` (the CONNECT auth_token). */
  client(token: string): Promise<NatsConnection>;
  /** Add another service instance in the same queue group; returns its answer counter. */
  addInstance(wrap?: (h: CalloutHandler) => CalloutHandler): Promise<() => number>;
}

async function startFixture(
  options: {
    xkey?: boolean;
    timeoutSeconds?: number;
    wrap?: (h: CalloutHandler) => CalloutHandler;
  } = {},
): Promise<Fixture & { answered: () => number }> {
  const account = accountKey();
  const xkey = options.xkey ? curveKey() : undefined;
  const { config, service } = authCalloutConfig({
    issuer: account.publicKey,
    ...(xkey ? { xkey: xkey.publicKey } : {}),
    timeoutSeconds: options.timeoutSeconds ?? 2,
  });
  const ns = await NatsServer.start({ config });
  const metrics = createServiceMetrics();
  const rec = recorder();
  const cleanup: (() => Promise<void>)[] = [];
  const clients: NatsConnection[] = [];

  const addInstance = async (wrap?: (h: CalloutHandler) => CalloutHandler) => {
    const handler = await createCalloutHandler({
      accountSeed: account.seed,
      account: "APP",
      ...(xkey ? { xkeySeed: xkey.seed } : {}),
      authorizer: tokenAuthorizer(),
      logger: rec.logger,
      metrics,
    });
    let count = 0;
    const inner = wrap ? wrap(handler) : handler;
    const counting: CalloutHandler = async (data, hdr) => {
      const reply = await inner(data, hdr);
      if (reply) count++;
      return reply;
    };
    const nc = await connectNats({
      servers: [ns.url.replace("nats://", `nats://${service.user}:${service.password}@`)],
      name: "callout-service",
      logger: rec.logger,
      metrics,
    });
    const svc = serveCallout(nc, counting, { queue: "auth-callout", logger: rec.logger });
    cleanup.push(async () => {
      await svc.stop();
      await nc.close();
    });
    await waitFor(() => svc.ready, { what: "callout subscription ready" });
    return () => count;
  };

  const answered = await addInstance(options.wrap);
  return {
    ns,
    metrics,
    records: rec.records,
    answered,
    addInstance,
    async client(token) {
      const nc = await connect({ servers: ns.url, token, timeout: 3000, reconnect: false });
      clients.push(nc);
      return nc;
    },
    async [Symbol.asyncDispose]() {
      for (const nc of clients) await nc.close().catch(() => {});
      for (const fn of cleanup.reverse()) await fn();
      await ns.stop();
    },
  };
}

async function expectAuthorizationViolation(fixture: Fixture, token: string): Promise<void> {
  let nc: NatsConnection | undefined;
  try {
    nc = await fixture.client(token);
  } catch (err) {
    assert.ok(err instanceof Error);
    assert.match(err.message, /authorization violation/i, String(err));
    return;
  }
  await nc.close();
  assert.fail("the client was let in");
}

async function allowedClientHasExactlyTheGrant(fixture: Fixture): Promise<void> {
  const nc = await fixture.client("good");
  const errors: Error[] = [];
  void (async () => {
    for await (const s of nc.status() as AsyncIterable<Status>) {
      if (s.type === "error") errors.push(s.error);
    }
  })();

  // Inside the grant: publish and subscribe on app.> round-trips.
  const sub = nc.subscribe("app.>", { max: 1 });
  nc.publish("app.hello", "hi");
  for await (const m of sub) assert.equal(m.string(), "hi");

  // Outside: publishing is a permissions violation, subscribing closes the subscription.
  nc.publish("other.hello", "no");
  await nc.flush();
  const pubErr = await waitFor(() => errors.find((e) => e.name === "PermissionViolationError"), {
    what: "publish permissions violation",
  });
  assert.match(pubErr.message, /Publish to "other.hello"/);

  const denied = nc.subscribe("other.>");
  const closedWith = await denied.closed;
  assert.ok(closedWith instanceof Error, "subscribing outside the grant fails");
  assert.match(closedWith.message, /Subscription to "other.>"/);
}

Deno.test("e2e: an allowed client connects and gets exactly the granted permissions", async () => {
  await using fixture = await startFixture();
  await allowedClientHasExactlyTheGrant(fixture);
  assert.equal(fixture.metrics.requests.value({ result: "allowed", reason: "" }), 1);
  assert.ok(fixture.records().some((r) => r.event === "login_allowed" && r.user === "tester"));
});

Deno.test("e2e: a denied client gets Authorization Violation from our answer, not from the server's timeout", async () => {
  // The server would wait 10 s for an answer; the client gives up after 3 s. Only a prompt
  // denial can produce "Authorization Violation" rather than a client timeout.
  await using fixture = await startFixture({ timeoutSeconds: 10 });
  await expectAuthorizationViolation(fixture, "bad");
  assert.equal(
    fixture.metrics.requests.value({ result: "denied", reason: "signature_invalid" }),
    1,
  );
});

Deno.test("e2e: xkey mode allows and denies end to end", async () => {
  await using fixture = await startFixture({ xkey: true, timeoutSeconds: 10 });
  await allowedClientHasExactlyTheGrant(fixture);
  await expectAuthorizationViolation(fixture, "bad");
  assert.equal(fixture.metrics.requests.value({ result: "allowed", reason: "" }), 1);
  assert.equal(
    fixture.metrics.requests.value({ result: "denied", reason: "signature_invalid" }),
    1,
  );
  assert.ok(fixture.records().some((r) => r.event === "login_allowed" && r.encrypted === true));
});

Deno.test("e2e: an approval replayed to another login (wrong user_nkey) is refused by the server", async () => {
  let first: Uint8Array | undefined;
  const replay = (h: CalloutHandler): CalloutHandler => async (data, hdr) => {
    if (first) return first;
    first = await h(data, hdr);
    return first;
  };
  await using fixture = await startFixture({ wrap: replay, timeoutSeconds: 10 });
  const nc = await fixture.client("good");
  await nc.flush();
  await expectAuthorizationViolation(fixture, "good");
  await waitFor(() => /not for expected user/.test(fixture.ns.log), {
    what: "the server to log why it refused the replayed answer",
  });
});

Deno.test("e2e: two service instances in one queue group share the logins", async () => {
  await using fixture = await startFixture();
  const second = await fixture.addInstance();
  for (let i = 0; i < 40; i++) {
    const nc = await fixture.client("good");
    await nc.close();
  }
  assert.equal(fixture.answered() + second(), 40, "every login answered exactly once");
  assert.ok(fixture.answered() > 0, "first instance answered some");
  assert.ok(second() > 0, "second instance answered some");
});
