import assert from "node:assert/strict";
import { createLogger } from "../../lib/telemetry/log.ts";
import {
  classifyConnectError,
  connectNats,
  createReconnectBackoff,
  guardSocketResets,
  liftUrlCredentials,
} from "../../lib/nats/connection.ts";
import { createServiceMetrics } from "../../lib/telemetry/service_metrics.ts";
import { NatsServer } from "../support/nats_server.ts";
import { recordingLogger, serviceConnection } from "../support/nats_service.ts";
import { waitFor } from "../support/wait.ts";

Deno.test("liftUrlCredentials moves userinfo out of URLs and refuses conflicting ones", () => {
  assert.deepEqual(liftUrlCredentials(["nats://u:p%40ss@h:4222", "nats://u:p%40ss@h2:4222"]), {
    servers: ["nats://h:4222", "nats://h2:4222"],
    credentials: { user: "u", pass: "p@ss" },
  });
  assert.deepEqual(liftUrlCredentials(["nats://tok@h", "h2:4222"]), {
    servers: ["nats://h", "h2:4222"],
    credentials: { token: "tok" },
  });
  assert.deepEqual(liftUrlCredentials(["nats://h:4222"]).credentials, {});
  assert.throws(() => liftUrlCredentials(["nats://a:b@h", "nats://c:d@h2"]), TypeError);
});

Deno.test("reconnect backoff grows per dial, not per call, and starts over after a reset", () => {
  const b = createReconnectBackoff({ initialMs: 100, maxMs: 1000, jitter: 0 });
  const sequence: number[] = [];
  for (let i = 0; i < 7; i++) {
    // nats.js asks on every turn of its dial loop, also on turns where it only waits.
    const d = b.delay();
    assert.equal(b.delay(), d, "asking again while waiting does not change the delay");
    assert.equal(b.delay(), d);
    sequence.push(d);
    b.dialed();
  }
  assert.deepEqual(sequence, [100, 100, 200, 400, 800, 1000, 1000], "doubles, capped at maxMs");
  assert.equal(b.dials, 7);
  b.reset();
  assert.equal(b.dials, 0);
  assert.equal(b.delay(), 100, "a new outage starts from initialMs");
});

Deno.test("reconnect backoff jitter is drawn once per dial and stays within ±jitter", () => {
  const draws = [0, 0.999999, 0.5];
  let calls = 0;
  const b = createReconnectBackoff({
    initialMs: 1000,
    maxMs: 1000,
    jitter: 0.2,
    random: () => draws[calls++ % draws.length]!,
  });
  assert.equal(b.delay(), 800);
  assert.equal(b.delay(), 800, "same draw while waiting");
  assert.equal(calls, 1);
  b.dialed();
  assert.equal(b.delay(), 1200);
  b.dialed();
  assert.equal(b.delay(), 1000);
  assert.equal(calls, 3);
  assert.throws(() => createReconnectBackoff({ initialMs: 0 }), RangeError);
  assert.throws(() => createReconnectBackoff({ initialMs: 500, maxMs: 100 }), RangeError);
  assert.throws(() => createReconnectBackoff({ jitter: 1.5 }), RangeError);
});

Deno.test("under nats.js's dial loop the backoff redials a restarted server soon and a dead one rarely", () => {
  // The loop of @nats-io/nats-core (ProtocolHandler.dodialLoop), on a simulated clock: each turn
  // asks for the delay, dials when that much has passed since the last dial (calling
  // reconnectToServer first), and otherwise sleeps for the rest of it and turns again.
  const dialTimes = (upAt: number, options: { initialMs?: number; maxMs?: number } = {}) => {
    const b = createReconnectBackoff({ ...options, jitter: 0 });
    let now = 0;
    let lastDial = -Infinity; // the connection that just dropped was made long ago
    const dials: number[] = [];
    for (let turn = 0; turn < 1000; turn++) {
      const wait = b.delay();
      if (lastDial + wait <= now) {
        b.dialed();
        lastDial = now;
        dials.push(now);
        if (now >= upAt) return dials;
      } else {
        now = lastDial + wait;
      }
    }
    throw new Error("never reconnected");
  };
  // A 130 ms restart: one refused dial right away, the next one 250 ms later connects.
  assert.deepEqual(dialTimes(130, { initialMs: 250, maxMs: 5000 }), [0, 250]);
  // With the defaults (100 ms doubling up to 2 s), a 300 ms restart is seen at 300 ms.
  assert.deepEqual(dialTimes(300), [0, 100, 300]);
  // A server that stays down is dialled ever less often, at most every maxMs.
  assert.deepEqual(
    dialTimes(20_000, { initialMs: 250, maxMs: 5000 }),
    [0, 250, 750, 1750, 3750, 7750, 12750, 17750, 22750],
  );
});

Deno.test("connectNats logs in with user/password embedded in the URL and never logs the password", async () => {
  await using ns = await NatsServer.start({
    config: { authorization: { users: [{ user: "svc", password: "s3cret-pw" }] } },
  });
  const { logger, lines } = recordingLogger();
  const metrics = createServiceMetrics();
  const nc = await serviceConnection(
    ns.url.replace("nats://", "nats://svc:s3cret-pw@"),
    logger,
    metrics,
  );
  try {
    assert.equal(metrics.natsConnected.value(), 1);
    await nc.flush();
  } finally {
    await nc.close();
  }
  assert.equal(metrics.natsConnected.value(), 0);
  assert.ok(lines.some((l) => l.includes('"nats_connected"')));
  assert.ok(!lines.some((l) => l.includes("s3cret-pw")), "password never logged");
});

Deno.test("a tls:// URL requires TLS: a server without it is refused before the password is sent", async () => {
  await using ns = await NatsServer.start({
    config: { authorization: { users: [{ user: "svc", password: "s3cret-pw" }] } },
  });
  const { logger, lines } = recordingLogger();
  const stop = new AbortController();
  const connecting = connectNats({
    servers: [ns.url.replace("nats://", "tls://svc:s3cret-pw@")],
    name: "test",
    logger,
    metrics: createServiceMetrics(),
    signal: stop.signal,
  });
  connecting.catch(() => {});
  try {
    const failed = await waitFor(
      () => lines.map((l) => JSON.parse(l)).find((l) => l.event === "nats_connect_failed"),
      { timeoutMs: 10_000, what: "the refusal" },
    );
    assert.equal(failed.cause, "tls", JSON.stringify(failed));
    assert.ok(!lines.some((l) => l.includes('"nats_connected"')), "never connected in plaintext");
    assert.ok(!lines.some((l) => l.includes("s3cret-pw")), "password never logged");
  } finally {
    stop.abort(new Error("test over"));
  }
  await assert.rejects(connecting, /test over/);
});

Deno.test("connectNats uses a token from the options or the URL", async () => {
  await using ns = await NatsServer.start({ config: { authorization: { token: "t0ken" } } });
  const { logger } = recordingLogger();
  const byUrl = await serviceConnection(ns.url.replace("nats://", "nats://t0ken@"), logger);
  await byUrl.close();
  const byOption = await connectNats({
    servers: [ns.url],
    token: "t0ken",
    name: "callout-test",
    logger,
    metrics: createServiceMetrics(),
  });
  await byOption.close();
});

Deno.test("guardSocketResets absorbs a late ECONNRESET and logs it; other errors still surface", () => {
  const lines: string[] = [];
  const logger = createLogger({ level: "debug", write: (l) => lines.push(l) });
  const reset = Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" });
  {
    using _guard = guardSocketResets(logger);
    const resetEvent = new ErrorEvent("error", { error: reset, cancelable: true });
    globalThis.dispatchEvent(resetEvent);
    assert.equal(resetEvent.defaultPrevented, true);
    const other = new ErrorEvent("error", { error: new TypeError("bug"), cancelable: true });
    globalThis.dispatchEvent(other);
    assert.equal(other.defaultPrevented, false);
  }
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /"event":"socket_error_absorbed"/);
  const after = new ErrorEvent("error", { error: reset, cancelable: true });
  globalThis.dispatchEvent(after);
  assert.equal(after.defaultPrevented, false, "removed on dispose");
});

Deno.test("classifyConnectError names the cause from nats.js's errors", async () => {
  const { errors } = await import("@nats-io/transport-node");
  const withCode = (message: string, code: string) =>
    new Error("connection refused", { cause: Object.assign(new Error(message), { code }) });
  assert.equal(
    classifyConnectError(new errors.AuthorizationError("Authorization Violation")),
    "authentication_refused",
  );
  assert.equal(
    classifyConnectError(withCode("connect ECONNREFUSED", "ECONNREFUSED")),
    "unreachable",
  );
  assert.equal(classifyConnectError(withCode("getaddrinfo ENOTFOUND", "ENOTFOUND")), "unreachable");
  assert.equal(classifyConnectError(new errors.TimeoutError()), "unreachable");
  assert.equal(
    classifyConnectError(new Error("self-signed certificate in certificate chain")),
    "tls",
  );
  assert.equal(classifyConnectError(new Error("tls is not available on this server")), "tls");
  assert.equal(classifyConnectError(new Error("something else")), "protocol");
});
