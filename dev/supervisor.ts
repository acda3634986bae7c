// deno-lint-ignore-file no-console -- a developer tool talks to its user on the console
/**
 * The process supervision of `deno task dev` (dev/dev.ts): when to stop (the first signal, or a
 * child that exits by itself), the children in their own process groups, and a log file their
 * output is copied into. Each is disposable, so dev mode owns them on one
 * `AsyncDisposableStack` and releases them in reverse order on every way out.
 *
 * @module
 */

/** Why dev mode stops: a signal, or a child that exited by itself. */
export type StopReason =
  | { readonly kind: "signal"; readonly signal: Deno.Signal }
  | { readonly kind: "exit"; readonly name: string; readonly status: Deno.CommandStatus };

/**
 * The stop request of the session: aborts on the first of SIGINT, SIGTERM, SIGHUP or
 * {@linkcode StopRequest.request}, with the {@linkcode StopReason} as the abort reason. Disposing
 * it removes the signal listeners.
 */
export class StopRequest implements Disposable {
  readonly #controller = new AbortController();
  readonly #listeners: (readonly [Deno.Signal, () => void])[];

  /** Listen for the signals that stop dev mode. */
  constructor(signals: readonly Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP"]) {
    this.#listeners = signals.map((signal) => {
      const listener = () => this.request({ kind: "signal", signal });
      Deno.addSignalListener(signal, listener);
      return [signal, listener] as const;
    });
  }

  /** Aborts when a stop is requested; its `reason` is the first {@linkcode StopReason}. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** The reason of the first request; only valid once {@linkcode StopRequest.signal} aborted. */
  get reason(): StopReason {
    return this.#controller.signal.reason as StopReason;
  }

  /** Request a stop; the first request wins. */
  request(reason: StopReason): void {
    if (!this.#controller.signal.aborted) this.#controller.abort(reason);
  }

  /** Resolves when a stop is requested. */
  requested(): Promise<void> {
    const { signal } = this.#controller;
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve) =>
      signal.addEventListener("abort", () => resolve(), { once: true })
    );
  }

  /** Remove the signal listeners. */
  [Symbol.dispose](): void {
    for (const [signal, listener] of this.#listeners) Deno.removeSignalListener(signal, listener);
  }
}

/** One supervised child process. */
export interface Child {
  /** How dev mode names it to the user ("nats-server", "the service"). */
  readonly name: string;
  /** The running process. */
  readonly process: Deno.ChildProcess;
  /** Resolves when it has exited. */
  readonly status: Promise<Deno.CommandStatus>;
}

/**
 * The children of dev mode, each in its own process group (so a Ctrl-C reaches only the
 * supervisor). A child that exits by itself requests a stop. Disposing stops them in reverse order
 * of start — each with its own stop signal, then SIGKILL after a grace period — and says so.
 */
export class Children implements AsyncDisposable {
  readonly #children: { child: Child; stopSignal: Deno.Signal }[] = [];
  readonly #stop: StopRequest;

  /** Children whose unexpected exit requests a stop from `stop`. */
  constructor(stop: StopRequest) {
    this.#stop = stop;
  }

  /** Start `command` as `name`; `stopSignal` asks it to stop gracefully. */
  spawn(
    name: string,
    command: string,
    options: Deno.CommandOptions & { stopSignal: Deno.Signal },
  ): Child {
    const { stopSignal, ...commandOptions } = options;
    const process = new Deno.Command(command, { stdin: "null", detached: true, ...commandOptions })
      .spawn();
    const status = process.status;
    const child = { name, process, status };
    this.#children.push({ child, stopSignal });
    status.then((s) => this.#stop.request({ kind: "exit", name, status: s }));
    return child;
  }

  /** Stop every child, the last started first, and wait for each to exit. */
  async [Symbol.asyncDispose](): Promise<void> {
    const started = [...this.#children].reverse();
    for (const { child, stopSignal } of started) await stopChild(child, stopSignal, 15_000);
    if (started.length > 0) {
      console.log(`dev: stopped ${started.map((c) => c.child.name).join(" and ")}`);
    }
  }
}

/** Stop a child: `signal`, then SIGKILL after `graceMs`. Resolves when it has exited. */
async function stopChild(child: Child, signal: Deno.Signal, graceMs: number): Promise<void> {
  const kill = (s: Deno.Signal) => {
    try {
      child.process.kill(s);
    } catch {
      // already gone
    }
  };
  kill(signal);
  const timer = setTimeout(() => {
    console.error(`dev: ${child.name} did not stop within ${graceMs / 1000}s; killing it`);
    kill("SIGKILL");
  }, graceMs);
  await child.status;
  clearTimeout(timer);
}

/**
 * A log file (truncated on open) that children's output is copied into. Disposing waits until
 * every copied stream has ended, then closes the file.
 */
export class OutputLog implements AsyncDisposable {
  /** Where the log is. */
  readonly path: string;
  readonly #file: Deno.FsFile;
  #copies: Promise<unknown> = Promise.resolve();

  private constructor(path: string, file: Deno.FsFile) {
    this.path = path;
    this.#file = file;
  }

  /** Open (and truncate) the log at `path`. */
  static async open(path: string): Promise<OutputLog> {
    return new OutputLog(
      path,
      await Deno.open(path, { write: true, create: true, truncate: true }),
    );
  }

  /** Copy `child`'s stdout and stderr (both piped) into the log until they end. */
  follow(child: Child): void {
    this.#copies = Promise.all([
      this.#copies,
      pump(child.process.stdout, this.#file),
      pump(child.process.stderr, this.#file),
    ]);
  }

  /** Resolves when every stream followed so far has ended. */
  async copied(): Promise<void> {
    await this.#copies;
  }

  /** The last `lines` lines of the log, indented for quoting. */
  async tail(lines: number): Promise<string> {
    const text = await Deno.readTextFile(this.path).catch(() => "");
    return text.trimEnd().split("\n").slice(-lines).map((l) => `  | ${l}`).join("\n");
  }

  /** Wait for the copies to end, then close the file. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.#copies;
    this.#file.close();
  }
}

/** Copy a child's output into an open file until the stream ends. */
async function pump(stream: ReadableStream<Uint8Array>, file: Deno.FsFile): Promise<void> {
  try {
    for await (const chunk of stream) {
      for (let off = 0; off < chunk.length;) off += await file.write(chunk.subarray(off));
    }
  } catch {
    // the process went away
  }
}
