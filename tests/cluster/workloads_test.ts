/**
 * Workloads on a real kubelet (issue 21, scenarios b, e, f): pods log in to NATS through the
 * NATS Service name with the tokens their kubelet projects, are kept to their namespace's subjects,
 * keep working when a NATS server pod goes away, and lose their connections when their Pod or
 * ServiceAccount does (live revocation with the system-account settings README documents).
 *
 * One cluster for the file: NATS (3 servers, config mode as README installs it) and the callout
 * from its image by `helm install`, with live revocation on.
 *
 * @module
 */
import assert from "node:assert/strict";
import { KubeCluster } from "../support/cluster/cluster.ts";
import { clusterUnavailable } from "../support/cluster/host.ts";
import { collectLines } from "../support/cluster/lines.ts";
import {
  CALLOUT_SELECTOR,
  installStack,
  NATS_NAMESPACE,
  natsServiceUrl,
  podsMatching,
  rolledOut,
  stackImages,
  workload,
} from "../support/cluster/stack.ts";
import { waitFor } from "../support/wait.ts";

const unavailable = clusterUnavailable();

/** A workload that answers requests on `<subject>` with `pong` until it is stopped. */
function responder(namespace: string, name: string, subject: string): string {
  return workload({
    namespace,
    name,
    script: `exec nats --server "$NATS_URL" --token "$(cat "$TOKEN_FILE")" reply '${subject}' pong`,
  });
}

/** A workload that idles; the test runs `nats` commands in it with `kubectl exec`. */
function client(namespace: string, name: string, audience = "nats"): string {
  return workload({
    namespace,
    name,
    audience,
    script: "trap 'exit 0' TERM; while true; do sleep 1; done",
  });
}

/** `nats request <subject> ping` from a pod, with its own projected token: the reply or the error. */
async function requestFrom(
  cluster: KubeCluster,
  namespace: string,
  pod: string,
  subject: string,
): Promise<{ ok: boolean; output: string }> {
  const script = `nats --server "$NATS_URL" --token "$(cat "$TOKEN_FILE")" request --timeout 2s ` +
    `'${subject}' ping 2>&1`;
  const out = await cluster.run(
    cluster.binary,
    [
      "kubectl",
      `--kubeconfig=${cluster.kubeconfig}`,
      "-n",
      namespace,
      "exec",
      pod,
      "--",
      "sh",
      "-c",
      script,
    ],
    { allowFailure: true },
  );
  const output = out.stdout + out.stderr;
  return { ok: out.code === 0 && /\bpong\b/.test(output), output };
}

/** The sum of a counter over every callout pod's `/metrics` (read from its pod IP). */
async function calloutCounter(cluster: KubeCluster, line: RegExp): Promise<number> {
  const ips = (await podsMatching(cluster, CALLOUT_SELECTOR))
    .map((p) => p.status.podIP)
    .filter((ip): ip is string => Boolean(ip));
  let sum = 0;
  for (const ip of ips) {
    const text =
      (await cluster.run("busybox", ["wget", "-qO-", `http://${ip}:8080/metrics`])).stdout;
    for (const l of text.split("\n")) {
      if (line.test(l)) sum += Number(l.split(" ").at(-1));
    }
  }
  return sum;
}

const DENIED = /^nats_auth_requests_total\{[^}]*result="(denied|dropped|error)"/;

Deno.test({
  name:
    `workloads on a real kubelet: log in, stay in their namespace, survive a NATS pod, lose their connections with their Pod or ServiceAccount${
      unavailable ? ` (skipped: ${unavailable})` : ""
    }`,
  ignore: unavailable !== undefined,
  async fn(t) {
    await using cluster = await KubeCluster.start({ images: await stackImages() });
    await installStack(cluster, { revocation: true });
    await cluster.apply([
      responder("team-a", "echo", "team-a.echo"),
      client("team-a", "client"),
      responder("team-b", "echo", "team-b.echo"),
      client("team-b", "client"),
      client("team-c", "other-audience", "not-nats"),
    ].join("\n---\n"));
    // From the node's own network namespace (host tools) the Service is reached by its ClusterIP:
    // cluster DNS names resolve only in pods.
    const NATS_URL_FROM_NODE = await natsServiceUrl(cluster);
    const [clientA] = await rolledOut(cluster, "team-a", "client");
    const [clientB] = await rolledOut(cluster, "team-b", "client");
    await rolledOut(cluster, "team-a", "echo");
    await rolledOut(cluster, "team-b", "echo");

    await t.step(
      "b. a team-a pod does request/reply in team-a through the NATS Service name",
      async () => {
        const reply = await waitFor(async () => {
          const r = await requestFrom(cluster, "team-a", clientA!, "team-a.echo");
          return r.ok ? r : undefined;
        }, { timeoutMs: 30_000, intervalMs: 500, what: "team-a's echo to answer team-a's client" });
        assert.match(reply.output, /pong/);
      },
    );

    await t.step("b. team-a is refused on team-b's subjects, team-b on team-a's", async () => {
      const own = await requestFrom(cluster, "team-b", clientB!, "team-b.echo");
      assert.ok(own.ok, `team-b's own request/reply works: ${own.output}`);
      const aToB = await requestFrom(cluster, "team-a", clientA!, "team-b.echo");
      assert.ok(!aToB.ok, `team-a must not reach team-b.echo: ${aToB.output}`);
      assert.match(aToB.output, /Permissions Violation|timeout|no responders/i);
      const bToA = await requestFrom(cluster, "team-b", clientB!, "team-a.echo");
      assert.ok(!bToA.ok, `team-b must not reach team-a.echo: ${bToA.output}`);
    });

    await t.step("b. a pod whose token has another audience is refused", async () => {
      const [pod] = await rolledOut(cluster, "team-c", "other-audience");
      const r = await requestFrom(cluster, "team-c", pod!, "team-c.x");
      assert.ok(!r.ok);
      assert.match(r.output, /Authorization Violation/);
      const logs = await cluster.kubectl([
        "-n",
        NATS_NAMESPACE,
        "logs",
        "-l",
        CALLOUT_SELECTOR,
        "--prefix",
        "--tail=-1",
      ]);
      assert.match(logs, /"event":"login_denied".*"reason":"audience_mismatch"/);
    });

    await t.step(
      "e. a NATS server pod deleted: its clients come back on the others, no login refused",
      async () => {
        const deniedBefore = await calloutCounter(cluster, DENIED);
        const uidOf = () =>
          cluster.kubectl([
            "-n",
            NATS_NAMESPACE,
            "get",
            "pod",
            "nats-0",
            "-o",
            "jsonpath={.metadata.uid}",
          ]);
        const before = await uidOf();
        await cluster.kubectl(["-n", NATS_NAMESPACE, "delete", "pod", "nats-0", "--wait=false"]);
        // Lame duck mode moves clients off nats-0 over its 30 s; requests keep working throughout.
        for (let i = 0; i < 6; i++) {
          const a = await waitFor(async () => {
            const r = await requestFrom(cluster, "team-a", clientA!, "team-a.echo");
            return r.ok ? r : undefined;
          }, { timeoutMs: 30_000, intervalMs: 500, what: "team-a's echo during the NATS restart" });
          assert.match(a.output, /pong/);
          await new Promise((r) => setTimeout(r, 2_000));
        }
        // The StatefulSet recreates nats-0 once the old one is gone (after its lame duck period).
        await waitFor(async () => (await uidOf().catch(() => before)) !== before, {
          timeoutMs: 120_000,
          intervalMs: 1_000,
          what: "a new nats-0",
        });
        await cluster.kubectl([
          "-n",
          NATS_NAMESPACE,
          "wait",
          "--for=condition=Ready",
          "pod/nats-0",
          "--timeout=60s",
        ]);
        const b = await requestFrom(cluster, "team-b", clientB!, "team-b.echo");
        assert.ok(b.ok, `team-b's responder is back: ${b.output}`);
        assert.equal(await calloutCounter(cluster, DENIED), deniedBefore, "no login refused");
      },
    );

    /**
     * A host-side client holds a connection made with the token of `pod` in `namespace`; after
     * `remove` (what makes the token worthless) the connection must be closed and the token
     * refused. Returns how long the close took (printed: the figure the issue asks for).
     */
    const revoked = async (namespace: string, pod: string, remove: () => Promise<unknown>) => {
      const token = await cluster.kubectl([
        "-n",
        namespace,
        "exec",
        pod,
        "--",
        "cat",
        "/var/run/secrets/nats/token",
      ]);
      const sub = cluster.spawn("nats", [
        "--server",
        NATS_URL_FROM_NODE,
        "--token",
        token,
        "sub",
        `${namespace}.>`,
      ]);
      const lines = collectLines(sub.stderr);
      collectLines(sub.stdout);
      await waitFor(() => lines.some((l) => /Subscribing on/.test(l.text)), {
        timeoutMs: 10_000,
        what: `the host-side client with ${namespace}'s token to subscribe`,
      });
      const removed = performance.now();
      await remove();
      const closed = await waitFor(
        () =>
          lines.find((l) => l.at > removed && /Disconnected|Authorization Violation/.test(l.text)),
        { timeoutMs: 30_000, what: `the connection made with ${namespace}'s token to be closed` },
      );
      const retry = await cluster.run(
        "nats",
        ["--server", NATS_URL_FROM_NODE, "--token", token, "pub", `${namespace}.x`, "hi"],
        { allowFailure: true },
      );
      assert.notEqual(retry.code, 0);
      assert.match(retry.stderr + retry.stdout, /Authorization Violation/);
      return Math.round(closed.at - removed);
    };

    await t.step(
      "f. a workload Pod deleted: its connections are closed and its token is refused",
      async () => {
        const [pod] = await rolledOut(cluster, "team-a", "echo");
        const ms = await revoked(
          "team-a",
          pod!,
          () => cluster.kubectl(["-n", "team-a", "delete", "pod", pod!, "--wait=false"]),
        );
        // deno-lint-ignore no-console -- the figure the issue asks for, printed with the test
        console.log(`pod deleted → connection closed: ${ms} ms`);
      },
    );

    await t.step(
      "f. a ServiceAccount deleted: its connections are closed and its token is refused",
      async () => {
        const ms = await revoked(
          "team-b",
          clientB!,
          () => cluster.kubectl(["-n", "team-b", "delete", "serviceaccount", "client"]),
        );
        // deno-lint-ignore no-console -- the figure the issue asks for, printed with the test
        console.log(`ServiceAccount deleted → connection closed: ${ms} ms`);
      },
    );
  },
});
