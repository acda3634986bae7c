import assert from "node:assert/strict";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { createLogger, type Logger } from "../../lib/telemetry/log.ts";
import type { CalloutHandler } from "../../lib/callout/handler.ts";
import {
  classifyConnectError,
  connectNats,
  createReconnectBackoff,
  guardSocketResets,
  liftUrlCredentials,
  serveCallout,
} from "../../lib/nats/connection.ts";
import { createServiceMetrics, type ServiceMetrics } from "../../lib/telemetry/service_metrics.ts";
import { NatsServer } from "../support/nats_server.ts";
import { waitFor } from "../support/wait.ts";

const te = new TextEncoder();
const td = new TextDecoder();

function recordingLogger(): { logger: Logger; lines: string[]; events: () => string[] } {
  const lines: string[] = [];
  const logger = createLogger({ level: "debug", write: (l) => lines.push(l) });
  return { logger, lines, events: () => lines.map((l) => JSON.parse(l).event) };
}

function echo(): CalloutHandler {
  return (data) => Promise.resolve(te.encode(`echo:${td.decode(data)}`));
}

async function service(
  url: string,
  logger: Logger,
  metrics: ServiceMetrics = createServiceMetrics(),
): Promise<NatsConnection> {
  return await connectNats({
    servers: [url],
    name: "callout-test",
    logger,
    metrics,
    backoff: { initialMs: 50, maxMs: 200 },
  });
}

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
  const nc = await service(ns.url.replace("nats://", "nats://svc:s3cret-pw@"), logger, metrics);
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
  const byUrl = await service(ns.url.replace("nats://", "nats://t0ken@"), logger);
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

Deno.test("serveCallout handles requests concurrently and survives a failing message", async () => {
  await using ns = await NatsServer.start();
  const { logger, events } = recordingLogger();
  const nc = await service(ns.url, logger);
  const client = await connect({ servers: ns.url });
  try {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const handler: CalloutHandler = async (data) => {
      const text = td.decode(data);
      if (text === "block") await released;
      if (text === "release") release();
      if (text === "boom") throw new Error("handler bug");
      return te.encode(`echo:${text}`);
    };
    await using svc = serveCallout(nc, handler, { subject: "test.auth", queue: "q", logger });
    await waitFor(() => svc.ready, { what: "subscription ready" });

    const blocked = client.request("test.auth", "block", { timeout: 5000 });
    await waitFor(() => svc.inFlight === 1, { what: "blocked request in flight" });
    await assert.rejects(client.request("test.auth", "boom", { timeout: 300 }));
    assert.ok(events().includes("callout_message_failed"));
    // Only a second request being handled while the first waits can release it.
    assert.equal(
      (await client.request("test.auth", "release", { timeout: 5000 })).string(),
      "echo:release",
    );
    assert.equal((await blocked).string(), "echo:block");
  } finally {
    await client.close();
    await nc.close();
  }
});

Deno.test("the service connection survives a nats-server restart and re-subscribes", async () => {
  await using ns = await NatsServer.start();
  const { logger, events } = recordingLogger();
  const metrics = createServiceMetrics();
  const nc = await service(ns.url, logger, metrics);
  try {
    await using svc = serveCallout(nc, echo(), { subject: "test.auth", queue: "q", logger });
    await waitFor(() => svc.ready, { what: "subscription ready" });

    const sawDown = waitFor(() => !svc.ready && metrics.natsConnected.value() === 0, {
      intervalMs: 2,
      what: "ready to turn false",
    });
    await ns.restart();
    await sawDown;
    await waitFor(() => svc.ready, { what: "ready again after restart" });
    assert.equal(metrics.natsConnected.value(), 1);
    assert.ok(events().includes("nats_disconnected"));
    assert.ok(events().includes("nats_reconnected"));

    const client = await connect({ servers: ns.url });
    try {
      const reply = await client.request("test.auth", "after", { timeout: 5000 });
      assert.equal(reply.string(), "echo:after", "the subscription is back on the new server");
    } finally {
      await client.close();
    }
  } finally {
    await nc.close();
  }
});

Deno.test("after a restart the service comes back at once even when maxMs is far beyond the test timeout", async () => {
  // A backoff that grew on every turn of nats.js's dial loop reached maxMs (60 s here) after one
  // refused dial, and the service stayed away long after the server was back.
  await using ns = await NatsServer.start();
  const { logger } = recordingLogger();
  const nc = await connectNats({
    servers: [ns.url],
    name: "callout-test",
    logger,
    metrics: createServiceMetrics(),
    backoff: { initialMs: 50, maxMs: 60_000 },
  });
  try {
    await using svc = serveCallout(nc, echo(), { subject: "test.auth", queue: "q", logger });
    await waitFor(() => svc.ready, { what: "subscription ready" });
    const sawDown = waitFor(() => !svc.ready, { intervalMs: 2, what: "ready to turn false" });
    await ns.restart();
    await sawDown;
    await waitFor(() => svc.ready, { what: "ready again well before maxMs" });
  } finally {
    await nc.close();
  }
});

Deno.test("stop() drains the subscription: no more answers and not ready", async () => {
  await using ns = await NatsServer.start();
  const { logger } = recordingLogger();
  const nc = await service(ns.url, logger);
  const client = await connect({ servers: ns.url });
  try {
    const svc = serveCallout(nc, echo(), { subject: "test.auth", queue: "q", logger });
    await waitFor(() => svc.ready);
    assert.equal((await client.request("test.auth", "x")).string(), "echo:x");
    await svc.stop();
    assert.equal(svc.ready, false);
    await assert.rejects(client.request("test.auth", "y", { timeout: 1000 }));
  } finally {
    await client.close();
    await nc.close();
  }
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
