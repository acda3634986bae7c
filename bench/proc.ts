/**
 * What one process costs, read from Linux `/proc`: CPU seconds (`utime + stime` of
 * `/proc/<pid>/stat`) and resident memory (`VmRSS`, and its peak `VmHWM`, of `/proc/<pid>/status`).
 * The benchmark reads these for the service process alone, so the load generator's work never
 * counts as the service's.
 *
 * @module
 */

/** CPU and memory of one process at one moment. */
export interface ProcStats {
  /** User + system CPU time since the process started, in seconds. */
  readonly cpuSeconds: number;
  /** Resident set size now, in MiB. */
  readonly rssMiB: number;
  /** Peak resident set size since start, in MiB. */
  readonly peakRssMiB: number;
  /**
   * The anonymous part of RSS (`RssAnon`), in MiB: the process's own memory (heaps, stacks), without
   * the pages of the executable and other files it maps, which are shared and reclaimable.
   */
  readonly anonRssMiB: number;
}

/** Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`; 100 on Linux x86-64). */
const CLOCK_TICKS = 100;

function kib(status: string, field: string): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
  if (!match?.[1]) throw new Error(`/proc status has no ${field}`);
  return Number(match[1]);
}

/**
 * Read CPU and memory of `pid`. Throws when the process is gone or this is not Linux.
 *
 * @example
 * ```ts ignore
 * import { readProcStats } from "./proc.ts";
 * const { cpuSeconds, peakRssMiB } = await readProcStats(Deno.pid);
 * ```
 */
export async function readProcStats(pid: number): Promise<ProcStats> {
  const [stat, status] = await Promise.all([
    Deno.readTextFile(`/proc/${pid}/stat`),
    Deno.readTextFile(`/proc/${pid}/status`),
  ]);
  // The command name (field 2) may contain spaces; fields after it are plain numbers.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15; `rest` starts at field 3.
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error("unreadable /proc stat");
  return {
    cpuSeconds: (utime + stime) / CLOCK_TICKS,
    rssMiB: kib(status, "VmRSS") / 1024,
    peakRssMiB: kib(status, "VmHWM") / 1024,
    anonRssMiB: kib(status, "RssAnon") / 1024,
  };
}

/**
 * Find the pid of the nats-server serving client `port` on this machine: a process whose command
 * line is `nats-server -c <dir>/<file>.conf` and whose ports file (in `<dir>/ports-*`, written
 * because the test launcher sets `ports_file_dir`) names that port. `undefined` when not found.
 */
export async function findNatsServerPid(port: number): Promise<number | undefined> {
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    let cmdline: string[];
    try {
      cmdline = (await Deno.readTextFile(`/proc/${entry.name}/cmdline`)).split("\0");
    } catch {
      continue;
    }
    if (!cmdline[0]?.endsWith("nats-server")) continue;
    const conf = cmdline[cmdline.indexOf("-c") + 1];
    if (!conf || cmdline.indexOf("-c") < 0) continue;
    const dir = conf.slice(0, conf.lastIndexOf("/"));
    try {
      for await (const sub of Deno.readDir(dir)) {
        if (!sub.isDirectory || !sub.name.startsWith("ports-")) continue;
        const file = `${dir}/${sub.name}/nats-server_${entry.name}.ports`;
        const text = await Deno.readTextFile(file).catch(() => "");
        if (text.includes(`:${port}"`)) return Number(entry.name);
      }
    } catch {
      continue;
    }
  }
  return undefined;
}
