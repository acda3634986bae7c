/**
 * The same logins against several implementations of the service, side by side in one run
 * (issue 18): this checkout, optionally another checkout of it (the "before" of a change) and the
 * Go reference service built from its source. Each implementation gets its own world
 * ({@linkcode BenchFixture}: nats-server with the callout, the test apiserver, the service process),
 * all started before the first measurement and kept running; the scenarios then run in rounds,
 * implementation after implementation inside each scenario, so a drift of the shared machine's
 * speed hits all of them alike. Each figure is the median of the rounds, and each ratio is taken
 * round by round, then its median.
 *
 * Scenarios: a returning token at concurrency 1 and 16 (served from the verified-token cache),
 * first-seen tokens at 16 (every token minted for this round: a full RS256 verification each) and
 * forged tokens at 16 (signed by a look-alike key under the trusted `kid`: only the signature check
 * can refuse them).
 *
 * @module
 */
import { BenchFixture } from "./fixture.ts";
import { type LoginRun, percentile, runLogins } from "./login_client.ts";
import { findNatsServerPid, readProcStats } from "./proc.ts";
import type { ServiceImplementation } from "./service_process.ts";

/** One implementation to measure. */
export interface Contender {
  /** Its name in the tables (`now`, `before`, `reference`). */
  readonly name: string;
  /** What to run. @default {this checkout} */
  readonly implementation?: ServiceImplementation;
}

/** Options of {@linkcode runVersus}. */
export interface VersusOptions {
  /** The implementations; the first is the one the ratios put on top. */
  readonly contenders: readonly Contender[];
  /** Rounds of every scenario. @default {3} */
  readonly rounds?: number;
  /** Returning-token logins per run at concurrency 16 (a quarter of them at concurrency 1). @default {2000} */
  readonly logins?: number;
  /** First-seen-token logins per run. @default {1000} */
  readonly fresh?: number;
  /** Forged-token logins per run. @default {1000} */
  readonly forged?: number;
  /** Progress messages. @default {ignore} */
  readonly progress?: (message: string) => void;
}

/** The scenarios, in the order each round runs them. */
export const SCENARIOS = [
  "returning-c1",
  "returning-c16",
  "first-seen-c16",
  "forged-c16",
] as const;

/** One scenario. */
export type Scenario = (typeof SCENARIOS)[number];

/** One run of one scenario against one implementation. */
export interface VersusRun {
  readonly loginsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Service CPU milliseconds per attempt (from /proc). */
  readonly serviceCpuMsPerLogin: number;
  /** nats-server CPU milliseconds per attempt. */
  readonly natsServerCpuMsPerLogin: number;
  /** Attempts that did not end as the scenario expects (refused valid, accepted forged). */
  readonly unexpected: number;
}

/** The medians of one scenario for one implementation, over the rounds. */
export interface VersusFigure {
  readonly contender: string;
  readonly scenario: Scenario;
  readonly rounds: readonly VersusRun[];
  readonly median: VersusRun;
}

/** Ratios of the first contender over another, per scenario: the median of the per-round ratios. */
export interface VersusRatio {
  readonly scenario: Scenario;
  readonly of: string;
  readonly over: string;
  /** logins/s of `of` over logins/s of `over`. */
  readonly loginsPerSecond: number;
  /** Service CPU per login of `of` over that of `over`. */
  readonly serviceCpu: number;
  /** p50 latency of `of` over that of `over`. */
  readonly p50: number;
}

/** What {@linkcode runVersus} measured. */
export interface VersusResult {
  readonly rounds: number;
  readonly loadAverageAtStart: string;
  readonly loadAverageAtEnd: string;
  readonly figures: readonly VersusFigure[];
  readonly ratios: readonly VersusRatio[];
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}

interface World {
  readonly contender: Contender;
  readonly fixture: BenchFixture;
  readonly natsPid: number | undefined;
}

/** Log in with the world's returning tokens until one succeeds (the reference has no /readyz). */
async function warmUp(world: World): Promise<void> {
  const { fixture } = world;
  for (let attempt = 0; attempt < 100; attempt++) {
    const run = await runLogins({
      port: fixture.nats.port,
      token: (i) => fixture.tokens[i % fixture.tokens.length]!,
      total: 200,
      concurrency: 16,
    });
    if (run.failed === 0) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${world.contender.name}: warm-up logins keep failing`);
}

async function measure(
  world: World,
  scenario: Scenario,
  tokens: (i: number) => string,
  total: number,
): Promise<VersusRun> {
  const { fixture, natsPid } = world;
  const natsCpu = async () => natsPid === undefined ? 0 : (await readProcStats(natsPid)).cpuSeconds;
  const before = { service: (await fixture.service.stats()).cpuSeconds, nats: await natsCpu() };
  const run: LoginRun = await runLogins({
    port: fixture.nats.port,
    token: tokens,
    total,
    concurrency: scenario === "returning-c1" ? 1 : 16,
  });
  const service = (await fixture.service.stats()).cpuSeconds - before.service;
  const nats = (await natsCpu()) - before.nats;
  return {
    loginsPerSecond: Math.round((run.attempts / run.wallSeconds) * 10) / 10,
    p50Ms: round3(percentile(run.latenciesMs, 50)),
    p99Ms: round3(percentile(run.latenciesMs, 99)),
    serviceCpuMsPerLogin: round3((service * 1000) / run.attempts),
    natsServerCpuMsPerLogin: round3((nats * 1000) / run.attempts),
    unexpected: scenario === "forged-c16" ? run.ok : run.failed,
  };
}

/**
 * Start a world per contender, then run every scenario `rounds` times, contenders interleaved.
 *
 * @example
 * ```ts ignore
 * import { runVersus } from "./versus.ts";
 * const result = await runVersus({ contenders: [{ name: "now" },
 *   { name: "reference", implementation: { kind: "executable", path: "/tmp/callout" } }] });
 * ```
 */
export async function runVersus(options: VersusOptions): Promise<VersusResult> {
  const {
    contenders,
    rounds = 3,
    logins = 2000,
    fresh = 1000,
    forged = 1000,
    progress = () => {},
  } = options;
  const loadAverageAtStart = Deno.loadavg().map((l) => l.toFixed(2)).join(" ");
  await using stack = new AsyncDisposableStack();
  const worlds: World[] = [];
  for (const contender of contenders) {
    progress(`versus: starting ${contender.name}`);
    const fixture = stack.use(
      await BenchFixture.start(
        contender.implementation ? { implementation: contender.implementation } : {},
      ),
    );
    const world = { contender, fixture, natsPid: await findNatsServerPid(fixture.nats.port) };
    await warmUp(world);
    worlds.push(world);
  }

  const runs = new Map<string, VersusRun[]>();
  const key = (w: World, s: Scenario) => `${w.contender.name}\u0000${s}`;
  for (let r = 0; r < rounds; r++) {
    // Every round's first-seen tokens are minted before its measurements: new to every service.
    const freshTokens = await Promise.all(worlds.map((w) => w.fixture.freshTokens(fresh)));
    const forgedTokens = await Promise.all(worlds.map((w) => w.fixture.forgedTokens(forged)));
    for (const scenario of SCENARIOS) {
      for (const [i, world] of worlds.entries()) {
        const { tokens } = world.fixture;
        const run = scenario === "returning-c1"
          ? await measure(world, scenario, (n) => tokens[n % tokens.length]!, logins / 4)
          : scenario === "returning-c16"
          ? await measure(world, scenario, (n) => tokens[n % tokens.length]!, logins)
          : scenario === "first-seen-c16"
          ? await measure(world, scenario, (n) => freshTokens[i]![n]!, fresh)
          : await measure(world, scenario, (n) => forgedTokens[i]![n]!, forged);
        const list = runs.get(key(world, scenario)) ?? [];
        list.push(run);
        runs.set(key(world, scenario), list);
        progress(
          `versus round ${r + 1} ${scenario} ${world.contender.name}: ${run.loginsPerSecond}/s, ` +
            `service ${run.serviceCpuMsPerLogin} ms CPU/login, p50 ${run.p50Ms} ms` +
            (run.unexpected ? `, ${run.unexpected} unexpected` : ""),
        );
      }
    }
  }

  const figures: VersusFigure[] = [];
  for (const world of worlds) {
    for (const scenario of SCENARIOS) {
      const list = runs.get(key(world, scenario))!;
      figures.push({
        contender: world.contender.name,
        scenario,
        rounds: list,
        median: {
          loginsPerSecond: median(list.map((x) => x.loginsPerSecond)),
          p50Ms: median(list.map((x) => x.p50Ms)),
          p99Ms: median(list.map((x) => x.p99Ms)),
          serviceCpuMsPerLogin: median(list.map((x) => x.serviceCpuMsPerLogin)),
          natsServerCpuMsPerLogin: median(list.map((x) => x.natsServerCpuMsPerLogin)),
          unexpected: list.reduce((sum, x) => sum + x.unexpected, 0),
        },
      });
    }
  }
  const ratios: VersusRatio[] = [];
  const [first, ...others] = worlds;
  for (const other of first ? others : []) {
    for (const scenario of SCENARIOS) {
      const a = runs.get(key(first!, scenario))!;
      const b = runs.get(key(other, scenario))!;
      const per = (f: (x: VersusRun) => number) => round3(median(a.map((x, i) => f(x) / f(b[i]!))));
      ratios.push({
        scenario,
        of: first!.contender.name,
        over: other.contender.name,
        loginsPerSecond: per((x) => x.loginsPerSecond),
        serviceCpu: per((x) => x.serviceCpuMsPerLogin),
        p50: per((x) => x.p50Ms),
      });
    }
  }
  return {
    rounds,
    loadAverageAtStart,
    loadAverageAtEnd: Deno.loadavg().map((l) => l.toFixed(2)).join(" "),
    figures,
    ratios,
  };
}

/** The result as Markdown tables. */
export function renderVersus(r: VersusResult): string {
  const fmt = (n: number) => n.toLocaleString("en-US", { maximumFractionDigits: 3 });
  const lines = [
    `| side by side, median of ${r.rounds} rounds (load ${r.loadAverageAtStart} → ${r.loadAverageAtEnd}) | implementation | logins/s | p50 ms | p99 ms | CPU ms/login: service / nats-server |`,
    "|---|---|---:|---:|---:|---:|",
  ];
  for (const f of r.figures) {
    const m = f.median;
    lines.push(
      `| ${f.scenario} | ${f.contender} | ${fmt(m.loginsPerSecond)} | ${fmt(m.p50Ms)} | ${
        fmt(m.p99Ms)
      } | ${fmt(m.serviceCpuMsPerLogin)} / ${fmt(m.natsServerCpuMsPerLogin)} |` +
        (m.unexpected ? ` (${m.unexpected} unexpected)` : ""),
    );
  }
  lines.push(
    "",
    "| ratio, median of the per-round ratios | logins/s | service CPU per login | p50 |",
    "|---|---:|---:|---:|",
  );
  for (const x of r.ratios) {
    lines.push(
      `| ${x.scenario}: ${x.of} / ${x.over} | ${fmt(x.loginsPerSecond)} | ${fmt(x.serviceCpu)} | ${
        fmt(x.p50)
      } |`,
    );
  }
  return lines.join("\n") + "\n";
}

if (import.meta.main) {
  const { parseArgs } = await import("node:util");
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      reference: { type: "string" },
      before: { type: "string" },
      rounds: { type: "string" },
      logins: { type: "string" },
      fresh: { type: "string" },
      forged: { type: "string" },
      out: { type: "string" },
    },
    strict: true,
  });
  const contenders: Contender[] = [{ name: "now" }];
  if (values.before) {
    const root = values.before.endsWith("/") ? values.before : `${values.before}/`;
    contenders.push({ name: "before", implementation: { kind: "checkout", root } });
  }
  if (values.reference) {
    contenders.push({
      name: "reference",
      implementation: { kind: "executable", path: values.reference },
    });
  }
  const int = (v: string | undefined) => v === undefined ? undefined : Number(v);
  const encoder = new TextEncoder();
  const result = await runVersus({
    contenders,
    ...(values.rounds ? { rounds: int(values.rounds)! } : {}),
    ...(values.logins ? { logins: int(values.logins)! } : {}),
    ...(values.fresh ? { fresh: int(values.fresh)! } : {}),
    ...(values.forged ? { forged: int(values.forged)! } : {}),
    progress: (m) => Deno.stderr.writeSync(encoder.encode(`[versus] ${m}\n`)),
  });
  const out = values.out ?? new URL("./results/versus-latest.json", import.meta.url).pathname;
  await Deno.writeTextFile(out, JSON.stringify(result, null, 2) + "\n");
  Deno.stdout.writeSync(encoder.encode(renderVersus(result)));
}
