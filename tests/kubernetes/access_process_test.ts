/**
 * Reaching the apiserver, as an operator runs the service (`deno task start`'s own flags): the
 * failures a fresh install meets, each named for what it is.
 */
import assert from "node:assert/strict";
import { freePort } from "../support/http_probe.ts";
import { accountKey } from "../support/nkeys.ts";
import { generateSigningKey, publicJwks } from "../support/sa_tokens.ts";
import { KubeApiServer } from "../support/kube_apiserver.ts";
import { NatsServer } from "../support/nats_server.ts";
import { spawnStartTask } from "../support/start_task.ts";
import { waitFor } from "../support/wait.ts";

interface Run {
  code: number;
  lines: Record<string, unknown>[];
}

/** Run `main.ts` with the start task's flags until it exits, or `stopAfter` holds and SIGTERM. */
async function runMain(
  env: Record<string, string>,
  stopAfter?: (lines: Record<string, unknown>[]) => boolean,
): Promise<Run> {
  const child = await spawnStartTask(env);
  const lines: Record<string, unknown>[] = [];
  const read = async (stream: ReadableStream<Uint8Array>) => {
    let buffer = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        try {
          lines.push(JSON.parse(line));
        } catch {
          lines.push({ raw: line });
        }
      }
    }
  };
  const reading = Promise.all([read(child.stdout), read(child.stderr)]);
  if (stopAfter) {
    try {
      await waitFor(() => stopAfter(lines), { timeoutMs: 20_000, what: "the expected log line" });
    } finally {
      try {
        child.kill("SIGTERM");
      } catch { /* exited */ }
    }
  }
  const { code } = await child.status;
  await reading;
  return { code, lines };
}

async function baseEnv(dir: string): Promise<Record<string, string>> {
  const seed = `${dir}/account.seed`;
  await Deno.writeTextFile(seed, accountKey().seed);
  return { NATS_ACCOUNT: "APP", NATS_SIGNING_KEY_FILE: seed, PORT: String(freePort()) };
}

Deno.test("a kubeconfig whose user needs an exec plugin the process may not run: exit 2 naming --allow-run", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const kubeconfig = `${dir}/config`;
    await Deno.writeTextFile(
      kubeconfig,
      JSON.stringify({
        "current-context": "eks",
        contexts: [{ name: "eks", context: { cluster: "eks", user: "aws" } }],
        clusters: [{ name: "eks", cluster: { server: "https://127.0.0.1:1" } }],
        users: [{
          name: "aws",
          user: {
            exec: {
              apiVersion: "client.authentication.k8s.io/v1",
              command: "aws-iam-authenticator",
            },
          },
        }],
      }),
    );
    const run = await runMain({
      ...await baseEnv(dir),
      K8S_IN_CLUSTER: "false",
      KUBECONFIG: kubeconfig,
    });
    assert.equal(run.code, 2, JSON.stringify(run.lines));
    const failed = run.lines.find((l) => l.event === "startup_failed");
    assert.match(
      JSON.stringify(failed),
      /exec plugin \\"aws-iam-authenticator\\".*--allow-run=aws-iam-authenticator/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("in-cluster with the token file missing: the failure is named `credentials`, not the network", async () => {
  await using kube = await KubeApiServer.start();
  await using nats = await NatsServer.start({ config: {} });
  const dir = await Deno.makeTempDir();
  try {
    const ca = `${dir}/ca.crt`;
    await Deno.writeTextFile(ca, kube.caPem);
    const run = await runMain(
      {
        ...await baseEnv(dir),
        NATS_URL: nats.url,
        K8S_IN_CLUSTER: "true",
        KUBERNETES_SERVICE_HOST: "127.0.0.1",
        KUBERNETES_SERVICE_PORT: new URL(kube.url).port,
        K8S_CA_FILE: ca,
        K8S_TOKEN_FILE: `${dir}/no-such-token`,
      },
      (lines) => lines.some((l) => l.event === "apiserver_request_failed" && l.level === "warn"),
    );
    const warned = run.lines.filter((l) =>
      l.event === "apiserver_request_failed" && l.level === "warn"
    );
    assert.ok(warned.length >= 1);
    for (const w of warned) {
      assert.equal(w.cause, "credentials", JSON.stringify(w));
      assert.match(String(w.error), /no-such-token/);
    }
    const access = run.lines.find((l) => l.event === "apiserver_access");
    assert.equal(access?.via, "in-cluster");
    assert.equal(run.code, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("PORT already in use: exit 2 with one line naming the port", async () => {
  using listener = Deno.listen({ hostname: "0.0.0.0", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/sa.yaml`, "kind: List\nitems: []\n");
    await Deno.writeTextFile(
      `${dir}/jwks.json`,
      JSON.stringify(publicJwks([await generateSigningKey("RS256")])),
    );
    const run = await runMain({
      ...await baseEnv(dir),
      PORT: String(port),
      K8S_IN_CLUSTER: "false",
      SERVICEACCOUNTS_FILE: `${dir}/sa.yaml`,
      JWKS_PATH: `${dir}/jwks.json`,
      JWT_ISSUER: "https://issuer.example",
      NATS_URL: "nats://127.0.0.1:1",
    });
    assert.equal(run.code, 2, JSON.stringify(run.lines));
    const failed = run.lines.filter((l) => l.event === "startup_failed");
    assert.equal(failed.length, 1, JSON.stringify(run.lines));
    assert.match(String(failed[0]!.error), new RegExp(`^PORT ${port}: .*(in use|AddrInUse)`, "i"));
    assert.ok(!run.lines.some((l) => "raw" in l), "no stack trace, only JSON lines");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
