/**
 * Entry point: answer `--help`/`--version`, else read the environment once, start the service,
 * serve HTTP, resync on SIGHUP, stop cleanly on SIGTERM or SIGINT. No logic lives here; see
 * lib/config/cli.ts for the flags and lib/service/service.ts for the wiring.
 *
 * The process owns the service and the HTTP server through one `AsyncDisposableStack`, like
 * start-up owns its parts: whatever has started is released, in reverse order, on every way out.
 *
 * @module
 */
import { type CliCommand, parseCli } from "./lib/config/cli.ts";
import { type Config, ConfigError, describeConfig, loadConfig } from "./lib/config/config.ts";
import { runExplainCli } from "./lib/service/explain_cli.ts";
import { createLogger, type Logger } from "./lib/telemetry/log.ts";
import { guardSocketResets } from "./lib/nats/connection.ts";
import { type Service, startService } from "./lib/service/service.ts";
import { VERSION } from "./lib/core/version.ts";

const SHUTDOWN_DEADLINE_MS = 15_000;

async function main(): Promise<number> {
  if (Deno.args[0] === "explain") {
    return await runExplainCli(Deno.args.slice(1), Deno.env.toObject());
  }
  const command = parseCli(Deno.args);
  if (command.kind !== "run") return answer(command);
  const config = readConfig();
  return config === undefined ? 2 : await run(config);
}

/** `--help`, `--version` or a usage error: print its text; the exit status. */
function answer(command: Exclude<CliCommand, { kind: "run" }>): number {
  const out = command.kind === "usage_error" ? Deno.stderr : Deno.stdout;
  const bytes = new TextEncoder().encode(command.text);
  for (let off = 0; off < bytes.length;) off += out.writeSync(bytes.subarray(off));
  return command.kind === "usage_error" ? 2 : 0;
}

/** The configuration from the environment, or undefined after one `config_invalid` line. */
function readConfig(): Config | undefined {
  try {
    return loadConfig(Deno.env.toObject());
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    createLogger({
      write: (line) => Deno.stderr.writeSync(new TextEncoder().encode(line + "\n")),
    })
      .error("config_invalid", { message: err.message, problems: err.problems });
    return undefined;
  }
}

/**
 * Run the service until SIGTERM, SIGINT or a start-up problem found later; the exit status: 0
 * after a signal, 2 for a problem no retry can fix (1 comes from the shutdown deadline).
 */
async function run(config: Config): Promise<number> {
  const logger = createLogger({ level: config.logLevel });
  logger.info("starting", { version: VERSION, config: describeConfig(config) });
  // Released in reverse order on every way out of this function.
  await using owned = new AsyncDisposableStack();
  owned.use(guardSocketResets(logger));
  // The HTTP server's place, before the service's: released after it, so /readyz and /metrics
  // answer while the service drains NATS.
  const http = owned.use(new AsyncDisposableStack());

  const service = await startOrReport(config, logger);
  if (service === undefined) return 2;
  owned.use(service);
  const server = listen(config, service, logger);
  if (server === undefined) return 2;
  http.defer(() => server.shutdown());

  Deno.addSignalListener("SIGHUP", () => service.resync("SIGHUP"));
  const reason = await stopReason(service, logger);
  logger.info("shutting_down", { signal: reason });
  {
    using _deadline = shutdownDeadline(logger);
    await owned.disposeAsync();
  }
  logger.info("stopped");
  return reason === "startup_failed" ? 2 : 0;
}

/** The started service, or undefined after `startup_failed`. */
async function startOrReport(config: Config, logger: Logger): Promise<Service | undefined> {
  try {
    return await startService({ config, logger, version: VERSION });
  } catch (err) {
    // Only problems no retry can fix get here (an unreadable JWKS file, kubeconfig or cluster CA).
    logger.error("startup_failed", { error: err });
    return undefined;
  }
}

/** The HTTP server on `PORT`, or undefined after `startup_failed` (a port in use or not allowed). */
function listen(config: Config, service: Service, logger: Logger): Deno.HttpServer | undefined {
  try {
    return Deno.serve({
      port: config.port,
      hostname: "0.0.0.0",
      onListen: ({ port }) => logger.info("http_listening", { port }),
    }, service.handler);
  } catch (err) {
    // A port in use or not allowed is a configuration problem, like a bad PORT value.
    logger.error("startup_failed", { error: `PORT ${config.port}: ${(err as Error).message}` });
    return undefined;
  }
}

/** Wait for SIGTERM or SIGINT, or a start-up problem found after start (logged here). */
async function stopReason(service: Service, logger: Logger): Promise<string> {
  const stop = Promise.withResolvers<string>();
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(sig, () => stop.resolve(sig));
  }
  return await Promise.race([
    stop.promise,
    service.failed.then((err) => {
      logger.error("startup_failed", { error: err.message });
      return "startup_failed";
    }),
  ]);
}

/** Exit 1 with `shutdown_timeout` unless disposed within {@linkcode SHUTDOWN_DEADLINE_MS}. */
function shutdownDeadline(logger: Logger): Disposable {
  const deadline = setTimeout(() => {
    logger.error("shutdown_timeout", { deadline_ms: SHUTDOWN_DEADLINE_MS });
    Deno.exit(1);
  }, SHUTDOWN_DEADLINE_MS);
  return { [Symbol.dispose]: () => clearTimeout(deadline) };
}

if (import.meta.main) {
  Deno.exit(await main());
}
