/**
 * One log line when the service starts answering logins (`ready`) and one when it stops being
 * able to (`not_ready`, naming the failing checks), so an operator reading logs alone sees the
 * same transitions `/readyz` shows. Polls the readiness checks (cheap, synchronous) on a short
 * interval; it owns no state of the service and changes nothing, only reports.
 *
 * @module
 */
import type { ReadinessCheck } from "./http.ts";
import type { Logger } from "../telemetry/log.ts";

/** Options of {@linkcode watchReadiness}. */
export interface ReadinessLogOptions {
  /** Receives the `ready` (info) and `not_ready` (warn) lines. */
  logger: Logger;
  /** Stops the watcher; when it aborts after `ready`, a last `not_ready` line says "stopping". */
  signal: AbortSignal;
  /** How often the checks are read. @default {500} */
  intervalMs?: number;
}

/**
 * Watch `checks` and log each transition between ready and not ready. The first line is `ready`
 * (info) once every check passes; after that, `not_ready` (warn, `failing`: the names) and
 * `ready` again alternate.
 *
 * @example
 * ```ts
 * import { watchReadiness } from "./readiness_log.ts";
 * import { silentLogger } from "../telemetry/log.ts";
 * const stop = new AbortController();
 * watchReadiness([{ name: "nats", ready: () => true }], { logger: silentLogger(), signal: stop.signal });
 * stop.abort();
 * ```
 */
export function watchReadiness(
  checks: readonly ReadinessCheck[],
  options: ReadinessLogOptions,
): void {
  const { logger, signal, intervalMs = 500 } = options;
  if (signal.aborted) return;
  let ready = false;
  let since = performance.now();
  const failingNow = (): string[] =>
    checks.filter((c) => {
      try {
        return c.ready() !== true;
      } catch {
        return true;
      }
    }).map((c) => c.name);
  const tick = () => {
    const failing = failingNow();
    const now = failing.length === 0;
    if (now === ready) return;
    const after_ms = Math.round(performance.now() - since);
    since = performance.now();
    ready = now;
    if (ready) logger.info("ready", { after_ms });
    else logger.warn("not_ready", { failing, after_ms });
  };
  const timer = setInterval(tick, intervalMs);
  Deno.unrefTimer(timer);
  tick();
  signal.addEventListener("abort", () => {
    clearInterval(timer);
    if (ready) logger.info("not_ready", { failing: ["stopping"] });
  }, { once: true });
}
