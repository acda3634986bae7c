/**
 * Entry point: answer `--help`/`--version`, else read the environment once, start the service,
 * serve HTTP, resync on SIGHUP, stop cleanly on SIGTERM or SIGINT. No logic lives here; see
 * lib/config/cli.ts for the flags and lib/service/service.ts for the wiring.
 *
 * @module
 */
import { parseCli } from "./lib/config/cli.ts";
import { ConfigError, describeConfig, loadConfig } from "./lib/config/config.ts";
import { runExplainCli } from "./lib/service/explain_cli.ts";
import { createLogger } from "./lib/telemetry/log.ts";
import { guardSocketResets } from "./lib/nats/connection.ts";
import { startService } from "./lib/service/service.ts";
import { VERSION } from "./lib/core/version.ts";

const SHUTDOWN_DEADLINE_MS = 15_000;

async function main(): Promise<number> {
  if (Deno.args[0] === "explain") {
    return await runExplainCli(Deno.args.slice(1), Deno.env.toObject());
  }
  const command = parseCli(Deno.args);
  if (command.kind !== "run") {
    const out = command.kind === "usage_error" ? Deno.stderr : Deno.stdout;
    const bytes = new TextEncoder().encode(command.text);
    for (let off = 0; off < bytes.length;) off += out.writeSync(bytes.subarray(off));
    return command.kind === "usage_error" ? 2 : 0;
  }
  let config;
  try {
    config = loadConfig(Deno.env.toObject());
  } catch (err) {
    if (err instanceof ConfigError) {
      createLogger({
        write: (line) => Deno.stderr.writeSync(new TextEncoder().encode(line + "\n")),
      })
        .error("config_invalid", { message: err.message, problems: err.problems });
      return 2;
    }
    throw err;
  }
  const logger = createLogger({ level: config.logLevel });
  logger.info("starting", { version: VERSION, config: describeConfig(config) });
  using _socketGuard = guardSocketResets(logger);

  let service;
  try {
    service = await startService({ config, logger, version: VERSION });
  } catch (err) {
    // Only problems no retry can fix get here (an unreadable JWKS file, kubeconfig or cluster CA).
    logger.error("startup_failed", { error: err });
    return 2;
  }
  let server;
  try {
    server = Deno.serve({
      port: config.port,
      hostname: "0.0.0.0",
      onListen: ({ port }) => logger.info("http_listening", { port }),
    }, service.handler);
  } catch (err) {
    // A port in use or not allowed is a configuration problem, like a bad PORT value.
    logger.error("startup_failed", { error: `PORT ${config.port}: ${(err as Error).message}` });
    await service.close();
    return 2;
  }

  Deno.addSignalListener("SIGHUP", () => service.resync("SIGHUP"));
  const stop = Promise.withResolvers<string>();
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(sig, () => stop.resolve(sig));
  }
  const signal = await Promise.race([
    stop.promise,
    service.failed.then((err) => {
      logger.error("startup_failed", { error: err.message });
      return "startup_failed";
    }),
  ]);
  logger.info("shutting_down", { signal });

  const deadline = setTimeout(() => {
    logger.error("shutdown_timeout", { deadline_ms: SHUTDOWN_DEADLINE_MS });
    Deno.exit(1);
  }, SHUTDOWN_DEADLINE_MS);
  await service.close();
  await server.shutdown();
  clearTimeout(deadline);
  logger.info("stopped");
  return signal === "startup_failed" ? 2 : 0;
}

if (import.meta.main) {
  Deno.exit(await main());
}
