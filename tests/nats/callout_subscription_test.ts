/**
 * The callout subscription (lib/nats/callout_subscription.ts) on a real nats-server: requests
 * handled side by side, the queue membership back after a server restart, a drain on stop.
 */
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import type { CalloutHandler } from "../../lib/callout/handler.ts";
import { serveCallout } from "../../lib/nats/callout_subscription.ts";
import { connectNats } from "../../lib/nats/connection.ts";
import { createServiceMetrics } from "../../lib/telemetry/service_metrics.ts";
import { NatsServer } from "../support/nats_server.ts";
import { echo, recordingLogger, serviceConnection } from "../support/nats_service.ts";
import { waitFor } from "../support/wait.ts";

const te = new TextEncoder();
const td = new TextDecoder();

Deno.test("serveCallout handles requests concurrently and survives a failing message", async () => {
  await using ns = await NatsServer.start();
  const { logger, events } = recordingLogger();
  const nc = await serviceConnection(ns.url, logger);
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
  const nc = await serviceConnection(ns.url, logger, metrics);
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
  const nc = await serviceConnection(ns.url, logger);
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
