/**
 * How to reach the Kubernetes apiserver: its base URL, the headers of one request (a bearer token
 * re-read on every request, since the kubelet rotates it), and the TLS client (cluster CA, client
 * certificate). The ServiceAccount cache sends its list and watch requests through this.
 *
 * In-cluster access (what the Helm chart deploys) is built here from the pod's token and CA files,
 * with no dependency: importing `@kubernetes/client-node` costs about 85 MiB of RSS, more than a
 * cache of 100,000 ServiceAccounts. Kubeconfig files (exec plugins, auth providers, contexts) are
 * client-node's job; it is loaded on demand, only in that mode.
 *
 * @module
 */
import type { KubeConfig } from "@kubernetes/client-node";

/** Where the apiserver is and how to authenticate one request. */
export interface ApiAccess extends Disposable {
  /** Base URL, without a trailing slash (`https://10.96.0.1:443`). */
  readonly server: string;
  /** Headers for one request (`authorization` included when there is a credential). */
  headers(): Promise<Headers>;
  /** TLS client for `https` servers (cluster CA, client certificate); `undefined` for plain http. */
  readonly client: Deno.HttpClient | undefined;
}

/** Options of {@linkcode inClusterAccess}. */
export interface InClusterAccessOptions {
  /** Apiserver base URL, e.g. from `KUBERNETES_SERVICE_HOST`/`_PORT`. */
  server: string;
  /** PEM file of the cluster CA. */
  caFile: string;
  /** The pod's ServiceAccount token; re-read on every request (it rotates). */
  tokenFile: string;
  /** File reader. @default {Deno.readTextFileSync / Deno.readTextFile} */
  readTextFile?: (path: string) => Promise<string>;
  readTextFileSync?: (path: string) => string;
}

/**
 * Access with the pod's own ServiceAccount: bearer token from `tokenFile` (read per request, so a
 * rotated token is used at once) and the cluster CA from `caFile` (read once; an unreadable CA is
 * an error here, at start).
 *
 * @example
 * ```ts ignore
 * import { inClusterAccess } from "./kube_access.ts";
 * using access = inClusterAccess({
 *   server: "https://10.96.0.1:443",
 *   caFile: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
 *   tokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token",
 * });
 * ```
 */
export function inClusterAccess(options: InClusterAccessOptions): ApiAccess {
  const {
    server,
    caFile,
    tokenFile,
    readTextFile = (p: string) => Deno.readTextFile(p),
    readTextFileSync = (p: string) => Deno.readTextFileSync(p),
  } = options;
  const base = server.replace(/\/+$/, "");
  let client: Deno.HttpClient | undefined;
  if (base.startsWith("https:")) {
    let ca: string;
    try {
      ca = readTextFileSync(caFile);
    } catch (err) {
      throw new TypeError(`Cannot read the cluster CA ${caFile}: ${(err as Error).message}`);
    }
    client = Deno.createHttpClient({ caCerts: [ca] });
  }
  return {
    server: base,
    client,
    async headers() {
      const token = (await readTextFile(tokenFile)).trim();
      const headers = new Headers({ accept: "application/json" });
      if (token) headers.set("authorization", `Bearer ${token}`);
      return headers;
    },
    [Symbol.dispose]() {
      client?.close();
    },
  };
}

/**
 * Access described by a client-node `KubeConfig` (current context): credentials are computed per
 * request by client-node (token files, exec plugins, client certificates), the requests themselves
 * go through Deno's `fetch` (see lib/serviceaccounts.ts for why).
 *
 * @example
 * ```ts ignore
 * import { accessFromKubeConfig } from "./kube_access.ts";
 * using access = accessFromKubeConfig(kubeConfig);
 * ```
 */
export function accessFromKubeConfig(kc: KubeConfig): ApiAccess {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new TypeError("Cannot use the kubeconfig: it has no current cluster");
  const server = cluster.server.replace(/\/+$/, "");
  let client: Deno.HttpClient | undefined;
  const credentials = async () => {
    const opts: {
      headers?: Record<string, string>;
      ca?: Uint8Array;
      cert?: Uint8Array;
      key?: Uint8Array;
      auth?: string;
    } = {};
    await kc.applyToHTTPSOptions(opts as never);
    return opts;
  };
  return {
    server,
    get client() {
      return client;
    },
    async headers() {
      const opts = await credentials();
      if (server.startsWith("https:") && !client) {
        if (cluster.skipTLSVerify) {
          throw new TypeError(
            "insecure-skip-tls-verify is not supported for the ServiceAccount watch: configure the cluster CA",
          );
        }
        const text = (b: Uint8Array | undefined) => (b ? new TextDecoder().decode(b) : undefined);
        const ca = text(opts.ca);
        const cert = text(opts.cert);
        const key = text(opts.key);
        client = Deno.createHttpClient({
          ...(ca ? { caCerts: [ca] } : {}),
          ...(cert && key ? { cert, key } : {}),
        });
      }
      const headers = new Headers({ accept: "application/json" });
      for (const [k, v] of Object.entries(opts.headers ?? {})) headers.set(k, String(v));
      if (opts.auth && !headers.has("authorization")) {
        headers.set("authorization", `Basic ${btoa(opts.auth)}`);
      }
      return headers;
    },
    [Symbol.dispose]() {
      client?.close();
    },
  };
}

/**
 * Load a kubeconfig file (or client-node's default lookup: `KUBECONFIG`, `~/.kube/config`) and
 * return its access. `@kubernetes/client-node` is imported here, on demand.
 *
 * @example
 * ```ts ignore
 * import { kubeconfigAccess } from "./kube_access.ts";
 * using access = await kubeconfigAccess("/home/me/.kube/config");
 * ```
 */
export async function kubeconfigAccess(path?: string): Promise<ApiAccess> {
  const { KubeConfig } = await import("@kubernetes/client-node");
  const kc = new KubeConfig();
  if (path !== undefined) kc.loadFromFile(path);
  else kc.loadFromDefault();
  return accessFromKubeConfig(kc);
}
