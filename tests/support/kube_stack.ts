/**
 * The product against the real Kubernetes apiserver: kube-apiserver (tests/support/kube_apiserver.ts),
 * a real nats-server with a config-mode auth callout, and the service started from the environment a
 * deployment would set — in-cluster as the Helm chart deploys it (the chart's own RBAC objects, the
 * service's ServiceAccount token and the cluster CA in files), or from a kubeconfig (CA + bearer
 * token, client certificate, or a plain-http `kubectl proxy`).
 *
 * @module
 */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { loadConfig } from "../../lib/config/config.ts";
import { createLogger } from "../../lib/telemetry/log.ts";
import { type Service, startService } from "../../lib/service/service.ts";
import { field, findAll, type Manifest, renderChart } from "./chart.ts";
import { KubeApiServer, type KubeApiServerOptions, type KubeObject } from "./kube_apiserver.ts";
import { authCalloutConfig, type ConfigUser, type NatsConfig, NatsServer } from "./nats_server.ts";
import { accountKey, KeyDir, type TestKey } from "./nkeys.ts";
import { waitFor } from "./wait.ts";

/** How the service reaches the apiserver. */
export type AccessMode =
  | "in-cluster"
  | "kubeconfig-token"
  | "kubeconfig-client-cert"
  | "kubeconfig-proxy";

/** The namespace the chart installs the service into. */
export const SERVICE_NAMESPACE = "nats-system";

/** Options of {@linkcode KubeStack.start}. */
export interface KubeStackOptions {
  /** How the service reaches the apiserver. @default {"in-cluster"} */
  mode?: AccessMode;
  /** Extra environment for the service (overrides the generated one), or a function of the apiserver giving it. */
  env?: Record<string, string> | ((kube: KubeApiServer) => Record<string, string>);
  /** Options of the apiserver. */
  apiserver?: KubeApiServerOptions;
  /** Wait until the service is ready. @default {true} */
  waitReady?: boolean;
  /** Apply the chart's RBAC (in-cluster and kubeconfig-token modes). @default {true} */
  rbac?: boolean;
  /** nats-server's `authorization.timeout`, in seconds. @default {10} */
  authTimeoutSeconds?: number;
  /** Extra top-level nats-server config (e.g. `ping_interval`). @default {{}} */
  natsExtra?: NatsConfig;
}

/**
 * The chart's RBAC and identity objects for a release `r` in {@linkcode SERVICE_NAMESPACE}: its
 * ServiceAccount, (Cluster)Role and (Cluster)RoleBinding, rendered by `helm template`.
 */
export async function chartRbac(values: object = {}): Promise<KubeObject[]> {
  const docs: Manifest[] = await renderChart({
    nats: { account: "APP", signingKey: { existingSecret: "sk" } },
    ...values,
  }, { namespace: SERVICE_NAMESPACE });
  const kinds = ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"];
  // Hooks (the `helm test` ServiceAccount) are not part of an install.
  const installed = docs.filter((d) =>
    field(d, "metadata", "annotations", "helm.sh/hook") === undefined
  );
  return kinds.flatMap((k) => findAll(installed, k)) as KubeObject[];
}

/** A running stack against the real apiserver; dispose to stop everything. */
export class KubeStack implements AsyncDisposable {
  readonly kube: KubeApiServer;
  readonly nats: NatsServer;
  readonly service: Service;
  readonly account: TestKey;
  readonly systemUser: ConfigUser;
  /** The environment the service was started with. */
  readonly env: Readonly<Record<string, string>>;
  /** Parsed JSON log lines of the service. */
  readonly logs: Record<string, unknown>[];
  readonly #dir: KeyDir;
  readonly #clients: NatsConnection[] = [];
  readonly #cleanup: AsyncDisposable[];

  private constructor(init: {
    kube: KubeApiServer;
    nats: NatsServer;
    service: Service;
    account: TestKey;
    systemUser: ConfigUser;
    env: Record<string, string>;
    logs: Record<string, unknown>[];
    dir: KeyDir;
    cleanup: AsyncDisposable[];
  }) {
    this.kube = init.kube;
    this.nats = init.nats;
    this.service = init.service;
    this.account = init.account;
    this.systemUser = init.systemUser;
    this.env = init.env;
    this.logs = init.logs;
    this.#dir = init.dir;
    this.#cleanup = init.cleanup;
  }

  /** Start the apiserver, nats-server and the service in `mode`. */
  static async start(options: KubeStackOptions = {}): Promise<KubeStack> {
    const mode = options.mode ?? "in-cluster";
    const kube = await KubeApiServer.start(options.apiserver ?? {});
    const cleanup: AsyncDisposable[] = [];
    const dir = await KeyDir.create();
    try {
      await kube.createNamespace(SERVICE_NAMESPACE);
      if (options.rbac !== false) await kube.apply(await chartRbac(), SERVICE_NAMESPACE);
      const account = accountKey();
      const { config, service: serviceUser, system: systemUser } = authCalloutConfig({
        issuer: account.publicKey,
        timeoutSeconds: options.authTimeoutSeconds ?? 10,
        ...(options.natsExtra ? { extra: options.natsExtra } : {}),
      });
      const nats = await NatsServer.start({ config });
      cleanup.push({ [Symbol.asyncDispose]: () => nats.stop() });

      // The service's own token, as the kubelet projects it (API audience, the chart's SA).
      const serviceToken = () =>
        kube.token(SERVICE_NAMESPACE, "r-nats-k8s-oidc-callout", {
          audiences: [],
        });
      let access: Record<string, string>;
      switch (mode) {
        case "in-cluster":
          access = {
            K8S_IN_CLUSTER: "true",
            KUBERNETES_SERVICE_HOST: "127.0.0.1",
            KUBERNETES_SERVICE_PORT: new URL(kube.url).port,
            K8S_CA_FILE: await dir.write("ca.crt", kube.caPem),
            K8S_TOKEN_FILE: await dir.write("token", await serviceToken()),
          };
          break;
        case "kubeconfig-token":
          access = {
            K8S_IN_CLUSTER: "false",
            KUBECONFIG: await kube.writeKubeconfig("service", { token: await serviceToken() }, {
              caInline: true,
            }),
          };
          break;
        case "kubeconfig-client-cert":
          access = {
            K8S_IN_CLUSTER: "false",
            KUBECONFIG: await kube.writeKubeconfig("cert", { clientCert: true }),
          };
          break;
        case "kubeconfig-proxy": {
          const proxy = await kube.proxy();
          cleanup.push(proxy);
          access = {
            K8S_IN_CLUSTER: "false",
            KUBECONFIG: await kube.writeKubeconfig("proxy", { none: true, server: proxy.url }),
          };
          break;
        }
      }
      const env: Record<string, string> = {
        ...access,
        NATS_URL: `nats://${serviceUser.user}:${serviceUser.password}@127.0.0.1:${nats.port}`,
        NATS_ACCOUNT: "APP",
        NATS_SIGNING_KEY_FILE: await dir.write("account.seed", account.seed),
        LOG_LEVEL: "debug",
        ...(typeof options.env === "function" ? options.env(kube) : options.env),
      };
      const logs: Record<string, unknown>[] = [];
      const logger = createLogger({ level: "debug", write: (line) => logs.push(JSON.parse(line)) });
      const service = await startService({ config: loadConfig(env), logger });
      const stack = new KubeStack({
        kube,
        nats,
        service,
        account,
        systemUser,
        env,
        logs,
        dir,
        cleanup,
      });
      if (options.waitReady !== false) {
        try {
          await waitFor(() => service.ready, { timeoutMs: 20_000, what: "service ready" });
        } catch (err) {
          const tail = logs.filter((l) => l.level !== "debug").slice(-10);
          await stack[Symbol.asyncDispose]();
          throw new Error(`${(err as Error).message}; last logs: ${JSON.stringify(tail)}`);
        }
      }
      return stack;
    } catch (err) {
      for (const c of cleanup.reverse()) {
        await Promise.resolve(c[Symbol.asyncDispose]()).catch(() => {});
      }
      await dir[Symbol.asyncDispose]().catch(() => {});
      await kube[Symbol.asyncDispose]();
      throw err;
    }
  }

  /** Create a namespace (if needed) and a ServiceAccount in it; resolves to its uid. */
  async addServiceAccount(
    namespace: string,
    name: string,
    annotations: Record<string, string> = {},
  ): Promise<string> {
    await this.kube.createNamespace(namespace).catch((err) => {
      if (!String(err).includes("409")) throw err;
    });
    return (await this.kube.createServiceAccount(namespace, name, annotations)).uid;
  }

  /** A TokenRequest token with audience `nats` for a ServiceAccount. */
  token(namespace: string, name: string, pod?: { name: string; uid: string }): Promise<string> {
    return this.kube.token(namespace, name, { audiences: ["nats"], ...(pod ? { pod } : {}) });
  }

  /** Connect a NATS client with `token` (no reconnects); closed when the stack stops. */
  async connect(token: string): Promise<NatsConnection> {
    const nc = await connect({
      servers: this.nats.url,
      token,
      timeout: 5000,
      reconnect: false,
    });
    this.#clients.push(nc);
    return nc;
  }

  /** Stop the service, the clients and every server; remove the files. */
  async [Symbol.asyncDispose](): Promise<void> {
    for (const nc of this.#clients) await nc.close().catch(() => {});
    await this.service.close();
    for (const c of this.#cleanup.reverse()) {
      await Promise.resolve(c[Symbol.asyncDispose]()).catch(() => {});
    }
    await this.#dir[Symbol.asyncDispose]();
    await this.kube[Symbol.asyncDispose]();
  }
}
