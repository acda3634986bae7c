/**
 * Follow one file's content while the service runs: a directory watch (editors and Kubernetes'
 * ConfigMap `..data` swap replace files by rename, which a watch on the file's inode would miss),
 * a debounce for editors that write in bursts, a poll for file systems whose events get lost, and
 * one read at a time. The owner gets the text only when it changed, and a read problem only when it
 * is new; what to make of either is the owner's business (the ServiceAccounts file, the policy file).
 *
 * @module
 */
import { basename, dirname, resolve } from "node:path";

/** Options of {@linkcode watchFile}. */
export interface WatchFileOptions {
  /** Called with the file's text on the first read and whenever it changed since the last read. */
  onText: (text: string) => void;
  /**
   * Called when the file cannot be read (`"file not found"`, `"cannot read: …"`); repeated only
   * when the problem changes. After a problem, the next good read calls `onText` even if the text
   * is the same as before the problem.
   */
  onReadError: (problem: string) => void;
  /** Called once when the directory cannot be watched (polling still runs). */
  onWatchError?: (error: unknown) => void;
  /** Wait this long after the last file event before reading. @default {100} */
  debounceMs?: number;
  /** Also re-read this often; unchanged content costs one read. `0` turns it off. @default {30000} */
  pollIntervalMs?: number;
}

/** A running watch; `close()` stops the watcher and timers and waits for a read in progress. */
export interface FileWatch extends AsyncDisposable {
  /** Read now (serialized with the watch's own reads); resolves when that read is done. */
  reload(): Promise<void>;
  /** Stop watching and polling; resolves after a read in progress. A second call does nothing. */
  close(): Promise<void>;
}

class FileWatcher implements FileWatch {
  readonly #path: string;
  readonly #name: string;
  readonly #options: WatchFileOptions;
  readonly #debounceMs: number;
  #closed = false;
  #lastText: string | undefined;
  #lastProblem: string | undefined;
  #watcher: Deno.FsWatcher | undefined;
  #watchLoop: Promise<void> = Promise.resolve();
  #debounce: ReturnType<typeof setTimeout> | undefined;
  #poll: ReturnType<typeof setInterval> | undefined;
  #running: Promise<void> | undefined;
  #again = false;

  constructor(path: string, options: WatchFileOptions) {
    const { debounceMs = 100, pollIntervalMs = 30_000 } = options;
    if (!(debounceMs >= 0)) throw new RangeError(`debounceMs must be >= 0, got ${debounceMs}`);
    if (!(pollIntervalMs >= 0)) {
      throw new RangeError(`pollIntervalMs must be >= 0, got ${pollIntervalMs}`);
    }
    this.#path = path;
    this.#name = basename(resolve(path));
    this.#options = options;
    this.#debounceMs = debounceMs;
    try {
      const watcher = Deno.watchFs(dirname(resolve(path)), { recursive: false });
      this.#watcher = watcher;
      this.#watchLoop = this.#follow(watcher);
    } catch (err) {
      options.onWatchError?.(err);
    }
    if (pollIntervalMs > 0) this.#poll = setInterval(() => void this.reload(), pollIntervalMs);
    void this.reload();
  }

  /** Run reads one at a time; a request during a read runs once more afterwards. */
  reload(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        await this.#readOnce();
      } while (this.#again && !this.#closed);
    })().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#debounce);
    clearInterval(this.#poll);
    this.#watcher?.close();
    await this.#watchLoop;
    await this.#running;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #follow(watcher: Deno.FsWatcher): Promise<void> {
    try {
      for await (const event of watcher) {
        // Our file, or Kubernetes' `..data` symlink swap when the file is a mounted ConfigMap.
        const relevant = event.paths.some((p) => {
          const b = basename(p);
          return b === this.#name || b.startsWith("..");
        });
        if (relevant) this.#schedule();
      }
    } catch (err) {
      if (!this.#closed) this.#options.onWatchError?.(err);
    }
  }

  #schedule(): void {
    if (this.#closed) return;
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => {
      this.#debounce = undefined;
      void this.reload();
    }, this.#debounceMs);
  }

  async #readOnce(): Promise<void> {
    let text: string;
    try {
      text = await Deno.readTextFile(this.#path);
    } catch (err) {
      if (this.#closed) return;
      const problem = err instanceof Deno.errors.NotFound
        ? "file not found"
        : `cannot read: ${err}`;
      if (problem !== this.#lastProblem) {
        this.#lastProblem = problem;
        this.#lastText = undefined;
        this.#options.onReadError(problem);
      }
      return;
    }
    if (this.#closed || text === this.#lastText) return;
    this.#lastText = text;
    this.#lastProblem = undefined;
    this.#options.onText(text);
  }
}

/**
 * Start following `path`. Returns at once; the first read runs in the background.
 *
 * @example
 * ```ts ignore
 * import { watchFile } from "./file_watch.ts";
 * await using watch = watchFile("/etc/app/policy.yaml", {
 *   onText: (text) => console.log("changed", text.length),
 *   onReadError: (problem) => console.error(problem),
 * });
 * ```
 */
export function watchFile(path: string, options: WatchFileOptions): FileWatch {
  return new FileWatcher(path, options);
}
