/**
 * The service as a deployment runs it: the image's entry (`main.ts` bundled by the `bundle` task,
 * the file `deno task compile` compiles) in its own process with the `start` task's V8 and
 * permission flags (read from deno.json, so the benchmark measures what ships), configured by
 * environment variables. Its own CPU seconds and peak RSS come from `/proc/<pid>`.
 *
 * @module
 */
import { imageEntry, ROOT, startTaskArgs } from "../tests/support/start_task.ts";
import { type ProcStats, readProcStats } from "./proc.ts";
import { freePort } from "../tests/support/http_probe.ts";

/**
 * Which service a benchmark runs: this checkout (the default), another checkout of this project
 * (the "before" of a comparison: its bundle and its start task's flags), or another executable —
 * the Go reference service, which reads the same environment and answers `/health`.
 */
export type ServiceImplementation =
  | { readonly kind: "checkout"; readonly root: string }
  | { readonly kind: "executable"; readonly path: string };

/** Options of {@linkcode ServiceProcess.start}. */
export interface ServiceProcessOptions {
  /** The service to run. @default {this checkout} */
  implementation?: ServiceImplementation;
  /** The service's environment (besides `PORT`, which is chosen here). */
  env: Record<string, string>;
  /** Give up waiting for `/readyz` after this long. @default {30000} */
  readyTimeoutMs?: number;
  /** Wait for `/readyz` before resolving. @default {true} */
  waitReady?: boolean;
  /** Extra `deno run` flags, e.g. `["--cpu-prof", "--cpu-prof-dir=/tmp/prof"]`. @default {[]} */
  denoFlags?: readonly string[];
  /** Receives each stdout line; when absent stdout goes to /dev/null (as cheap as a log shipper). */
  onLine?: (line: string) => void;
}

/**
 * The start task's flags with the image's entry (the bundle `deno task compile` compiles) in place
 * of `main.ts`, and `denoFlags` after `run`.
 */
async function serviceArgs(denoFlags: readonly string[], root = ROOT): Promise<string[]> {
  const [run, ...rest] = await startTaskArgs(root);
  if (run !== "run" || rest.at(-1) !== "main.ts") {
    throw new Error("the start task is not `deno run … main.ts`");
  }
  return [run, ...denoFlags, ...rest.slice(0, -1), await imageEntry(root)];
}

/** A running service process. */
export class ServiceProcess implements AsyncDisposable {
  /** Process id, for `/proc`. */
  readonly pid: number;
  /** HTTP port (`/readyz`, `/metrics`). */
  readonly port: number;
  readonly #child: Deno.ChildProcess;
  readonly #status: Promise<Deno.CommandStatus>;
  readonly #output: Promise<unknown>;
  #stderr = "";
  #exited = false;
  #readyPath = "/readyz";

  private constructor(child: Deno.ChildProcess, port: number, onLine?: (line: string) => void) {
    this.#child = child;
    this.pid = child.pid;
    this.port = port;
    this.#status = child.status.then((s) => {
      this.#exited = true;
      return s;
    });
    this.#output = Promise.all([
      this.#read(child.stderr, (line) => {
        if (this.#stderr.length < 64 * 1024) this.#stderr += line + "\n";
      }),
      onLine ? this.#read(child.stdout, onLine) : Promise.resolve(),
    ]);
  }

  /** Spawn the service and (by default) wait until `/readyz` answers 200. */
  static async start(options: ServiceProcessOptions): Promise<ServiceProcess> {
    const port = freePort();
    const passthrough: Record<string, string> = {};
    for (const name of ["HOME", "PATH", "DENO_DIR"]) {
      const value = Deno.env.get(name);
      if (value !== undefined) passthrough[name] = value;
    }
    const implementation = options.implementation ?? { kind: "checkout", root: ROOT };
    const executable = implementation.kind === "executable";
    const child = new Deno.Command(executable ? implementation.path : Deno.execPath(), {
      args: executable ? [] : await serviceArgs(options.denoFlags ?? [], implementation.root),
      cwd: executable ? "/" : implementation.root,
      clearEnv: true,
      env: { ...passthrough, ...options.env, PORT: String(port) },
      stdin: "null",
      stdout: options.onLine ? "piped" : "null",
      stderr: "piped",
    }).spawn();
    const service = new ServiceProcess(child, port, options.onLine);
    // The Go reference has no /readyz; its /health answers once it serves.
    service.#readyPath = executable ? "/health" : "/readyz";
    if (options.waitReady !== false) {
      try {
        await service.waitReady(options.readyTimeoutMs ?? 30_000);
      } catch (err) {
        await service.stop();
        throw err;
      }
    }
    return service;
  }

  /** Resolve once `/readyz` answers 200; reject on timeout or if the process exits. */
  async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.#exited) throw new Error(`service exited during start:\n${this.#stderr}`);
      try {
        const res = await fetch(`http://127.0.0.1:${this.port}${this.#readyPath}`);
        await res.body?.cancel();
        if (res.status === 200) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`service not ready after ${timeoutMs} ms:\n${this.#stderr}`);
  }

  /** CPU seconds and memory of the service process now. */
  stats(): Promise<ProcStats> {
    return readProcStats(this.pid);
  }

  /** Sum of the samples of metric `name` whose labels include all of `labels`. */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    const res = await fetch(`http://127.0.0.1:${this.port}/metrics`);
    const text = await res.text();
    let sum = 0;
    for (const line of text.split("\n")) {
      if (!line.startsWith(name)) continue;
      const match = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
      if (!match || match[1] !== name) continue;
      const labelText = match[2] ?? "";
      if (Object.entries(labels).every(([k, v]) => labelText.includes(`${k}="${v}"`))) {
        sum += Number(match[3]);
      }
    }
    return sum;
  }

  /** SIGTERM, then SIGKILL after 10 s; resolves when the process is gone. Safe to call twice. */
  async stop(): Promise<void> {
    if (!this.#exited) {
      try {
        this.#child.kill("SIGTERM");
      } catch {
        // already gone
      }
      const timer = setTimeout(() => {
        try {
          this.#child.kill("SIGKILL");
        } catch {
          // already gone
        }
      }, 10_000);
      await this.#status;
      clearTimeout(timer);
    }
    await this.#output;
  }

  /** Same as {@linkcode stop}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  async #read(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
    let rest = "";
    try {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        rest += chunk;
        let nl;
        while ((nl = rest.indexOf("\n")) >= 0) {
          onLine(rest.slice(0, nl));
          rest = rest.slice(nl + 1);
        }
      }
    } catch {
      // process gone
    }
    if (rest) onLine(rest);
  }
}
