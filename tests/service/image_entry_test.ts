/**
 * The image's entry against the real kube-apiserver. The container runs what `deno task compile`
 * builds: `main.ts` bundled into one minified file by the `bundle` task, with the compile task's V8
 * and permission flags. The other process tests run `main.ts` from source, so this is where a
 * bundling fault would show: module resolution, npm packages inlined into one file, minified names.
 * It runs in-cluster, as the chart deploys it, reading only the files it is given.
 */
import assert from "node:assert/strict";
import { dirname } from "node:path";
import { KubeApiServer } from "../support/kube_apiserver.ts";
import { KubeStack } from "../support/kube_stack.ts";
import { accountKey } from "../support/nkeys.ts";
import { tolerateClientResets } from "../support/nats_server.ts";
import { publishRefused } from "../support/permissions.ts";
import { ReplicaProcess } from "../support/replica_process.ts";
import { imageRunArgs } from "../support/start_task.ts";
import { waitFor } from "../support/wait.ts";

tolerateClientResets();

Deno.test("image entry (bundle, compile task's flags), real apiserver in-cluster: a TokenRequest token logs in within its namespace, a forged one is refused with its reason", async () => {
  await using stack = await KubeStack.start({ waitReady: false });
  await stack.service.close(); // only the image's entry answers
  const files = Object.values(stack.env).filter((v) => v.startsWith("/"));
  const readable = [...new Set(files.map((f) => dirname(f)))];
  await using replica = await ReplicaProcess.spawn(
    { ...stack.env, LOG_LEVEL: "info" },
    await imageRunArgs(readable),
  );
  await replica.waitReady();
  assert.ok(replica.logs.some((l) => l.event === "issuer_discovered"));

  await stack.addServiceAccount("team-a", "orders");
  const token = await stack.token("team-a", "orders");
  const nc = await stack.connect(token);
  nc.publish("team-a.orders", "hi");
  await nc.flush();
  assert.match(await publishRefused(nc, "team-b.orders"), /Permissions Violation/);
  await nc.close();

  const [header, payload] = token.split(".");
  const forged = `${header}.${payload}.${"A".repeat(342)}`;
  await assert.rejects(stack.connect(forged), /Authorization Violation|AUTHORIZATION_VIOLATION/i);
  assert.ok(
    replica.logs.some((l) => l.event === "login_denied" && l.reason === "signature_invalid"),
    JSON.stringify(replica.logs.filter((l) => l.event === "login_denied")),
  );
  assert.equal(await replica.allowed(), 1);
});

Deno.test("image entry: a kubeconfig user with an auth-provider loads @kubernetes/client-node, left outside the bundle, and reaches the apiserver", async () => {
  await using kube = await KubeApiServer.start();
  const dir = await Deno.makeTempDir({ prefix: "image-entry-kubeconfig-" });
  try {
    await Deno.writeTextFile(`${dir}/ca.crt`, kube.caPem);
    await Deno.writeTextFile(`${dir}/account.seed`, accountKey().seed);
    // An OIDC id-token the apiserver does not trust: client-node sends it, the apiserver says 401.
    const part = (o: object) => btoa(JSON.stringify(o)).replace(/=+$/, "");
    const idToken = `${part({ alg: "RS256" })}.${part({ iss: "https://issuer.example" })}.c2ln`;
    await Deno.writeTextFile(
      `${dir}/kubeconfig`,
      JSON.stringify({
        "current-context": "c",
        contexts: [{ name: "c", context: { cluster: "c", user: "u" } }],
        clusters: [{
          name: "c",
          cluster: { server: kube.url, "certificate-authority": `${dir}/ca.crt` },
        }],
        users: [{
          name: "u",
          user: {
            "auth-provider": {
              name: "oidc",
              config: {
                "client-id": "x",
                "id-token": idToken,
                "idp-issuer-url": "https://issuer.example",
              },
            },
          },
        }],
      }),
    );
    await using replica = await ReplicaProcess.spawn({
      K8S_IN_CLUSTER: "false",
      KUBECONFIG: `${dir}/kubeconfig`,
      NATS_URL: "nats://127.0.0.1:1",
      NATS_ACCOUNT: "APP",
      NATS_SIGNING_KEY_FILE: `${dir}/account.seed`,
      LOG_LEVEL: "info",
    }, await imageRunArgs([dir]));
    const failure = await waitFor(
      () =>
        replica.logs.find((l) =>
          l.event === "apiserver_request_failed" || l.event === "startup_failed"
        ),
      { timeoutMs: 20_000, what: "the apiserver's answer" },
    );
    assert.equal(failure.event, "apiserver_request_failed", replica.output.slice(-2000));
    assert.equal(failure.cause, "unauthorized", JSON.stringify(failure));
    assert.match(
      String(replica.logs.find((l) => l.event === "apiserver_access")?.via),
      /credential plugin/,
      replica.output.slice(-2000),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
