/**
 * A small JSON-lines logger. One object per line with stable keys (`ts`, `level`, `event`, then the
 * caller's fields). Values under keys that name secrets are replaced before they are written, and
 * the userinfo of URLs (passwords and bare tokens) is masked, so a mistake at a call site cannot
 * leak a token or a seed.
 *
 * Why not pino: bench/log_bench.ts (it needs extra permissions to load, redacts by path only, and
 * is 2.4× slower per line with that redaction).
 *
 * @module
 */

/** Log levels, lowest first. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** Structured fields of one line. */
export type LogFields = Readonly<Record<string, unknown>>;

/** What every module logs through. Injected; there is no global logger. */
export interface Logger {
  /** Detail, written only at level `debug`; `event` is a stable snake_case name. */
  debug(event: string, fields?: LogFields): void;
  /** A normal state change or decision (connected, synced, a login allowed). */
  info(event: string, fields?: LogFields): void;
  /** Something refused or degraded that the service rides out (a denial, a lost connection). */
  warn(event: string, fields?: LogFields): void;
  /** A failure an operator must look at, or a bug (`internal_error`). */
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
 * Mask the userinfo of every URL in `text`, in each form a NATS or HTTP client accepts:
 * `nats://user:pass@h` → `nats://user:***@h`, and `nats://token@h` (a bare token, which nats.js and
 * our connection code send as `auth_token`, or a user name that may be one) → `nats://***@h`.
 * Comma-separated server lists are handled one by one. As in the WHATWG URL parser, the userinfo
 * ends at the last `@` before the first `/`, `?` or `#`, so a secret holding a second `@` is masked
 * whole; an `@` in a path (`https://h/a@b`) is not userinfo. Text that is not a URL is returned
 * unchanged.
 *
 * @example
 * ```ts
 * import { redactUrl } from "./log.ts";
 * console.assert(redactUrl("nats://me:hunter2@nats:4222") === "nats://me:***@nats:4222");
 * console.assert(redactUrl("nats://s3cr3t@nats:4222") === "nats://***@nats:4222");
 * ```
 */
export function redactUrl(text: string): string {
  // The pattern needs both; most strings have neither, and `includes` is far cheaper than a scan.
  if (!text.includes("@") || !text.includes("://")) return text;
  return text.replace(URL_USERINFO, maskUserinfo);
}

/** A URL's scheme and its userinfo: after `://`, up to the authority's last `@`. */
const URL_USERINFO = /([a-z][a-z0-9+.-]*:\/\/)([^\s,/?#"'<>]*)@/gi;

function maskUserinfo(_match: string, scheme: string, userinfo: string): string {
  const colon = userinfo.indexOf(":");
  // A user name before a colon is kept (operators check it against the server); a bare name may
  // be a token and is masked whole.
  if (colon > 0 && !userinfo.slice(0, colon).includes("@")) {
    return `${scheme}${userinfo.slice(0, colon)}:***@`;
  }
  return `${scheme}***@`;
}

const MAX_DEPTH = 4;

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * `value` with secret-named keys replaced and URL passwords masked, down to depth 4. Copy on write:
 * what needs no change is returned as is (the usual case, so a line costs no deep copy). Errors
 * become `{name, message, code}`; other non-plain objects are copied from their own enumerable
 * properties, so nothing reaches `JSON.stringify` with a `toJSON` of its own (a `URL` would print
 * its password).
 */
function redact(value: unknown, depth: number, secretKey: (key: string) => boolean): unknown {
  if (typeof value === "string") return redactUrl(value);
  if (value instanceof Error) {
    return {
      name: value.name,
      message: redactUrl(value.message),
      ...("code" in value ? { code: value.code } : {}),
    };
  }
  if (value === null || typeof value !== "object" || depth > MAX_DEPTH) return value;
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      const r = redact(v, depth + 1, secretKey);
      if (r !== v && out === undefined) out = value.slice(0, i);
      out?.push(r);
    }
    return out ?? value;
  }
  const plain = isPlainObject(value);
  let out: Record<string, unknown> | undefined = plain ? undefined : {};
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    const v = record[k];
    const r = secretKey(k) ? REDACTED : redact(v, depth + 1, secretKey);
    if (r !== v && out === undefined) {
      out = {};
      for (let j = 0; j < i; j++) out[keys[j]!] = record[keys[j]!];
    }
    if (out !== undefined) out[k] = r;
  }
  return out ?? value;
}

const REDACTED = "[redacted]";

/** Most distinct keys whose verdict a logger remembers (log keys come from code; a handful). */
const SECRET_KEY_MEMO = 1024;

/** `SECRET_KEY.test`, remembered per key. */
function secretKeyTest(): (key: string) => boolean {
  const memo = new Map<string, boolean>();
  return (key) => {
    let secret = memo.get(key);
    if (secret === undefined) {
      secret = SECRET_KEY.test(key);
      if (memo.size < SECRET_KEY_MEMO) memo.set(key, secret);
    }
    return secret;
  };
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
    write = stdoutWriter(),
    now = () => Date.now(),
  } = options;
  return makeLogger(ORDER[level], write, now, {}, secretKeyTest());
}

function makeLogger(
  min: number,
  write: (line: string) => void,
  now: () => number,
  base: LogFields,
  secretKey: (key: string) => boolean,
): Logger {
  const hasBase = Object.keys(base).length > 0;
  const emit = (lvl: LogLevel, event: string, fields?: LogFields): void => {
    if (ORDER[lvl] < min) return;
    const merged = hasBase ? { ...base, ...fields } : fields ?? {};
    const record = redact(merged, 0, secretKey) as Record<string, unknown>;
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
    child: (fields) => makeLogger(min, write, now, { ...base, ...fields }, secretKey),
    enabled: (lvl) => ORDER[lvl] >= min,
  };
}

/**
 * Writes each line to stdout at once, whole: unbuffered, so no line is lost when the process
 * exits (`Deno.exit` after shutdown, a signal), at the cost of one write call per line.
 */
function stdoutWriter(): (line: string) => void {
  const encoder = new TextEncoder();
  return (line) => {
    const bytes = encoder.encode(line + "\n");
    for (let off = 0; off < bytes.length;) off += Deno.stdout.writeSync(bytes.subarray(off));
  };
}

/** A logger that writes nothing, for tests and benchmarks. */
export function silentLogger(): Logger {
  return createLogger({ level: "error", write: () => {} });
}
