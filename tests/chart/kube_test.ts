/**
 * The chart against the real kube-apiserver (v1.37, tests/support/kube_apiserver.ts): every object
 * it renders passes the apiserver's own validation (server-side dry run), and `helm test` — the
 * hook's ServiceAccount and Pod created as Helm would, the Pod's projected token minted through
 * TokenRequest with the rendered audience and bound to that Pod — logs in through the service
 * watching that apiserver.
 */
import assert from "node:assert/strict";
import { createAccount, createCurve } from "@nats-io/nkeys";
import { field, findOne, type Manifest, renderChart } from "../support/chart.ts";
import { KubeApiServer, type KubeObject } from "../support/kube_apiserver.ts";
import { KubeStack, SERVICE_NAMESPACE } from "../support/kube_stack.ts";
import { tolerateClientResets } from "../support/nats_server.ts";

tolerateClientResets();

const decoder = new TextDecoder();
/** Kinds served by a bare kube-apiserver (the chart's other kinds are CRDs of monitoring stacks). */
const CORE_KINDS = new Set([
  "ServiceAccount",
  "Secret",
  "ConfigMap",
  "ClusterRole",
  "ClusterRoleBinding",
  "Role",
  "RoleBinding",
  "Service",
  "Deployment",
  "PodDisruptionBudget",
  "NetworkPolicy",
  "Pod",
]);

function isHook(doc: Manifest): boolean {
  return field(doc, "metadata", "annotations", "helm.sh/hook") !== undefined;
}

Deno.test("every object the chart renders passes a real kube-apiserver's validation (server-side dry run)", async () => {
  await using kube = await KubeApiServer.start();
  await kube.createNamespace(SERVICE_NAMESPACE);
  await kube.createNamespace("apps");
  const valueSets: Record<string, unknown>[] = [
    // Defaults with created Secrets, the PDB at 0, a NetworkPolicy, the test hook.
    {
      nats: {
        account: "APP",
        signingKey: { create: true, content: decoder.decode(createAccount().getSeed()) },
        xkey: { create: true, content: decoder.decode(createCurve().getSeed()) },
        token: "t",
      },
      secretEnv: { NATS_URL: "nats://u:p@nats:4222" },
      secretVolume: { "extra.json": "e30=" },
      podDisruptionBudget: { maxUnavailable: 0, unhealthyPodEvictionPolicy: "AlwaysAllow" },
      networkPolicy: { enabled: true, apiServerCIDRs: ["10.0.0.1/32", "fd00::1/128"] },
      grafanaDashboard: { enabled: true },
    },
    // Existing Secrets, TLS, one namespace watched, the hook there with sentinel creds.
    {
      nats: {
        url: "tls://nats-0:4222,tls://nats-1:4222",
        account: "APP",
        signingKey: { existingSecret: "keys" },
        userCredentials: { existingSecret: "creds" },
        tls: { ca: { existingSecret: "ca" }, client: { existingSecret: "client" } },
      },
      config: { watchNamespace: "apps", userJwtTtl: "1h" },
      logLevel: "WARNING",
      podDisruptionBudget: { minAvailable: 1 },
      test: { sentinelCredentials: { existingSecret: "sentinel" } },
    },
  ];
  for (const [i, values] of valueSets.entries()) {
    const docs = (await renderChart(values, { namespace: SERVICE_NAMESPACE, releaseName: `r${i}` }))
      .filter((d) => CORE_KINDS.has(String(d.kind)));
    const kinds = new Set(docs.map((d) => String(d.kind)));
    for (const k of ["Deployment", "Service", "PodDisruptionBudget", "Pod"]) {
      assert(kinds.has(k), k);
    }
    // POST each with dryRun=All: admission and validation run, nothing is stored.
    const ordered = [...docs].sort((a, b) =>
      Number(b.kind === "ServiceAccount") - Number(a.kind === "ServiceAccount")
    );
    for (const doc of ordered) {
      const obj = doc as KubeObject;
      const ns = obj.metadata.namespace ?? SERVICE_NAMESPACE;
      const path = {
        ServiceAccount: `/api/v1/namespaces/${ns}/serviceaccounts`,
        Secret: `/api/v1/namespaces/${ns}/secrets`,
        ConfigMap: `/api/v1/namespaces/${ns}/configmaps`,
        Service: `/api/v1/namespaces/${ns}/services`,
        Pod: `/api/v1/namespaces/${ns}/pods`,
        Role: `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles`,
        RoleBinding: `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`,
        ClusterRole: "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        ClusterRoleBinding: "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        Deployment: `/apis/apps/v1/namespaces/${ns}/deployments`,
        PodDisruptionBudget: `/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets`,
        NetworkPolicy: `/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies`,
      }[obj.kind];
      assert(path, obj.kind);
      // ServiceAccounts are created for real: admission checks a Pod's ServiceAccount exists.
      const dryRun = obj.kind === "ServiceAccount" ? "" : "dryRun=All&";
      const stored = await kube.request("POST", `${path}?${dryRun}fieldValidation=Strict`, obj)
        .catch((err: unknown) => {
          throw new Error(`${obj.kind} ${obj.metadata.name}: ${(err as Error).message}`);
        });
      assert.equal(stored.kind, obj.kind);
      if (obj.kind === "PodDisruptionBudget") {
        const spec = field(stored, "spec") as Record<string, unknown>;
        const want = field(obj, "spec") as Record<string, unknown>;
        assert.deepStrictEqual(spec.maxUnavailable, want.maxUnavailable);
        assert.deepStrictEqual(spec.minAvailable, want.minAvailable);
      }
    }
  }
});

/** The nats CLI, which the hook's image provides; `go install` puts it in ~/go/bin. */
async function natsCliPath(): Promise<string> {
  const path = [`${Deno.env.get("HOME") ?? ""}/go/bin`, Deno.env.get("PATH") ?? ""].join(":");
  const found = await new Deno.Command("sh", {
    args: ["-c", "command -v nats"],
    env: { PATH: path },
  }).output();
  assert(
    found.success,
    "the nats CLI is needed: go install github.com/nats-io/natscli/nats@v0.5.1 " +
      "(it lands in $(go env GOPATH)/bin; `bash .ci/run` does this)",
  );
  return path;
}

Deno.test("helm test against the real apiserver: the hook's ServiceAccount and Pod as Helm creates them, its bound projected token logs in and publishes", async () => {
  const PATH = await natsCliPath();
  await using stack = await KubeStack.start();
  const dir = await Deno.makeTempDir({ prefix: "chart-hook-" });
  try {
    const all = await renderChart({
      nats: { url: stack.nats.url, account: "APP", signingKey: { existingSecret: "sk" } },
      jwt: { audience: "nats" },
      test: { attempts: 10 },
    }, { namespace: SERVICE_NAMESPACE });
    const pod = findOne(all.filter(isHook), "Pod") as KubeObject;
    const sa = findOne(
      all,
      "ServiceAccount",
      String(field(pod, "spec", "serviceAccountName")),
    ) as KubeObject;
    // As `helm install` then `helm test` do: the ServiceAccount came with the release (the stack
    // applied the chart's objects), then `helm test` creates the Pod.
    await stack.kube.request(
      "GET",
      `/api/v1/namespaces/${SERVICE_NAMESPACE}/serviceaccounts/${sa.metadata.name}`,
    );
    const created = await stack.kube.request(
      "POST",
      `/api/v1/namespaces/${SERVICE_NAMESPACE}/pods`,
      pod,
    );
    const podRef = { name: String(created.metadata.name), uid: String(created.metadata.uid) };
    // What the kubelet puts in the projected volume: a TokenRequest with the rendered audience and
    // expiry, bound to the Pod.
    const volume = (field(pod, "spec", "volumes") as Manifest[])[0];
    const projected = (field(volume, "projected", "sources") as Manifest[])[0];
    const request = field(projected, "serviceAccountToken") as {
      audience: string;
      expirationSeconds: number;
      path: string;
    };
    const token = await stack.kube.token(SERVICE_NAMESPACE, String(sa.metadata.name), {
      audiences: [request.audience],
      expirationSeconds: request.expirationSeconds,
      pod: podRef,
    });
    const tokenFile = `${dir}/${request.path}`;
    await Deno.writeTextFile(tokenFile, token);

    const container = (field(pod, "spec", "containers") as Manifest[])[0] as Manifest;
    const env: Record<string, string> = { PATH, HOME: dir };
    for (const e of container.env as { name: string; value: string }[]) env[e.name] = e.value;
    env.TEST_TOKEN_FILE = tokenFile;
    const command = container.command as string[];
    const out = await new Deno.Command("sh", {
      args: ["-ec", command[2] as string],
      env,
      clearEnv: true,
      stdin: "null",
    }).output();
    const text = decoder.decode(out.stdout) + decoder.decode(out.stderr);
    assert.equal(out.code, 0, text);
    assert.match(text, /PASS: publish, subscribe and reply on nats-system\.helm-test/);
    assert(
      stack.logs.some((l) =>
        l.event === "login_allowed" && l.namespace === SERVICE_NAMESPACE &&
        l.serviceaccount === sa.metadata.name
      ),
      "the service allowed the hook's ServiceAccount",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
