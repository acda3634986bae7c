/**
 * `deno task bench`: logins per second and latency through a real nats-server, with the baseline
 * (the same server with plain token auth) measured in the same run, a denial run, the reconnect
 * storm, the in-process decision rate and the ServiceAccount cache at scale. Writes
 * `bench/results/latest.json` and prints a Markdown table.
 *
 * Flags (all optional): `--logins=2000` per concurrency level, `--concurrency=1,16,64`,
 * `--fresh=1000` first-seen-token logins, `--denials=1000`, `--storm-clients=1000`,
 * `--cache-sas=100000`, `--cache-pods=100000`, `--decision-ms=3000`, `--warmup=300`,
 * `--rolling-rounds=2`, `--revocation-clients=100`, `--account-namespaces=1000`,
 * `--account-first-logins=20`,
 * `--soak-minutes=0` (the memory soak of bench/soak.ts; 0 skips it),
 * `--latency-logins=2000` (bench/latency.ts), `--reference=PATH` (the Go reference's executable)
 * and `--before=DIR` (another checkout) for the side-by-side section (bench/versus.ts, run when
 * either is given), `--versus-rounds=3`, `--live-connections=0` (bench/live_connections.ts, the
 * 100,000-connection run; 0 skips it), `--live-servers=6`,
 * `--skip=storm,cache,decision,rolling,revocation,accounts,latency`,
 * `--out=bench/results/latest.json`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { tolerateClientResets } from "../tests/support/nats_server.ts";
import { NatsServer } from "../tests/support/nats_server.ts";
import { type CacheScaleResult, runCacheScale } from "./cache_scale.ts";
import { BenchFixture, plainTokenConfig, randomToken } from "./fixture.ts";
import { assertAllowed, createDecisionPipeline, decisionsPerSecond } from "./inprocess.ts";
import { type LoginRun, percentile, runLogins } from "./login_client.ts";
import { findNatsServerPid, readProcStats } from "./proc.ts";
import { type RevocationResult, runRevocation } from "./revocation.ts";
import { type RollingResult, runRollingRestart } from "./rolling.ts";
import { runSoak, type SoakResult } from "./soak.ts";
import { type AccountsBenchResult, runAccountsBench } from "./accounts.ts";
import { renderStorms, runStorms, type StormsResult } from "./storms.ts";
import { type LatencyResult, renderLatency, runLatency } from "./latency.ts";
import { type Contender, renderVersus, runVersus, type VersusResult } from "./versus.ts";
import {
  type LiveConnectionsResult,
  renderLiveConnections,
  runLiveConnections,
} from "./live_connections.ts";

/** Options of {@linkcode runBench}; the CLI flags map onto these. */
export interface BenchOptions {
  /** Logins per concurrency level (callout and baseline alike). @default {2000} */
  logins?: number;
  /** Concurrency levels. @default {[1, 16, 64]} */
  concurrency?: readonly number[];
  /** Logins with never-seen tokens (full RS256 verification), at concurrency 16. @default {1000} */
  fresh?: number;
  /** Logins with forged tokens, at concurrency 16. @default {1000} */
  denials?: number;
  /** Clients in each of the three reconnect storms (bench/storms.ts). @default {10000} */
  stormClients?: number;
  /** ServiceAccounts for the cache benchmark. @default {100000} */
  cacheServiceAccounts?: number;
  /** Pods for the Pod-watch part of the cache benchmark (0 skips it). @default {100000} */
  cachePods?: number;
  /** Duration of each in-process decision measurement. @default {3000} */
  decisionMs?: number;
  /** Logins before measuring (JIT, connections, caches). @default {300} */
  warmup?: number;
  /**
   * Minutes of the memory soak (bench/soak.ts: 50 first-seen-token logins/s, RSS slope after
   * warm-up); 0 leaves it out. @default {0}
   */
  soakMinutes?: number;
  /** Sections to leave out. @default {[]} */
  skip?:
    readonly ("storm" | "cache" | "decision" | "rolling" | "revocation" | "accounts" | "latency")[];
  /** Logins of the concurrency-1 latency breakdown (bench/latency.ts). @default {2000} */
  latencyLogins?: number;
  /** The Go reference's executable, for the side-by-side section. @default {none} */
  reference?: string;
  /** Another checkout of this project, for the side-by-side section. @default {none} */
  before?: string;
  /** Rounds of the side-by-side section. @default {3} */
  versusRounds?: number;
  /** Connections of the live-connections run (bench/live_connections.ts); 0 skips it. @default {0} */
  liveConnections?: number;
  /** nats-servers of the live-connections run. @default {6} */
  liveServers?: number;
  /** Connections revoked one by one in the revocation-latency run. @default {100} */
  revocationClients?: number;
  /** Namespaces provisioned at once in the accounts section. @default {1000} */
  accountNamespaces?: number;
  /** First logins in new Namespaces in the accounts section. @default {20} */
  accountFirstLogins?: number;
  /** Rolling restarts of both replicas in the lost-logins run. @default {2} */
  rollingRounds?: number;
  /** Progress messages. @default {ignore} */
  progress?: (message: string) => void;
}

/** One measured login run. */
export interface LoginRunResult {
  readonly run: "callout" | "callout-first-seen" | "denial" | "token-baseline";
  readonly concurrency: number;
  readonly attempts: number;
  readonly ok: number;
  readonly failed: number;
  readonly errors: Readonly<Record<string, number>>;
  readonly loginsPerSecond: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  /** Service CPU seconds during the run (0 for the baseline, which does not use the service). */
  readonly serviceCpuSeconds: number;
  /** Service CPU milliseconds per attempt. */
  readonly serviceCpuMsPerLogin: number;
  /** nats-server CPU milliseconds per attempt (the server this run logged in to). */
  readonly natsServerCpuMsPerLogin: number;
  /** Load generator CPU milliseconds per attempt (this process). */
  readonly generatorCpuMsPerLogin: number;
}

/** Everything one `deno task bench` measured (the JSON file). */
export interface BenchResult {
  readonly meta: {
    readonly date: string;
    readonly deno: string;
    readonly natsServer: string;
    readonly cpu: string;
    readonly cores: number;
    readonly loadAverageAtStart: string;
    readonly options: Readonly<Record<string, unknown>>;
  };
  /** In-process decisions per second, one at a time. */
  readonly decision: {
    readonly seenTokenPerSecond: number;
    readonly firstSeenTokenPerSecond: number;
  } | null;
  readonly logins: readonly LoginRunResult[];
  /** Callout logins/s over baseline logins/s, per concurrency. */
  readonly ratio: readonly {
    readonly concurrency: number;
    readonly calloutPerSecond: number;
    readonly baselinePerSecond: number;
    readonly ratio: number;
  }[];
  readonly service: {
    readonly cpuSecondsTotal: number;
    readonly peakRssMiB: number;
  };
  /** The reconnect storm: returning, first-seen (service restarted too), plain-token baseline. */
  readonly storm: StormsResult | null;
  /** Where a concurrency-1 login's time goes. */
  readonly latency: LatencyResult | null;
  /** This checkout against another and the Go reference, side by side. */
  readonly versus: VersusResult | null;
  /** 100,000 live connections, 3 replicas, revocation on. */
  readonly live: LiveConnectionsResult | null;
  readonly cache: CacheScaleResult | null;
  /** The memory soak (`--soak-minutes`), or null when not run. */
  readonly soak: SoakResult | null;
  /** Accounts that follow namespaces (bench/accounts.ts), or null when skipped. */
  readonly accounts?: AccountsBenchResult | null;
  /** Lost logins in a rolling restart (two replicas, one starting during an apiserver outage). */
  readonly rolling: RollingResult | null;
  /** Live revocation: ServiceAccount deleted → its connection closed. */
  readonly revocation: RevocationResult | null;
}

function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

function summarize(
  run: LoginRunResult["run"],
  concurrency: number,
  result: LoginRun,
  cpu: { service: number; natsServer: number; generator: number },
): LoginRunResult {
  const perLogin = (seconds: number) => round((seconds * 1000) / result.attempts, 3);
  return {
    run,
    concurrency,
    attempts: result.attempts,
    ok: result.ok,
    failed: result.failed,
    errors: result.errors,
    loginsPerSecond: round(result.attempts / result.wallSeconds, 1),
    p50Ms: round(percentile(result.latenciesMs, 50)),
    p90Ms: round(percentile(result.latenciesMs, 90)),
    p99Ms: round(percentile(result.latenciesMs, 99)),
    serviceCpuSeconds: round(cpu.service),
    serviceCpuMsPerLogin: perLogin(cpu.service),
    natsServerCpuMsPerLogin: perLogin(cpu.natsServer),
    generatorCpuMsPerLogin: perLogin(cpu.generator),
  };
}

async function commandOutput(cmd: string, args: string[]): Promise<string> {
  try {
    const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "null" }).output();
    return new TextDecoder().decode(out.stdout).trim();
  } catch {
    return "unknown";
  }
}

async function cpuModel(): Promise<string> {
  const info = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  return /^model name\s*:\s*(.+)$/m.exec(info)?.[1]?.trim() ?? "unknown";
}

/** Run every section and return the results (the caller writes and prints them). */
export async function runBench(options: BenchOptions = {}): Promise<BenchResult> {
  const {
    logins = 2000,
    concurrency = [1, 16, 64],
    fresh = 1000,
    denials = 1000,
    stormClients = 10_000,
    cacheServiceAccounts = 100_000,
    cachePods = 100_000,
    decisionMs = 3000,
    warmup = 300,
    skip = [],
    soakMinutes = 0,
    progress = () => {},
  } = options;
  using _resets = tolerateClientResets();
  const meta = {
    date: new Date().toISOString(),
    deno: Deno.version.deno,
    natsServer: await commandOutput("nats-server", ["--version"]),
    cpu: await cpuModel(),
    cores: navigator.hardwareConcurrency,
    loadAverageAtStart: Deno.loadavg().map((l) => l.toFixed(2)).join(" "),
    options: {
      logins,
      concurrency,
      fresh,
      denials,
      stormClients,
      reference: options.reference ?? null,
      before: options.before ?? null,
      liveConnections: options.liveConnections ?? 0,
      cacheServiceAccounts,
      cachePods,
      decisionMs,
    },
  };

  let decision: BenchResult["decision"] = null;
  if (!skip.includes("decision")) {
    progress("decision: in-process");
    const p = await createDecisionPipeline();
    assertAllowed(await p.cached(p.requests[0]!, undefined));
    assertAllowed(await p.uncached(p.requests[0]!, undefined));
    await decisionsPerSecond(p.cached, p.requests, Math.min(500, decisionMs)); // warm-up
    decision = {
      seenTokenPerSecond: round(await decisionsPerSecond(p.cached, p.requests, decisionMs), 0),
      firstSeenTokenPerSecond: round(
        await decisionsPerSecond(p.uncached, p.requests, decisionMs),
        0,
      ),
    };
  }

  progress("starting nats-server, test apiserver and the service");
  await using fixture = await BenchFixture.start();
  const port = fixture.nats.port;
  const tokens = fixture.tokens;
  const baselineToken = randomToken(tokens[0]!.length);
  await using baseline = await NatsServer.start({ config: plainTokenConfig(baselineToken) });

  const warm = await runLogins({
    port,
    token: (i) => tokens[i % tokens.length]!,
    total: warmup,
    concurrency: 16,
  });
  if (warm.failed > 0) throw new Error(`warm-up logins failed: ${JSON.stringify(warm.errors)}`);
  await runLogins({
    port: baseline.port,
    token: () => baselineToken,
    total: warmup,
    concurrency: 16,
  });

  const calloutPid = await findNatsServerPid(port);
  const baselinePid = await findNatsServerPid(baseline.port);
  const cpuOf = async (pid: number | undefined) =>
    pid === undefined ? 0 : (await readProcStats(pid)).cpuSeconds;
  const results: LoginRunResult[] = [];
  const measure = async (
    run: LoginRunResult["run"],
    c: number,
    serverPort: number,
    token: (i: number) => string,
    total: number,
  ) => {
    const serverPid = serverPort === port ? calloutPid : baselinePid;
    const before = {
      service: (await fixture.service.stats()).cpuSeconds,
      natsServer: await cpuOf(serverPid),
      generator: await cpuOf(Deno.pid),
    };
    const result = await runLogins({ port: serverPort, token, total, concurrency: c });
    const cpu = {
      service: run === "token-baseline"
        ? 0
        : (await fixture.service.stats()).cpuSeconds - before.service,
      natsServer: (await cpuOf(serverPid)) - before.natsServer,
      generator: (await cpuOf(Deno.pid)) - before.generator,
    };
    const summary = summarize(run, c, result, cpu);
    progress(
      `${run} c=${c}: ${summary.loginsPerSecond}/s p50 ${summary.p50Ms} ms p99 ${summary.p99Ms} ms` +
        (summary.failed ? ` (${summary.failed} failed)` : ""),
    );
    results.push(summary);
    return summary;
  };

  const ratio: BenchResult["ratio"][number][] = [];
  for (const c of concurrency) {
    const callout = await measure("callout", c, port, (i) => tokens[i % tokens.length]!, logins);
    const plain = await measure("token-baseline", c, baseline.port, () => baselineToken, logins);
    ratio.push({
      concurrency: c,
      calloutPerSecond: callout.loginsPerSecond,
      baselinePerSecond: plain.loginsPerSecond,
      ratio: round(callout.loginsPerSecond / plain.loginsPerSecond, 3),
    });
  }

  if (fresh > 0) {
    progress(`minting ${fresh} first-seen tokens`);
    const freshTokens = await fixture.freshTokens(fresh);
    await measure("callout-first-seen", 16, port, (i) => freshTokens[i]!, fresh);
  }
  if (denials > 0) {
    const forged = await fixture.forgedTokens(denials);
    const denial = await measure("denial", 16, port, (i) => forged[i]!, denials);
    if (denial.ok > 0) throw new Error(`${denial.ok} forged tokens were accepted`);
  }
  const afterLogins = await fixture.service.stats();

  let storm: StormsResult | null = null;
  if (!skip.includes("storm") && stormClients > 0) {
    storm = await runStorms(fixture, { clients: stormClients, progress });
  }
  const final = await fixture.service.stats();

  let cache: CacheScaleResult | null = null;
  if (!skip.includes("cache") && cacheServiceAccounts > 0) {
    cache = await runCacheScale({
      serviceAccounts: cacheServiceAccounts,
      pods: cachePods,
      progress,
    });
  }

  let rolling: RollingResult | null = null;
  if (!skip.includes("rolling") && (options.rollingRounds ?? 2) > 0) {
    rolling = await runRollingRestart({ rounds: options.rollingRounds ?? 2, progress });
  }

  let revocation: RevocationResult | null = null;
  if (!skip.includes("revocation") && (options.revocationClients ?? 100) > 0) {
    revocation = await runRevocation({ clients: options.revocationClients ?? 100, progress });
  }

  let accounts: AccountsBenchResult | null = null;
  if (!skip.includes("accounts")) {
    accounts = await runAccountsBench({
      namespaces: options.accountNamespaces ?? 1000,
      firstLogins: options.accountFirstLogins ?? 20,
      progress,
    });
  }

  let latency: LatencyResult | null = null;
  if (!skip.includes("latency") && (options.latencyLogins ?? 2000) > 0) {
    latency = await runLatency({ logins: options.latencyLogins ?? 2000, progress });
  }

  let versus: VersusResult | null = null;
  if (options.reference || options.before) {
    const contenders: Contender[] = [{ name: "now" }];
    if (options.before) {
      const root = options.before.endsWith("/") ? options.before : `${options.before}/`;
      contenders.push({ name: "before", implementation: { kind: "checkout", root } });
    }
    if (options.reference) {
      contenders.push({
        name: "reference",
        implementation: { kind: "executable", path: options.reference },
      });
    }
    versus = await runVersus({
      contenders,
      rounds: options.versusRounds ?? 3,
      logins,
      fresh,
      forged: denials,
      progress,
    });
  }

  let live: LiveConnectionsResult | null = null;
  if ((options.liveConnections ?? 0) > 0) {
    const connections = options.liveConnections!;
    live = await runLiveConnections({
      connections,
      servers: options.liveServers ?? 6,
      fleet: Math.max(1, Math.round(connections / 10)),
      perServiceAccount: Math.min(100, Math.max(1, Math.round(connections / 100))),
      idleSeconds: connections >= 10_000 ? 30 : 2,
      progress,
    });
  }

  let soak: SoakResult | null = null;
  if (soakMinutes > 0) {
    soak = await runSoak({ minutes: soakMinutes, rate: 50, progress });
  }

  return {
    meta,
    decision,
    logins: results,
    ratio,
    service: {
      cpuSecondsTotal: round(final.cpuSeconds),
      peakRssMiB: round(Math.max(afterLogins.peakRssMiB, final.peakRssMiB), 1),
    },
    storm,
    latency,
    versus,
    live,
    cache: cache && roundAll({
      ...cache,
      modes: cache.modes.map((m) => roundAll(m)),
      podWatch: cache.podWatch && roundAll(cache.podWatch),
    }),
    rolling: rolling && roundAll(rolling),
    revocation: revocation && roundAll(revocation),
    soak,
    accounts,
  };
}

function roundAll<T extends object>(value: T): T {
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [k, typeof v === "number" ? round(v, 3) : v]),
  ) as T;
}

function fmt(n: number): string {
  return n.toLocaleString("en-US", { maximumFractionDigits: 2 });
}

/** The results as Markdown tables (what docs/performance.md shows). */
export function renderTable(r: BenchResult): string {
  const lines: string[] = [];
  lines.push(
    `Deno ${r.meta.deno}, ${r.meta.natsServer}, ${r.meta.cpu} (${r.meta.cores} cores), ${r.meta.date}`,
    "",
    "| run | concurrency | logins | failed | logins/s | p50 ms | p90 ms | p99 ms | CPU ms/login: service / nats-server / load generator |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
  );
  const names: Record<LoginRunResult["run"], string> = {
    "callout": "callout, returning token",
    "callout-first-seen": "callout, first-seen token",
    "denial": "callout, forged token (denied)",
    "token-baseline": "baseline: plain token, no callout",
  };
  const order: LoginRunResult["run"][] = [
    "callout",
    "token-baseline",
    "callout-first-seen",
    "denial",
  ];
  for (const run of order) {
    for (const x of r.logins.filter((l) => l.run === run)) {
      const failed = run === "denial" ? `${x.failed} (all)` : String(x.failed);
      lines.push(
        `| ${names[run]} | ${x.concurrency} | ${x.attempts} | ${failed} | ${
          fmt(x.loginsPerSecond)
        } | ${fmt(x.p50Ms)} | ${fmt(x.p90Ms)} | ${fmt(x.p99Ms)} | ${
          run === "token-baseline" ? "–" : fmt(x.serviceCpuMsPerLogin)
        } / ${fmt(x.natsServerCpuMsPerLogin)} / ${fmt(x.generatorCpuMsPerLogin)} |`,
      );
    }
  }
  lines.push(
    "",
    "| concurrency | callout logins/s | baseline logins/s | callout / baseline |",
    "|---:|---:|---:|---:|",
  );
  for (const x of r.ratio) {
    lines.push(
      `| ${x.concurrency} | ${fmt(x.calloutPerSecond)} | ${fmt(x.baselinePerSecond)} | ${
        (x.ratio * 100).toFixed(0)
      } % |`,
    );
  }
  lines.push(
    "",
    `Service process during the login runs and the storm: ${
      fmt(r.service.cpuSecondsTotal)
    } CPU s in total, peak RSS ${fmt(r.service.peakRssMiB)} MiB.`,
  );
  if (r.decision) {
    lines.push(
      "",
      "| in-process decision (verify request, verify token, policy, sign user JWT + response) | decisions/s |",
      "|---|---:|",
      `| token seen before (verified-token cache) | ${fmt(r.decision.seenTokenPerSecond)} |`,
      `| first-seen token (RS256 verification) | ${fmt(r.decision.firstSeenTokenPerSecond)} |`,
    );
  }
  if (r.storm) lines.push("", renderStorms(r.storm).trimEnd());
  if (r.latency) lines.push("", renderLatency(r.latency).trimEnd());
  if (r.versus) lines.push("", renderVersus(r.versus).trimEnd());
  if (r.live) lines.push("", renderLiveConnections(r.live).trimEnd());
  if (r.cache) {
    const c = r.cache;
    lines.push(
      "",
      `| ServiceAccount cache: ${fmt(c.serviceAccounts)} ServiceAccounts in ${
        fmt(c.namespaces)
      } namespaces | |`,
      "|---|---:|",
      `| first sync (list, ${c.pages} pages) | ${fmt(c.firstSyncSeconds)} s |`,
      `| process start → synced | ${fmt(c.startToSyncedSeconds)} s |`,
      `| RSS after sync | ${fmt(c.rssAfterSyncMiB)} MiB |`,
      `| peak RSS | ${fmt(c.peakRssMiB)} MiB |`,
      `| RSS of the same service with no ServiceAccounts | ${fmt(c.emptyRssMiB)} MiB |`,
    );
    if (c.modes.length > 0) {
      lines.push(
        "",
        "| RSS per access mode, synced (after 1 s) | ServiceAccounts | RSS MiB | of which anonymous MiB | peak RSS MiB | start → synced s |",
        "|---|---:|---:|---:|---:|---:|",
      );
      for (const m of c.modes) {
        lines.push(
          `| ${m.mode} | ${fmt(m.serviceAccounts)} | ${fmt(m.rssAfterSyncMiB)} | ${
            fmt(m.anonRssMiB)
          } | ${fmt(m.peakRssMiB)} | ${fmt(m.startToSyncedSeconds)} |`,
        );
      }
    }
    const p = c.podWatch;
    if (p) {
      lines.push(
        "",
        `| Pod watch (K8S_WATCH_PODS): ${
          fmt(p.pods)
        } Pods, metadata only, plus the ServiceAccounts | |`,
        "|---|---:|",
        `| Pod first sync (list, ${p.pages} pages) | ${fmt(p.firstSyncSeconds)} s |`,
        `| RSS after both syncs | ${fmt(p.rssAfterSyncMiB)} MiB |`,
        `| peak RSS | ${fmt(p.peakRssMiB)} MiB |`,
        `| RSS added by the Pods | ${fmt(p.podCacheMiB)} MiB |`,
      );
    }
  }
  if (r.rolling) {
    const g = r.rolling;
    lines.push(
      "",
      `| rolling restart: 2 replicas, ${g.rounds} rounds, one start during a ${
        fmt(g.outageSeconds)
      } s apiserver outage | |`,
      "|---|---:|",
      `| valid logins attempted / succeeded | ${fmt(g.attempts)} / ${fmt(g.ok)} |`,
      `| lost logins: refused / failed otherwise | ${g.refused} / ${g.otherFailures} |`,
      `| duration | ${fmt(g.seconds)} s |`,
    );
  }
  if (r.revocation) {
    const v = r.revocation;
    lines.push(
      "",
      `| live revocation: ${v.clients} connections, each ServiceAccount deleted in turn | |`,
      "|---|---:|",
      `| deletion → connection closed, p50 / p90 / p99 / max | ${fmt(v.p50Ms)} / ${
        fmt(v.p90Ms)
      } / ${fmt(v.p99Ms)} / ${fmt(v.maxMs)} ms |`,
      `| connections closed / still open after 10 s | ${v.revoked} / ${v.notRevoked} |`,
    );
  }
  if (r.accounts) {
    const a = r.accounts;
    lines.push(
      "",
      "| accounts that follow namespaces (3 servers, full resolver) | |",
      "|---|---:|",
      `| first login in a new Namespace, provisioning included (p50 / p90 / max of ${a.firstLogins}) | ${
        fmt(a.firstLoginP50Ms)
      } / ${fmt(a.firstLoginP90Ms)} / ${fmt(a.firstLoginMaxMs)} ms |`,
      `| of those, pushed by the login itself | ${a.firstLoginsThatPushed} |`,
      `| second login in the same Namespace (p50) | ${fmt(a.secondLoginP50Ms)} ms |`,
      `| ${a.namespaces} Namespaces created at once → all accounts on the resolver | ${
        fmt(a.provisionAllSeconds)
      } s (${fmt(a.provisionedPerSecond)}/s) |`,
      `| a replica started beside them reconciles (lookups) | ${
        fmt(a.reconcileExistingSeconds)
      } s, ${a.pushesByRestartedReplica} pushes |`,
      `| Namespace deleted → its connection closed (p50 / max of ${a.deletions}) | ${
        fmt(a.deletionClosedP50Ms)
      } / ${fmt(a.deletionClosedMaxMs)} ms |`,
    );
  }
  if (r.soak) {
    const k = r.soak;
    // A slope needs 3 samples after warm-up; a shorter soak says so instead of printing NaN.
    const perMin = (v: number | null) => v === null ? "– (run too short)" : `${fmt(v)} MiB/min`;
    const first = k.samples.find((x) => x.minute >= k.meta.warmupMinutes);
    const last = k.samples.at(-1);
    lines.push(
      "",
      `| memory soak: ${k.meta.rate} logins/s, ${
        k.meta.fresh * 100
      } % first-seen tokens, ${k.meta.ranMinutes} min (${k.meta.mode}) | |`,
      "|---|---:|",
      `| RSS after warm-up (${k.meta.warmupMinutes} min) → end | ${fmt(first?.rssMiB ?? NaN)} → ${
        fmt(last?.rssMiB ?? NaN)
      } MiB |`,
      `| RSS slope after warm-up | ${perMin(k.slope.rssMiBPerMinute)} |`,
      `| RSS slope after warm-up, sampled after a full GC | ${
        perMin(k.slope.rssAfterGcMiBPerMinute)
      } |`,
      `| JS heap slope after warm-up (after a full GC) | ${perMin(k.slope.heapUsedMiBPerMinute)} |`,
      `| logins ok / failed | ${k.logins.ok} / ${k.logins.failed} |`,
    );
  }
  return lines.join("\n") + "\n";
}

function parseCli(args: string[]): { options: BenchOptions; out: string } {
  const { values } = parseArgs({
    args,
    options: {
      logins: { type: "string" },
      concurrency: { type: "string" },
      fresh: { type: "string" },
      denials: { type: "string" },
      "storm-clients": { type: "string" },
      "cache-sas": { type: "string" },
      "cache-pods": { type: "string" },
      "soak-minutes": { type: "string" },
      "account-namespaces": { type: "string" },
      "account-first-logins": { type: "string" },
      "decision-ms": { type: "string" },
      warmup: { type: "string" },
      skip: { type: "string" },
      "rolling-rounds": { type: "string" },
      "revocation-clients": { type: "string" },
      "latency-logins": { type: "string" },
      reference: { type: "string" },
      before: { type: "string" },
      "versus-rounds": { type: "string" },
      "live-connections": { type: "string" },
      "live-servers": { type: "string" },
      out: { type: "string" },
    },
    strict: true,
  });
  const int = (name: string, value: string | undefined): number | undefined => {
    if (value === undefined) return undefined;
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new RangeError(`--${name} must be a non-negative integer, got ${value}`);
    }
    return n;
  };
  const options: BenchOptions = {};
  const set = <K extends keyof BenchOptions>(key: K, value: BenchOptions[K] | undefined) => {
    if (value !== undefined) options[key] = value;
  };
  set("logins", int("logins", values.logins));
  set("fresh", int("fresh", values.fresh));
  set("denials", int("denials", values.denials));
  set("stormClients", int("storm-clients", values["storm-clients"]));
  set("cacheServiceAccounts", int("cache-sas", values["cache-sas"]));
  set("cachePods", int("cache-pods", values["cache-pods"]));
  set("soakMinutes", int("soak-minutes", values["soak-minutes"]));
  set("accountNamespaces", int("account-namespaces", values["account-namespaces"]));
  set("accountFirstLogins", int("account-first-logins", values["account-first-logins"]));
  set("decisionMs", int("decision-ms", values["decision-ms"]));
  set("warmup", int("warmup", values.warmup));
  set("rollingRounds", int("rolling-rounds", values["rolling-rounds"]));
  set("revocationClients", int("revocation-clients", values["revocation-clients"]));
  set("latencyLogins", int("latency-logins", values["latency-logins"]));
  set("versusRounds", int("versus-rounds", values["versus-rounds"]));
  set("liveConnections", int("live-connections", values["live-connections"]));
  set("liveServers", int("live-servers", values["live-servers"]));
  set("reference", values.reference);
  set("before", values.before);
  if (values.concurrency !== undefined) {
    set(
      "concurrency",
      values.concurrency.split(",").map((c) => {
        const n = int("concurrency", c.trim());
        if (!n) throw new RangeError("--concurrency levels must be positive integers");
        return n;
      }),
    );
  }
  if (values.skip !== undefined) {
    const known = [
      "storm",
      "cache",
      "decision",
      "rolling",
      "revocation",
      "accounts",
      "latency",
    ] as const;
    const skip = values.skip.split(",").map((s) => s.trim()).filter((s) => s !== "");
    for (const s of skip) {
      if (!(known as readonly string[]).includes(s)) {
        throw new RangeError(`--skip takes ${known.join(", ")}; got ${s}`);
      }
    }
    set("skip", skip as (typeof known)[number][]);
  }
  const out = values.out ?? new URL("./results/latest.json", import.meta.url).pathname;
  return { options, out };
}

if (import.meta.main) {
  const encoder = new TextEncoder();
  const { options, out } = parseCli(Deno.args);
  const result = await runBench({
    ...options,
    progress: (m) => Deno.stderr.writeSync(encoder.encode(`[bench] ${m}\n`)),
  });
  await Deno.mkdir(new URL(".", `file://${out}`).pathname, { recursive: true }).catch(() => {});
  await Deno.writeTextFile(out, JSON.stringify(result, null, 2) + "\n");
  Deno.stdout.writeSync(encoder.encode(renderTable(result)));
  Deno.stderr.writeSync(encoder.encode(`[bench] results written to ${out}\n`));
}
