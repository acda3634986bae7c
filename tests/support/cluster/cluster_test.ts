/**
 * The cluster harness leaves the host as it was: after a cluster is disposed, and after a test
 * process that owned one was killed (SIGKILL, as a CI timeout does) — the next cluster tears the
 * orphan down first. "As it was": no process of the cluster, no network namespace, no cgroup, no
 * mount under its directory, no log link in /var/log/containers, the sysctls the kubelet rewrites
 * back to their values.
 *
 * @module
 */
import assert from "node:assert/strict";
import { KubeCluster } from "./cluster.ts";
import { clusterUnavailable, hostSysctls, runningClusters } from "./host.ts";
import { waitFor } from "../wait.ts";

const unavailable = clusterUnavailable();

const SYSCTLS = ["vm.overcommit_memory", "kernel.panic", "kernel.panic_on_oops"];

function sysctls(): Record<string, string> {
  return Object.fromEntries(
    SYSCTLS.map((s) => [s, Deno.readTextFileSync(`/proc/sys/${s.replaceAll(".", "/")}`).trim()]),
  );
}

/** What of cluster `id` (directory `runDir`) is still on the host. */
function leftovers(id: string, runDir: string): string[] {
  const found: string[] = [];
  try {
    Deno.statSync(`/run/netns/${id}`);
    found.push(`network namespace ${id}`);
  } catch { /* gone */ }
  for (const h of Deno.readDirSync("/sys/fs/cgroup")) {
    for (const name of [id, `${id}-nkoc-ctl`]) {
      try {
        Deno.statSync(`/sys/fs/cgroup/${h.name}/${name}`);
        found.push(`cgroup ${h.name}/${name}`);
      } catch { /* gone */ }
    }
  }
  for (const line of Deno.readTextFileSync("/proc/self/mounts").split("\n")) {
    if ((line.split(" ")[1] ?? "").startsWith(runDir)) found.push(`mount ${line.split(" ")[1]}`);
  }
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).replaceAll("\0", " ");
      if (cmdline.includes(runDir)) found.push(`process ${entry.name}: ${cmdline.slice(0, 80)}`);
    } catch { /* gone */ }
  }
  try {
    for (const link of Deno.readDirSync("/var/log/containers")) {
      if (Deno.readLinkSync(`/var/log/containers/${link.name}`).startsWith(runDir)) {
        found.push(`log link ${link.name}`);
      }
    }
  } catch { /* no directory */ }
  try {
    Deno.statSync(runDir);
    found.push(`directory ${runDir}`);
  } catch { /* gone */ }
  return found;
}

Deno.test({
  name: `a test cluster leaves the host as it was, also when its test process is killed${
    unavailable ? ` (skipped: ${unavailable})` : ""
  }`,
  ignore: unavailable !== undefined,
  async fn() {
    // The host's own values, also when another cluster (a parallel test file) holds them now.
    const before = hostSysctls(SYSCTLS);

    // A process that starts a cluster with a pod, prints where it lives, and is then SIGKILLed.
    const script = `
      import { KubeCluster } from "${new URL("./cluster.ts", import.meta.url).href}";
      const c = await KubeCluster.start();
      await c.apply('{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"default"},' +
        '"spec":{"containers":[{"name":"c","image":"localhost/pause:local","imagePullPolicy":"Never"}]}}');
      await c.kubectl(["wait", "--for=condition=Ready", "pod/p", "--timeout=60s"]);
      console.log(JSON.stringify({ id: c.id, runDir: c.runDir }));
      await new Promise(() => {});
    `;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", script],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("the cluster process ended before its cluster was up");
      text += value;
    }
    const orphan = JSON.parse(text) as { id: string; runDir: string };
    child.kill("SIGKILL");
    await child.status;
    reader.releaseLock();
    await child.stdout.cancel().catch(() => {});
    assert.notDeepEqual(
      leftovers(orphan.id, orphan.runDir),
      [],
      "the killed process left its cluster",
    );

    let live: { id: string; runDir: string };
    {
      await using cluster = await KubeCluster.start();
      assert.deepEqual(
        leftovers(orphan.id, orphan.runDir),
        [],
        "the next cluster reaped the orphan",
      );
      assert.notDeepEqual(leftovers(cluster.id, cluster.runDir), []);
      live = { id: cluster.id, runDir: cluster.runDir };
    }
    await waitFor(() => leftovers(live.id, live.runDir).length === 0, {
      timeoutMs: 10_000,
      what: "nothing of the disposed cluster on the host",
    });
    // Another cluster of ours (a parallel test file, another checkout) keeps them until it stops.
    if (runningClusters().length === 0) {
      assert.deepEqual(sysctls(), before, "the kubelet's sysctls are back");
    } else {
      assert.deepEqual(hostSysctls(SYSCTLS), before, "the host's values are still on record");
    }
  },
});
