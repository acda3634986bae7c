/**
 * What a test cluster needs from the host, and the host state it changes and must give back.
 *
 * A cluster needs root with CAP_SYS_ADMIN (mounts, network namespaces, cgroups) and CAP_NET_ADMIN
 * (bridges, iptables), cgroup v1 controllers (the machine this suite runs on; the kubelet runs with
 * `failCgroupV1: false`), Debian's containerd, runc, CNI plugins and iptables, `nsenter`, `ip`,
 * `openssl` and `gcc`. {@linkcode clusterUnavailable} names what is missing, so a test is skipped
 * with that reason instead of failing on a machine that cannot run pods.
 *
 * The kubelet rewrites three host sysctls (it has no switch to skip them) and links container logs
 * into `/var/log/containers` (a constant in the kubelet): {@linkcode saveHostState} records them
 * before the first kubelet of this host starts, {@linkcode restoreHostState} puts them back when
 * the last cluster of ours stops.
 *
 * @module
 */

/** Every cgroup v1 hierarchy of the host (`/sys/fs/cgroup/<controller>/`), without `unified`. */
export function cgroupHierarchies(): string[] {
  const out: string[] = [];
  for (const entry of Deno.readDirSync("/sys/fs/cgroup")) {
    if (entry.isDirectory && entry.name !== "unified") out.push(`/sys/fs/cgroup/${entry.name}`);
  }
  return out.sort();
}

function hasCapability(capEff: bigint, bit: number): boolean {
  return ((capEff >> BigInt(bit)) & 1n) === 1n;
}

/**
 * Where `cmd` is: the first match on `PATH` (then `/usr/sbin`, `/sbin`, where Debian puts runc and
 * iptables for root), or `undefined`. The harness runs what this finds, so the check and the use
 * cannot disagree.
 */
export function findCommand(cmd: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":").concat(["/usr/sbin", "/sbin"])) {
    if (!dir) continue;
    try {
      if (Deno.statSync(`${dir}/${cmd}`).isFile) return `${dir}/${cmd}`;
    } catch { /* next */ }
  }
  return undefined;
}

/**
 * Why a cluster cannot run on this host, or `undefined` when it can. Used as the `ignore` reason of
 * the cluster tests (`deno test` prints it).
 */
export function clusterUnavailable(): string | undefined {
  if (Deno.build.os !== "linux") return `a test cluster needs Linux, this is ${Deno.build.os}`;
  if (Deno.uid() !== 0) return "a test cluster needs root (network namespaces, mounts, cgroups)";
  const status = Deno.readTextFileSync("/proc/self/status");
  const capEff = BigInt(`0x${status.match(/^CapEff:\s*([0-9a-f]+)/m)?.[1] ?? "0"}`);
  const missingCaps = [["CAP_SYS_ADMIN", 21], ["CAP_NET_ADMIN", 12]]
    .filter(([, bit]) => !hasCapability(capEff, bit as number)).map(([name]) => name);
  if (missingCaps.length) return `a test cluster needs ${missingCaps.join(" and ")}`;
  try {
    Deno.statSync("/sys/fs/cgroup/pids/cgroup.procs");
  } catch {
    return "a test cluster needs the cgroup v1 hierarchies (/sys/fs/cgroup/pids)";
  }
  const missing = [
    "containerd",
    "runc",
    "iptables",
    "nsenter",
    "ip",
    "openssl",
    "gcc",
    "tar",
    "busybox",
    "ctr",
    "sysctl",
    "umount",
  ]
    .filter((cmd) => findCommand(cmd) === undefined);
  for (const plugin of ["bridge", "host-local", "loopback"]) {
    try {
      Deno.statSync(`/usr/lib/cni/${plugin}`);
    } catch {
      missing.push(`/usr/lib/cni/${plugin}`);
    }
  }
  if (missing.length) {
    return `a test cluster needs ${missing.join(", ")} (Debian: containerd runc ` +
      `containernetworking-plugins iptables busybox-static; .ci/run installs them)`;
  }
  return undefined;
}

/** Where host state shared by every cluster of ours is kept. */
const STATE_DIR = "/run/nats-k8s-oidc-callout-clusters";
const SYSCTLS = [
  "vm.overcommit_memory",
  "vm.panic_on_oom",
  "kernel.panic",
  "kernel.panic_on_oops",
  "kernel.keys.root_maxkeys",
  "kernel.keys.root_maxbytes",
] as const;
/** One cluster of ours: what a later run needs to tear it down if its owner died. */
export interface ClusterRecord {
  readonly id: string;
  readonly runDir: string;
  /** The test process that started it. */
  readonly owner: number;
}

function recordPath(id: string): string {
  return `${STATE_DIR}/clusters/${id}.json`;
}

/** Note a cluster before anything of it exists, so a crash of its owner leaves a trace. */
export function recordCluster(record: ClusterRecord): void {
  Deno.mkdirSync(`${STATE_DIR}/clusters`, { recursive: true });
  Deno.writeTextFileSync(recordPath(record.id), JSON.stringify(record));
}

/** Forget a cluster that was torn down. */
export function forgetCluster(id: string): void {
  try {
    Deno.removeSync(recordPath(id));
  } catch { /* never recorded */ }
}

/**
 * Clusters whose owner process is gone without tearing them down (a test killed by a timeout or
 * SIGKILL): their kubelet and containerd may still run, their namespace and cgroups still exist.
 */
export function orphanedClusters(): ClusterRecord[] {
  const out: ClusterRecord[] = [];
  try {
    for (const entry of Deno.readDirSync(`${STATE_DIR}/clusters`)) {
      try {
        const record = JSON.parse(
          Deno.readTextFileSync(`${STATE_DIR}/clusters/${entry.name}`),
        ) as ClusterRecord;
        let alive = false;
        try {
          alive = !/^State:\s*Z/m.test(Deno.readTextFileSync(`/proc/${record.owner}/status`));
        } catch { /* gone */ }
        if (!alive) out.push(record);
      } catch { /* unreadable: ignore */ }
    }
  } catch { /* no records */ }
  return out;
}

/** The suffix of the cgroup that holds every process a cluster starts (`<id>-ctl`). */
export const CONTROL_CGROUP_SUFFIX = "-nkoc-ctl";

function sysctlPath(name: string): string {
  return `/proc/sys/${name.replaceAll(".", "/")}`;
}

/** Clusters of ours still running on this host (their control cgroups). */
export function runningClusters(): string[] {
  const out: string[] = [];
  for (const entry of Deno.readDirSync("/sys/fs/cgroup/pids")) {
    if (entry.isDirectory && entry.name.endsWith(CONTROL_CGROUP_SUFFIX)) out.push(entry.name);
  }
  return out;
}

/**
 * The host's own values of the sysctls the kubelet rewrites: the saved ones while a cluster of ours
 * holds them, else the current ones.
 */
export function hostSysctls(names: readonly string[]): Record<string, string> {
  const saved: Record<string, string> = {};
  try {
    for (const line of Deno.readTextFileSync(`${STATE_DIR}/sysctl.orig`).split("\n")) {
      const at = line.indexOf("=");
      if (at > 0) saved[line.slice(0, at)] = line.slice(at + 1);
    }
  } catch { /* no cluster of ours changed them */ }
  return Object.fromEntries(
    names.map((n) => [n, saved[n] ?? Deno.readTextFileSync(sysctlPath(n)).trim()]),
  );
}

/**
 * Record the sysctls the kubelet rewrites and whether `/var/log/containers` existed, unless a
 * cluster of ours already did (the first one's record is the host's own state).
 */
export function saveHostState(): void {
  Deno.mkdirSync(STATE_DIR, { recursive: true });
  try {
    Deno.statSync(`${STATE_DIR}/sysctl.orig`);
    return;
  } catch { /* first cluster */ }
  const lines = SYSCTLS.map((name) => `${name}=${Deno.readTextFileSync(sysctlPath(name)).trim()}`);
  Deno.writeTextFileSync(`${STATE_DIR}/sysctl.orig`, lines.join("\n") + "\n");
  try {
    Deno.statSync("/var/log/containers");
  } catch {
    Deno.writeTextFileSync(`${STATE_DIR}/created-var-log-containers`, "");
  }
}

/**
 * Give the host back what the kubelet changed: the container-log links of `runDir`, and, when no
 * cluster of ours is left, the sysctls and `/var/log/containers` itself if we created it.
 */
export function restoreHostState(runDir: string): void {
  try {
    for (const entry of Deno.readDirSync("/var/log/containers")) {
      const path = `/var/log/containers/${entry.name}`;
      try {
        if (Deno.readLinkSync(path).startsWith(runDir)) Deno.removeSync(path);
      } catch { /* not a link */ }
    }
  } catch { /* no directory */ }
  if (runningClusters().length > 0) return;
  try {
    for (const line of Deno.readTextFileSync(`${STATE_DIR}/sysctl.orig`).split("\n")) {
      const at = line.indexOf("=");
      if (at > 0) Deno.writeTextFileSync(sysctlPath(line.slice(0, at)), line.slice(at + 1));
    }
    Deno.removeSync(`${STATE_DIR}/sysctl.orig`);
  } catch { /* nothing saved */ }
  try {
    Deno.statSync(`${STATE_DIR}/created-var-log-containers`);
    Deno.removeSync("/var/log/containers");
    Deno.removeSync(`${STATE_DIR}/created-var-log-containers`);
  } catch { /* we did not create it, or it is not empty */ }
}
