/**
 * Memory soak: the service under a steady login rate for a long time, its resident memory (RSS)
 * and JavaScript heap sampled along the way, and the slope after warm-up in MiB per minute. A flat
 * service has a slope near 0; a leak shows as a steady positive slope however long it runs.
 *
 * ```sh
 * deno run -A bench/soak.ts --minutes=10 --rate=50            # every login a first-seen token
 * deno run -A bench/soak.ts --minutes=10 --rate=50 --fresh=0  # returning tokens only
 * nice deno run -A bench/soak.ts --minutes=120 --out=bench/results/soak-2h.json
 * ```
 *
 * The world is `deno task bench`'s ({@linkcode BenchFixture}: nats-server with the callout, the test
 * apiserver, the service as its own process with the `start` task's flags). Logins are open-loop:
 * one starts every `1000 / rate` ms whether or not earlier ones have finished, each with a token
 * minted for it (`--fresh=1`, the default) or one of the fixture's returning tokens. Every
 * `--sample` seconds the service's RSS is read from `/proc` as it is, then a full garbage
 * collection is requested over the V8 inspector (the service runs with `--inspect` on a loopback
 * port) and RSS and the JS heap are read again: RSS after a full GC minus the heap is memory
 * outside the JS heap. The slope is a least-squares line through the samples after `--warmup`
 * minutes (default: until the verified-token cache is full — 10,000 first-seen tokens, 3.3 min at
 * 50/s — plus a minute, or a fifth of the run if longer; at most half the run). The JSON file is rewritten after every sample,
 * so a run stopped early still leaves its samples and the slope so far.
 *
 * Flags: `--minutes=10`, `--rate=50` logins/s, `--fresh=1` (share of first-seen tokens, 0–1),
 * `--sample=30` s, `--warmup` minutes, `--mode=kubeconfig|in-cluster` (how the service reaches the
 * apiserver), `--revocation` (live revocation on: the service gets the system user and remembers
 * every approved connection until the server reports it closed), `--out=bench/results/soak.json`, `--label` (free text kept in the file).
 * `--from=<result.json> --warmup=M --out=<file>` recomputes the slopes of a saved run with another
 * warm-up (to compare runs of equal length alike) without running anything.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { tolerateClientResets } from "../tests/support/nats_server.ts";
import { BenchFixture } from "./fixture.ts";
import { login } from "./login_client.ts";
import { freePort } from "../tests/support/http_probe.ts";

/** One sample of the service's memory. */
export interface SoakSample {
  /** Minutes since the load started. */
  readonly minute: number;
  /** Logins attempted so far. */
  readonly logins: number;
  /** Logins refused or failed so far. */
  readonly failed: number;
  /** RSS as found, in MiB. */
  readonly rssMiB: number;
  /** RSS right after a full GC, in MiB. */
  readonly rssAfterGcMiB: number;
  /** V8 heap in use after that GC, in MiB. */
  readonly heapUsedMiB: number;
  /** V8 heap reserved (`totalSize` of `Runtime.getHeapUsage`), in MiB. */
  readonly heapTotalMiB: number;
  /** `nats_auth_live_connections`: connections remembered for live revocation. */
  readonly liveConnections: number;
}

/** What a soak run wrote. */
export interface SoakResult {
  readonly meta: {
    readonly date: string;
    readonly deno: string;
    readonly label: string;
    readonly mode: "kubeconfig" | "in-cluster";
    readonly revocation: boolean;
    readonly plannedMinutes: number;
    readonly ranMinutes: number;
    readonly rate: number;
    readonly fresh: number;
    readonly warmupMinutes: number;
    readonly sampleSeconds: number;
    readonly loadAverageAtStart: string;
    readonly complete: boolean;
  };
  /** Least-squares slopes over the samples after warm-up, MiB per minute. */
  readonly slope: {
    readonly samples: number;
    readonly rssMiBPerMinute: number | null;
    readonly rssAfterGcMiBPerMinute: number | null;
    readonly heapUsedMiBPerMinute: number | null;
  };
  readonly logins: { readonly attempts: number; readonly ok: number; readonly failed: number };
  readonly errors: Readonly<Record<string, number>>;
  readonly samples: readonly SoakSample[];
}

/** Slope of the least-squares line through `(x, y)` points; `null` with fewer than 3. */
export function slope(points: readonly (readonly [number, number])[]): number | null {
  if (points.length < 3) return null;
  const n = points.length;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? null : num / den;
}

/** The slopes of {@linkcode SoakResult} over the samples from `warmupMinutes` on. */
export function slopes(samples: readonly SoakSample[], warmupMinutes: number): SoakResult["slope"] {
  const after = samples.filter((s) => s.minute >= warmupMinutes);
  const line = (pick: (s: SoakSample) => number) => {
    const m = slope(after.map((s) => [s.minute, pick(s)] as const));
    return m === null ? null : round(m, 4);
  };
  return {
    samples: after.length,
    rssMiBPerMinute: line((s) => s.rssMiB),
    rssAfterGcMiBPerMinute: line((s) => s.rssAfterGcMiB),
    heapUsedMiBPerMinute: line((s) => s.heapUsedMiB),
  };
}

/**
 * A minimal Chrome DevTools Protocol client over the service's inspector WebSocket: enough to
 * force a full GC and read the heap size.
 */
class Inspector implements Disposable {
  readonly #ws: WebSocket;
  readonly #pending = new Map<number, (result: Record<string, unknown>) => void>();
  #id = 0;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.onmessage = (event) => {
      const message = JSON.parse(String(event.data)) as {
        id?: number;
        result?: Record<string, unknown>;
      };
      if (message.id === undefined) return;
      this.#pending.get(message.id)?.(message.result ?? {});
      this.#pending.delete(message.id);
    };
  }

  static async connect(port: number): Promise<Inspector> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/json/list`);
        const targets = await res.json() as { webSocketDebuggerUrl?: string }[];
        const url = targets[0]?.webSocketDebuggerUrl;
        if (url) {
          const ws = new WebSocket(url);
          await new Promise((resolve, reject) => {
            ws.onopen = resolve;
            ws.onerror = () => reject(new Error("inspector WebSocket failed"));
          });
          return new Inspector(ws);
        }
      } catch (err) {
        if (Date.now() > deadline) throw err;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  call(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const id = ++this.#id;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`inspector ${method} timed out`));
      }, 30_000);
      this.#pending.set(id, (result) => {
        clearTimeout(timer);
        resolve(result);
      });
      this.#ws.send(JSON.stringify({ id, method, params }));
    });
  }

  [Symbol.dispose](): void {
    this.#ws.close();
  }
}

const MIB = 1024 * 1024;
/** The service's verified-token cache size (lib/tokens/verifier.ts default). */
const TOKEN_CACHE_ENTRIES = 10_000;

function round(value: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Options of {@linkcode runSoak}. */
export interface SoakOptions {
  minutes?: number;
  rate?: number;
  fresh?: number;
  sampleSeconds?: number;
  warmupMinutes?: number;
  mode?: "kubeconfig" | "in-cluster";
  /** Live revocation on (the service remembers every approved connection). @default {false} */
  revocation?: boolean;
  label?: string;
  /** Called with the result so far after every sample (the CLI writes the file). */
  onSample?: (result: SoakResult) => void | Promise<void>;
  progress?: (message: string) => void;
}

/** Run the soak; resolves with the final result. */
export async function runSoak(options: SoakOptions = {}): Promise<SoakResult> {
  const {
    minutes = 10,
    rate = 50,
    fresh = 1,
    sampleSeconds = 30,
    mode = "kubeconfig",
    revocation = false,
    label = "",
    onSample = () => {},
    progress = () => {},
  } = options;
  // Warm-up: JIT and connections, and the verified-token cache filling to its bound (10,000
  // first-seen tokens) plus a minute, or a fifth of the run if that is longer.
  const fillMinutes = fresh > 0 ? TOKEN_CACHE_ENTRIES / (rate * fresh) / 60 : 0;
  const warmupMinutes = options.warmupMinutes ??
    round(Math.min(minutes / 2, Math.max(fillMinutes + 1, minutes / 5)), 2);
  if (!(rate > 0) || !(fresh >= 0 && fresh <= 1) || !(minutes > 0) || !(sampleSeconds > 0)) {
    throw new RangeError("--rate, --minutes, --sample must be positive and --fresh within 0..1");
  }
  using _resets = tolerateClientResets();
  const inspectPort = freePort();
  const date = new Date().toISOString();
  const loadAverageAtStart = Deno.loadavg().map((l) => l.toFixed(2)).join(" ");
  progress(`starting the fixture (${mode}); inspector on 127.0.0.1:${inspectPort}`);
  await using fixture = await BenchFixture.start({
    mode,
    revocation,
    serviceDenoFlags: [`--inspect=127.0.0.1:${inspectPort}`],
  });
  using inspector = await Inspector.connect(inspectPort);
  const port = fixture.nats.port;

  const samples: SoakSample[] = [];
  const errors: Record<string, number> = {};
  let attempts = 0;
  let ok = 0;
  let inFlight = 0;
  const started = performance.now();
  const elapsedMin = () => (performance.now() - started) / 60_000;

  const sample = async (): Promise<void> => {
    const pid = fixture.service.pid;
    const rss = await rssMiB(pid);
    await inspector.call("HeapProfiler.collectGarbage");
    const heap = await inspector.call("Runtime.getHeapUsage") as {
      usedSize?: number;
      totalSize?: number;
    };
    samples.push({
      minute: round(elapsedMin()),
      logins: attempts,
      failed: attempts - ok - inFlight,
      rssMiB: round(rss),
      rssAfterGcMiB: round(await rssMiB(pid)),
      heapUsedMiB: round((heap.usedSize ?? NaN) / MIB),
      heapTotalMiB: round((heap.totalSize ?? NaN) / MIB),
      liveConnections: await fixture.service.metric("nats_auth_live_connections"),
    });
  };

  const result = (complete: boolean): SoakResult => {
    return {
      meta: {
        date,
        deno: Deno.version.deno,
        label,
        mode,
        revocation,
        plannedMinutes: minutes,
        ranMinutes: round(elapsedMin(), 2),
        rate,
        fresh,
        warmupMinutes,
        sampleSeconds,
        loadAverageAtStart,
        complete,
      },
      slope: slopes(samples, warmupMinutes),
      logins: { attempts, ok, failed: attempts - ok - inFlight },
      errors: { ...errors },
      samples: [...samples],
    };
  };

  await sample(); // minute 0: after start-up, before any login
  const returning = fixture.tokens;
  const one = async (i: number): Promise<void> => {
    inFlight++;
    try {
      const token = Math.random() < fresh
        ? (await fixture.freshTokens(1))[0]!
        : returning[i % returning.length]!;
      const r = await login(port, token, { timeoutMs: 5000 });
      if (r.ok) ok++;
      else {
        const key = r.error ?? "error";
        errors[key] = (errors[key] ?? 0) + 1;
      }
    } finally {
      inFlight--;
    }
  };

  const intervalMs = 1000 / rate;
  const endAt = started + minutes * 60_000;
  let nextSampleAt = started + sampleSeconds * 1000;
  let nextLoginAt = started;
  const running = new Set<Promise<void>>();
  while (performance.now() < endAt) {
    const now = performance.now();
    if (now >= nextSampleAt) {
      await sample();
      nextSampleAt += sampleSeconds * 1000;
      const last = samples.at(-1)!;
      progress(
        `${last.minute.toFixed(1)} min: ${attempts} logins (${last.failed} failed), RSS ${
          last.rssMiB.toFixed(1)
        } MiB, after GC ${last.rssAfterGcMiB.toFixed(1)} MiB, heap ${
          last.heapUsedMiB.toFixed(1)
        } MiB, live connections ${last.liveConnections}`,
      );
      await onSample(result(false));
      continue;
    }
    // Open loop: catch up on the logins due (a sample pauses the clock, not the schedule).
    while (nextLoginAt <= now && running.size < rate * 10) {
      const p = one(attempts++);
      running.add(p);
      p.finally(() => running.delete(p));
      nextLoginAt += intervalMs;
    }
    if (nextLoginAt <= now) nextLoginAt = now; // saturated: drop what cannot be started
    await new Promise((r) => setTimeout(r, Math.max(1, Math.min(nextLoginAt, nextSampleAt) - now)));
  }
  await Promise.all(running);
  await sample();
  const final = result(true);
  await onSample(final);
  return final;
}

async function rssMiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
  if (!kb) throw new Error("no VmRSS");
  return Number(kb) / 1024;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      minutes: { type: "string", default: "10" },
      rate: { type: "string", default: "50" },
      fresh: { type: "string", default: "1" },
      sample: { type: "string", default: "30" },
      warmup: { type: "string" },
      mode: { type: "string", default: "kubeconfig" },
      out: { type: "string", default: "bench/results/soak.json" },
      label: { type: "string", default: "" },
      from: { type: "string" },
      revocation: { type: "boolean", default: false },
    },
  });
  if (values.from !== undefined) {
    // Re-slope a finished (or stopped) run with another warm-up, e.g. to compare runs alike.
    const saved = JSON.parse(await Deno.readTextFile(values.from)) as SoakResult;
    const warmupMinutes = Number(values.warmup ?? saved.meta.warmupMinutes);
    const again: SoakResult = {
      ...saved,
      meta: { ...saved.meta, warmupMinutes },
      slope: slopes(saved.samples, warmupMinutes),
    };
    await Deno.writeTextFile(values.out, JSON.stringify(again, null, 2) + "\n");
    Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(again.slope) + "\n"));
    Deno.exit(0);
  }
  const mode = values.mode;
  if (mode !== "kubeconfig" && mode !== "in-cluster") {
    throw new Error(`--mode must be kubeconfig or in-cluster, got ${mode}`);
  }
  const out = values.out;
  const encoder = new TextEncoder();
  const final = await runSoak({
    minutes: Number(values.minutes),
    rate: Number(values.rate),
    fresh: Number(values.fresh),
    sampleSeconds: Number(values.sample),
    ...(values.warmup !== undefined ? { warmupMinutes: Number(values.warmup) } : {}),
    mode,
    revocation: values.revocation,
    label: values.label,
    onSample: (r) => Deno.writeTextFile(out, JSON.stringify(r, null, 2) + "\n"),
    progress: (m) => Deno.stderr.writeSync(encoder.encode(`[soak] ${m}\n`)),
  });
  Deno.stderr.writeSync(encoder.encode(`[soak] wrote ${out}\n`));
  const summary = { meta: final.meta, slope: final.slope, logins: final.logins };
  Deno.stdout.writeSync(encoder.encode(JSON.stringify(summary) + "\n"));
}
