/** The `ready`/`not_ready` transition lines of lib/operations/readiness_log.ts. */
import assert from "node:assert/strict";
import { createLogger } from "../../lib/telemetry/log.ts";
import { watchReadiness } from "../../lib/operations/readiness_log.ts";
import { waitFor } from "../support/wait.ts";

Deno.test("readiness log: one line per transition, naming the failing checks, and one at stop", async () => {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ level: "debug", write: (l) => lines.push(JSON.parse(l)) });
  let nats = false;
  let keys = true;
  const stop = new AbortController();
  watchReadiness([
    { name: "nats", ready: () => nats },
    { name: "keys", ready: () => keys },
    {
      name: "boom",
      ready: () => (nats && !keys
        ? (() => {
          throw new Error("x");
        })()
        : true),
    },
  ], { logger, signal: stop.signal, intervalMs: 10 });
  const events = () =>
    lines.map((l) => `${l.level}:${l.event}:${(l.failing as string[] ?? []).join("+")}`);

  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(events(), [], "not ready at start is not news");
  nats = true;
  await waitFor(() => lines.length === 1, { what: "ready" });
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(events(), ["info:ready:"], "one line while it stays ready");
  keys = false;
  await waitFor(() => lines.length === 2, { what: "not_ready" });
  assert.deepEqual(events()[1], "warn:not_ready:keys+boom", "a throwing check counts as failing");
  keys = true;
  await waitFor(() => lines.length === 3, { what: "ready again" });
  stop.abort();
  assert.deepEqual(events(), [
    "info:ready:",
    "warn:not_ready:keys+boom",
    "info:ready:",
    "info:not_ready:stopping",
  ]);
  assert.equal(typeof lines[1]!.after_ms, "number");
});
