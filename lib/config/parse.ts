/**
 * The generic parsing of configuration values: booleans the way Go's `strconv.ParseBool` spells
 * them, port numbers, Go durations with bounds, comma-separated lists, NATS server and http(s)
 * URLs, DNS labels. Each check says *why* a value cannot be used, in words that follow the
 * variable's name on a problem line (`PORT: "abc" is not a port number (1-65535)`), and never
 * echoes a secret: values are quoted with {@linkcode show}, URLs with their userinfo masked.
 *
 * @module
 */
import { formatDuration, parseDuration } from "../core/duration.ts";

/**
 * The environment as `loadConfig`'s steps read it, and where they report. Values are trimmed and
 * an empty value counts as unset, like the reference.
 */
export interface EnvReader {
  /** The value of `name`; undefined when it is unset or empty. */
  get(name: string): string | undefined;
  /**
   * The value of `name`, else its default from the schema (lib/config/variables.ts).
   *
   * @throws {TypeError} when `name` is unset and has no default (a bug in the caller)
   */
  getOrDefault(name: string): string;
  /** The default of `name` from the schema; undefined when it has none. */
  defaultOf(name: string): string | undefined;
  /** Record one problem, `VARIABLE: what is wrong`. */
  problem(text: string): void;
}

/** Quote a user-supplied (non-secret) value for a problem line, shortened if long. */
export function show(value: string): string {
  return JSON.stringify(value.length > 80 ? value.slice(0, 77) + "..." : value);
}

/** Go's `strconv.ParseBool` spellings, which the reference accepts. */
const GO_TRUE = new Set(["1", "t", "T", "TRUE", "true", "True"]);
const GO_FALSE = new Set(["0", "f", "F", "FALSE", "false", "False"]);

/**
 * Read boolean variable `name` (its default when unset) in Go's spellings. Anything else is a
 * problem, not a silent default; the default is returned then, so the checks that depend on this
 * value judge the others as if it were unset (`loadConfig` throws before any value is used).
 */
export function boolVar(env: EnvReader, name: string): boolean {
  const raw = env.getOrDefault(name);
  if (GO_TRUE.has(raw)) return true;
  if (GO_FALSE.has(raw)) return false;
  env.problem(`${name}: ${show(raw)} is not a boolean (true or false)`);
  return GO_TRUE.has(env.defaultOf(name) ?? "");
}

/** Bounds of a duration variable, in milliseconds. */
export interface DurationBounds {
  /** The shortest duration accepted. */
  readonly min: number;
  /** The longest duration accepted. @default {unbounded} */
  readonly max?: number;
}

/**
 * Read duration variable `name` (its default when unset) as a Go duration ("90s", "1h30m") in
 * milliseconds, within `bounds`. A malformed or out-of-bounds value is a problem, not a silent
 * default (`loadConfig` throws before any value is used); a malformed one reads as the default, or
 * 0 without one.
 */
export function durationVar(env: EnvReader, name: string, bounds: DurationBounds): number {
  const raw = env.getOrDefault(name);
  let ms: number;
  try {
    ms = parseDuration(raw);
  } catch {
    env.problem(`${name}: ${show(raw)} is not a duration (e.g. "90s", "15m", "1h30m")`);
    const fallback = env.defaultOf(name);
    return fallback === undefined ? 0 : parseDuration(fallback);
  }
  if (ms < bounds.min) {
    env.problem(`${name}: ${show(raw)} is below the minimum of ${formatDuration(bounds.min)}`);
  } else if (bounds.max !== undefined && ms > bounds.max) {
    env.problem(`${name}: ${show(raw)} is above the maximum of ${formatDuration(bounds.max)}`);
  }
  return ms;
}

/** Whether `text` is a TCP port number, 1–65535, in decimal digits only. */
export function isPortNumber(text: string): boolean {
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  return Number.isInteger(n) && n >= 1 && n <= 65535;
}

/** The entries of a comma-separated list, each trimmed (empty entries kept, for the caller to refuse). */
export function splitList(text: string): string[] {
  return text.split(",").map((entry) => entry.trim());
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** Whether `text` is an RFC 1123 label (a Kubernetes namespace name). */
export function isDnsLabel(text: string): boolean {
  return DNS_LABEL.test(text);
}

/**
 * A NATS_URL entry (or any URL that may carry a secret) for a problem line: a malformed entry may
 * hold a token anywhere before its last `@` (with or without a scheme, with whitespace), so all of
 * that is masked, not only what `redactUrl` recognizes as a URL's userinfo.
 */
export function maskServerEntry(entry: string): string {
  const at = entry.lastIndexOf("@");
  if (at < 0) return entry;
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(entry)?.[0] ?? "";
  return `${scheme}***@${entry.slice(at + 1)}`;
}

/**
 * Why one NATS server entry (`nats://host:port`, `tls://host:port` or a bare `host:port`) cannot be
 * used, or undefined. Never echoes the entry.
 */
export function serverProblem(entry: string): string | undefined {
  if (entry === "") return "has an empty server entry";
  if (/\s/.test(entry)) return "is not a URL (contains whitespace)";
  const text = entry.includes("://") ? entry : `nats://${entry}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return "is not a URL (expected nats://host:port or tls://host:port)";
  }
  if (url.protocol !== "nats:" && url.protocol !== "tls:") {
    return `has unsupported scheme "${url.protocol.slice(0, -1)}" (use nats:// or tls://)`;
  }
  if (url.hostname === "") return "has no host";
  return undefined;
}

/** Why `text` is not an http(s) URL, or undefined. Never echoes the text. */
export function httpUrlProblem(text: string): string | undefined {
  if (/\s/.test(text)) return "is not a URL (contains whitespace)";
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return "is not a URL";
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return "is not an http(s) URL";
  return undefined;
}

/** Freeze `value` and everything reachable from it, so a loaded `Config` cannot change. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
