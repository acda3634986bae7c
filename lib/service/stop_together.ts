/**
 * A slot on an `AsyncDisposableStack` for resources that must stop at the same time rather than
 * one after the other. The stack releases its entries in reverse order, each after the previous
 * one has finished; that is right for resources that depend on each other, and too slow for
 * independent ones that each wait a bounded while for a server that may be gone (draining two
 * NATS connections one after the other would double shutdown). Such resources go into one
 * {@linkcode StopTogether}, which is itself one entry on the stack.
 *
 * @module
 */

/**
 * Resources stopped together, in parallel, when the group is disposed. Like
 * `AsyncDisposableStack`, it refuses new members once disposed (a `ReferenceError`), so a
 * resource that starts after shutdown began must be released by its starter.
 *
 * @example
 * ```ts
 * import { StopTogether } from "./stop_together.ts";
 * await using stack = new AsyncDisposableStack();
 * const connections = stack.use(new StopTogether());
 * connections.defer(() => Promise.resolve()); // drain one connection
 * connections.defer(() => Promise.resolve()); // and the other, at the same time
 * ```
 */
export class StopTogether implements AsyncDisposable {
  readonly #stops: (() => PromiseLike<void> | void)[] = [];
  #stopped: Promise<void> | undefined;

  /** True once disposal has begun: new members are refused from then on. */
  get disposed(): boolean {
    return this.#stopped !== undefined;
  }

  /** Run `onStop` when the group is disposed, alongside the other members. */
  defer(onStop: () => PromiseLike<void> | void): void {
    if (this.#stopped !== undefined) throw new ReferenceError("StopTogether is already disposed");
    this.#stops.push(onStop);
  }

  /** Dispose `resource` when the group is disposed; returns it, like `AsyncDisposableStack.use`. */
  use<T extends AsyncDisposable>(resource: T): T {
    this.defer(() => resource[Symbol.asyncDispose]());
    return resource;
  }

  /**
   * Stop every member at once and wait for all of them. A member that throws does not keep the
   * others from stopping; its error is thrown afterwards (several as an `AggregateError`).
   * Idempotent: a second call waits for the first.
   */
  [Symbol.asyncDispose](): Promise<void> {
    this.#stopped ??= (async () => {
      const results = await Promise.allSettled(this.#stops.map(async (stop) => await stop()));
      const errors = results.flatMap((r) => r.status === "rejected" ? [r.reason] : []);
      if (errors.length === 1) throw errors[0];
      if (errors.length > 1) throw new AggregateError(errors, "members failed to stop");
    })();
    return this.#stopped;
  }
}
