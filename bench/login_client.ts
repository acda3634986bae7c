/**
 * The load generator's NATS client: just enough of the client protocol to log in. It opens a TCP
 * connection, reads the server's `INFO`, sends `CONNECT {auth_token}` and `PING`, and waits for
 * `PONG` (authorized) or `-ERR` (refused). A full client (nats.js) costs the generator several
 * times more CPU per connection than the server spends; on a 2-core machine that would measure the
 * generator, not the service.
 *
 * @module
 */

/** How one login attempt ended. */
export interface LoginResult {
  /** The server answered `PONG`: the CONNECT was authorized. */
  readonly ok: boolean;
  /** Milliseconds from sending CONNECT to the server's answer (or to the failure). */
  readonly ms: number;
  /** Why it failed: the server's `-ERR` text, `timeout` or a socket error. */
  readonly error?: string;
}

/** Options of {@linkcode login}. */
export interface LoginOptions {
  /** Give up after this long. @default {5000} */
  timeoutMs?: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Log in once to the nats-server on `127.0.0.1:port` with `token` as `auth_token`, then close.
 * Never throws; failures are in the result.
 *
 * @example
 * ```ts ignore
 * import { login } from "./login_client.ts";
 * const { ok, ms } = await login(4222, token);
 * ```
 */
export async function login(
  port: number,
  token: string,
  options: LoginOptions = {},
): Promise<LoginResult> {
  const { timeoutMs = 5000 } = options;
  let conn: Deno.TcpConn | undefined;
  let closed = false;
  let started = performance.now();
  const close = () => {
    if (closed) return;
    closed = true;
    try {
      conn?.close();
    } catch {
      // already closed by the peer
    }
  };
  const timer = setTimeout(close, timeoutMs);
  const buf = new Uint8Array(16 * 1024);
  let text = "";
  const readUntil = async (done: (text: string) => boolean): Promise<boolean> => {
    while (!done(text)) {
      const n = await conn!.read(buf);
      if (n === null) return false;
      text += decoder.decode(buf.subarray(0, n));
    }
    return true;
  };
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    if (!await readUntil((t) => t.includes("\r\n"))) return fail("closed before INFO");
    if (!text.startsWith("INFO ")) return fail(`unexpected greeting ${text.slice(0, 40)}`);
    text = "";
    const connect = JSON.stringify({
      verbose: false,
      pedantic: false,
      auth_token: token,
      name: "bench",
      lang: "bench",
      version: "1.0.0",
      protocol: 1,
      headers: true,
      no_responders: true,
    });
    started = performance.now();
    await conn.write(encoder.encode(`CONNECT ${connect}\r\nPING\r\n`));
    const answered = await readUntil((t) => t.includes("PONG\r\n") || /-ERR [^\r]*\r\n/.test(t));
    const ms = performance.now() - started;
    if (!answered) return fail("closed without an answer", ms);
    const err = /-ERR '?([^'\r]*)'?\r\n/.exec(text);
    if (err) return { ok: false, ms, error: err[1] ?? "error" };
    return { ok: true, ms };
  } catch (err) {
    return fail(closed ? "timeout" : err instanceof Error ? err.name : String(err));
  } finally {
    clearTimeout(timer);
    close();
  }

  function fail(error: string, ms = performance.now() - started): LoginResult {
    return { ok: false, ms, error };
  }
}

/** What {@linkcode runLogins} measured. */
export interface LoginRun {
  readonly attempts: number;
  readonly ok: number;
  readonly failed: number;
  /** Failure texts and how often each occurred. */
  readonly errors: Readonly<Record<string, number>>;
  readonly wallSeconds: number;
  /** Latency of every attempt in milliseconds, sorted ascending. */
  readonly latenciesMs: readonly number[];
}

/** Options of {@linkcode runLogins}. */
export interface RunLoginsOptions {
  /** nats-server client port on 127.0.0.1. */
  port: number;
  /** Token for attempt `i` (0-based). */
  token: (i: number) => string;
  /** Attempts in total. */
  total: number;
  /** Attempts in flight at once. */
  concurrency: number;
  /** Per-attempt timeout. @default {5000} */
  timeoutMs?: number;
}

/** Run `total` logins with `concurrency` of them in flight at any time. */
export async function runLogins(options: RunLoginsOptions): Promise<LoginRun> {
  const { port, token, total, concurrency, timeoutMs = 5000 } = options;
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  let next = 0;
  let ok = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < total) {
      const i = next++;
      const result = await login(port, token(i), { timeoutMs });
      latencies.push(result.ms);
      if (result.ok) ok++;
      else {
        const key = result.error ?? "error";
        errors[key] = (errors[key] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
  const wallSeconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { attempts: total, ok, failed: total - ok, errors, wallSeconds, latenciesMs: latencies };
}

/** The `p`-th percentile (0–100) of ascending `sorted` values, nearest-rank; 0 when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? 0;
}
