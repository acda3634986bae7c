/**
 * Two small cancellation primitives used wherever the service waits: a delay that ends early when
 * a signal aborts (retry loops must stop at shutdown, not after their next backoff), and a wrapper
 * that makes any promise give up when a signal aborts (readiness waits).
 *
 * @module
 */

/**
 * Resolve after `ms` milliseconds, or as soon as `signal` aborts (never rejects), and leave no
 * timer or listener behind either way.
 *
 * @example
 * ```ts
 * import { delay } from "./abort.ts";
 * const stop = new AbortController();
 * stop.abort();
 * await delay(60_000, stop.signal); // returns at once
 * ```
 */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
  });
}

/**
 * Settle like `promise`, or reject with `signal.reason` as soon as `signal` aborts. The listener is
 * removed once either happens.
 *
 * @example
 * ```ts
 * import { abortable } from "./abort.ts";
 * const stop = new AbortController();
 * const never = new Promise<void>(() => {});
 * const waiting = abortable(never, stop.signal);
 * stop.abort(new Error("shutting down"));
 * await waiting.catch((err) => console.assert(err.message === "shutting down"));
 * ```
 */
export function abortable<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (err) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}
