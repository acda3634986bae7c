/**
 * The Helm chart, rendered by the real `helm`: defaults, security, RBAC scope, Secret wiring, the
 * reference chart's values landing where the reference put them, the optional objects, the values
 * schema, the helm-unittest suites in chart/tests, and the agreement between what the chart can set
 * and what the compiled binary is allowed to read.
 */
import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import { CONFIG_ENV_VARS } from "../../lib/config/config.ts";
import { taskWords } from "../support/start_task.ts";
import {
  CHART_DIR,
  deploymentEnv,
  deploymentFiles,
  field,
  findAll,
  findHelm,
  findOne,
  HelmError,
  type Manifest,
  materializePod,
  renderChart,
  type RenderOptions,
  runHelm,
} from "../support/chart.ts";

const REQUIRED = { nats: { account: "APP", signingKey: { existingSecret: "signing" } } };
/** Placeholders shaped like an account and a curve seed (the templates check the shape); not keys. */
const SIGNING = `SA${"EXAMPLE".repeat(8)}`;
const XKEY = `SX${"EXAMPLE".repeat(8)}`;
const REFERENCE_VALUES = `${CHART_DIR}/tests/reference-values.yaml`;
const FULL = "r-nats-k8s-oidc-callout";

function pod(docs: Manifest[]): Manifest {
  return field(findOne(docs, "Deployment"), "spec", "template", "spec") as Manifest;
}

function container(docs: Manifest[]): Manifest {
  return (field(pod(docs), "containers") as Manifest[])[0] as Manifest;
}

/** Whether `doc` is a Helm hook (the `helm test` objects), which `helm install` does not create. */
function isHook(doc: Manifest): boolean {
  return field(doc, "metadata", "annotations", "helm.sh/hook") !== undefined;
}

/** Kinds of the objects `helm install` creates (hooks left out). */
function kinds(docs: Manifest[]): string[] {
  return docs.filter((d) => !isHook(d)).map((d) => String(d.kind)).sort();
}

/** Render expecting helm to refuse; return its error output. */
async function helmFailure(values: object, options: RenderOptions = {}): Promise<string> {
  try {
    await renderChart(values, options);
  } catch (err) {
    if (err instanceof HelmError) return err.stderr;
    throw err;
  }
  throw new assert.AssertionError({ message: "helm template succeeded; expected a refusal" });
}

Deno.test("helm lint --strict passes with the required values and with every option set", async () => {
  const file = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await Deno.writeTextFile(file, JSON.stringify(REQUIRED));
    await runHelm(["lint", "--strict", CHART_DIR, "-f", file]);
    await runHelm(["lint", "--strict", CHART_DIR, "-f", REFERENCE_VALUES]);
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("the helm-unittest suites in chart/tests pass", async () => {
  const plugins = await runHelm(["plugin", "list"]);
  assert(
    /^unittest\s/m.test(plugins),
    `the helm-unittest plugin is not installed (helm ${await findHelm()}); build and install it ` +
      "as `.ci/run` does: go mod download github.com/helm-unittest/helm-unittest@v1.1.2, " +
      "go build ./cmd/helm-unittest in a writable copy, then put the binary and a plugin.yaml " +
      'with command: "$HELM_PLUGIN_DIR/untt" in $(helm env HELM_PLUGINS)/unittest',
  );
  const out = await runHelm(["unittest", "--color=false", CHART_DIR]);
  assert.match(out, /Test Suites:\s+\d+ passed, \d+ total/);
});

Deno.test("by default two non-root replicas run with a read-only root, no capabilities and HTTP probes", async () => {
  const docs = await renderChart(REQUIRED);
  const deployment = findOne(docs, "Deployment", FULL);
  assert.deepStrictEqual(field(deployment, "spec", "replicas"), 2);
  assert.deepStrictEqual(field(pod(docs), "securityContext"), {
    runAsNonRoot: true,
    runAsUser: 65532,
    runAsGroup: 65532,
    fsGroup: 65532,
    seccompProfile: { type: "RuntimeDefault" },
  });
  assert.deepStrictEqual(field(container(docs), "securityContext"), {
    allowPrivilegeEscalation: false,
    capabilities: { drop: ["ALL"] },
    readOnlyRootFilesystem: true,
  });
  assert.deepStrictEqual(field(container(docs), "ports"), [
    { name: "http", containerPort: 8080, protocol: "TCP" },
  ]);
  assert.deepStrictEqual(field(container(docs), "livenessProbe", "httpGet"), {
    path: "/healthz",
    port: "http",
  });
  assert.deepStrictEqual(field(container(docs), "readinessProbe", "httpGet"), {
    path: "/readyz",
    port: "http",
  });
  assert.deepStrictEqual(kinds(docs), [
    "ClusterRole",
    "ClusterRoleBinding",
    "Deployment",
    "PodDisruptionBudget",
    "Service",
    "ServiceAccount",
    // The helm test's ServiceAccount, installed with the release (its Pod is the only test hook).
    "ServiceAccount",
  ]);
});

Deno.test("only the pod's own projected API token is mounted, read-only, in the standard place", async () => {
  const docs = await renderChart(REQUIRED);
  assert.deepStrictEqual(field(pod(docs), "automountServiceAccountToken"), false);
  assert.deepStrictEqual(
    field(findOne(docs, "ServiceAccount", FULL), "automountServiceAccountToken"),
    false,
  );
  const mounts = field(container(docs), "volumeMounts") as Manifest[];
  assert.deepStrictEqual(mounts[0], {
    name: "serviceaccount-token",
    mountPath: "/var/run/secrets/kubernetes.io/serviceaccount",
    readOnly: true,
  });
  const volume = (field(pod(docs), "volumes") as Manifest[])[0] as Manifest;
  const sources = field(volume, "projected", "sources") as Manifest[];
  assert.deepStrictEqual(sources.map((s) => Object.keys(s)[0]), [
    "serviceAccountToken",
    "configMap",
    "downwardAPI",
  ]);
  assert.deepStrictEqual(field(sources[0], "serviceAccountToken", "path"), "token");
});

Deno.test("RBAC lists and watches ServiceAccounts, Pods and Namespaces cluster-wide and allows nothing else", async () => {
  const docs = await renderChart(REQUIRED);
  assert.deepStrictEqual(field(findOne(docs, "ClusterRole", FULL), "rules"), [
    { apiGroups: [""], resources: ["serviceaccounts"], verbs: ["list", "watch"] },
    { apiGroups: [""], resources: ["pods"], verbs: ["list", "watch"] },
    { apiGroups: [""], resources: ["namespaces"], verbs: ["list", "watch"] },
  ]);
  const noPods = await renderChart({ ...REQUIRED, config: { watchPods: false } });
  assert.deepStrictEqual(field(findOne(noPods, "ClusterRole", FULL), "rules"), [
    { apiGroups: [""], resources: ["serviceaccounts"], verbs: ["list", "watch"] },
    { apiGroups: [""], resources: ["namespaces"], verbs: ["list", "watch"] },
  ]);
  assert.deepStrictEqual(deploymentEnv(noPods).K8S_WATCH_PODS, "false");
  const binding = findOne(docs, "ClusterRoleBinding", FULL);
  assert.deepStrictEqual(field(binding, "roleRef"), {
    apiGroup: "rbac.authorization.k8s.io",
    kind: "ClusterRole",
    name: FULL,
  });
  assert.deepStrictEqual(field(binding, "subjects"), [
    { kind: "ServiceAccount", name: FULL, namespace: "nats-system" },
  ]);
  assert.deepStrictEqual(findAll(docs, "Role").length + findAll(docs, "RoleBinding").length, 0);
});

Deno.test("K8S_NAMESPACE set: a Role and RoleBinding in that namespace and no ClusterRole", async () => {
  const docs = await renderChart({ ...REQUIRED, config: { watchNamespace: "apps" } });
  assert.deepStrictEqual(deploymentEnv(docs).K8S_NAMESPACE, "apps");
  assert.deepStrictEqual(
    findAll(docs, "ClusterRole").length + findAll(docs, "ClusterRoleBinding").length,
    0,
  );
  const role = findOne(docs, "Role", FULL);
  assert.deepStrictEqual(field(role, "metadata", "namespace"), "apps");
  assert.deepStrictEqual(field(role, "rules"), [
    { apiGroups: [""], resources: ["serviceaccounts"], verbs: ["list", "watch"] },
    { apiGroups: [""], resources: ["pods"], verbs: ["list", "watch"] },
  ]);
  const binding = findOne(docs, "RoleBinding", FULL);
  assert.deepStrictEqual(field(binding, "metadata", "namespace"), "apps");
  assert.deepStrictEqual(field(binding, "roleRef", "kind"), "Role");
  assert.deepStrictEqual(field(binding, "subjects"), [
    { kind: "ServiceAccount", name: FULL, namespace: "nats-system" },
  ]);
});

Deno.test("rbac.create=false renders no RBAC object", async () => {
  const docs = await renderChart({ ...REQUIRED, rbac: { create: false } });
  for (const kind of ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]) {
    assert.deepStrictEqual(findAll(docs, kind).length, 0, kind);
  }
});

Deno.test("created Secrets hold the given content at the paths the env vars name", async () => {
  const docs = await renderChart({
    nats: {
      account: "APP",
      userCredentials: { create: true, content: "CREDS" },
      signingKey: { create: true, content: SIGNING },
      xkey: { create: true, content: XKEY },
    },
  });
  const env = deploymentEnv(docs);
  const files = deploymentFiles(docs);
  assert.deepStrictEqual(files.get(env.NATS_USER_CREDS_FILE ?? ""), "CREDS");
  assert.deepStrictEqual(files.get(env.NATS_SIGNING_KEY_FILE ?? ""), SIGNING);
  assert.deepStrictEqual(files.get(env.NATS_XKEY_SEED_FILE ?? ""), XKEY);
  assert.deepStrictEqual(
    findAll(docs, "Secret").map((s) => field(s, "metadata", "name")).sort(),
    [`${FULL}-nats-signing-key`, `${FULL}-nats-user-creds`, `${FULL}-nats-xkey`],
  );
});

Deno.test("existing Secrets are mounted by name and key, and nothing is created", async () => {
  const docs = await renderChart({
    nats: {
      account: "APP",
      userCredentials: { existingSecret: "creds", existingSecretKey: "c" },
      signingKey: { existingSecret: "signing", existingSecretKey: "s" },
      xkey: { existingSecret: "xkey", existingSecretKey: "x" },
    },
  });
  assert.deepStrictEqual(findAll(docs, "Secret"), []);
  const env = deploymentEnv(docs);
  const files = deploymentFiles(docs, {
    existingSecrets: { creds: { c: "CREDS" }, signing: { s: "SIGNING" }, xkey: { x: "XKEY" } },
  });
  assert.deepStrictEqual(files.get(env.NATS_USER_CREDS_FILE ?? ""), "CREDS");
  assert.deepStrictEqual(files.get(env.NATS_SIGNING_KEY_FILE ?? ""), "SIGNING");
  assert.deepStrictEqual(files.get(env.NATS_XKEY_SEED_FILE ?? ""), "XKEY");
});

Deno.test("the older nats.credentials key mounts the same file as nats.userCredentials", async () => {
  const docs = await renderChart({
    ...REQUIRED,
    nats: { ...REQUIRED.nats, credentials: { existingSecret: "old" } },
  });
  const env = deploymentEnv(docs);
  const files = deploymentFiles(docs, {
    existingSecrets: { old: { credentials: "CREDS" }, signing: { "signing.key": "S" } },
  });
  assert.deepStrictEqual(env.NATS_USER_CREDS_FILE, "/etc/nats/user.creds");
  assert.deepStrictEqual(files.get("/etc/nats/user.creds"), "CREDS");
});

Deno.test("NATS TLS Secrets are mounted as directories the TLS env vars point into", async () => {
  const docs = await renderChart({
    ...REQUIRED,
    nats: {
      ...REQUIRED.nats,
      tls: { ca: { existingSecret: "ca" }, client: { existingSecret: "client" } },
    },
  });
  const env = deploymentEnv(docs);
  const files = deploymentFiles(docs, {
    existingSecrets: {
      signing: { "signing.key": "S" },
      ca: { "ca.crt": "CA", other: "ignored" },
      client: { "tls.crt": "CERT", "tls.key": "KEY", "ca.crt": "not mounted" },
    },
  });
  assert.deepStrictEqual(files.get(env.NATS_TLS_CA_FILE ?? ""), "CA");
  assert.deepStrictEqual(files.get(env.NATS_TLS_CERT_FILE ?? ""), "CERT");
  assert.deepStrictEqual(files.get(env.NATS_TLS_KEY_FILE ?? ""), "KEY");
  assert.deepStrictEqual([...files.keys()].filter((p) => p.startsWith("/etc/nats/tls/")).length, 3);
});

Deno.test("every reference chart value lands where the reference chart put it", async () => {
  const docs = await renderChart({}, { valuesFiles: [REFERENCE_VALUES] });
  const ref = parseYaml(await Deno.readTextFile(REFERENCE_VALUES)) as Manifest;
  const env = deploymentEnv(docs, { existingSecrets: { signing: { "signing.key": "S" } } });
  const c = container(docs);
  const p = pod(docs);
  const deployment = findOne(docs, "Deployment", FULL);

  assert.deepStrictEqual(field(deployment, "spec", "replicas"), 3);
  assert.deepStrictEqual(field(c, "image"), "example.com/callout:v2.0.0");
  assert.deepStrictEqual(field(c, "imagePullPolicy"), "Always");
  // nats.url is overridden by secretEnv.NATS_URL, read from the -env Secret as in the reference.
  assert.deepStrictEqual(env.NATS_URL, "nats://u:p@nats:4222");
  assert.deepStrictEqual(
    field((field(c, "env") as Manifest[])[2], "valueFrom", "secretKeyRef"),
    { name: `${FULL}-env`, key: "NATS_URL" },
  );
  assert.deepStrictEqual(env.NATS_ACCOUNT, "AUTH");
  assert.deepStrictEqual(env.NATS_USER_CREDS_FILE, "/etc/nats/user.creds");
  assert.deepStrictEqual(env.NATS_SIGNING_KEY_FILE, "/etc/nats/signing.key");
  assert.deepStrictEqual(env.K8S_IN_CLUSTER, "true");
  assert.deepStrictEqual(env.PORT, "8080");
  assert.deepStrictEqual(env.JWT_ISSUER, "https://kubernetes.default.svc.cluster.local");
  assert.deepStrictEqual(env.JWT_AUDIENCE, "nats");
  assert.deepStrictEqual(env.JWKS_URL, "https://kubernetes.default.svc/openid/v1/jwks");
  assert.deepStrictEqual(env.LOG_LEVEL, "debug");
  const files = deploymentFiles(docs, { existingSecrets: { signing: { "signing.key": "S" } } });
  assert.deepStrictEqual(files.get("/etc/nats/user.creds"), "creds");
  assert.deepStrictEqual(files.get("/etc/nats/signing.key"), "S");
  assert.deepStrictEqual(files.get("/secrets/extra.json"), "{}");
  assert.deepStrictEqual(field(c, "resources"), ref.resources);
  assert.deepStrictEqual(field(p, "serviceAccountName"), "callout");
  assert.deepStrictEqual(
    field(findOne(docs, "ServiceAccount", "callout"), "metadata", "annotations"),
    {
      a: "b",
    },
  );
  assert.deepStrictEqual(
    field(deployment, "spec", "template", "metadata", "annotations", "a"),
    "b",
  );
  for (const key of ["runAsNonRoot", "runAsUser", "fsGroup"]) {
    assert.deepStrictEqual(
      field(p, "securityContext", key),
      field(ref, "podSecurityContext", key),
      key,
    );
  }
  assert.deepStrictEqual(field(c, "securityContext"), ref.securityContext);
  assert.deepStrictEqual(field(p, "nodeSelector"), ref.nodeSelector);
  assert.deepStrictEqual(field(p, "tolerations"), ref.tolerations);
  assert.deepStrictEqual(field(p, "affinity"), undefined);
  assert.deepStrictEqual(field(findOne(docs, "ClusterRoleBinding"), "subjects"), [
    { kind: "ServiceAccount", name: "callout", namespace: "nats-system" },
  ]);

  const policy = findOne(docs, "NetworkPolicy", FULL);
  const egress = field(policy, "spec", "egress") as Manifest[];
  assert(egress.some((r) =>
    JSON.stringify(r) ===
      JSON.stringify({
        ports: [{ protocol: "TCP", port: 4223 }],
        to: [{ podSelector: { matchLabels: { app: "nats" } } }],
      })
  ));
  const monitor = findOne(docs, "PodMonitor", FULL);
  assert.deepStrictEqual(field(monitor, "metadata", "namespace"), "monitoring");
  assert.deepStrictEqual(field(monitor, "metadata", "labels", "release"), "prom");
  assert.deepStrictEqual(field(monitor, "metadata", "annotations"), { a: "b" });
  const endpoint = (field(monitor, "spec", "podMetricsEndpoints") as Manifest[])[0];
  assert.deepStrictEqual(endpoint, {
    port: "http",
    path: "/metrics",
    interval: "30s",
    scrapeTimeout: "10s",
    relabelings: field(ref, "metrics", "podMonitor", "relabelings"),
    metricRelabelings: field(ref, "metrics", "podMonitor", "metricRelabelings"),
  });
  const logs = findOne(docs, "PodLogs", FULL);
  assert.deepStrictEqual(field(logs, "metadata", "namespace"), "monitoring");
  assert.deepStrictEqual(field(logs, "spec", "pipelineStages"), [{ cri: {} }]);
  assert.deepStrictEqual(
    field(logs, "spec", "relabelings"),
    field(ref, "logs", "podLogs", "relabelings"),
  );
  assert.deepStrictEqual(field(findOne(docs, "ConfigMap", "extra"), "kind"), "ConfigMap");
  assert.deepStrictEqual(field(findOne(docs, "Service", FULL), "spec", "ports"), [
    { port: 8080, targetPort: "http", protocol: "TCP", name: "http" },
  ]);
});

Deno.test("each optional object renders only when switched on", async () => {
  const cases: [object, string][] = [
    [{ networkPolicy: { enabled: true } }, "NetworkPolicy"],
    [{ metrics: { podMonitor: { enabled: true } } }, "PodMonitor"],
    [{ logs: { podLogs: { enabled: true } } }, "PodLogs"],
    [{ prometheusRule: { enabled: true } }, "PrometheusRule"],
    [{ grafanaDashboard: { enabled: true } }, "ConfigMap"],
    [
      { extraObjects: [{ apiVersion: "v1", kind: "Namespace", metadata: { name: "x" } }] },
      "Namespace",
    ],
  ];
  const defaults = await renderChart(REQUIRED);
  for (const [values, kind] of cases) {
    assert.deepStrictEqual(findAll(defaults, kind).length, 0, `${kind} rendered by default`);
    const docs = await renderChart({ ...REQUIRED, ...values });
    assert.deepStrictEqual(findAll(docs, kind).length, 1, kind);
  }
  assert.deepStrictEqual(findAll(defaults, "PodDisruptionBudget").length, 1);
  const noPdb = await renderChart({ ...REQUIRED, podDisruptionBudget: { enabled: false } });
  assert.deepStrictEqual(findAll(noPdb, "PodDisruptionBudget").length, 0);
});

Deno.test("the PrometheusRule alerts on failure rate, readiness, cache sync and JWKS refresh", async () => {
  const docs = await renderChart({ ...REQUIRED, prometheusRule: { enabled: true } });
  const group = (field(findOne(docs, "PrometheusRule"), "spec", "groups") as Manifest[])[0];
  const alerts = (field(group, "rules") as Manifest[]).map((r) => [r.alert, r.expr] as const);
  assert.deepStrictEqual(alerts.map(([a]) => a), [
    "NatsCalloutAuthFailureRateHigh",
    "NatsCalloutNoReadyReplica",
    "NatsCalloutServiceAccountCacheNotSynced",
    "NatsCalloutJwksRefreshFailing",
  ]);
  assert.match(String(alerts[0]?.[1]), /result!="allowed"[\s\S]*> 0\.05$/);
  assert.match(
    String(alerts[1]?.[1]),
    /kube_deployment_status_replicas_ready\{.*deployment="r-nats-k8s-oidc-callout"\}\) < 1/,
  );
  assert.match(String(alerts[2]?.[1]), /sa_cache_synced/);
  assert.match(String(alerts[3]?.[1]), /jwks_refresh_total\{.*result="error"\}/);
  const dashboard = findOne(
    await renderChart({ ...REQUIRED, grafanaDashboard: { enabled: true } }),
    "ConfigMap",
  );
  const json = JSON.parse(String(field(dashboard, "data", "nats-k8s-oidc-callout.json")));
  assert.deepStrictEqual(json.uid, "nats-k8s-oidc-callout");
  assert(json.panels.length >= 8);
});

Deno.test("a missing account or signing key fails in one sentence each, not with the schema's allOf", async () => {
  const noAccount = await helmFailure({ nats: { signingKey: { existingSecret: "s" } } });
  assert.match(noAccount, /nats\.account is required: .*--set nats\.account=APP/);
  const noKey = await helmFailure({ nats: { account: "APP" } });
  assert.match(noKey, /nats\.signingKey is required: .*nk -gen account > signing\.key/);
  const noContent = await helmFailure({ nats: { account: "APP", signingKey: { create: true } } });
  assert.match(
    noContent,
    /nats\.signingKey\.create=true needs the seed in nats\.signingKey\.content/,
  );
  for (const text of [noAccount, noKey, noContent]) {
    assert.doesNotMatch(text, /allOf|minLength/);
    assert.match(text, /1 problem\(s\) with the values/);
  }
  assert.match(
    await helmFailure({ ...REQUIRED, replicaCount: "two" }),
    /at '\/replicaCount': got string, want integer/,
  );
  assert.match(
    await helmFailure({ ...REQUIRED, logLevel: "verbose" }),
    /logLevel "verbose" is not one of debug, info, warn \(warning\), error/,
  );
  assert.match(
    await helmFailure({ ...REQUIRED, jwt: { jwksURL: "https://x" } }),
    /at '\/jwt': additional properties 'jwksURL' not allowed/,
  );
});

Deno.test("without the schema the templates still refuse a missing account", async () => {
  const stderr = await helmFailure(
    { nats: { signingKey: { existingSecret: "s" } } },
    { skipSchemaValidation: true },
  );
  assert.match(stderr, /nats\.account is required/);
});

Deno.test("deploymentEnv resolves literal values and Secret references as the kubelet does", async () => {
  const docs = await renderChart({
    ...REQUIRED,
    nats: { ...REQUIRED.nats, token: "tok", url: "nats://ignored:4222" },
    secretEnv: { NATS_URL: "nats://u:p@nats:4222", EXTRA: 5 },
    extraEnv: [{ name: "LOG_LEVEL", value: "warn" }],
  });
  const env = deploymentEnv(docs);
  assert.deepStrictEqual(env.NATS_TOKEN, "tok");
  assert.deepStrictEqual(env.NATS_URL, "nats://u:p@nats:4222");
  assert.deepStrictEqual(env.EXTRA, "5");
  assert.deepStrictEqual(env.LOG_LEVEL, "warn");
  // The token is not in the pod spec.
  assert(!JSON.stringify(findOne(docs, "Deployment")).includes('tok"'));
});

Deno.test("deploymentFiles and deploymentEnv fail loudly on a Secret that is neither rendered nor given", async () => {
  const docs = await renderChart({ ...REQUIRED, secretEnv: {} });
  let message = "";
  try {
    deploymentFiles(docs);
  } catch (err) {
    message = (err as Error).message;
  }
  assert.match(message, /Secret signing is neither rendered nor given/);
  const withToken = await renderChart({ ...REQUIRED, nats: { ...REQUIRED.nats, token: "t" } });
  assert.deepStrictEqual(deploymentEnv(withToken).NATS_TOKEN, "t");
});

Deno.test("materializePod writes the Secret files under a root and points the env vars there", async () => {
  const root = await Deno.makeTempDir({ prefix: "chart-pod-" });
  try {
    const docs = await renderChart({
      nats: {
        account: "APP",
        url: "nats://127.0.0.1:4222",
        signingKey: { create: true, content: SIGNING },
        tls: { ca: { existingSecret: "ca" } },
      },
    });
    const env = await materializePod(docs, { root, existingSecrets: { ca: { "ca.crt": "CA" } } });
    assert.equal(env.NATS_SIGNING_KEY_FILE, `${root}/etc/nats/signing.key`);
    assert.equal(await Deno.readTextFile(env.NATS_SIGNING_KEY_FILE), SIGNING);
    assert.equal(await Deno.readTextFile(env.NATS_TLS_CA_FILE ?? ""), "CA");
    assert.equal(env.NATS_URL, "nats://127.0.0.1:4222");
    assert.equal(env.K8S_IN_CLUSTER, "true");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("chart/README.md documents every value", async () => {
  const readme = await Deno.readTextFile(`${CHART_DIR}/README.md`);
  const documented = new Set(
    [...readme.matchAll(/^\| `([^`]+)`\s+\|/gm)].map((m) => m[1] as string),
  );
  const values = parseYaml(await Deno.readTextFile(`${CHART_DIR}/values.yaml`)) as Manifest;
  const missing = leafPaths(values).filter((path) =>
    ![...documented].some((d) => path === d || path.startsWith(`${d}.`))
  );
  assert.deepStrictEqual(missing, [], "values without a row in chart/README.md");
});

Deno.test("the compile task allows every env var the chart sets and every path it mounts, and no more", async () => {
  const task = (await taskWords("compile")).join(" ");
  const flag = (name: string): string[] =>
    [...task.matchAll(new RegExp(`--${name}=(\\S+)`, "g"))].flatMap((m) => (m[1] ?? "").split(","));
  const allowEnv = new Set(flag("allow-env"));
  const allowRead = flag("allow-read");
  assert(
    task.includes("--ignore-env"),
    "without --ignore-env a dependency reading any other variable throws",
  );
  for (
    const forbidden of [
      "-A ",
      "--allow-all",
      "--allow-write",
      "--allow-run",
      "--allow-ffi",
      "--allow-sys",
    ]
  ) {
    assert(!task.includes(forbidden), `compile task must not use ${forbidden}`);
  }
  for (const name of [...CONFIG_ENV_VARS, "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"]) {
    assert(allowEnv.has(name), `--allow-env lacks ${name}`);
  }
  const docs = await renderChart({}, { valuesFiles: [`${CHART_DIR}/tests/reference-values.yaml`] });
  const everything = await renderChart({
    ...REQUIRED,
    nats: {
      ...REQUIRED.nats,
      token: "t",
      xkey: { existingSecret: "x" },
      tls: { ca: { existingSecret: "ca" }, client: { existingSecret: "client" } },
    },
    config: {
      watchNamespace: "a",
      annotationPrefix: "p/",
      cacheCleanupInterval: "1m",
      userJwtTtl: "1m",
      queueGroup: "q",
    },
  });
  const secrets = {
    signing: { "signing.key": "S" },
    x: { "xkey.seed": "X" },
    ca: { "ca.crt": "C" },
    client: { "tls.crt": "C", "tls.key": "K" },
  };
  for (const rendered of [docs, everything]) {
    const env = deploymentEnv(rendered, { existingSecrets: secrets });
    for (const [name, value] of Object.entries(env)) {
      assert(allowEnv.has(name), `the chart sets ${name}, which the binary may not read`);
      if (name.endsWith("_FILE")) {
        assert(
          allowRead.some((dir) => value.startsWith(`${dir}/`)),
          `${name}=${value} is not readable`,
        );
      }
    }
    for (const path of deploymentFiles(rendered, { existingSecrets: secrets }).keys()) {
      assert(allowRead.some((dir) => path.startsWith(`${dir}/`)), `${path} is not readable`);
    }
  }
  assert(
    allowRead.some((dir) => "/var/run/secrets/kubernetes.io/serviceaccount/token".startsWith(dir)),
  );
});

Deno.test("the Containerfile ships only the compiled binary on distroless nonroot", async () => {
  const text = await Deno.readTextFile(new URL("../../Containerfile", import.meta.url));
  const stages = text.split(/^FROM /m).slice(1);
  assert.deepStrictEqual(stages.length, 2);
  assert.match(stages[0] ?? "", /RUN deno task compile/);
  const final = stages[1] ?? "";
  assert.match(final, /^gcr\.io\/distroless\/cc-debian12:nonroot\n/);
  assert.deepStrictEqual([...final.matchAll(/^COPY /gm)].length, 1);
  assert.match(final, /^COPY --from=build \/src\/dist\/nats-k8s-oidc-callout /m);
  assert.match(final, /^USER 65532:65532$/m);
});

function leafPaths(value: unknown, prefix = ""): string[] {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return [prefix];
  const entries = Object.entries(value);
  if (entries.length === 0) return [prefix];
  return entries.flatMap(([k, v]) => leafPaths(v, prefix ? `${prefix}.${k}` : k));
}
