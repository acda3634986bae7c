/**
 * A service replica as a real process: `deno run main.ts` with the `start` task's own flags and an
 * environment, its HTTP port on loopback, its JSON log lines collected. The fault suite kills,
 * stops and continues these with real signals (SIGKILL, SIGTERM, SIGSTOP/SIGCONT), which an
 * in-process service cannot be given.
 *
 * @module
 */
import { freePort } from "./http_probe.ts";
import { waitFor } from "./wait.ts";
import { spawnStartTask } from "./start_task.ts";

/** A running `main.ts`; dispose to kill it (SIGKILL) and wait for its exit. */
export class ReplicaProcess implements AsyncDisposable {
  /** Its HTTP port (`/readyz`, `/metrics`). */
  readonly port: number;
  /** Resolves when the process has exited. */
  readonly status: Promise<Deno.CommandStatus>;
  readonly #child: Deno.ChildProcess;
  readonly #reading: Promise<unknown>;
  #output = "";
  #exited = false;

  private constructor(child: Deno.ChildProcess, port: number) {
    this.#child = child;
    this.port = port;
    const drain = async (stream: ReadableStream<Uint8Array>) => {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) this.#output += chunk;
    };
    this.#reading = Promise.all([drain(child.stdout), drain(child.stderr)]).catch(() => {});
    this.status = child.status.then(async (s) => {
      this.#exited = true;
      await this.#reading;
      return s;
    });
  }

  /**
   * Spawn `main.ts` with `env` (and `PATH`, a free `PORT`); no environment is inherited. `args`
   * replace the start task's (e.g. `imageRunArgs()`: the image's entry and flags).
   *
   * @example
   * ```ts ignore
   * await using a = await ReplicaProcess.spawn({ ...stack.env, LOG_LEVEL: "info" });
   * await a.waitReady();
   * ```
   */
  static async spawn(
    env: Record<string, string>,
    args?: readonly string[],
  ): Promise<ReplicaProcess> {
    const port = freePort();
    const child = await spawnStartTask({ ...env, PORT: String(port) }, args);
    return new ReplicaProcess(child, port);
  }

  /** The process id. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Everything it wrote to stdout and stderr so far. */
  get output(): string {
    return this.#output;
  }

  /** Its log lines, parsed (lines that are not JSON are skipped). */
  get logs(): Record<string, unknown>[] {
    return this.#output.split("\n").flatMap((line) => {
      try {
        return [JSON.parse(line) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  }

  /** Send `signal` to the process. */
  kill(signal: Deno.Signal): void {
    this.#child.kill(signal);
  }

  /** `/readyz`'s status code (0 when it does not answer within `timeoutMs`). */
  async readyz(timeoutMs = 2000): Promise<number> {
    try {
      const res = await fetch(`http://127.0.0.1:${this.port}/readyz`, {
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.body?.cancel();
      return res.status;
    } catch {
      return 0;
    }
  }

  /** Wait until `/readyz` answers 200 (the replica is in the queue group). */
  async waitReady(timeoutMs = 30_000): Promise<void> {
    await waitFor(async () => {
      if (this.#exited) throw new Error(`replica exited: ${this.#output.slice(-2000)}`);
      return await this.readyz() === 200;
    }, { timeoutMs, intervalMs: 100, what: `replica on port ${this.port} ready` }).catch((err) => {
      throw new Error(`${err.message}; output: ${this.#output.slice(-2000)}`, { cause: err });
    });
  }

  /** Logins it has allowed so far (`nats_auth_requests_total{result="allowed"}` on `/metrics`). */
  async allowed(): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${this.port}/metrics`)).text();
    const m = /^nats_auth_requests_total\{reason="",result="allowed"\} (\d+)$/m.exec(text);
    return m ? Number(m[1]) : 0;
  }

  /** Kill the process (continuing it first if stopped) and wait for it to exit. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#exited) {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // exited meanwhile
      }
    }
    await this.status;
  }
}
