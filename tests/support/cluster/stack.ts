/**
 * The product as a platform team installs it, on a {@linkcode KubeCluster}: NATS (config mode, 3
 * servers, the callout configured as README's install section configures it) and the service
 * installed by `helm install` of `chart/` from the locally built image, plus workloads that log in
 * with their projected tokens. Keys are generated at test time.
 *
 * @module
 */
import type { KubeCluster, RunResult } from "./cluster.ts";
import { natsBoxImage, natsServerImage, serviceImage } from "./images.ts";
import type { ImageSpec } from "./oci_image.ts";
import { type NatsChartValues, natsManifests } from "./nats.ts";
import { accountKey, curveKey, type TestKey, UNLIMITED_ACCOUNT } from "../nkeys.ts";
import { CHART_DIR } from "../chart.ts";
import { waitFor } from "../wait.ts";

/** The namespace NATS and the callout are installed in (README's). */
export const NATS_NAMESPACE = "nats";
/** The callout's Helm release (README's). */
export const RELEASE = "nats-k8s-oidc-callout";
/** The NATS client Service's address inside the cluster. */
export const NATS_URL = `nats://nats.${NATS_NAMESPACE}.svc.cluster.local:4222`;
/** The callout pods' label selector (the chart's selector labels; not the `helm test` pod). */
export const CALLOUT_SELECTOR =
  `app.kubernetes.io/name=${RELEASE},app.kubernetes.io/instance=${RELEASE}`;

/** Options of {@linkcode installStack}. */
export interface StackOptions {
  /** Give the callout a system-account user, for live revocation. @default {false} */
  revocation?: boolean;
  /** More `--set` values for the callout's `helm install` (`key=value`). */
  set?: readonly string[];
  /** A values file's text for the callout's `helm install`. */
  values?: string;
}

/** What {@linkcode installStack} installed. */
export interface Stack {
  readonly cluster: KubeCluster;
  /** The account key that signs user JWTs (its public key is the callout's issuer). */
  readonly signingKey: TestKey;
  /** The image reference of the service (`localhost/nats-k8s-oidc-callout:<hash>`). */
  readonly image: string;
  /** `helm <args>` inside the cluster's namespace. */
  helm(args: readonly string[], options?: { allowFailure?: boolean }): Promise<RunResult>;
}

/** What the tests read of a Pod, as `kubectl get pods -o json` lists it. */
export interface PodSummary {
  readonly metadata: {
    readonly name: string;
    readonly labels?: Record<string, string>;
    readonly deletionTimestamp?: string;
  };
  readonly status: { readonly phase: string; readonly podIP?: string };
  readonly spec: {
    readonly containers: {
      readonly ports?: { readonly name: string; readonly containerPort: number }[];
    }[];
  };
}

/** The Pods matching the label `selector` in `namespace` (the NATS namespace by default). */
export async function podsMatching(
  cluster: KubeCluster,
  selector: string,
  namespace = NATS_NAMESPACE,
): Promise<PodSummary[]> {
  const out = await cluster.kubectl(["-n", namespace, "get", "pods", "-l", selector, "-o", "json"]);
  return (JSON.parse(out) as { items: PodSummary[] }).items;
}

/** The callout's pods that run and are not being deleted. */
export async function calloutPods(cluster: KubeCluster): Promise<string[]> {
  return (await podsMatching(cluster, CALLOUT_SELECTOR))
    .filter((p) => p.status.phase === "Running" && !p.metadata.deletionTimestamp)
    .map((p) => p.metadata.name);
}

/**
 * Wait until each of `resources` (in the NATS namespace, e.g. `deploy/nats-callout`) has rolled
 * out, 120 s at most each; `kubectl rollout status` fails the test otherwise.
 */
export async function waitRollout(cluster: KubeCluster, ...resources: string[]): Promise<void> {
  for (const resource of resources) {
    await cluster.kubectl(["-n", NATS_NAMESPACE, "rollout", "status", resource, "--timeout=120s"]);
  }
}

/** The images a stack needs, for {@linkcode KubeCluster.start}. */
export async function stackImages(): Promise<ImageSpec[]> {
  return [await natsServerImage(), await natsBoxImage(), await serviceImage()];
}

/** The NATS chart values README writes (config mode), with these keys. */
export function readmeNatsValues(
  issuer: string,
  xkey: string,
  revocation: boolean,
): NatsChartValues {
  return {
    replicas: 3,
    env: {
      CALLOUT_PASSWORD: {
        valueFrom: { secretKeyRef: { name: "nats-callout-user", key: "password" } },
      },
      ...(revocation
        ? {
          SYSTEM_PASSWORD: {
            valueFrom: { secretKeyRef: { name: "nats-callout-user", key: "system-password" } },
          },
        }
        : {}),
    },
    merge: {
      system_account: "SYS",
      accounts: {
        AUTH: { users: [{ user: "callout", password: "<< $CALLOUT_PASSWORD >>" }] },
        APP: {},
        SYS: revocation
          ? { users: [{ user: "callout-system", password: "<< $SYSTEM_PASSWORD >>" }] }
          : {},
      },
      authorization: {
        auth_callout: {
          issuer,
          xkey,
          account: "AUTH",
          auth_users: revocation ? ["callout", "callout-system"] : ["callout"],
        },
      },
    },
  };
}

function password(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(18)), (b) => b.toString(16)).join("");
}

/**
 * Install NATS and the callout on `cluster` (whose images include {@linkcode stackImages}) and
 * wait until both are ready.
 */
export async function installStack(
  cluster: KubeCluster,
  options: StackOptions = {},
): Promise<Stack> {
  const signingKey = accountKey();
  const xkey = curveKey();
  const calloutPassword = password();
  const systemPassword = password();
  await cluster.kubectl(["create", "namespace", NATS_NAMESPACE]);
  const keys = await Deno.makeTempDir({ prefix: "stack-keys-" });
  try {
    await Deno.writeTextFile(`${keys}/signing.key`, signingKey.seed);
    await Deno.writeTextFile(`${keys}/xkey.seed`, xkey.seed);
    await cluster.kubectl([
      "-n",
      NATS_NAMESPACE,
      "create",
      "secret",
      "generic",
      "nats-callout-keys",
      `--from-file=${keys}/signing.key`,
      `--from-file=${keys}/xkey.seed`,
    ]);
  } finally {
    await Deno.remove(keys, { recursive: true });
  }
  await cluster.kubectl([
    "-n",
    NATS_NAMESPACE,
    "create",
    "secret",
    "generic",
    "nats-callout-user",
    `--from-literal=password=${calloutPassword}`,
    `--from-literal=system-password=${systemPassword}`,
  ]);
  const revocation = options.revocation ?? false;
  await cluster.apply(natsManifests({
    namespace: NATS_NAMESPACE,
    values: readmeNatsValues(signingKey.publicKey, xkey.publicKey, revocation),
  }));
  const image = (await serviceImage()).ref;
  const helm = (args: readonly string[], opts: { allowFailure?: boolean } = {}) =>
    cluster.run("helm", args, opts);
  const valuesFile = options.values === undefined ? undefined : await Deno.makeTempFile();
  if (valuesFile) await Deno.writeTextFile(valuesFile, options.values!);
  try {
    await helm([
      "install",
      RELEASE,
      CHART_DIR,
      "-n",
      NATS_NAMESPACE,
      "--set",
      "nats.account=APP",
      "--set",
      "nats.signingKey.existingSecret=nats-callout-keys",
      "--set",
      "nats.xkey.existingSecret=nats-callout-keys",
      "--set",
      `secretEnv.NATS_URL=nats://callout:${calloutPassword}@nats.${NATS_NAMESPACE}.svc:4222`,
      ...(revocation
        ? [
          "--set",
          "nats.system.user=callout-system",
          "--set",
          `nats.system.password=${systemPassword}`,
        ]
        : []),
      ...localImageValues(image),
      ...(options.set ?? []).flatMap((s) => ["--set", s]),
      ...(valuesFile ? ["-f", valuesFile] : []),
    ]);
  } finally {
    if (valuesFile) await Deno.remove(valuesFile);
  }
  await waitRollout(cluster, "statefulset/nats", `deploy/${RELEASE}`);
  return { cluster, signingKey, image, helm };
}

/** `--set` arguments that point the chart at the local service and `nats` CLI images. */
export function localImageValues(image: string): string[] {
  const [repository, tag] = image.split(":") as [string, string];
  return [
    "--set",
    `image.repository=${repository}`,
    "--set",
    `image.tag=${tag}`,
    "--set",
    "image.pullPolicy=Never",
    "--set",
    "test.image.repository=localhost/nats-box",
    "--set",
    "test.image.tag=local",
    "--set",
    "test.image.pullPolicy=Never",
  ];
}

/** `nats://<ClusterIP>:4222` of the NATS Service: how host tools inside the namespace reach it. */
export async function natsServiceUrl(cluster: KubeCluster): Promise<string> {
  const ip = await cluster.kubectl([
    "-n",
    NATS_NAMESPACE,
    "get",
    "service",
    "nats",
    "-o",
    "jsonpath={.spec.clusterIP}",
  ]);
  return `nats://${ip}:4222`;
}

/** Options of {@linkcode workload}. */
export interface WorkloadOptions {
  readonly namespace: string;
  readonly name: string;
  /** The container's shell script (busybox `sh` and the `nats` CLI; the token at `$TOKEN_FILE`). */
  readonly script?: string;
  /** Run this image's own entrypoint instead of a script in nats-box. */
  readonly image?: string;
  /** The projected token's audience. @default {"nats"} */
  readonly audience?: string;
  /** The projected token's lifetime. @default {600} */
  readonly expirationSeconds?: number;
  /** Pods of the Deployment. @default {1} */
  readonly replicas?: number;
  /**
   * Operator mode: the AUTH account's sentinel creds, put in a Secret of the namespace and mounted
   * at `$SENTINEL_CREDS` for the script to present with its token.
   */
  readonly sentinelCreds?: string;
}

/**
 * A Namespace, a ServiceAccount and a Deployment whose pods get a projected ServiceAccount token
 * (audience `nats`) at `/var/run/secrets/nats/token` and run `script` with `nats` on the PATH and
 * `NATS_URL` set to the NATS Service — a workload as docs/client-usage.md shows one.
 */
export function workload(options: WorkloadOptions): string {
  const labels = { app: options.name };
  const sentinel = options.sentinelCreds;
  return [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: options.namespace } },
    {
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { name: options.name, namespace: options.namespace },
      automountServiceAccountToken: false,
    },
    ...(sentinel === undefined ? [] : [{
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: `${options.name}-sentinel`, namespace: options.namespace },
      stringData: { "sentinel.creds": sentinel },
    }]),
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: options.name, namespace: options.namespace },
      spec: {
        replicas: options.replicas ?? 1,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: options.name,
            automountServiceAccountToken: false,
            terminationGracePeriodSeconds: 1,
            securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532 },
            containers: [{
              name: "app",
              image: options.image ?? "localhost/nats-box:local",
              imagePullPolicy: "Never",
              ...(options.image === undefined
                ? { command: ["sh", "-c", options.script ?? ""] }
                : {}),
              env: [
                { name: "NATS_URL", value: NATS_URL },
                { name: "TOKEN_FILE", value: "/var/run/secrets/nats/token" },
                { name: "NATS_TOKEN_FILE", value: "/var/run/secrets/nats/token" },
                { name: "HOME", value: "/tmp" },
                { name: "XDG_CONFIG_HOME", value: "/tmp/.config" },
                ...(sentinel === undefined
                  ? []
                  : [{ name: "SENTINEL_CREDS", value: "/etc/nats-sentinel/sentinel.creds" }]),
              ],
              volumeMounts: [
                { name: "nats-token", mountPath: "/var/run/secrets/nats", readOnly: true },
                { name: "tmp", mountPath: "/tmp" },
                ...(sentinel === undefined
                  ? []
                  : [{ name: "sentinel", mountPath: "/etc/nats-sentinel", readOnly: true }]),
              ],
            }],
            volumes: [
              {
                name: "nats-token",
                projected: {
                  sources: [{
                    serviceAccountToken: {
                      path: "token",
                      audience: options.audience ?? "nats",
                      expirationSeconds: options.expirationSeconds ?? 600,
                    },
                  }],
                },
              },
              { name: "tmp", emptyDir: {} },
              ...(sentinel === undefined
                ? []
                : [{ name: "sentinel", secret: { secretName: `${options.name}-sentinel` } }]),
            ],
          },
        },
      },
    },
  ].map((o) => JSON.stringify(o)).join("\n---\n");
}

/** The names of the Running pods of a Deployment's label `app=<name>`. */
export async function podsOf(
  cluster: KubeCluster,
  namespace: string,
  app: string,
): Promise<string[]> {
  return (await podsMatching(cluster, `app=${app}`, namespace))
    .filter((p) => p.status.phase === "Running")
    .map((p) => p.metadata.name);
}

/** Wait until a Deployment is rolled out and return its pods. */
export async function rolledOut(
  cluster: KubeCluster,
  namespace: string,
  name: string,
): Promise<string[]> {
  await cluster.kubectl(["-n", namespace, "rollout", "status", `deploy/${name}`, "--timeout=90s"]);
  return await waitFor(async () => {
    const pods = await podsOf(cluster, namespace, name);
    return pods.length > 0 ? pods : undefined;
  }, { timeoutMs: 30_000, what: `pods of ${namespace}/${name}` });
}

/** What {@linkcode installOperatorStack} installed. */
export interface OperatorModeStack {
  /** Public key of the account logins are placed in (`NATS_ACCOUNT`). */
  readonly appAccount: string;
  /** The AUTH account's deny-all bearer user, as a creds file's text: every client presents it. */
  readonly sentinelCreds: string;
  helm(args: readonly string[], options?: { allowFailure?: boolean }): Promise<RunResult>;
}

/**
 * NATS in operator mode (3 servers, the accounts preloaded into a memory resolver: SYS, AUTH with
 * the callout's `authorization` block and xkey, APP with a signing key), and the callout installed
 * with the values docs/operator-mode.md gives (`nats.account` = APP's public key, APP's signing key,
 * the xkey, the callout user's creds, `test.sentinelCredentials`). Keys are generated here, as `nsc`
 * and `nk` would make them.
 */
export async function installOperatorStack(cluster: KubeCluster): Promise<OperatorModeStack> {
  const { encodeAccount, encodeOperator, encodeUser, fmtCreds } = await import("@nats-io/jwt");
  const { createAccount, createOperator, createUser } = await import("@nats-io/nkeys");
  const operator = createOperator();
  const sys = createAccount();
  const auth = createAccount();
  const app = createAccount();
  const appSigningKey = accountKey();
  const xkey = curveKey();
  const calloutUser = createUser();
  const sentinelUser = createUser();
  const limits = UNLIMITED_ACCOUNT;
  const signed = { signer: operator };
  const accounts = {
    [sys.getPublicKey()]: await encodeAccount("SYS", sys, { limits }, signed),
    [auth.getPublicKey()]: await encodeAccount("AUTH", auth, {
      limits,
      authorization: {
        auth_users: [calloutUser.getPublicKey()],
        allowed_accounts: [app.getPublicKey()],
        xkey: xkey.publicKey,
      },
    }, signed),
    [app.getPublicKey()]: await encodeAccount("APP", app, {
      limits,
      signing_keys: [appSigningKey.publicKey],
    }, signed),
  };
  const userCreds = fmtCreds(
    await encodeUser("callout", calloutUser, auth, {
      pub: { allow: ["$SYS._INBOX.>"] },
      sub: { allow: ["$SYS.REQ.USER.AUTH"] },
    }),
    calloutUser,
  );
  const sentinelCreds = new TextDecoder().decode(fmtCreds(
    await encodeUser("sentinel", sentinelUser, auth, {
      bearer_token: true,
      pub: { deny: [">"] },
      sub: { deny: [">"] },
    }),
    sentinelUser,
  ));
  await cluster.kubectl(["create", "namespace", NATS_NAMESPACE]);
  const files = await Deno.makeTempDir({ prefix: "operator-keys-" });
  try {
    await Deno.writeTextFile(`${files}/signing.key`, appSigningKey.seed);
    await Deno.writeTextFile(`${files}/xkey.seed`, xkey.seed);
    await Deno.writeFile(`${files}/user.creds`, userCreds);
    await Deno.writeTextFile(`${files}/sentinel.creds`, sentinelCreds);
    const secret = (name: string, ...from: string[]) =>
      cluster.kubectl([
        "-n",
        NATS_NAMESPACE,
        "create",
        "secret",
        "generic",
        name,
        ...from.map((f) => `--from-file=${files}/${f}`),
      ]);
    await secret("nats-callout-keys", "signing.key", "xkey.seed");
    await secret("nats-callout-creds", "user.creds");
    await secret("nats-callout-sentinel", "sentinel.creds");
  } finally {
    await Deno.remove(files, { recursive: true });
  }
  await cluster.apply(natsManifests({
    namespace: NATS_NAMESPACE,
    values: {
      replicas: 3,
      env: {},
      merge: {
        operator: await encodeOperator("OP", operator, { system_account: sys.getPublicKey() }),
        system_account: sys.getPublicKey(),
        resolver: "MEMORY",
        resolver_preload: accounts,
      },
    },
  }));
  const image = (await serviceImage()).ref;
  const helm = (args: readonly string[], opts: { allowFailure?: boolean } = {}) =>
    cluster.run("helm", args, opts);
  await helm([
    "install",
    RELEASE,
    CHART_DIR,
    "-n",
    NATS_NAMESPACE,
    ...localImageValues(image),
    "--set",
    `nats.account=${app.getPublicKey()}`,
    "--set",
    "nats.signingKey.existingSecret=nats-callout-keys",
    "--set",
    "nats.xkey.existingSecret=nats-callout-keys",
    "--set",
    "nats.userCredentials.existingSecret=nats-callout-creds",
    "--set",
    "test.sentinelCredentials.existingSecret=nats-callout-sentinel",
    "--set",
    `secretEnv.NATS_URL=nats://nats.${NATS_NAMESPACE}.svc:4222`,
  ]);
  await waitRollout(cluster, "statefulset/nats", `deploy/${RELEASE}`);
  return { appAccount: app.getPublicKey(), sentinelCreds, helm };
}
