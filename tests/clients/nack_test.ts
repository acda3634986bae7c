/**
 * docs/nack.md run as written: the real NACK (jetstream-controller, built from its Go module by
 * tests/clients/build_client.sh) in its default mode (`-crd-connect`) against the real kube-apiserver
 * with NACK's CRDs, nats-server with JetStream in the account the guide names, and the service with
 * the guide's policy. The guide's objects, copier script and resources are read from the page and
 * applied (only the apiserver and NATS addresses, the token paths and the copier's interval are
 * the test's). NACK logs in with the projected token the copier put into the Secret.
 *
 * Without `jetstream.api` in the policy NACK cannot create the stream, and says so in its status;
 * with the guide's policy and the next token the kubelet rotates in (copied into the Secret), it
 * creates the stream and the consumer.
 */
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { loadConfig } from "../../lib/config/config.ts";
import { createLogger } from "../../lib/telemetry/log.ts";
import { startService } from "../../lib/service/service.ts";
import { KubeApiServer, type KubeObject } from "../support/kube_apiserver.ts";
import { chartRbac, SERVICE_NAMESPACE } from "../support/kube_stack.ts";
import { authCalloutConfig, NatsServer, tolerateClientResets } from "../support/nats_server.ts";
import { accountKey, KeyDir } from "../support/nkeys.ts";
import { waitFor } from "../support/wait.ts";
import { buildClient } from "./build_client.ts";
import { collectLines } from "./three_rules.ts";

tolerateClientResets();

const GUIDE = new URL("../../docs/nack.md", import.meta.url);
const NS = "nack-system";
const COPIER_POD = "nack-nats-token-copier-0";
const CRDS = "/apis/jetstream.nats.io/v1beta2/namespaces/nack-system";

/** The fenced block after `<!-- nack-test: <name> -->` in docs/nack.md. */
async function guideBlock(name: string): Promise<string> {
  const text = await Deno.readTextFile(GUIDE);
  const at = text.indexOf(`<!-- nack-test: ${name} -->`);
  assert.ok(at >= 0, `docs/nack.md has no block "${name}"`);
  const block = /```\w*\n([\s\S]*?)\n```/.exec(text.slice(at));
  assert.ok(block, `docs/nack.md: no code block after "${name}"`);
  return block[1]!;
}

function yamlObjects(text: string): KubeObject[] {
  return parseAllDocuments(text).map((d) => d.toJS() as KubeObject).filter(Boolean);
}

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

async function readyCondition(
  kube: KubeApiServer,
  kind: "streams" | "consumers",
  name: string,
): Promise<Condition | undefined> {
  const obj = await kube.request<{ status?: { conditions?: Condition[] } }>(
    "GET",
    `${CRDS}/${kind}/${name}`,
  );
  return obj.status?.conditions?.find((c) => c.type === "Ready");
}

Deno.test("NACK logs in with the projected token the guide's copier keeps in its Secret, and the guide's policy grants what it needs to create a stream and a consumer", async () => {
  const nackDir = await buildClient("nack");
  const guidePolicy = await guideBlock("policy");
  assert.match(guidePolicy, /jetstream: \{ api: true \}/);
  const withoutApi = guidePolicy.replace(/\n\s*jetstream: \{ api: true \}/, "");

  await using kube = await KubeApiServer.start();
  await using keys = await KeyDir.create();
  const storeDir = await Deno.makeTempDir({ prefix: "nack-js-" });
  const work = await Deno.makeTempDir({ prefix: "nack-test-" });
  const children: Deno.ChildProcess[] = [];
  try {
    // The service, in-cluster as the chart deploys it, with the policy minus jetstream.api.
    await kube.createNamespace(SERVICE_NAMESPACE);
    await kube.apply(await chartRbac(), SERVICE_NAMESPACE);
    const account = accountKey();
    const { config, service: serviceUser } = authCalloutConfig({
      issuer: account.publicKey,
      timeoutSeconds: 10,
      accounts: { APP: {}, STREAMS: { jetstream: "enabled" } },
      extra: {
        server_name: "js1",
        jetstream: { store_dir: storeDir, max_memory_store: 67108864, max_file_store: 268435456 },
      },
    });
    await using nats = await NatsServer.start({ config });
    const policyFile = await keys.write("policy.yaml", withoutApi);
    const logs: Record<string, unknown>[] = [];
    const service = await startService({
      config: loadConfig({
        K8S_IN_CLUSTER: "true",
        KUBERNETES_SERVICE_HOST: "127.0.0.1",
        KUBERNETES_SERVICE_PORT: new URL(kube.url).port,
        K8S_CA_FILE: await keys.write("ca.crt", kube.caPem),
        K8S_TOKEN_FILE: await keys.write(
          "token",
          await kube.token(SERVICE_NAMESPACE, "r-nats-k8s-oidc-callout", { audiences: [] }),
        ),
        NATS_URL: `nats://${serviceUser.user}:${serviceUser.password}@127.0.0.1:${nats.port}`,
        NATS_ACCOUNT: "APP",
        NATS_SIGNING_KEY_FILE: await keys.write("account.seed", account.seed),
        POLICY_FILE: policyFile,
        LOG_LEVEL: "debug",
      }),
      logger: createLogger({ level: "debug", write: (line) => logs.push(JSON.parse(line)) }),
    });
    await using _service = { [Symbol.asyncDispose]: () => service.close() };
    await waitFor(() => service.ready, { timeoutMs: 20_000, what: "service ready" });

    // NACK's CRDs, and the guide's namespace objects: ServiceAccount, Secret, the copier's RBAC.
    for (const crd of yamlObjects(await Deno.readTextFile(`${nackDir}/crds.yml`))) {
      await kube.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd);
    }
    await kube.createNamespace(NS);
    // The ServiceAccount NACK's chart creates (serviceAccountName=nack); the guide's objects must
    // not create it too, or `helm install` refuses to adopt it.
    await kube.createServiceAccount(NS, "nack");
    const objects = yamlObjects(await guideBlock("objects"));
    assert.ok(
      !objects.some((o) => o.kind === "ServiceAccount"),
      "docs/nack.md step 2 creates no ServiceAccount: the chart does",
    );
    await kube.apply(objects, NS);
    const { uid: podUid } = await kube.createPod(NS, COPIER_POD, "nack");

    // The copier pod's files: its API token and CA, and the projected `nats` token the kubelet
    // writes (and rotates) — all for ServiceAccount nack.
    await Deno.mkdir(`${work}/sa`);
    await Deno.writeTextFile(`${work}/sa/ca.crt`, kube.caPem);
    await Deno.writeTextFile(
      `${work}/sa/token`,
      await kube.token(NS, "nack", { audiences: [], pod: { name: COPIER_POD, uid: podUid } }),
    );
    const natsToken = `${work}/nats-token`;
    const project = async () => {
      const token = await kube.token(NS, "nack", { pod: { name: COPIER_POD, uid: podUid } });
      await Deno.writeTextFile(`${natsToken}.new`, token);
      await Deno.rename(`${natsToken}.new`, natsToken);
      return token;
    };
    const firstToken = await project();
    const script = (await guideBlock("copier"))
      .replaceAll("/var/run/secrets/kubernetes.io/serviceaccount", `${work}/sa`)
      .replaceAll("/var/run/secrets/nats/token", natsToken)
      .replace("sleep 60", "sleep 0.5");
    const copier = new Deno.Command("sh", {
      args: ["-c", script],
      env: { APISERVER: kube.url },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    children.push(copier);
    const copierOut = collectLines(copier.stdout);
    const copierErr = collectLines(copier.stderr);
    const secretToken = async () => {
      const s = await kube.request<{ data?: { token?: string } }>(
        "GET",
        `/api/v1/namespaces/${NS}/secrets/nack-nats-token`,
      );
      return s.data?.token ? atob(s.data.token) : undefined;
    };
    await waitFor(async () => (await secretToken()) === firstToken, {
      timeoutMs: 10_000,
      what: `the copier to copy the token (${copierErr.text()})`,
    });
    // The Secret may hold the token before the copier's echo has reached us.
    await waitFor(() => copierOut.lines.includes("copied the token"), {
      timeoutMs: 5_000,
      what: `the copier to say so (${copierOut.text()} ${copierErr.text()})`,
    });

    // NACK in its default mode, connecting per Account resource; then the guide's resources.
    const nack = new Deno.Command(`${nackDir}/jetstream-controller`, {
      args: ["-crd-connect", `-namespace=${NS}`],
      env: { KUBECONFIG: await kube.writeKubeconfig("nack", { token: kube.adminToken }) },
      cwd: work,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    children.push(nack);
    const nackLog = collectLines(nack.stderr);
    collectLines(nack.stdout);
    const resources = (await guideBlock("resources")).replace(
      "nats://nats.nats.svc:4222",
      nats.url,
    );
    for (const obj of yamlObjects(resources)) {
      const kind = { Account: "accounts", Stream: "streams", Consumer: "consumers" }[obj.kind];
      assert.ok(kind, `unexpected kind ${obj.kind}`);
      await waitFor(() => kube.request("POST", `${CRDS}/${kind}`, obj).then(() => true), {
        timeoutMs: 15_000,
        what: `${obj.kind} accepted (CRD established)`,
      });
    }

    // Without jetstream.api NACK logs in (its ServiceAccount is fine) but may not create streams.
    const failed = await waitFor(async () => {
      const c = await readyCondition(kube, "streams", "orders");
      return c?.status === "False" && c.reason === "Errored" ? c : undefined;
    }, { timeoutMs: 60_000, what: `the stream to fail without jetstream.api: ${nackLog.text()}` });
    assert.ok(
      logs.some((l) =>
        l.event === "login_allowed" && l.namespace === NS && l.serviceaccount === "nack"
      ),
      "NACK logged in through the callout",
    );

    // The guide's policy; the kubelet rotates the token, the copier copies it, NACK connects anew.
    const loads = () => logs.filter((l) => l.event === "policy_file_loaded").length;
    const loaded = loads();
    await Deno.writeTextFile(`${policyFile}.tmp`, guidePolicy);
    await Deno.rename(`${policyFile}.tmp`, policyFile);
    await waitFor(() => loads() > loaded, {
      timeoutMs: 10_000,
      what: "the service to load the guide's policy",
    });
    const secondToken = await project();
    await waitFor(async () => (await secretToken()) === secondToken, {
      timeoutMs: 10_000,
      what: "the copier to copy the rotated token",
    });
    for (const [kind, name] of [["streams", "orders"], ["consumers", "orders-worker"]] as const) {
      await waitFor(async () => (await readyCondition(kube, kind, name))?.status === "True", {
        timeoutMs: 90_000,
        what: `${kind}/${name} ready with the guide's policy: ${
          nackLog.lines.slice(-20).join("\n")
        }`,
      });
    }

    // They exist in NATS, in the account the policy placed NACK's namespace in.
    const nc = await connect({ servers: nats.url, token: secondToken, reconnect: false });
    try {
      const jsm = await jetstreamManager(nc);
      const stream = await jsm.streams.info("orders");
      assert.deepEqual(stream.config.subjects, ["orders.>"]);
      const consumer = await jsm.consumers.info("orders", "worker");
      assert.equal(consumer.config.durable_name, "worker");
    } finally {
      await nc.close();
    }
    assert.ok(failed.message, "the failure said why");
  } finally {
    for (const child of children) {
      try {
        child.kill("SIGTERM");
      } catch { /* exited */ }
      await child.status;
    }
    await Deno.remove(work, { recursive: true }).catch(() => {});
    await Deno.remove(storeDir, { recursive: true }).catch(() => {});
  }
});
