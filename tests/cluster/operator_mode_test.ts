/**
 * Operator mode on a real kubelet (issue 21, "NATS in the cluster"): nats-server with an operator and
 * its accounts (AUTH carries the callout's `authorization` block), the callout installed with the
 * values docs/operator-mode.md gives, `helm test` presenting the sentinel, and a workload that logs
 * in with the sentinel's creds plus its projected token, placed in APP with its namespace's subjects.
 *
 * @module
 */
import assert from "node:assert/strict";
import { KubeCluster } from "../support/cluster/cluster.ts";
import { clusterUnavailable } from "../support/cluster/host.ts";
import {
  installOperatorStack,
  NATS_NAMESPACE,
  RELEASE,
  rolledOut,
  stackImages,
  workload,
} from "../support/cluster/stack.ts";
import { waitFor } from "../support/wait.ts";

const unavailable = clusterUnavailable();

Deno.test({
  name:
    `operator mode on a real kubelet: helm test and a workload log in through the callout into the target account${
      unavailable ? ` (skipped: ${unavailable})` : ""
    }`,
  ignore: unavailable !== undefined,
  async fn(t) {
    await using cluster = await KubeCluster.start({ images: await stackImages() });
    const stack = await installOperatorStack(cluster);

    await t.step(
      "helm test presents the sentinel and proves publish, subscribe and reply",
      async () => {
        const test = await stack.helm(["test", RELEASE, "-n", NATS_NAMESPACE, "--logs"], {
          allowFailure: true,
        });
        const output = test.stdout + test.stderr;
        assert.equal(test.code, 0, output);
        assert.match(output, /PASS: publish, subscribe and reply/);
      },
    );

    await t.step(
      "a workload with the sentinel and its token does request/reply in its namespace",
      async () => {
        const creds = '--creds "$SENTINEL_CREDS" --token "$(cat "$TOKEN_FILE")"';
        await cluster.apply([
          workload({
            namespace: "team-a",
            name: "echo",
            sentinelCreds: stack.sentinelCreds,
            script: `exec nats --server "$NATS_URL" ${creds} reply 'team-a.echo' pong`,
          }),
          workload({
            namespace: "team-a",
            name: "client",
            sentinelCreds: stack.sentinelCreds,
            script: "trap 'exit 0' TERM; while true; do sleep 1; done",
          }),
        ].join("\n---\n"));
        await rolledOut(cluster, "team-a", "echo");
        const [client] = await rolledOut(cluster, "team-a", "client");
        const request = (subject: string) =>
          cluster.run(cluster.binary, [
            "kubectl",
            `--kubeconfig=${cluster.kubeconfig}`,
            "-n",
            "team-a",
            "exec",
            client!,
            "--",
            "sh",
            "-c",
            `nats --server "$NATS_URL" ${creds} request --timeout 2s '${subject}' ping 2>&1`,
          ], { allowFailure: true });
        const own = await waitFor(async () => {
          const r = await request("team-a.echo");
          return r.code === 0 && /\bpong\b/.test(r.stdout) ? r : undefined;
        }, { timeoutMs: 30_000, intervalMs: 500, what: "team-a's echo in operator mode" });
        assert.match(own.stdout, /pong/);
        const other = await request("team-b.echo");
        assert.doesNotMatch(other.stdout, /\bpong\b/);
        // Where the server placed it: each server's connz names the account of a connection.
        const ips = (await cluster.kubectl([
          "-n",
          NATS_NAMESPACE,
          "get",
          "pods",
          "-l",
          "app.kubernetes.io/name=nats",
          "-o",
          "jsonpath={.items[*].status.podIP}",
        ])).split(/\s+/).filter(Boolean);
        const connections: { name?: string; authorized_user?: string; account?: string }[] = [];
        for (const ip of ips) {
          const connz = JSON.parse(
            (await cluster.run("busybox", ["wget", "-qO-", `http://${ip}:8222/connz?auth=true`]))
              .stdout,
          ) as { connections?: typeof connections };
          connections.push(...connz.connections ?? []);
        }
        const echo = connections.filter((c) =>
          c.authorized_user === "system:serviceaccount:team-a:echo"
        );
        assert.ok(
          echo.length > 0,
          `the echo workload's connection: ${JSON.stringify(connections)}`,
        );
        for (const c of echo) assert.equal(c.account, stack.appAccount);
      },
    );
  },
});
