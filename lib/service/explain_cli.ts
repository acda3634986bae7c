/**
 * The `explain` command (`deno task explain`, the binary's `explain` subcommand): what a login
 * would get, from the service's own decision started from the service's own environment, without
 * connecting to NATS. See lib/operations/explain.ts.
 *
 * @module
 */
import { delay } from "../core/abort.ts";
import { type Config, ConfigError, loadConfig } from "../config/config.ts";
import { connectionType, parseServiceAccountRef } from "../operations/explain.ts";
import { createLogger, type Logger } from "../telemetry/log.ts";
import type { ExplainInput } from "../decision/login.ts";
import { type Service, startService } from "./service.ts";

/** Where {@linkcode runExplainCli} reads and writes; injected for tests. */
export interface ExplainIo {
  /** Reads a token file (`-` is stdin). */
  readTextFile(path: string): Promise<string>;
  /** Writes the JSON answer. */
  stdout(text: string): void;
  /** Writes usage errors and the service's warnings. */
  stderr(text: string): void;
}

const USAGE = `usage: explain <namespace>/<serviceaccount> [--connection-type TYPE]
       explain --token-file <file|-> [--connection-type TYPE]
Explains what a login would get, with the service's own decision and the same environment
(NATS_ACCOUNT, POLICY_FILE, JWKS_URL, KUBECONFIG, ...). The token is read from a file or stdin.
Exit status: 0 allowed, 1 refused, 2 usage or configuration problem.`;

const defaultIo: ExplainIo = {
  readTextFile: async (path) => {
    if (path !== "-") return await Deno.readTextFile(path);
    return await new Response(Deno.stdin.readable).text();
  },
  stdout: (text) => Deno.stdout.writeSync(new TextEncoder().encode(text)),
  stderr: (text) => Deno.stderr.writeSync(new TextEncoder().encode(text)),
};

/**
 * The `explain` command: parse `args`, start the service without NATS from `env`, wait until it
 * can decide (ServiceAccounts synced, keys loaded; at most `timeoutMs`), print the explanation.
 * Resolves to the exit status.
 *
 * @example
 * ```ts ignore
 * Deno.exit(await runExplainCli(Deno.args.slice(1), Deno.env.toObject()));
 * ```
 */
export async function runExplainCli(
  args: readonly string[],
  env: Readonly<Record<string, string>>,
  options: { io?: ExplainIo; timeoutMs?: number } = {},
): Promise<number> {
  const { io = defaultIo, timeoutMs = 30_000 } = options;
  const input = await explainInput(args, io);
  if (typeof input === "number") return input;
  let config;
  try {
    config = loadConfig(env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    io.stderr(`explain: ${err.message}\n`);
    return 2;
  }
  const logger = createLogger({ level: "warn", write: (line) => io.stderr(line + "\n") });
  await using service = await startOrReport(config, logger, io);
  if (service === undefined) return 2;
  return await explainWhenReady(service, input, { io, timeoutMs });
}

/**
 * What to explain, from the arguments (and the token file they name); or the exit status after
 * `--help` or a usage problem.
 */
async function explainInput(
  args: readonly string[],
  io: ExplainIo,
): Promise<ExplainInput | number> {
  let ref: string | undefined;
  let tokenFile: string | undefined;
  let type: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--token-file" && args[i + 1] !== undefined) tokenFile = args[++i];
    else if (arg === "--connection-type" && args[i + 1] !== undefined) type = args[++i];
    else if (arg === "-h" || arg === "--help") {
      io.stdout(USAGE + "\n");
      return 0;
    } else if (!arg.startsWith("-") && ref === undefined) ref = arg;
    else {
      io.stderr(`explain: unexpected argument ${JSON.stringify(arg)}\n${USAGE}\n`);
      return 2;
    }
  }
  const sa = ref === undefined ? undefined : parseServiceAccountRef(ref);
  const ct = connectionType(type);
  if ((ref === undefined) === (tokenFile === undefined) || (ref !== undefined && !sa)) {
    io.stderr(`explain: give one <namespace>/<serviceaccount> or --token-file\n${USAGE}\n`);
    return 2;
  }
  if (ct instanceof Error) {
    io.stderr(`explain: ${ct.message}\n`);
    return 2;
  }
  if (sa) return { ...sa, ...(ct ? { connectionType: ct } : {}) };
  let token: string;
  try {
    token = (await io.readTextFile(tokenFile!)).trim();
  } catch (err) {
    io.stderr(`explain: cannot read the token file ${JSON.stringify(tokenFile)}: ${err}\n`);
    return 2;
  }
  return { token, ...(ct ? { connectionType: ct } : {}) };
}

/** The service without NATS, or undefined after saying why it cannot start. */
async function startOrReport(
  config: Config,
  logger: Logger,
  io: ExplainIo,
): Promise<Service | undefined> {
  try {
    return await startService({ config, logger, nats: false });
  } catch (err) {
    io.stderr(`explain: ${err instanceof Error ? err.message : String(err)}\n`);
    return undefined;
  }
}

/**
 * Wait until `service` can decide (at most `timeoutMs`), then print the explanation of `input`;
 * the exit status: 0 allowed, 1 refused, 2 when the service could not get ready.
 */
async function explainWhenReady(
  service: Service,
  input: ExplainInput,
  options: { io: ExplainIo; timeoutMs: number },
): Promise<number> {
  const { io, timeoutMs } = options;
  const deadline = Date.now() + timeoutMs;
  let failure: Error | undefined;
  void service.failed.then((err) => failure = err);
  while (!(service.ready && service.login) && !failure && Date.now() < deadline) {
    await delay(50);
  }
  if (failure) {
    io.stderr(`explain: ${failure.message}\n`);
    return 2;
  }
  const login = service.login;
  if (!service.ready || !login) {
    const res = await service.handler(new Request("http://explain/readyz"));
    io.stderr(`explain: the service could not get ready: ${await res.text()}\n`);
    return 2;
  }
  const answer = await login.explain(input);
  io.stdout(JSON.stringify(answer, null, 2) + "\n");
  return answer.allowed ? 0 : 1;
}
