/**
 * The reconnect storm three ways (issue 18), on the same nats-server build and configuration: the
 * callout with returning clients (nats-server killed and restarted, every client back with the
 * token it had), the callout after the service restarted too (every token first-seen by the new
 * process), and the same server with plain token auth instead of the callout (the baseline). The
 * server's `authorization.timeout` is 2 s (nats-server's default, as README recommends) and the
 * clients are nats.js with its default reconnect wait (2 s, 100 ms jitter), reconnecting forever
 * and past authorization errors (docs/client-usage.md).
 *
 * @module
 */
import { NatsServer } from "../tests/support/nats_server.ts";
import { type BenchFixture, plainTokenConfig, randomToken } from "./fixture.ts";
import { runStorm, type StormResult } from "./storm.ts";

/**
 * Keep the clients' socket errors from ending the load generator. When nats-server is killed under
 * thousands of nats.js clients, the Node transport under Deno raises `ECONNRESET`, `EPIPE` or
 * `ERR_STREAM_WRITE_AFTER_END` ("write after end") as uncaught errors after it has seen the close;
 * the clients reconnect all the same. Only those codes are swallowed; dispose to stop.
 */
function tolerateClientSocketErrors(): Disposable {
  const codes = new Set(["ECONNRESET", "EPIPE", "ERR_STREAM_WRITE_AFTER_END"]);
  const onError = (event: ErrorEvent) => {
    const err: unknown = event.error;
    if (err instanceof Error && "code" in err && codes.has(String(err.code))) {
      event.preventDefault();
    }
  };
  globalThis.addEventListener("error", onError);
  return { [Symbol.dispose]: () => globalThis.removeEventListener("error", onError) };
}

/** The three storms. */
export interface StormsResult {
  /** Clients per storm. */
  readonly clients: number;
  /** Callout, the service keeps its verified tokens. */
  readonly returning: StormResult;
  /** Callout, the service restarted before the server: every token first-seen. */
  readonly firstSeen: StormResult;
  /** The same server with plain token auth. */
  readonly baseline: StormResult;
}

/** Run the three storms of `clients` clients each against `fixture` and a plain-token server. */
export async function runStorms(
  fixture: BenchFixture,
  options: { clients: number; progress?: (message: string) => void },
): Promise<StormsResult> {
  const { clients, progress = () => {} } = options;
  using _sockets = tolerateClientSocketErrors();
  const timeoutMs = 180_000;
  progress(`storm 1 of 3: ${clients} returning clients`);
  const returning = await runStorm(fixture, { clients, progress, timeoutMs });
  progress(`storm 2 of 3: ${clients} clients, service restarted first`);
  const firstSeen = await runStorm(fixture, {
    clients,
    progress,
    timeoutMs,
    restartServiceFirst: true,
  });
  progress(`storm 3 of 3: ${clients} clients, plain token auth`);
  const token = randomToken(fixture.tokens[0]!.length);
  await using plain = await NatsServer.start({ config: plainTokenConfig(token) });
  const baseline = await runStorm({
    nats: plain,
    freshTokens: (n) => Promise.resolve(Array.from({ length: n }, () => token)),
  }, { clients, progress, timeoutMs });
  return { clients, returning, firstSeen, baseline };
}

/** The three storms side by side, as a Markdown table. */
export function renderStorms(r: StormsResult): string {
  const f = (x: number) =>
    Number.isNaN(x) ? "–" : x.toLocaleString("en-US", { maximumFractionDigits: 2 });
  const rows: [string, (s: StormResult) => string][] = [
    ["server restart (kill → accepting)", (s) => `${f(s.serverRestartSeconds)} s`],
    ["service subscribed again (from the kill)", (s) => `${f(s.serviceBackSeconds)} s`],
    ["every client back (from the kill)", (s) => `${f(s.allBackSeconds)} s`],
    [
      "per-client back p50 / p90 / p99",
      (s) => `${f(s.backSecondsP50)} / ${f(s.backSecondsP90)} / ${f(s.backSecondsP99)} s`,
    ],
    ["clients not back", (s) => String(s.clientsNotBack)],
    ["errors the clients saw during the storm", (s) => String(s.failedLogins)],
    [
      "of which `Authorization Violation` (refused, or no callout answer in time)",
      (s) => String(s.authFailures),
    ],
    [
      "of which `Authentication Timeout` (the server did not read the CONNECT in time)",
      (s) => String(s.errorKinds["Authentication Timeout"] ?? 0),
    ],
    ["refused by the service", (s) => f(s.deniedByService)],
    ["logins allowed by the service", (s) => f(s.allowedByService)],
    ["service CPU from the kill until all back", (s) => `${f(s.serviceCpuSeconds)} s`],
  ];
  const lines = [
    `| reconnect storm, ${
      f(r.clients)
    } clients, nats-server restarted | callout, returning tokens | callout, service restarted too (first-seen) | plain token auth |`,
    "|---|---:|---:|---:|",
  ];
  for (const [name, cell] of rows) {
    lines.push(`| ${name} | ${cell(r.returning)} | ${cell(r.firstSeen)} | ${cell(r.baseline)} |`);
  }
  lines.push(
    `| every client back, callout / plain token | ${
      f(r.returning.allBackSeconds / r.baseline.allBackSeconds)
    } | ${f(r.firstSeen.allBackSeconds / r.baseline.allBackSeconds)} | 1 |`,
  );
  return lines.join("\n") + "\n";
}

if (import.meta.main) {
  const { parseArgs } = await import("node:util");
  const { BenchFixture } = await import("./fixture.ts");
  const { tolerateClientResets } = await import("../tests/support/nats_server.ts");
  using _resets = tolerateClientResets();
  const { values } = parseArgs({
    args: Deno.args,
    options: { clients: { type: "string" }, out: { type: "string" } },
  });
  const encoder = new TextEncoder();
  const progress = (m: string) => Deno.stderr.writeSync(encoder.encode(`[storms] ${m}\n`));
  await using fixture = await BenchFixture.start();
  const result = await runStorms(fixture, { clients: Number(values.clients ?? 10_000), progress });
  const out = values.out ?? new URL("./results/storms-latest.json", import.meta.url).pathname;
  await Deno.writeTextFile(out, JSON.stringify(result, null, 2) + "\n");
  Deno.stdout.writeSync(encoder.encode(renderStorms(result)));
}
