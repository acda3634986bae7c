/**
 * Install as README says, on a real kubelet (issue 21, scenarios a, c, h): README's "Install on
 * Kubernetes" commands run as written (keys with `nk`, Secrets, NATS with the callout configured,
 * `helm install` of `chart/`, `helm test`, the decision lines), with only the image build and the NATS
 * chart from the internet replaced (tests/support/cluster/readme.ts). Then: `helm test` fails when a
 * permission it checks is withheld; the pods run as the chart says (read-only root, uid 65532, no
 * capabilities) and the service's permission flags refuse everything else; `/metrics` answers where
 * the chart's PodMonitor and Service point.
 *
 * @module
 */
import assert from "node:assert/strict";
import { KubeCluster } from "../support/cluster/cluster.ts";
import { clusterUnavailable } from "../support/cluster/host.ts";
import { serviceImage } from "../support/cluster/images.ts";
import { setVariables, shellBlocks, writeStandIns } from "../support/cluster/readme.ts";
import {
  calloutPods,
  NATS_NAMESPACE,
  podsMatching,
  RELEASE,
  stackImages,
  waitRollout,
} from "../support/cluster/stack.ts";
import { parseManifests } from "../support/chart.ts";
import { ROOT } from "../support/start_task.ts";

const unavailable = clusterUnavailable();

/** What the service's permission flags must refuse, run with exactly those flags in its pod. */
const PERMISSION_PROBE = `
const results = {};
async function attempt(name, fn) {
  try { await fn(); results[name] = "allowed"; }
  catch (e) { results[name] = e instanceof Deno.errors.NotCapable ? "refused" : "error: " + e.name; }
}
await attempt("read the service account token", () => Deno.readTextFile("/var/run/secrets/kubernetes.io/serviceaccount/token"));
await attempt("read the signing key", () => Deno.readTextFile("/etc/nats/signing.key"));
await attempt("read /etc/passwd", () => Deno.readTextFile("/etc/passwd"));
await attempt("env NATS_URL", () => Deno.env.get("NATS_URL"));
// --ignore-env: a variable outside the list reads as unset instead of throwing.
results["env PATH"] = Deno.env.get("PATH") === undefined ? "unset" : "visible";
await attempt("write /tmp", () => Deno.writeTextFile("/tmp/probe", "x"));
await attempt("net to the cloud metadata address", () => fetch("http://169.254.169.254/"));
await attempt("run a program", () => new Deno.Command("/usr/local/bin/deno", { args: ["--version"] }).output());
await attempt("ffi", () => Deno.dlopen("/lib/x86_64-linux-gnu/libc.so.6", {}));
await attempt("sys", () => Deno.hostname());
console.log(JSON.stringify(results));
`;

Deno.test({
  name:
    `install as README says on a real kubelet: helm test proves the path and fails without it, the pods run locked down, metrics answer${
      unavailable ? ` (skipped: ${unavailable})` : ""
    }`,
  ignore: unavailable !== undefined,
  async fn(t) {
    await using cluster = await KubeCluster.start({ images: await stackImages() });
    const image = (await serviceImage()).ref;
    const [repository, tag] = image.split(":") as [string, string];
    const work = await Deno.makeTempDir({ prefix: "readme-install-" });
    await using _work = {
      [Symbol.asyncDispose]: () => Deno.remove(work, { recursive: true }),
    };
    await writeStandIns(work, cluster.binary);
    const readme = await Deno.readTextFile(`${ROOT}README.md`);
    const blocks = shellBlocks(readme, "Install on Kubernetes");
    assert.ok(blocks.length >= 4, `README's install section has ${blocks.length} sh blocks`);
    const script = setVariables(blocks.join("\n"), {
      IMAGE_REPOSITORY: repository,
      IMAGE_TAG: tag,
      TEST_IMAGE_REPOSITORY: "localhost/nats-box",
      TEST_IMAGE_TAG: "local",
    });

    const installed = await t.step(
      "a. README's install commands, as written: pods Ready, helm test passes",
      async () => {
        // A failing command is named as README writes it; `timeout` bounds a wait that never ends.
        const traced =
          `trap 'echo "README install step failed (exit $?): $BASH_COMMAND" >&2' ERR\n` +
          script;
        const run = await cluster.run("timeout", [
          "600",
          "bash",
          "-e",
          "-o",
          "pipefail",
          "-c",
          traced,
        ], {
          cwd: ROOT,
          env: {
            HOME: work,
            PATH: `${work}:${Deno.env.get("HOME")}/go/bin:${Deno.env.get("PATH")}`,
          },
          allowFailure: true,
        });
        const output = run.stdout + run.stderr;
        if (run.code !== 0) {
          const state = [];
          for (const what of [["pods"], ["events", "--field-selector=type=Warning"]]) {
            const r = await cluster.run(cluster.binary, [
              "kubectl",
              `--kubeconfig=${cluster.kubeconfig}`,
              "get",
              ...what,
              "-A",
              "--sort-by=.metadata.creationTimestamp",
            ], { allowFailure: true });
            state.push(r.stdout + r.stderr);
          }
          assert.fail(
            `README's install steps failed (exit ${run.code}${
              run.code === 124 ? ", timed out" : ""
            }):\n${output.slice(-4000)}\n--- the cluster then:\n${state.join("\n").slice(-3000)}`,
          );
        }
        assert.match(output, /PASS: publish, subscribe and reply/);
        assert.match(output, /"event":"login_allowed"/, "step 4 shows the decision lines");
        // The keys were made outside the checkout and removed once in their Secret.
        const status = await new Deno.Command("git", {
          args: ["status", "--porcelain", "--ignored"],
          cwd: ROOT,
          stdout: "piped",
        }).output();
        assert.doesNotMatch(new TextDecoder().decode(status.stdout), /signing\.key|xkey\.seed/);
        for await (const entry of Deno.readDir(`${work}/nats-callout`)) {
          assert.doesNotMatch(entry.name, /\.key$|\.seed$/, `a seed left on disk: ${entry.name}`);
        }
      },
    );

    // The steps below need the installed release; without it they would only add noise.
    if (!installed) return;
    const [pod] = await calloutPods(cluster);
    const exec = (args: string[], stdin?: string) =>
      cluster.kubectl([
        "-n",
        NATS_NAMESPACE,
        "exec",
        ...(stdin === undefined ? [] : ["-i"]),
        pod!,
        "--",
        ...args,
      ], stdin === undefined ? {} : { stdin });

    await t.step("c. the pod runs read-only, as uid 65532, with no capabilities", async () => {
      const facts = JSON.parse(
        await exec([
          "/usr/local/bin/deno",
          "eval",
          `let rootWritable = true;
           try { Deno.writeTextFileSync("/app/probe", "x"); } catch { rootWritable = false; }
           const status = Deno.readTextFileSync("/proc/1/status");
           console.log(JSON.stringify({
             uid: Deno.uid(), gid: Deno.gid(), rootWritable,
             capEff: status.match(/^CapEff:\\s*(\\S+)/m)[1],
             capBnd: status.match(/^CapBnd:\\s*(\\S+)/m)[1],
             noNewPrivs: status.match(/^NoNewPrivs:\\s*(\\S+)/m)[1],
           }));`,
        ]),
      );
      assert.deepEqual(facts, {
        uid: 65532,
        gid: 65532,
        rootWritable: false,
        capEff: "0000000000000000",
        capBnd: "0000000000000000",
        noNewPrivs: "1",
      });
    });

    await t.step(
      "c. the service's permission flags allow what it needs and refuse each other kind",
      async () => {
        // The flags of the running process, as the image's entrypoint gives them.
        const cmdline = (await exec([
          "/usr/local/bin/deno",
          "eval",
          "console.log(Deno.readTextFileSync('/proc/1/cmdline'))",
        ]))
          .split("\0").map((w) => w.trim()).filter(Boolean);
        const runAt = cmdline.indexOf("run");
        assert.ok(runAt > 0 && cmdline.at(-1) === "/app/main.js", cmdline.join(" "));
        const flags = cmdline.slice(runAt + 1, -1);
        assert.ok(flags.some((f) => f.startsWith("--allow-env=")), flags.join(" "));
        const results = JSON.parse(
          await exec(["/usr/local/bin/deno", "run", ...flags, "-"], PERMISSION_PROBE),
        );
        assert.deepEqual(results, {
          "read the service account token": "allowed",
          "read the signing key": "allowed",
          "read /etc/passwd": "refused",
          "env NATS_URL": "allowed",
          "env PATH": "unset",
          "write /tmp": "refused",
          "net to the cloud metadata address": "refused",
          "run a program": "refused",
          "ffi": "refused",
          "sys": "refused",
        });
      },
    );

    await t.step(
      "h. the NOTES' log command selects every replica and not the helm test Pod",
      async () => {
        const notes =
          (await cluster.run("helm", ["get", "notes", RELEASE, "-n", NATS_NAMESPACE])).stdout;
        const command = notes.split("\n").map((l) => l.trim()).find((l) => / logs .*-l /.test(l));
        assert.ok(command, notes);
        const selector = command.match(/-l (\S+)/)![1]!;
        const pods = (await podsMatching(cluster, selector)).map((p) => p.metadata.name);
        const testPod = `${RELEASE}-test`;
        const all = await cluster.kubectl(["-n", NATS_NAMESPACE, "get", "pods", "-o", "name"]);
        assert.match(all, new RegExp(`pod/${testPod}\\b`), "helm test left its Pod");
        assert.equal(pods.length, 2, pods.join(" "));
        assert.ok(!pods.includes(testPod));
        assert.match(command, /--prefix/);
      },
    );

    await t.step(
      "h. /metrics answers on the pods the chart's PodMonitor selects, and through its Service",
      async () => {
        const rendered = parseManifests(
          (await cluster.run("helm", [
            "get",
            "manifest",
            RELEASE,
            "-n",
            NATS_NAMESPACE,
          ])).stdout,
        );
        const service = rendered.find((d) => d.kind === "Service") as {
          metadata: { name: string };
        };
        const podMonitor = parseManifests(
          (await cluster.run("helm", [
            "template",
            RELEASE,
            `${ROOT}chart`,
            "-n",
            NATS_NAMESPACE,
            "--kube-version",
            "1.37.2",
            "--set",
            "nats.account=APP",
            "--set",
            "nats.signingKey.existingSecret=nats-callout-keys",
            "--set",
            "metrics.podMonitor.enabled=true",
            "--show-only",
            "templates/podmonitor.yaml",
          ])).stdout,
        )[0] as {
          spec: {
            selector: { matchLabels: Record<string, string> };
            podMetricsEndpoints: { port: string; path: string }[];
          };
        };
        const selector = Object.entries(podMonitor.spec.selector.matchLabels).map(([k, v]) =>
          `${k}=${v}`
        )
          .join(",");
        const pods = await podsMatching(cluster, selector);
        const running = pods.filter((p) => !p.metadata.deletionTimestamp);
        assert.equal(running.length, 2, "the PodMonitor selects the two callout pods");
        const endpoint = podMonitor.spec.podMetricsEndpoints[0]!;
        let allowed = 0;
        for (const p of running) {
          assert.notEqual(p.metadata.labels?.["app.kubernetes.io/component"], "test");
          const port = p.spec.containers[0]!.ports?.find((x) => x.name === endpoint.port);
          assert.ok(port, `pod port ${endpoint.port}`);
          const metrics = (await cluster.run("busybox", [
            "wget",
            "-qO-",
            `http://${p.status.podIP}:${port.containerPort}${endpoint.path}`,
          ])).stdout;
          // Every replica serves the page (its NATS connection up); a replica that has not
          // answered a login yet has the family without samples.
          assert.match(metrics, /^nats_connected 1$/m);
          assert.match(metrics, /^# TYPE nats_auth_requests_total counter$/m);
          for (
            const m of metrics.matchAll(
              /^nats_auth_requests_total\{[^}]*result="allowed"[^}]*\} (\d+)/gm,
            )
          ) {
            allowed += Number(m[1]);
          }
        }
        assert.ok(allowed > 0, "the logins of README's steps and helm test are counted");
        const ip = await cluster.kubectl([
          "-n",
          NATS_NAMESPACE,
          "get",
          "service",
          service.metadata.name,
          "-o",
          "jsonpath={.spec.clusterIP}",
        ]);
        const viaService =
          (await cluster.run("busybox", ["wget", "-qO-", `http://${ip}:8080/metrics`])).stdout;
        assert.match(viaService, /^nats_connected 1$/m);
        assert.match(viaService, /^# TYPE nats_auth_requests_total counter$/m);
      },
    );

    await t.step("a. helm test fails when a permission it checks is withheld", async () => {
      const values = `${work}/deny-helm-test.yaml`;
      await Deno.writeTextFile(
        values,
        "policy:\n  defaults:\n    deny:\n      sub: ['{namespace}.helm-test']\n",
      );
      await cluster.run("helm", [
        "upgrade",
        RELEASE,
        `${ROOT}chart`,
        "-n",
        NATS_NAMESPACE,
        "--reuse-values",
        "-f",
        values,
      ]);
      await waitRollout(cluster, `deploy/${RELEASE}`);
      const test = await cluster.run("helm", ["test", RELEASE, "-n", NATS_NAMESPACE, "--logs"], {
        allowFailure: true,
      });
      const output = test.stdout + test.stderr;
      assert.notEqual(test.code, 0, `helm test passed without subscribe permission:\n${output}`);
      assert.match(output, /FAIL: no answer on nats\.helm-test/);
      assert.doesNotMatch(output, /PASS/);
    });
  },
});
