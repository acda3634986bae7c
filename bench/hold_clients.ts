/**
 * One load-generator process of the live-connections benchmark (bench/live_connections.ts): it
 * logs in `count` raw-protocol clients per group (as bench/login_client.ts does: `CONNECT
 * {auth_token}` and `PING`, authorized on `PONG`) and keeps them connected, answering the server's
 * `PING`s, until told to stop. A process holds at most what its file descriptor limit allows
 * (20,000 here), so the benchmark runs several.
 *
 * Input: the path of a JSON file `{ port, concurrency, groups: [{ group, token, count }] }`.
 * Output, one JSON line each on stdout: `{ type: "progress", … }` while logging in, `{ type:
 * "connected", … }` when every client is in (or has failed five times), and `{ type: "report", … }`
 * for every `report` line read on stdin: clients open, and per group how many the server closed and
 * when the last one closed (epoch ms). `stop` on stdin closes every client and exits.
 *
 * @module
 */

interface Group {
  readonly group: string;
  readonly token: string;
  readonly count: number;
}

interface Plan {
  readonly port: number;
  readonly concurrency: number;
  readonly groups: readonly Group[];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const PONG = encoder.encode("PONG\r\n");

function out(line: Record<string, unknown>): void {
  Deno.stdout.writeSync(encoder.encode(JSON.stringify(line) + "\n"));
}

/** Closes by group: how many, and when the last one happened. */
const closed = new Map<string, { count: number; lastAt: number }>();
let open = 0;
let stopping = false;
const conns = new Set<Deno.TcpConn>();

/** Log one client in; resolves true once authorized, then keeps it alive in the background. */
async function hold(port: number, group: string, connectLine: Uint8Array): Promise<boolean> {
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
  } catch {
    return false;
  }
  const buf = new Uint8Array(4096);
  let text = "";
  const timer = setTimeout(() => conn.close(), 10_000);
  try {
    while (!text.includes("\r\n")) {
      const n = await conn.read(buf);
      if (n === null) return false;
      text += decoder.decode(buf.subarray(0, n));
    }
    text = "";
    await conn.write(connectLine);
    while (!text.includes("PONG\r\n") && !text.includes("-ERR")) {
      const n = await conn.read(buf);
      if (n === null) return false;
      text += decoder.decode(buf.subarray(0, n));
    }
    if (text.includes("-ERR")) {
      conn.close();
      return false;
    }
  } catch {
    try {
      conn.close();
    } catch { /* closed */ }
    return false;
  } finally {
    clearTimeout(timer);
  }
  open++;
  conns.add(conn);
  void keepAlive(conn, group);
  return true;
}

/** Answer PINGs until the server closes the connection, then count the close for its group. */
async function keepAlive(conn: Deno.TcpConn, group: string): Promise<void> {
  const buf = new Uint8Array(256);
  let tail = "";
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      tail = (tail + decoder.decode(buf.subarray(0, n))).slice(-64);
      if (tail.includes("PING\r\n")) {
        tail = "";
        await conn.write(PONG);
      }
    }
  } catch {
    // reset by the server: closed all the same
  }
  conns.delete(conn);
  open--;
  if (stopping) return;
  const entry = closed.get(group) ?? { count: 0, lastAt: 0 };
  entry.count++;
  entry.lastAt = Date.now();
  closed.set(group, entry);
  try {
    conn.close();
  } catch { /* closed */ }
}

async function loginAll(plan: Plan): Promise<void> {
  const work: { group: string; line: Uint8Array }[] = [];
  for (const g of plan.groups) {
    const line = encoder.encode(
      `CONNECT ${
        JSON.stringify({
          verbose: false,
          pedantic: false,
          auth_token: g.token,
          name: "bench-hold",
          lang: "bench",
          version: "1.0.0",
          protocol: 1,
        })
      }\r\nPING\r\n`,
    );
    for (let i = 0; i < g.count; i++) work.push({ group: g.group, line });
  }
  let next = 0;
  let failed = 0;
  let gaveUp = 0;
  const started = Date.now();
  let lastProgress = started;
  const worker = async () => {
    while (next < work.length) {
      const item = work[next++]!;
      let attempt = 0;
      while (!(await hold(plan.port, item.group, item.line))) {
        failed++;
        if (++attempt >= 5) {
          gaveUp++;
          break;
        }
        await new Promise((r) => setTimeout(r, 200 * attempt));
      }
      if (Date.now() - lastProgress > 5000) {
        lastProgress = Date.now();
        out({ type: "progress", open, failed, of: work.length });
      }
    }
  };
  await Promise.all(Array.from({ length: plan.concurrency }, worker));
  out({ type: "connected", open, failed, gaveUp, seconds: (Date.now() - started) / 1000 });
}

if (import.meta.main) {
  const plan = JSON.parse(await Deno.readTextFile(Deno.args[0]!)) as Plan;
  const commands = (async () => {
    let rest = "";
    for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      let nl;
      while ((nl = rest.indexOf("\n")) >= 0) {
        const command = rest.slice(0, nl).trim();
        rest = rest.slice(nl + 1);
        if (command === "report") {
          out({ type: "report", open, closed: Object.fromEntries(closed) });
        } else if (command === "stop") {
          stopping = true;
          for (const c of conns) {
            try {
              c.close();
            } catch { /* closed */ }
          }
          Deno.exit(0);
        }
      }
    }
    Deno.exit(0);
  })();
  await loginAll(plan);
  await commands;
}
