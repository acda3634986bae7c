/**
 * How to reach the Kubernetes apiserver: its base URL, the headers of one request (a bearer token
 * re-read on every request, since the kubelet rotates it), and the TLS client (cluster CA, client
 * certificate). Every request to the apiserver goes through one {@linkcode ApiAccess}: the
 * ServiceAccount list and watch, the JWKS (`/openid/v1/jwks`) and issuer discovery
 * (`/.well-known/openid-configuration`) alike, in-cluster and from a kubeconfig. A real
 * kube-apiserver answers the last two with 403 to anonymous requests, so they need the same
 * credentials and CA as the list.
 *
 * In-cluster access (what the Helm chart deploys) is built from the pod's token and CA files, and a
 * kubeconfig's static credentials (CA, client certificate, token, token file, basic auth) by our
 * own reader (lib/kubernetes/kubeconfig.ts), with no dependency: importing `@kubernetes/client-node` costs about
 * 85 MiB of RSS, more than a cache of 100,000 ServiceAccounts, and it refuses `http://` servers. Only
 * a kubeconfig whose user needs a credential plugin (`exec`, `auth-provider`) loads client-node, on
 * demand.
 *
 * @module
 */
import type { KubeConfig } from "@kubernetes/client-node";
import { CredentialsError } from "./apiserver_errors.ts";
import {
  KubeconfigError,
  kubeconfigPaths,
  type KubeconfigSelection,
  selectKubeconfig,
} from "./kubeconfig.ts";

/** Where the apiserver is and how to authenticate one request. */
export interface ApiAccess extends Disposable {
  /** Base URL, without a trailing slash (`https://10.96.0.1:443`). */
  readonly server: string;
  /** How it was configured, for the start-up log (`in-cluster`, `kubeconfig context "prod"`). */
  readonly via?: string;
  /** Headers for one request (`authorization` included when there is a credential). */
  headers(): Promise<Headers>;
  /** TLS client for `https` servers (cluster CA, client certificate); `undefined` for plain http. */
  readonly client: Deno.HttpClient | undefined;
}

/**
 * The Kubernetes service names by which a pod reaches its apiserver (`kubernetes.default.svc` is
 * the Go reference's JWKS default), with the default cluster domain only: a name under any other
 * suffix could be a public domain, and a pod's token must not go there.
 */
const IN_CLUSTER_HOSTS = new Set([
  "kubernetes",
  "kubernetes.default",
  "kubernetes.default.svc",
  "kubernetes.default.svc.cluster.local",
]);

/**
 * Whether `url` is on the apiserver that `access` reaches, so the apiserver's credentials and CA may
 * be sent to it: the same origin, or (in-cluster) one of the `kubernetes.default.svc` service names,
 * whose certificate the same cluster CA signs. A JWKS URL anywhere else is fetched with the system
 * trust store and no credentials: a pod's token must never leave for a third party.
 *
 * @example
 * ```ts
 * import { isApiServerUrl } from "./access.ts";
 * const access = { server: "https://10.96.0.1:443" };
 * console.assert(isApiServerUrl("https://10.96.0.1/openid/v1/jwks", access, false));
 * console.assert(isApiServerUrl("https://kubernetes.default.svc/openid/v1/jwks", access, true));
 * console.assert(!isApiServerUrl("https://keys.example.com/jwks", access, true));
 * ```
 */
export function isApiServerUrl(
  url: string,
  access: Pick<ApiAccess, "server">,
  inCluster: boolean,
): boolean {
  let target: URL;
  let server: URL;
  try {
    target = new URL(url);
    server = new URL(access.server);
  } catch {
    return false;
  }
  if (target.origin === server.origin) return true;
  return inCluster && target.protocol === "https:" && IN_CLUSTER_HOSTS.has(target.hostname);
}

/** Options of {@linkcode inClusterAccess}. */
export interface InClusterAccessOptions {
  /** Apiserver base URL, e.g. from `KUBERNETES_SERVICE_HOST`/`_PORT`. */
  server: string;
  /** PEM file of the cluster CA. */
  caFile: string;
  /** The pod's ServiceAccount token; re-read on every request (it rotates). */
  tokenFile: string;
  /** File reader. @default {Deno.readTextFile} */
  readTextFile?: (path: string) => Promise<string>;
  /** Synchronous reader, for the CA file read once here. @default {Deno.readTextFileSync} */
  readTextFileSync?: (path: string) => string;
}

/**
 * Access with the pod's own ServiceAccount: bearer token from `tokenFile` (read per request, so a
 * rotated token is used at once) and the cluster CA from `caFile` (read once; an unreadable CA is
 * an error here, at start).
 *
 * @example
 * ```ts ignore
 * import { inClusterAccess } from "./access.ts";
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
    via: "in-cluster",
    client,
    async headers() {
      let token: string;
      try {
        token = (await readTextFile(tokenFile)).trim();
      } catch (err) {
        throw new CredentialsError(
          `cannot read the ServiceAccount token file ${tokenFile}: ${(err as Error).message}`,
        );
      }
      if (!token) throw new CredentialsError(`the ServiceAccount token file ${tokenFile} is empty`);
      return new Headers({ accept: "application/json", authorization: `Bearer ${token}` });
    },
    [Symbol.dispose]() {
      client?.close();
    },
  };
}

/**
 * Access described by a client-node `KubeConfig` (current context): credentials are computed per
 * request by client-node (token files, exec plugins, client certificates), the requests themselves
 * go through Deno's `fetch` (see lib/cache/serviceaccounts.ts for why).
 *
 * @example
 * ```ts ignore
 * import { accessFromKubeConfig } from "./access.ts";
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
    via: `kubeconfig context "${kc.getCurrentContext()}" (credential plugin)`,
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

/** Options of {@linkcode kubeconfigAccess}. */
export interface KubeconfigAccessOptions {
  /** File reader. @default {Deno.readTextFile} */
  readTextFile?: (path: string) => Promise<string>;
}

/**
 * Access from kubeconfig files (`KUBECONFIG`'s list, or `~/.kube/config`): the current context's
 * cluster and user. Static credentials are read here (CA and client certificate once; `tokenFile`
 * on every request, as client-go re-reads it); `http://` servers such as `kubectl proxy` work as
 * kubectl accepts them. A user with an `exec` or `auth-provider` plugin is delegated to
 * `@kubernetes/client-node`, imported on demand.
 *
 * @throws {KubeconfigError} for an unusable kubeconfig (the message names the file and field), and
 * for settings Deno's HTTP client cannot honour (`insecure-skip-tls-verify`, `tls-server-name`).
 *
 * @example
 * ```ts ignore
 * import { kubeconfigAccess } from "./access.ts";
 * using access = await kubeconfigAccess(["/home/me/.kube/config"]);
 * ```
 */
export async function kubeconfigAccess(
  paths: readonly string[],
  options: KubeconfigAccessOptions = {},
): Promise<ApiAccess> {
  const read = options.readTextFile ?? ((p: string) => Deno.readTextFile(p));
  const files = [];
  for (const path of paths) {
    try {
      files.push({ path, text: await read(path) });
    } catch (err) {
      // kubectl skips listed files that do not exist; a file that exists but cannot be read is an error.
      if (err instanceof Deno.errors.NotFound && paths.length > 1) continue;
      throw new KubeconfigError(`cannot read kubeconfig ${path}: ${(err as Error).message}`);
    }
  }
  const selection = selectKubeconfig(files);
  if (selection.plugin === "exec" && selection.execCommand !== undefined) {
    const { state } = await Deno.permissions.query({ name: "run", command: selection.execCommand });
    if (state !== "granted") {
      throw new KubeconfigError(
        `context "${selection.context}": the user's credentials come from the exec plugin ` +
          `"${selection.execCommand}", which this process may not run; start it with ` +
          `--allow-run=${selection.execCommand} (the start task and the image do not grant it), ` +
          "or use a kubeconfig with a token, token file or client certificate",
      );
    }
  }
  if (selection.plugin) {
    const { KubeConfig } = await import("@kubernetes/client-node");
    const kc = new KubeConfig();
    files.forEach(({ path }, i) => {
      if (i === 0) return kc.loadFromFile(path);
      const next = new KubeConfig();
      next.loadFromFile(path);
      kc.mergeConfig(next, true);
    });
    return accessFromKubeConfig(kc);
  }
  return await accessFromSelection(selection, read);
}

async function pemOf(
  ref: { readonly pem: string } | { readonly file: string } | undefined,
  what: string,
  read: (path: string) => Promise<string>,
): Promise<string | undefined> {
  if (!ref) return undefined;
  if ("pem" in ref) return ref.pem;
  try {
    return await read(ref.file);
  } catch (err) {
    throw new KubeconfigError(
      `cannot read the kubeconfig's ${what} ${ref.file}: ${(err as Error).message}`,
    );
  }
}

async function accessFromSelection(
  sel: KubeconfigSelection,
  read: (path: string) => Promise<string>,
): Promise<ApiAccess> {
  const https = sel.server.startsWith("https:");
  if (https && sel.insecureSkipTlsVerify) {
    throw new KubeconfigError(
      `context "${sel.context}": insecure-skip-tls-verify is not supported; set certificate-authority(-data) to the cluster CA`,
    );
  }
  if (sel.tlsServerName) {
    throw new KubeconfigError(
      `context "${sel.context}": tls-server-name is not supported; use a server URL whose host the certificate names`,
    );
  }
  const ca = await pemOf(sel.ca, "certificate-authority", read);
  const cert = await pemOf(sel.clientCert, "client-certificate", read);
  const key = await pemOf(sel.clientKey, "client-key", read);
  const proxy = sel.proxyUrl ? { proxy: { url: sel.proxyUrl } } : {};
  const client = https || sel.proxyUrl
    ? Deno.createHttpClient({
      ...(ca ? { caCerts: [ca] } : {}),
      ...(cert && key ? { cert, key } : {}),
      ...proxy,
    })
    : undefined;
  const basic = sel.basic ? `Basic ${btoa(`${sel.basic.username}:${sel.basic.password}`)}` : "";
  return {
    server: sel.server,
    via: `kubeconfig context "${sel.context}"`,
    client,
    async headers() {
      const headers = new Headers({ accept: "application/json" });
      let token = sel.token;
      if (sel.tokenFile) {
        try {
          token = (await read(sel.tokenFile)).trim();
        } catch (err) {
          throw new KubeconfigError(
            `cannot read the kubeconfig's tokenFile ${sel.tokenFile}: ${(err as Error).message}`,
          );
        }
      }
      if (token) headers.set("authorization", `Bearer ${token}`);
      else if (basic) headers.set("authorization", basic);
      if (sel.impersonate?.user) headers.set("impersonate-user", sel.impersonate.user);
      if (sel.impersonate?.uid) headers.set("impersonate-uid", sel.impersonate.uid);
      for (const g of sel.impersonate?.groups ?? []) headers.append("impersonate-group", g);
      return headers;
    },
    [Symbol.dispose]() {
      client?.close();
    },
  };
}

export { KubeconfigError, kubeconfigPaths };
