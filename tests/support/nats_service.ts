/**
 * The service's NATS connection as the connection and subscription tests make it: a recording
 * logger, an echoing handler, and {@linkcode connectNats} with a short backoff.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { CalloutHandler } from "../../lib/callout/handler.ts";
import { connectNats } from "../../lib/nats/connection.ts";
import { createLogger, type Logger } from "../../lib/telemetry/log.ts";
import { createServiceMetrics, type ServiceMetrics } from "../../lib/telemetry/service_metrics.ts";

const te = new TextEncoder();
const td = new TextDecoder();

/** A debug logger keeping its lines; `events()` lists their `event` fields in order. */
export function recordingLogger(): { logger: Logger; lines: string[]; events: () => string[] } {
  const lines: string[] = [];
  const logger = createLogger({ level: "debug", write: (l) => lines.push(l) });
  return { logger, lines, events: () => lines.map((l) => JSON.parse(l).event) };
}

/** A handler answering `echo:<request>`. */
export function echo(): CalloutHandler {
  return (data) => Promise.resolve(te.encode(`echo:${td.decode(data)}`));
}

/** The service's connection to `url`, reconnecting every 50–200 ms. */
export async function serviceConnection(
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
