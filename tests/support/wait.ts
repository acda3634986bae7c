/**
 * Polling helper for tests: wait until a condition holds instead of sleeping a fixed time.
 *
 * @module
 */

/** Options of {@linkcode waitFor}. */
export interface WaitOptions {
  /** Give up after this many milliseconds. @default {5000} */
  timeoutMs?: number;
  /** Poll interval in milliseconds. @default {20} */
  intervalMs?: number;
  /** Text for the timeout error. @default {"condition"} */
  what?: string;
}

/**
 * Call `fn` until it returns a truthy value (which is returned) or the timeout passes. Errors thrown
 * by `fn` count as "not yet"; the last one is attached to the timeout error.
 *
 * @example
 * ```ts
 * import { waitFor } from "./wait.ts";
 * let n = 0;
 * const v = await waitFor(() => ++n >= 3 && n);
 * console.assert(v === 3);
 * ```
 */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  options: WaitOptions = {},
): Promise<NonNullable<T>> {
  const { timeoutMs = 5000, intervalMs = 20, what = "condition" } = options;
  const deadline = performance.now() + timeoutMs;
  let last: unknown;
  while (true) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (performance.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`, { cause: last });
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
