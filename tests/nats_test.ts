import assert from "node:assert/strict";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { createLogger, type Logger } from "../lib/log.ts";
import type { CalloutHandler } from "../lib/callout.ts";
import { connectNats, guardSocketResets, liftUrlCredentials, serveCallout } from "../lib/nats.ts";
import { createServiceMetrics, type ServiceMetrics } from "../lib/service_metrics.ts";
import { NatsServer } from "./support/nats_server.ts";
import { waitFor } from "./support/wait.ts";

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
  const logger = createLogger({ level: "warn", write: (l) => lines.push(l) });
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
