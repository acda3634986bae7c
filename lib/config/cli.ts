/**
 * Command-line flags of the service entry (`main.ts`, and the compiled binary, which has the same
 * entry). The service is configured by environment variables only; the command line has just
 * `--help` and `--version`, both answered without any configuration, so an operator can ask a
 * container image what it is before writing a single variable.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { CONFIG_ENV_VARS } from "./variables.ts";
import { PROGRAM, VERSION } from "../core/version.ts";

/** What the command line asks for. `text` goes to stdout (help, version) or stderr (usage). */
export type CliCommand =
  | { readonly kind: "run" }
  | { readonly kind: "help"; readonly text: string }
  | { readonly kind: "version"; readonly text: string }
  | { readonly kind: "usage_error"; readonly text: string };

/** Runtime versions shown by `--version`. @default {Deno.version} */
export interface RuntimeVersions {
  /** The runtime's release, e.g. `2.9.6` (`deno …` in the line). */
  readonly deno: string;
  /** The V8 engine's version it embeds (`v8 …`). */
  readonly v8: string;
  /** The TypeScript version it checks with (`typescript …`). */
  readonly typescript: string;
}

/**
 * Parse the command line. Never throws: an unknown flag or a positional argument is a
 * `usage_error` whose text names it and shows the usage.
 *
 * @example
 * ```ts
 * import { parseCli } from "./cli.ts";
 * console.assert(parseCli([]).kind === "run");
 * console.assert(parseCli(["--version"]).kind === "version");
 * console.assert(parseCli(["--nope"]).kind === "usage_error");
 * ```
 */
export function parseCli(
  args: readonly string[],
  runtime: RuntimeVersions = Deno.version,
): CliCommand {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: {
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "V" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return { kind: "usage_error", text: `${PROGRAM}: ${message}\n\n${usage()}` };
  }
  if (values.help) return { kind: "help", text: helpText() };
  if (values.version) return { kind: "version", text: versionText(runtime) };
  return { kind: "run" };
}

/** `--version`: the program's version and the runtime it was built with, one line. */
export function versionText(runtime: RuntimeVersions = Deno.version): string {
  return `${PROGRAM} ${VERSION} (deno ${runtime.deno}, v8 ${runtime.v8}, typescript ${runtime.typescript})\n`;
}

function usage(): string {
  return `Usage: ${PROGRAM} [--help | --version]\n`;
}

/** `--help`: what the program is, its flags, signals, endpoints and every variable it reads. */
export function helpText(): string {
  const vars = wrap(CONFIG_ENV_VARS.join(" "), 96, "  ");
  return `${PROGRAM} ${VERSION}: NATS auth callout that logs Kubernetes workloads in to NATS with
their ServiceAccount tokens.

${usage()}
Options:
  -h, --help     Show this help and exit.
  -V, --version  Show the version and exit.

Configuration is read from environment variables only (required: NATS_ACCOUNT,
NATS_SIGNING_KEY_FILE); a bad value stops the start with one message naming every problem.
Variables read:
${vars}
See docs/configuration.md for each one's meaning and default.

Signals: SIGTERM/SIGINT drain and stop; SIGHUP relists ServiceAccounts and refetches keys now.
HTTP (PORT, default 8080): GET /healthz, /readyz, /metrics; POST /resync (as SIGHUP).
Exit status: 0 after a clean stop, 2 for bad configuration or a failed start.
`;
}

function wrap(text: string, width: number, indent: string): string {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line && (line.length + 1 + word.length) > width) {
      lines.push(indent + line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(indent + line);
  return lines.join("\n");
}
