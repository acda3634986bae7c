/**
 * `deno task token <namespace>/<serviceaccount>`: mint a dev ServiceAccount token with the key of
 * `deno task dev`, for the `nats` CLI or your own client. The token goes to stdout alone, so
 * `--token "$(deno task token team-a/orders)"` works; messages go to stderr.
 *
 * ```sh
 * deno task token team-a/orders                         # audience nats, valid 1h
 * deno task token team-b/billing --lifetime 10m --audience nats --audience other
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { DevTokenError, mintDevToken } from "./issuer.ts";
import { parseDuration } from "../lib/core/duration.ts";
import { DEFAULT_STATE_DIR, DevStateError, openDevTokenState } from "./state.ts";

/** Usage text of the command. */
export const TOKEN_USAGE = `Usage: deno task token <namespace>/<serviceaccount> [options]

Mint a ServiceAccount token signed with the dev key, like the kubelet projects into a pod.
The ServiceAccount must be in the dev ServiceAccounts file (its UID is copied from there).

Options:
  --audience, -a <aud>     audience (repeat for several)          default: nats
  --lifetime, -l <dur>     lifetime as a Go duration (10m, 1h)    default: 1h
  --state-dir <dir>        dev state directory (env DEV_STATE_DIR) default: ${DEFAULT_STATE_DIR}
  --help, -h               show this text
`;

/** Where {@linkcode runTokenCommand} writes; injected so tests can capture it. */
export interface TokenCommandIo {
  /** Receives the token line. */
  stdout(text: string): void;
  /** Receives usage and error messages. */
  stderr(text: string): void;
  /** `DEV_STATE_DIR`, if set. */
  stateDir?: string;
  /** Clock in milliseconds. @default {() => Date.now()} */
  now?: () => number;
}

/**
 * Run the `token` command with `args` (without the program name). Resolves to the exit status:
 * 0 with the token written, 1 when minting failed (no state yet, unknown ServiceAccount), 2 for
 * wrong usage.
 *
 * @example
 * ```ts ignore
 * import { runTokenCommand } from "./token.ts";
 * const out: string[] = [];
 * const code = await runTokenCommand(["team-a/orders", "--lifetime", "10m"], {
 *   stdout: (t) => out.push(t),
 *   stderr: () => {},
 * });
 * ```
 */
export async function runTokenCommand(
  args: readonly string[],
  io: TokenCommandIo,
): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      allowPositionals: true,
      options: {
        audience: { type: "string", short: "a", multiple: true },
        lifetime: { type: "string", short: "l" },
        "state-dir": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    io.stderr(`${err instanceof Error ? err.message : err}\n\n${TOKEN_USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.stdout(TOKEN_USAGE);
    return 0;
  }
  if (positionals.length !== 1) {
    io.stderr(
      `expected one <namespace>/<serviceaccount>, got ${positionals.length}\n\n${TOKEN_USAGE}`,
    );
    return 2;
  }
  let lifetimeSeconds = 3600;
  if (values.lifetime !== undefined) {
    let ms = NaN;
    try {
      ms = parseDuration(values.lifetime);
    } catch {
      // reported below
    }
    if (!(ms >= 1000)) {
      io.stderr(
        `--lifetime: "${values.lifetime}" is not a duration of at least 1s (e.g. 10m, 1h)\n`,
      );
      return 2;
    }
    lifetimeSeconds = Math.floor(ms / 1000);
  }
  const audience = values.audience ?? ["nats"];
  if (audience.some((a) => a.trim() === "")) {
    io.stderr("--audience: must not be empty\n");
    return 2;
  }
  const stateDir = values["state-dir"] ?? io.stateDir ?? DEFAULT_STATE_DIR;
  try {
    const state = await openDevTokenState(stateDir);
    const token = await mintDevToken(positionals[0]!, {
      keyFile: state.signingKeyFile,
      serviceAccountsFile: state.serviceAccountsFile,
      issuer: state.issuer,
      audience,
      lifetimeSeconds,
      ...(io.now ? { now: io.now } : {}),
    });
    io.stdout(token + "\n");
    return 0;
  } catch (err) {
    if (err instanceof DevTokenError || err instanceof DevStateError) {
      io.stderr(`token: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

function writeAllSync(file: { writeSync(p: Uint8Array): number }, text: string): void {
  const bytes = new TextEncoder().encode(text);
  for (let off = 0; off < bytes.length;) off += file.writeSync(bytes.subarray(off));
}

if (import.meta.main) {
  const stateDir = Deno.env.get("DEV_STATE_DIR");
  Deno.exit(
    await runTokenCommand(Deno.args, {
      stdout: (t) => writeAllSync(Deno.stdout, t),
      stderr: (t) => writeAllSync(Deno.stderr, t),
      ...(stateDir ? { stateDir } : {}),
    }),
  );
}
