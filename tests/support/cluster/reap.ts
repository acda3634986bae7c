/**
 * Tear down test clusters left on this host by hand. A cluster whose test process died is torn down
 * by the next cluster test on its own (it was recorded with its owner's pid); one that has no record
 * (started by an older checkout, or its record lost) is listed here and removed only when named,
 * because another engineer's run may still own it.
 *
 *     deno run -A tests/support/cluster/reap.ts            # list the clusters on this host
 *     deno run -A tests/support/cluster/reap.ts <id> …     # tear these down (kill, unmount,
 *                                                          # delete the namespace and cgroups,
 *                                                          # restore the kubelet's sysctls)
 *
 * @module
 */
// deno-lint-ignore-file no-console -- a command-line tool talks to its user on the console
import { KubeCluster } from "./cluster.ts";
import { CONTROL_CGROUP_SUFFIX, orphanedClusters } from "./host.ts";

/** The clusters of ours on this host: id, directory, and whether a record names its owner. */
function clustersOnHost(): { id: string; runDir: string | undefined; recorded: boolean }[] {
  const recorded = new Map(orphanedClusters().map((r) => [r.id, r.runDir]));
  const out = [];
  for (const entry of Deno.readDirSync("/sys/fs/cgroup/pids")) {
    if (!entry.isDirectory || !entry.name.endsWith(CONTROL_CGROUP_SUFFIX)) continue;
    const id = entry.name.slice(0, -CONTROL_CGROUP_SUFFIX.length);
    let runDir = recorded.get(id);
    for (const tmp of Deno.readDirSync("/tmp")) {
      if (!runDir && tmp.isDirectory && tmp.name.startsWith(`${id}-`)) runDir = `/tmp/${tmp.name}`;
    }
    out.push({ id, runDir, recorded: recorded.has(id) });
  }
  return out;
}

if (import.meta.main) {
  const found = clustersOnHost();
  if (Deno.args.length === 0) {
    for (const c of found) {
      console.log(
        `${c.id}\t${c.runDir ?? "(no directory)"}\t${
          c.recorded ? "orphan (owner gone)" : "no record"
        }`,
      );
    }
    if (found.length === 0) console.log("no test cluster on this host");
  } else {
    const binary = await new Deno.Command("bash", {
      args: [new URL("../../../tools/build.sh", import.meta.url).pathname, "kubernetes"],
      stdout: "piped",
    }).output().then((o) => new TextDecoder().decode(o.stdout).trim());
    for (const id of Deno.args) {
      const c = found.find((x) => x.id === id);
      if (!c) {
        console.error(`${id}: no such test cluster on this host`);
        Deno.exitCode = 1;
        continue;
      }
      await KubeCluster.reap(c.id, c.runDir ?? `/tmp/${c.id}-unknown`, binary);
      console.log(`${id}: torn down`);
    }
  }
}
