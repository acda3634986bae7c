/**
 * Go duration strings (`time.ParseDuration`: "15m", "1h30m", "90s", "500ms", "1.5h") to
 * milliseconds and back. The Go reference reads `CACHE_CLEANUP_INTERVAL` with that syntax, so
 * we accept exactly the same spellings to stay a drop-in replacement.
 *
 * @module
 */

/** Milliseconds per unit, for every unit Go accepts. */
const UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3, // U+00B5 micro sign
  "μs": 1e-3, // U+03BC Greek mu
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** One `<number><unit>` component; the number may be "1", "1.5", ".5" or "5." but not ".". */
const COMPONENT = /^(\d+\.?\d*|\.\d+)([^\d.]+)/;

/** Go rejects durations above about 292 years (int64 nanoseconds). */
const MAX_MS = 9_223_372_036_854.775;

const HINT = 'expected a Go duration such as "90s", "15m" or "1h30m"';

/**
 * Parse a Go `time.ParseDuration` string to milliseconds (fractions allowed: "100us" is 0.1).
 * Accepts an optional sign, one or more `<number><unit>` components with units
 * `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`, and the bare string "0". Anything else throws a
 * `TypeError` whose message quotes the input (durations are never secret).
 *
 * @example
 * ```ts
 * import { parseDuration } from "./duration.ts";
 * console.assert(parseDuration("1h30m") === 5_400_000);
 * console.assert(parseDuration("1.5s") === 1500);
 * ```
 */
export function parseDuration(text: string): number {
  let rest = text;
  let sign = 1;
  if (rest.startsWith("-") || rest.startsWith("+")) {
    if (rest[0] === "-") sign = -1;
    rest = rest.slice(1);
  }
  if (rest === "0") return 0;
  if (rest === "") throw new TypeError(`Invalid duration "${text}": ${HINT}`);
  let total = 0;
  while (rest !== "") {
    const match = COMPONENT.exec(rest);
    if (!match) throw new TypeError(`Invalid duration "${text}": ${HINT}`);
    const [whole, number = "", unit = ""] = match;
    const perUnit = UNIT_MS[unit];
    if (perUnit === undefined) {
      throw new TypeError(
        `Invalid duration "${text}": unknown unit "${unit}" (use ns, us, ms, s, m or h)`,
      );
    }
    total += Number(number) * perUnit;
    rest = rest.slice(whole.length);
  }
  if (!Number.isFinite(total) || total > MAX_MS) {
    throw new TypeError(`Invalid duration "${text}": out of range`);
  }
  return sign * total;
}

/**
 * Format milliseconds compactly in the same syntax ("1h30m", "90s" → "1m30s", "500ms"), so a
 * startup log line shows a value the operator can paste back into the environment.
 *
 * @example
 * ```ts
 * import { formatDuration } from "./duration.ts";
 * console.assert(formatDuration(5_400_000) === "1h30m");
 * console.assert(formatDuration(0) === "0s");
 * ```
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) throw new RangeError(`Cannot format duration ${ms}`);
  if (ms === 0) return "0s";
  const sign = ms < 0 ? "-" : "";
  let rest = Math.abs(ms);
  const parts: string[] = [];
  for (const [unit, size] of [["h", 3_600_000], ["m", 60_000], ["s", 1000]] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) parts.push(`${n}${unit}`);
    rest -= n * size;
  }
  if (rest > 0) parts.push(`${Number(rest.toFixed(6))}ms`);
  return sign + parts.join("");
}
