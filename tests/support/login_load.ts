/**
 * Steady login load for membership tests and the rolling-restart benchmark: `workers` loops, each
 * connecting a fresh client with a valid token and closing it again, counting how each attempt
 * ended. A refused valid login is exactly what a replica that answers without being able to decide
 * produces.
 *
 * @module
 */
import { connect } from "@nats-io/transport-node";

/** How the attempts of a {@linkcode LoginLoad} ended. */
export interface LoginCounts {
  /** Logged in. */
  ok: number;
  /** `Authorization Violation` (refused, or unanswered until the server's auth timeout). */
  refused: number;
  /** Anything else (timeouts, connection errors), by message. */
  other: Record<string, number>;
}

/** Options of {@linkcode LoginLoad.start}. */
export interface LoginLoadOptions {
  /** Parallel login loops. @default {4} */
  workers?: number;
  /** Pause between one worker's attempts. @default {10} */
  pauseMs?: number;
  /** Client connect timeout. @default {5000} */
  timeoutMs?: number;
}

/** A running login load; {@linkcode LoginLoad.stop} ends it and returns the counts. */
export class LoginLoad {
  readonly counts: LoginCounts = { ok: 0, refused: 0, other: {} };
  readonly #stop = new AbortController();
  readonly #loops: Promise<void>[];

  private constructor(url: string, token: () => string, options: LoginLoadOptions) {
    const { workers = 4, pauseMs = 10, timeoutMs = 5000 } = options;
    this.#loops = Array.from({ length: workers }, () => this.#loop(url, token, pauseMs, timeoutMs));
  }

  /**
   * Start logging in to `url` with `token()` until stopped.
   *
   * @example
   * ```ts ignore
   * const load = LoginLoad.start(nats.url, () => token);
   * const counts = await load.stop();
   * ```
   */
  static start(url: string, token: () => string, options: LoginLoadOptions = {}): LoginLoad {
    return new LoginLoad(url, token, options);
  }

  /** Attempts so far. */
  get attempts(): number {
    return this.counts.ok + this.counts.refused +
      Object.values(this.counts.other).reduce((a, b) => a + b, 0);
  }

  async #loop(
    url: string,
    token: () => string,
    pauseMs: number,
    timeoutMs: number,
  ): Promise<void> {
    while (!this.#stop.signal.aborted) {
      try {
        const nc = await connect({
          servers: url,
          token: token(),
          timeout: timeoutMs,
          reconnect: false,
        });
        this.counts.ok++;
        await nc.close();
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        if (/authorization violation/i.test(message)) this.counts.refused++;
        else this.counts.other[message] = (this.counts.other[message] ?? 0) + 1;
      }
      await new Promise((r) => setTimeout(r, pauseMs));
    }
  }

  /** Stop every loop (after its current attempt) and return the counts. */
  async stop(): Promise<LoginCounts> {
    this.#stop.abort();
    await Promise.all(this.#loops);
    return this.counts;
  }
}
