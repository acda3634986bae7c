/**
 * The Prometheus client conventions every exporter follows: `process_*` (CPU seconds, resident
 * memory, start time, open and maximum file descriptors) and a `…_build_info` gauge whose labels
 * carry the version, so a dashboard can show what runs and a rollout can be followed per version.
 *
 * Why not `prom-client` (15.1.3, evaluated under Deno 2.9.6): its default collectors run, but they
 * read `/proc/self/status`, `/proc/self/fd` and `/proc/self/limits`, which Deno treats as
 * privileged — reading them needs `--allow-all`, whatever `--allow-read` says. Under the `start`
 * task's and the compiled binary's flags it therefore exports `process_resident_memory_bytes 0`
 * and `process_open_fds 0`, wrong values rather than missing ones, and drops `process_max_fds`;
 * it would also bring a second registry beside ours (lib/telemetry/metrics.ts) and `nodejs_*` families that
 * describe Node, not this process. Here RSS comes from `Deno.memoryUsage()` and CPU from
 * `process.cpuUsage()` (getrusage; no permission needed); the two file-descriptor gauges are
 * exported only when `/proc/self` is readable (`-A`, e.g. tests and `deno task dev`) and are left
 * out — never reported as 0 — under least privilege.
 *
 * @module
 */
import process from "node:process";
import type { Registry } from "./metrics.ts";

/** Options of {@linkcode registerProcessMetrics}. */
export interface ProcessMetricsOptions {
  /** The service version, label `version` of the build-info gauge. */
  version: string;
  /** Runtime versions for the build-info labels. @default {Deno.version} */
  runtime?: { readonly deno: string; readonly v8: string; readonly typescript: string };
  /** Prefix of the build-info gauge. @default {"nats_k8s_oidc_callout"} */
  prefix?: string;
}

/** What {@linkcode registerProcessMetrics} could not export, for one debug line at start. */
export interface ProcessMetricsReport {
  /** Families left out because their source is not readable with the process's permissions. */
  readonly unavailable: readonly string[];
}

/**
 * Register `process_*` and `<prefix>_build_info` on `registry`. Registering twice on one registry
 * is a no-op (a test may share one registry between services).
 *
 * @example
 * ```ts
 * import { Registry } from "./metrics.ts";
 * import { registerProcessMetrics } from "./process_metrics.ts";
 * const reg = new Registry();
 * registerProcessMetrics(reg, { version: "1.2.3" });
 * console.assert(reg.render().includes("process_resident_memory_bytes"));
 * ```
 */
export function registerProcessMetrics(
  registry: Registry,
  options: ProcessMetricsOptions,
): ProcessMetricsReport {
  const { version, runtime = Deno.version, prefix = "nats_k8s_oidc_callout" } = options;
  const buildInfo = `${prefix}_build_info`;
  if (registry.has(buildInfo)) return { unavailable: [] };

  registry.collector(
    buildInfo,
    "Always 1; the labels say which version runs on which runtime.",
    "gauge",
    () => [[{
      version,
      deno: runtime.deno,
      v8: runtime.v8,
      typescript: runtime.typescript,
    }, 1]],
  );
  registry.collector(
    "process_cpu_seconds_total",
    "Total user and system CPU time spent in seconds.",
    "counter",
    () => {
      const { user, system } = process.cpuUsage();
      return [[undefined, (user + system) / 1e6]];
    },
  );
  registry.collector(
    "process_resident_memory_bytes",
    "Resident memory size in bytes.",
    "gauge",
    () => [[undefined, Deno.memoryUsage().rss]],
  );
  const startTime = Math.round(performance.timeOrigin) / 1000;
  registry.collector(
    "process_start_time_seconds",
    "Start time of the process since unix epoch in seconds.",
    "gauge",
    () => [[undefined, startTime]],
  );

  const unavailable: string[] = [];
  if (openFds() !== undefined) {
    registry.collector(
      "process_open_fds",
      "Number of open file descriptors.",
      "gauge",
      () => {
        const n = openFds();
        return n === undefined ? [] : [[undefined, n]];
      },
    );
  } else {
    unavailable.push("process_open_fds");
  }
  const maxFds = readMaxFds();
  if (maxFds !== undefined) {
    registry.collector(
      "process_max_fds",
      "Maximum number of open file descriptors.",
      "gauge",
      () => [[undefined, maxFds]],
    );
  } else {
    unavailable.push("process_max_fds");
  }
  return { unavailable };
}

function openFds(): number | undefined {
  try {
    let n = 0;
    for (const _ of Deno.readDirSync("/proc/self/fd")) n++;
    return n;
  } catch {
    return undefined;
  }
}

function readMaxFds(): number | undefined {
  try {
    const line = Deno.readTextFileSync("/proc/self/limits").split("\n")
      .find((l) => l.startsWith("Max open files"));
    const soft = line?.slice("Max open files".length).trim().split(/\s+/)[0];
    if (soft === undefined) return undefined;
    return soft === "unlimited" ? Infinity : Number(soft);
  } catch {
    return undefined;
  }
}
