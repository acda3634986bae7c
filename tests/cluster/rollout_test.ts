/**
 * Rolling the callout while workloads log in (issue 21, scenarios d and h's SIGTERM): a
 * `helm upgrade` that changes a value rolls the Deployment, an eviction under the chart's
 * PodDisruptionBudget moves a replica, and a pod deleted ends its process on SIGTERM within the
 * grace period — each while workload pods keep logging in on fresh connections (as they do after a
 * NATS restart), and none of those logins may fail.
 *
 * @module
 */
import assert from "node:assert/strict";
import { KubeCluster } from "../support/cluster/cluster.ts";
import { clusterUnavailable } from "../support/cluster/host.ts";
import { collectLines } from "../support/cluster/lines.ts";
import {
  calloutPods,
  installStack,
  NATS_NAMESPACE,
  RELEASE,
  rolledOut,
  stackImages,
  waitRollout,
  workload,
} from "../support/cluster/stack.ts";
import { waitFor } from "../support/wait.ts";

const unavailable = clusterUnavailable();

/**
 * Two pods that log in again and again, each time on a fresh connection (`nats pub`), and print
 * `OK` or `FAIL <the client's error>` per login.
 */
const LOADER = workload({
  namespace: "team-a",
  name: "loader",
  replicas: 2,
  script: [
    "trap 'exit 0' TERM",
    "while true; do",
    '  if nats --server "$NATS_URL" --token "$(cat "$TOKEN_FILE")" --timeout 5s pub team-a.load x >/dev/null 2>/tmp/err;',
    '  then echo OK; else echo "FAIL $(tail -n 1 /tmp/err)"; fi',
    "  sleep 0.2",
    "done",
  ].join("\n"),
});

interface LoginCount {
  ok: number;
  failed: string[];
}

/** OK and FAIL lines of every loader pod so far. */
async function logins(cluster: KubeCluster): Promise<LoginCount> {
  const pods = await cluster.kubectl([
    "-n",
    "team-a",
    "get",
    "pods",
    "-l",
    "app=loader",
    "-o",
    "jsonpath={.items[*].metadata.name}",
  ]);
  const count: LoginCount = { ok: 0, failed: [] };
  for (const pod of pods.split(/\s+/).filter(Boolean)) {
    const text = await cluster.kubectl(["-n", "team-a", "logs", pod, "--tail=-1"]);
    for (const line of text.split("\n")) {
      if (line === "OK") count.ok++;
      else if (line.startsWith("FAIL")) count.failed.push(`${pod}: ${line}`);
    }
  }
  return count;
}

/** Wait until the loaders have made `more` logins beyond `since`. */
async function moreLogins(cluster: KubeCluster, since: number, more: number): Promise<LoginCount> {
  return await waitFor(async () => {
    const c = await logins(cluster);
    return c.ok >= since + more ? c : undefined;
  }, { timeoutMs: 60_000, intervalMs: 1_000, what: `${more} more logins` });
}

Deno.test({
  name: `the callout rolls, is evicted and is stopped under load without losing a login${
    unavailable ? ` (skipped: ${unavailable})` : ""
  }`,
  ignore: unavailable !== undefined,
  async fn(t) {
    await using cluster = await KubeCluster.start({ images: await stackImages() });
    const stack = await installStack(cluster);
    await cluster.apply(LOADER);
    await rolledOut(cluster, "team-a", "loader");
    const warm = await moreLogins(cluster, 0, 20);
    assert.deepEqual(warm.failed, [], "logins fail before anything happens");

    await t.step(
      "d. helm upgrade that changes a value rolls the Deployment: 0 lost logins",
      async () => {
        const before = await calloutPods(cluster);
        const start = await logins(cluster);
        await stack.helm([
          "upgrade",
          RELEASE,
          (await import("../support/chart.ts")).CHART_DIR,
          "-n",
          NATS_NAMESPACE,
          "--reuse-values",
          "--set",
          "logLevel=debug",
        ]);
        await waitRollout(cluster, `deploy/${RELEASE}`);
        const after = await calloutPods(cluster);
        assert.equal(
          after.filter((p) => before.includes(p)).length,
          0,
          "every replica was replaced",
        );
        const end = await moreLogins(cluster, start.ok, 20);
        assert.deepEqual(end.failed, [], "no login lost during the rolling update");
      },
    );

    await t.step(
      "d. an eviction under the chart's PodDisruptionBudget: 0 lost logins",
      async () => {
        const [victim] = await calloutPods(cluster);
        const start = await logins(cluster);
        const eviction = JSON.stringify({
          apiVersion: "policy/v1",
          kind: "Eviction",
          metadata: { name: victim, namespace: NATS_NAMESPACE },
        });
        await cluster.kubectl(
          [
            "create",
            "--raw",
            `/api/v1/namespaces/${NATS_NAMESPACE}/pods/${victim}/eviction`,
            "-f",
            "-",
          ],
          { stdin: eviction },
        );
        // A second eviction while one replica is down is refused by the budget (maxUnavailable 1).
        const [other] = (await calloutPods(cluster)).filter((p) => p !== victim);
        const refused = await cluster.run(
          cluster.binary,
          [
            "kubectl",
            `--kubeconfig=${cluster.kubeconfig}`,
            "create",
            "--raw",
            `/api/v1/namespaces/${NATS_NAMESPACE}/pods/${other}/eviction`,
            "-f",
            "-",
          ],
          {
            stdin: JSON.stringify({
              apiVersion: "policy/v1",
              kind: "Eviction",
              metadata: { name: other, namespace: NATS_NAMESPACE },
            }),
            allowFailure: true,
          },
        );
        assert.notEqual(refused.code, 0, "the budget refuses a second eviction");
        assert.match(refused.stderr, /disruption budget|TooManyRequests|429/i);
        await waitRollout(cluster, `deploy/${RELEASE}`);
        const end = await moreLogins(cluster, start.ok, 20);
        assert.deepEqual(end.failed, [], "no login lost during the eviction");
      },
    );

    await t.step(
      "h. a callout pod deleted: SIGTERM ends the process within its grace period, no login refused",
      async () => {
        const [pod] = await calloutPods(cluster);
        const start = await logins(cluster);
        const follow = cluster.spawn(cluster.binary, [
          "kubectl",
          `--kubeconfig=${cluster.kubeconfig}`,
          "-n",
          NATS_NAMESPACE,
          "logs",
          "-f",
          pod!,
        ]);
        const lines = collectLines(follow.stdout);
        collectLines(follow.stderr);
        await waitFor(() => lines.length > 0, { timeoutMs: 10_000, what: "the pod's log" });
        const deleted = performance.now();
        await cluster.kubectl([
          "-n",
          NATS_NAMESPACE,
          "delete",
          "pod",
          pod!,
          "--wait=true",
          "--timeout=60s",
        ]);
        const gone = performance.now() - deleted;
        const events = lines.map((l) => {
          try {
            return JSON.parse(l.text) as { event?: string; signal?: string };
          } catch {
            return {};
          }
        });
        assert.ok(
          events.some((e) => e.event === "shutting_down" && e.signal === "SIGTERM"),
          "the service saw SIGTERM",
        );
        assert.ok(events.some((e) => e.event === "stopped"), "the service stopped on its own");
        assert.ok(!events.some((e) => e.event === "shutdown_timeout"));
        // The chart's grace period is 30 s; the pod went well before it (the figure is printed).
        // deno-lint-ignore no-console -- the figure the issue asks for, printed with the test
        console.log(`callout pod deleted → gone: ${Math.round(gone)} ms (grace period 30 s)`);
        await waitRollout(cluster, `deploy/${RELEASE}`);
        const end = await moreLogins(cluster, start.ok, 20);
        assert.deepEqual(end.failed, [], "no login refused while the pod stopped");
      },
    );

    await t.step(
      "the loaders' count can fail: with no callout running, their logins are refused",
      async () => {
        const start = await logins(cluster);
        await cluster.kubectl(["-n", NATS_NAMESPACE, "scale", `deploy/${RELEASE}`, "--replicas=0"]);
        const refused = await waitFor(async () => {
          const c = await logins(cluster);
          return c.failed.length > start.failed.length ? c : undefined;
        }, { timeoutMs: 60_000, intervalMs: 1_000, what: "a refused login without a callout" });
        assert.match(refused.failed.at(-1)!, /Authorization Violation|timeout/i);
        await cluster.kubectl(["-n", NATS_NAMESPACE, "scale", `deploy/${RELEASE}`, "--replicas=2"]);
        await waitRollout(cluster, `deploy/${RELEASE}`);
      },
    );
  },
});
