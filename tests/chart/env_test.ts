/**
 * values → rendered env → running service: the service starts with exactly the environment and
 * Secret files the Helm chart renders, as the container image runs it (the bundled entry under the
 * compile task's permissions), and becomes ready against the test apiserver and a real nats-server.
 */
import assert from "node:assert/strict";
import { materializePod, renderChart } from "../support/chart.ts";
import { tolerateClientResets } from "../support/nats_server.ts";
import { ISSUER, Stack } from "../support/stack.ts";
import { freePort, waitReady } from "../support/http_probe.ts";
import { waitFor } from "../support/wait.ts";
import { imageRunArgs, ROOT } from "../support/start_task.ts";

tolerateClientResets();

Deno.test("the service starts ready from exactly the env and files the chart renders", async () => {
  await using stack = await Stack.start({ captureLogs: false });
  await stack.service.close(); // only the chart-configured process answers
  const root = await Deno.makeTempDir({ prefix: "chart-pod-" });
  try {
    const docs = await renderChart({
      nats: {
        url: stack.env.NATS_URL,
        account: "APP",
        signingKey: { create: true, content: stack.account.seed },
      },
      jwt: { issuer: ISSUER, jwksUrl: stack.env.JWKS_URL },
      logLevel: "info",
      config: { userJwtTtl: "2m" },
    });
    const env = await materializePod(docs, { root });
    assert.equal(env.NATS_ACCOUNT, "APP");
    assert.equal(env.NATS_SIGNING_KEY_FILE, `${root}/etc/nats/signing.key`);
    assert.equal(env.NATS_USER_JWT_TTL, "2m");

    const port = freePort();
    // Only what a cluster provides differently here: no pod ServiceAccount mount, so out-of-cluster.
    const runEnv = {
      ...env,
      K8S_IN_CLUSTER: "false",
      KUBECONFIG: stack.env.KUBECONFIG!,
      PORT: String(port),
    };
    const kubeconfigDir = stack.env.KUBECONFIG!.slice(0, stack.env.KUBECONFIG!.lastIndexOf("/"));
    const child = new Deno.Command(Deno.execPath(), {
      args: await imageRunArgs([root, kubeconfigDir]), // the image's entry and flags
      cwd: ROOT,
      env: { ...runEnv, PATH: Deno.env.get("PATH") ?? "" },
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const output = child.output();
    try {
      await waitReady(port);
      stack.addServiceAccount("team-a", "orders");
      const token = await stack.token("team-a", "orders");
      const nc = await waitFor(() => stack.connect(token).catch(() => undefined), {
        what: "login through the chart-configured service",
      });
      await nc.close();
    } catch (err) {
      const { stdout, stderr } = await output;
      throw new Error(
        `${(err as Error).message}\n${new TextDecoder().decode(stdout).slice(-2000)}${
          new TextDecoder().decode(stderr).slice(-2000)
        }`,
      );
    }
    child.kill("SIGTERM");
    const { code, stdout } = await output;
    assert.equal(code, 0, new TextDecoder().decode(stdout).slice(-2000));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
