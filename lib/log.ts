/**
 * A small JSON-lines logger. One object per line with stable keys (`ts`, `level`, `event`, then the
 * caller's fields). Values under keys that name secrets are replaced before they are written, and
 * passwords inside URLs are masked, so a mistake at a call site cannot leak a token or a seed.
 *
 * @module
 */

/** Log levels, lowest first. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** Structured fields of one line. */
export type LogFields = Readonly<Record<string, unknown>>;

/** What every module logs through. Injected; there is no global logger. */
export interface Logger {
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger;
  /** Whether a line at `level` would be written (to skip building expensive fields). */
  enabled(level: LogLevel): boolean;
}

/** Options of {@linkcode createLogger}. */
export interface LoggerOptions {
  /** Lowest level written. @default {"info"} */
  level?: LogLevel;
  /** Where a finished line goes. @default {writes to stdout} */
  write?: (line: string) => void;
  /** Clock, for the `ts` field. @default {() => Date.now()} */
  now?: () => number;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Keys whose values are never written. */
const SECRET_KEY =
  /(token|seed|password|passwd|secret|creds|credential|authorization|^jwt$|^pass$)/i;

/** True when `value` is one of the four level names. */
export function isLogLevel(value: string): value is LogLevel {
  return Object.hasOwn(ORDER, value);
}

/**
 * Mask the password of a URL's userinfo (`nats://u:p@h` → `nats://u:***@h`). Comma-separated
 * server lists are handled one by one. Text that is not a URL is returned unchanged.
 *
 * @example
 * ```ts
 * import { redactUrl } from "./log.ts";
 * console.assert(redactUrl("nats://me:hunter2@nats:4222") === "nats://me:***@nats:4222");
 * ```
 */
export function redactUrl(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/[^:@/\s,]*):[^@/\s,]*@/gi, "$1:***@");
}

function redact(value: unknown, depth = 0): unknown {
  if (typeof value === "string") return redactUrl(value);
  if (value instanceof Error) {
    return {
      name: value.name,
      message: redactUrl(value.message),
      ...("code" in value ? { code: value.code } : {}),
    };
  }
  if (value === null || typeof value !== "object" || depth > 4) return value;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = SECRET_KEY.test(k) ? "[redacted]" : redact(v, depth + 1);
  }
  return out;
}

/**
 * Create a JSON-lines logger.
 *
 * @example
 * ```ts
 * import { createLogger } from "./log.ts";
 * const lines: string[] = [];
 * const log = createLogger({ level: "info", write: (l) => lines.push(l), now: () => 0 });
 * log.info("login_allowed", { namespace: "team-a", token: "eyJ..." });
 * console.assert(lines[0]!.includes('"token":"[redacted]"'));
 * ```
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const {
    level = "info",
    write = (line: string) => Deno.stdout.writeSync(new TextEncoder().encode(line + "\n")),
    now = () => Date.now(),
  } = options;
  return makeLogger(ORDER[level], write, now, {});
}

function makeLogger(
  min: number,
  write: (line: string) => void,
  now: () => number,
  base: LogFields,
): Logger {
  const emit = (lvl: LogLevel, event: string, fields?: LogFields): void => {
    if (ORDER[lvl] < min) return;
    const record = redact({ ...base, ...fields }) as Record<string, unknown>;
    let line: string;
    try {
      line = JSON.stringify({ ts: new Date(now()).toISOString(), level: lvl, event, ...record });
    } catch {
      line = JSON.stringify({
        ts: new Date(now()).toISOString(),
        level: lvl,
        event,
        unserializable: true,
      });
    }
    write(line);
  };
  return {
    debug: (e, f) => emit("debug", e, f),
    info: (e, f) => emit("info", e, f),
    warn: (e, f) => emit("warn", e, f),
    error: (e, f) => emit("error", e, f),
    child: (fields) => makeLogger(min, write, now, { ...base, ...fields }),
    enabled: (lvl) => ORDER[lvl] >= min,
  };
}

/** A logger that writes nothing, for tests and benchmarks. */
export function silentLogger(): Logger {
  return createLogger({ level: "error", write: () => {} });
}
