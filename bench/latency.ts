/**
 * Where the time of one login at concurrency 1 goes (issue 18): the end-to-end p50 through the
 * callout and with a plain token on the same nats-server build; the service's own time per login
 * from its `login_allowed` lines (`duration_ms`: request received → reply ready, measured by
 * lib/callout/handler.ts); and that time split into its steps, each timed alone in-process with
 * the service's own modules on the same kind of request (decode and verify the server's request,
 * decide — token from the verified-token cache, ServiceAccount, policy —, sign the user JWT and
 * the response, hand the reply to nats.js). What remains of the difference is nats-server's work
 * (building and signing the request, verifying the response and the user JWT) and the two extra
 * hops over loopback; the server's CPU per login is shown beside it.
 *
 * @module
 */
import { connect } from "@nats-io/transport-node";
import { createResponder } from "../lib/callout/response.ts";
import { createNkeySigner, NkeyKeyCache } from "../lib/callout/nkey_jwt.ts";
import { verifyRequest } from "../lib/callout/request.ts";
import { createAuthorizer } from "../lib/decision/login.ts";
import { createLogger } from "../lib/telemetry/log.ts";
import { createServiceMetrics } from "../lib/telemetry/service_metrics.ts";
import { NatsServer } from "../tests/support/nats_server.ts";
import { accountKey } from "../tests/support/nkeys.ts";
import { BenchFixture, plainTokenConfig, randomToken } from "./fixture.ts";
import { createDecisionPipeline, POLICY } from "./inprocess.ts";
import { percentile, runLogins } from "./login_client.ts";
import { findNatsServerPid, readProcStats } from "./proc.ts";

/** What {@linkcode runLatency} measured (milliseconds unless named otherwise). */
export interface LatencyResult {
  readonly logins: number;
  /** End to end, CONNECT → PONG, through the callout. */
  readonly calloutP50Ms: number;
  readonly calloutP90Ms: number;
  /** The same with plain token auth. */
  readonly plainP50Ms: number;
  readonly plainP90Ms: number;
  /** The service's own time per login, from its log lines (request in → reply ready). */
  readonly serviceHandlerP50Ms: number;
  /** Each step alone, in-process, median. */
  readonly steps: {
    readonly verifyRequestMs: number;
    readonly decideMs: number;
    readonly signMs: number;
    readonly wholeHandlerMs: number;
    readonly publishMs: number;
  };
  /** nats-server CPU per login, callout and plain. */
  readonly natsServerCpuMsPerLogin: { readonly callout: number; readonly plain: number };
  /** Service CPU per login. */
  readonly serviceCpuMsPerLogin: number;
}

function median(values: number[]): number {
  return percentile([...values].sort((a, b) => a - b), 50);
}

async function timeEach(n: number, fn: (i: number) => Promise<unknown>): Promise<number> {
  for (let i = 0; i < Math.min(200, n); i++) await fn(i);
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn(i);
    times.push(performance.now() - t);
  }
  return median(times);
}

/** The in-process steps of one returning login, each a median over `n`. */
async function stepTimes(
  n: number,
  target: { url: string; token: string },
): Promise<LatencyResult["steps"]> {
  const p = await createDecisionPipeline();
  const keyCache = new NkeyKeyCache();
  const metrics = createServiceMetrics();
  const logger = createLogger({ level: "info", write: () => {} });
  const verifyToken = p.verifyCached;
  const authorize = createAuthorizer({
    verifyToken,
    lookup: () => p.serviceAccount,
    isSynced: () => true,
    policy: POLICY,
    userJwtTtlMs: 3_600_000,
    logger,
    metrics,
  });
  const account = accountKey();
  const responder = createResponder({
    signer: await createNkeySigner(account.seed),
    account: "APP",
    accountSeeds: () => new Map(),
    xkey: undefined,
    now: () => Date.now(),
  });
  const req = (i: number) => p.requests[i % p.requests.length]!;
  await verifyToken(p.token); // in the verified-token cache from now on: a returning token
  const verified = await verifyRequest(req(0), undefined, {
    xkey: undefined,
    keyCache,
    now: Date.now(),
  });
  const decided = await authorize(verified.request);
  if (!decided.ok) throw new Error(`the in-process login was refused: ${decided.message}`);
  const verifyRequestMs = await timeEach(
    n,
    (i) => verifyRequest(req(i), undefined, { xkey: undefined, keyCache, now: Date.now() }),
  );
  const decideMs = await timeEach(n, () => authorize(verified.request));
  const signMs = await timeEach(n, () => responder.allow(verified, decided.user));
  const wholeHandlerMs = await timeEach(n, (i) => p.cached(req(i), undefined));
  // Handing a reply to nats.js: publish, and its flush on the next microtask.
  const nc = await connect({ servers: target.url, token: target.token });
  const reply = await p.cached(req(0), undefined);
  const publishMs = await timeEach(n, async () => {
    nc.publish("bench.reply", reply!);
    await new Promise<void>((r) => queueMicrotask(r));
  });
  await nc.close();
  return { verifyRequestMs, decideMs, signMs, wholeHandlerMs, publishMs };
}

/** Measure everything at concurrency 1 with `logins` logins per run. */
export async function runLatency(
  options: { logins?: number; progress?: (message: string) => void } = {},
): Promise<LatencyResult> {
  const { logins = 2000, progress = () => {} } = options;
  const durations: number[] = [];
  await using fixture = await BenchFixture.start({
    onServiceLine: (line) => {
      if (!line.includes('"login_allowed"')) return;
      const ms = (JSON.parse(line) as { duration_ms?: number }).duration_ms;
      if (typeof ms === "number") durations.push(ms);
    },
  });
  const token = randomToken(fixture.tokens[0]!.length);
  await using plainToken = await NatsServer.start({ config: plainTokenConfig(token) });
  const returning = (i: number) => fixture.tokens[i % fixture.tokens.length]!;
  await runLogins({ port: fixture.nats.port, token: returning, total: 300, concurrency: 1 });
  await runLogins({ port: plainToken.port, token: () => token, total: 300, concurrency: 1 });
  durations.length = 0;

  const calloutPid = await findNatsServerPid(fixture.nats.port);
  const plainPid = await findNatsServerPid(plainToken.port);
  const cpu = async (pid: number | undefined) => pid ? (await readProcStats(pid)).cpuSeconds : 0;
  progress(`latency: ${logins} logins at concurrency 1, callout and plain token, interleaved`);
  const callout: number[] = [];
  const direct: number[] = [];
  let calloutServerCpu = 0;
  let plainServerCpu = 0;
  let serviceCpu = 0;
  // Ten slices, alternating, so a drift of the machine's speed hits both alike.
  for (let slice = 0; slice < 10; slice++) {
    const total = Math.ceil(logins / 10);
    let c0 = await cpu(calloutPid);
    const s0 = (await fixture.service.stats()).cpuSeconds;
    const a = await runLogins({ port: fixture.nats.port, token: returning, total, concurrency: 1 });
    calloutServerCpu += (await cpu(calloutPid)) - c0;
    serviceCpu += (await fixture.service.stats()).cpuSeconds - s0;
    callout.push(...a.latenciesMs);
    c0 = await cpu(plainPid);
    const b = await runLogins({ port: plainToken.port, token: () => token, total, concurrency: 1 });
    plainServerCpu += (await cpu(plainPid)) - c0;
    direct.push(...b.latenciesMs);
  }
  const sorted = (x: number[]) => [...x].sort((p, q) => p - q);
  progress("latency: the steps in-process");
  const steps = await stepTimes(Math.min(logins, 2000), { url: plainToken.url, token });
  const n = callout.length;
  return {
    logins: n,
    calloutP50Ms: percentile(sorted(callout), 50),
    calloutP90Ms: percentile(sorted(callout), 90),
    plainP50Ms: percentile(sorted(direct), 50),
    plainP90Ms: percentile(sorted(direct), 90),
    serviceHandlerP50Ms: median(durations),
    steps,
    natsServerCpuMsPerLogin: {
      callout: (calloutServerCpu * 1000) / n,
      plain: (plainServerCpu * 1000) / direct.length,
    },
    serviceCpuMsPerLogin: (serviceCpu * 1000) / n,
  };
}

/** The breakdown as a Markdown table. */
export function renderLatency(r: LatencyResult): string {
  const f = (x: number) => x.toLocaleString("en-US", { maximumFractionDigits: 3 });
  const extra = r.calloutP50Ms - r.plainP50Ms;
  const ours = r.serviceHandlerP50Ms + r.steps.publishMs;
  return [
    `| one returning login at concurrency 1 (${r.logins} logins) | ms |`,
    "|---|---:|",
    `| end to end p50 / p90, callout | ${f(r.calloutP50Ms)} / ${f(r.calloutP90Ms)} |`,
    `| end to end p50 / p90, plain token | ${f(r.plainP50Ms)} / ${f(r.plainP90Ms)} |`,
    `| difference of the p50s | ${f(extra)} |`,
    `| of which the service: request in → reply ready, p50 of its log lines | ${
      f(r.serviceHandlerP50Ms)
    } |`,
    `| — decode and verify the server's request (ed25519), in-process median | ${
      f(r.steps.verifyRequestMs)
    } |`,
    `| — decide (token from the verified-token cache, ServiceAccount, policy) | ${
      f(r.steps.decideMs)
    } |`,
    `| — sign the user JWT and the response (2 × ed25519) | ${f(r.steps.signMs)} |`,
    `| — the whole handler (with its log line and metrics) | ${f(r.steps.wholeHandlerMs)} |`,
    `| of which the service: hand the reply to nats.js (publish + flush) | ${
      f(r.steps.publishMs)
    } |`,
    `| the rest: nats-server's callout work and two loopback hops | ${f(extra - ours)} |`,
    `| nats-server CPU per login, callout / plain token | ${
      f(r.natsServerCpuMsPerLogin.callout)
    } / ${f(r.natsServerCpuMsPerLogin.plain)} |`,
    `| service CPU per login | ${f(r.serviceCpuMsPerLogin)} |`,
  ].join("\n") + "\n";
}

if (import.meta.main) {
  const { parseArgs } = await import("node:util");
  const { values } = parseArgs({
    args: Deno.args,
    options: { logins: { type: "string" }, out: { type: "string" } },
  });
  const encoder = new TextEncoder();
  const result = await runLatency({
    logins: Number(values.logins ?? 2000),
    progress: (m) => Deno.stderr.writeSync(encoder.encode(`[latency] ${m}\n`)),
  });
  const out = values.out ?? new URL("./results/latency-latest.json", import.meta.url).pathname;
  await Deno.writeTextFile(out, JSON.stringify(result, null, 2) + "\n");
  Deno.stdout.writeSync(encoder.encode(renderLatency(result)));
}
