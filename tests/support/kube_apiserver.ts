/**
 * The real Kubernetes apiserver for tests: kube-apiserver v1.37.2 with an embedded etcd v3.7.0, one
 * process on loopback, built from Go modules by `tools/build.sh kubernetes` (cached outside the
 * repository; the first build takes ~10 minutes). Like nats.js's server launcher: free ports,
 * certificates and keys generated at start, readiness polled against early exit, always stopped.
 *
 * There is no controller-manager, scheduler or kubelet: namespaces, ServiceAccounts and Pods are
 * objects the test creates; nothing runs them. Tokens come from the TokenRequest API, exactly as
 * the kubelet gets them for a projected volume.
 *
 * @example
 * ```ts ignore
 * await using kube = await KubeApiServer.start();
 * await kube.createNamespace("team-a");
 * const { uid } = await kube.createServiceAccount("team-a", "worker");
 * const token = await kube.token("team-a", "worker", { audiences: ["nats"] });
 * ```
 *
 * @module
 */
import { createTestCertificates, issueCertificate } from "./test_apiserver.ts";
import { freePort } from "./http_probe.ts";
import { waitFor } from "./wait.ts";

/** Options of {@linkcode KubeApiServer.start}. */
export interface KubeApiServerOptions {
  /**
   * Extra `--service-account-issuer` values after the first (`https://127.0.0.1:<port>`): the
   * apiserver accepts tokens of every listed issuer and mints with the first.
   */
  extraIssuers?: readonly string[];
  /** `--api-audiences`. @default {the apiserver's default: its issuer} */
  apiAudiences?: readonly string[];
}

/** Options of {@linkcode KubeApiServer.token}. */
export interface TokenRequestOptions {
  /** `spec.audiences`. @default {["nats"]} */
  audiences?: readonly string[];
  /** `spec.expirationSeconds` (the apiserver's minimum is 600). @default {3600} */
  expirationSeconds?: number;
  /** Bind the token to this Pod (`boundObjectRef`): the token then carries `kubernetes.io.pod`. */
  pod?: { name: string; uid: string };
}

/** A Kubernetes object as JSON. */
export type KubeObject = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; uid?: string; [k: string]: unknown };
};

/** An apiserver answer other than 2xx. */
export class KubeRequestError extends Error {
  /** HTTP status. */
  readonly status: number;
  /** Create the error. */
  constructor(status: number, message: string) {
    super(message);
    this.name = "KubeRequestError";
    this.status = status;
  }
}

const ADMIN_TOKEN_BYTES = 24;

async function run(cmd: string, args: string[], what: string): Promise<string> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  } catch (err) {
    throw new Error(`${cmd} not found: it is needed to ${what}`, { cause: err });
  }
  if (!out.success) {
    throw new Error(`${what} failed: ${new TextDecoder().decode(out.stderr).slice(-2000)}`);
  }
  return new TextDecoder().decode(out.stdout).trim();
}

/**
 * The path of the kube-apiserver binary, building it if needed (`tools/build.sh kubernetes`: the
 * multi-call Kubernetes binary, the apiserver by default; `KUBE_APISERVER_BIN` overrides).
 */
export async function kubeApiServerBinary(): Promise<string> {
  const fromEnv = Deno.env.get("KUBE_APISERVER_BIN");
  if (fromEnv) return fromEnv;
  const script = new URL("../../tools/build.sh", import.meta.url).pathname;
  return await run(
    "bash",
    [script, "kubernetes"],
    "build the real Kubernetes (tools/build.sh kubernetes)",
  );
}

function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(ADMIN_TOKEN_BYTES));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Key files of one ServiceAccount signing key generation. */
interface SaKey {
  readonly keyFile: string;
  readonly pubFile: string;
}

/** A running real kube-apiserver; dispose to stop it and delete its files. */
export class KubeApiServer implements AsyncDisposable {
  /** `https://127.0.0.1:<port>`. */
  readonly url: string;
  /** The first `--service-account-issuer` (= {@linkcode url}). */
  readonly issuer: string;
  /** Every accepted issuer. */
  readonly issuers: readonly string[];
  /** The cluster CA (PEM file), which signs the serving certificate. */
  readonly caFile: string;
  /** The cluster CA as PEM text. */
  readonly caPem: string;
  /** A working directory for the test's own files (removed at dispose). */
  readonly dir: string;
  /** Bearer token of a `system:masters` user (never give it to the service under test). */
  readonly adminToken: string;
  readonly #bin: string;
  readonly #ports: { secure: number; etcd: number; etcdPeer: number };
  readonly #options: KubeApiServerOptions;
  readonly #client: Deno.HttpClient;
  #saKeys: SaKey[];
  #child: Deno.ChildProcess | undefined;
  #exited: Promise<Deno.CommandStatus> | undefined;

  private constructor(init: {
    bin: string;
    dir: string;
    ports: { secure: number; etcd: number; etcdPeer: number };
    options: KubeApiServerOptions;
    caFile: string;
    caPem: string;
    adminToken: string;
    saKeys: SaKey[];
  }) {
    this.#bin = init.bin;
    this.dir = init.dir;
    this.#ports = init.ports;
    this.#options = init.options;
    this.url = `https://127.0.0.1:${init.ports.secure}`;
    this.issuer = this.url;
    this.issuers = [this.url, ...(init.options.extraIssuers ?? [])];
    this.caFile = init.caFile;
    this.caPem = init.caPem;
    this.adminToken = init.adminToken;
    this.#saKeys = init.saKeys;
    this.#client = Deno.createHttpClient({ caCerts: [init.caPem] });
  }

  /** Build (if needed) and start a kube-apiserver; resolves once `/readyz` answers 200. */
  static async start(options: KubeApiServerOptions = {}): Promise<KubeApiServer> {
    const bin = await kubeApiServerBinary();
    const dir = await Deno.makeTempDir({ prefix: "kube-apiserver-" });
    const certs = await createTestCertificates(dir);
    const adminToken = randomToken();
    await Deno.writeTextFile(
      `${dir}/tokens.csv`,
      `${adminToken},admin,admin-uid,"system:masters"\n`,
    );
    const kube = new KubeApiServer({
      bin,
      dir,
      ports: { secure: freePort(), etcd: freePort(), etcdPeer: freePort() },
      options,
      caFile: certs.caFile,
      caPem: await Deno.readTextFile(certs.caFile),
      adminToken,
      saKeys: [await newSaKey(dir, 0)],
    });
    try {
      await kube.#spawn(certs);
    } catch (err) {
      await kube[Symbol.asyncDispose]();
      throw err;
    }
    return kube;
  }

  async #spawn(certs?: { certFile: string; keyFile: string }): Promise<void> {
    const tlsCert = certs?.certFile ?? `${this.dir}/tls.crt`;
    const tlsKey = certs?.keyFile ?? `${this.dir}/tls.key`;
    const signing = this.#saKeys[this.#saKeys.length - 1]!;
    const args = [
      `--embedded-etcd-dir=${this.dir}/etcd`,
      `--embedded-etcd-port=${this.#ports.etcd}`,
      `--embedded-etcd-peer-port=${this.#ports.etcdPeer}`,
      "--",
      `--etcd-servers=http://127.0.0.1:${this.#ports.etcd}`,
      "--bind-address=127.0.0.1",
      "--advertise-address=127.0.0.1",
      `--secure-port=${this.#ports.secure}`,
      `--cert-dir=${this.dir}/certs`,
      `--tls-cert-file=${tlsCert}`,
      `--tls-private-key-file=${tlsKey}`,
      `--client-ca-file=${this.caFile}`,
      ...this.issuers.map((i) => `--service-account-issuer=${i}`),
      ...this.#saKeys.map((k) => `--service-account-key-file=${k.pubFile}`),
      `--service-account-signing-key-file=${signing.keyFile}`,
      ...(this.#options.apiAudiences
        ? [`--api-audiences=${this.#options.apiAudiences.join(",")}`]
        : []),
      `--token-auth-file=${this.dir}/tokens.csv`,
      "--authorization-mode=RBAC",
      "--service-cluster-ip-range=10.0.0.0/24",
      "--endpoint-reconciler-type=none",
      "--enable-priority-and-fairness=false",
      "--profiling=false",
      "--v=0",
    ];
    const log = await Deno.open(`${this.dir}/kube-apiserver.log`, {
      append: true,
      create: true,
    });
    this.#child = new Deno.Command(this.#bin, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // Both streams to the log file (kept for the failure message), never to the test's output.
    const sink = log.writable.getWriter();
    const pump = async (s: ReadableStream<Uint8Array>) => {
      for await (const chunk of s) await sink.write(chunk).catch(() => {});
    };
    const pumps = Promise.all([pump(this.#child.stdout), pump(this.#child.stderr)]);
    this.#exited = this.#child.status.then(async (st) => {
      await pumps.catch(() => {});
      await sink.close().catch(() => {});
      return st;
    });
    let exited: Deno.CommandStatus | undefined;
    this.#exited.then((st) => (exited = st));
    try {
      await waitFor(async () => {
        if (exited) {
          throw new Error(`kube-apiserver exited with ${exited.code}`);
        }
        const res = await this.#fetch("/readyz");
        await res.body?.cancel();
        return res.status === 200;
      }, { timeoutMs: 60_000, intervalMs: 100, what: "kube-apiserver /readyz" });
    } catch (err) {
      const tail = await Deno.readTextFile(`${this.dir}/kube-apiserver.log`).catch(() => "");
      throw new Error(
        `kube-apiserver did not become ready: ${(err as Error).message}\n${tail.slice(-3000)}`,
      );
    }
  }

  #fetch(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set("authorization", `Bearer ${this.adminToken}`);
    if (!headers.has("accept")) headers.set("accept", "application/json");
    return fetch(`${this.url}${path}`, { ...init, headers, client: this.#client } as RequestInit);
  }

  /** An admin request; resolves to the JSON body, throws {@linkcode KubeRequestError} on non-2xx. */
  async request<T = KubeObject>(
    method: string,
    path: string,
    body?: unknown,
    contentType = "application/json",
  ): Promise<T> {
    const res = await this.#fetch(path, {
      method,
      ...(body !== undefined
        ? { body: JSON.stringify(body), headers: { "content-type": contentType } }
        : {}),
    });
    const text = await res.text();
    if (!res.ok) {
      let message = text;
      try {
        message = JSON.parse(text).message ?? text;
      } catch { /* not a Status */ }
      throw new KubeRequestError(res.status, `${method} ${path}: HTTP ${res.status}: ${message}`);
    }
    return (text ? JSON.parse(text) : {}) as T;
  }

  /** Create a namespace. */
  async createNamespace(name: string): Promise<void> {
    await this.request("POST", "/api/v1/namespaces", {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name },
    });
  }

  /** Create a ServiceAccount; resolves to its uid. */
  async createServiceAccount(
    namespace: string,
    name: string,
    annotations: Record<string, string> = {},
  ): Promise<{ uid: string }> {
    const sa = await this.request("POST", `/api/v1/namespaces/${namespace}/serviceaccounts`, {
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { name, namespace, annotations },
    });
    return { uid: sa.metadata.uid! };
  }

  /** Merge-patch a ServiceAccount's annotations (`null` removes one). */
  async annotateServiceAccount(
    namespace: string,
    name: string,
    annotations: Record<string, string | null>,
  ): Promise<void> {
    await this.request(
      "PATCH",
      `/api/v1/namespaces/${namespace}/serviceaccounts/${name}`,
      { metadata: { annotations } },
      "application/merge-patch+json",
    );
  }

  /** Delete a ServiceAccount. */
  async deleteServiceAccount(namespace: string, name: string): Promise<void> {
    await this.request("DELETE", `/api/v1/namespaces/${namespace}/serviceaccounts/${name}`);
  }

  /** Create a Pod object (never scheduled: there is no scheduler) using `serviceAccount`; resolves to its uid. */
  async createPod(
    namespace: string,
    name: string,
    serviceAccount: string,
  ): Promise<{ uid: string }> {
    const pod = await this.request("POST", `/api/v1/namespaces/${namespace}/pods`, {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace },
      spec: {
        serviceAccountName: serviceAccount,
        automountServiceAccountToken: false,
        containers: [{ name: "app", image: "registry.invalid/app:never-pulled" }],
      },
    });
    return { uid: pod.metadata.uid! };
  }

  /** Delete a Pod at once (an unscheduled Pod has no kubelet to wait for). */
  async deletePod(namespace: string, name: string): Promise<void> {
    await this.request("DELETE", `/api/v1/namespaces/${namespace}/pods/${name}`, {
      apiVersion: "v1",
      kind: "DeleteOptions",
      gracePeriodSeconds: 0,
    });
  }

  /** Mint a ServiceAccount token through the TokenRequest API (what the kubelet does). */
  async token(
    namespace: string,
    serviceAccount: string,
    options: TokenRequestOptions = {},
  ): Promise<string> {
    const res = await this.request<{ status: { token: string } }>(
      "POST",
      `/api/v1/namespaces/${namespace}/serviceaccounts/${serviceAccount}/token`,
      {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenRequest",
        spec: {
          audiences: options.audiences ?? ["nats"],
          expirationSeconds: options.expirationSeconds ?? 3600,
          ...(options.pod
            ? { boundObjectRef: { apiVersion: "v1", kind: "Pod", ...options.pod } }
            : {}),
        },
      },
    );
    return res.status.token;
  }

  /**
   * Create objects of the kinds a Helm chart renders for RBAC and identity (ServiceAccount, Role,
   * RoleBinding, ClusterRole, ClusterRoleBinding, Namespace, Secret, ConfigMap), in order.
   * Namespaced objects without a namespace go to `namespace` (as `kubectl apply -n` does).
   */
  async apply(objects: readonly KubeObject[], namespace = "default"): Promise<void> {
    for (const obj of objects) {
      const ns = obj.metadata.namespace ?? namespace;
      const path = ({
        Namespace: "/api/v1/namespaces",
        ServiceAccount: `/api/v1/namespaces/${ns}/serviceaccounts`,
        Secret: `/api/v1/namespaces/${ns}/secrets`,
        ConfigMap: `/api/v1/namespaces/${ns}/configmaps`,
        Role: `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles`,
        RoleBinding: `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`,
        ClusterRole: "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        ClusterRoleBinding: "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
      } as Record<string, string>)[obj.kind];
      if (!path) throw new TypeError(`apply: kind ${obj.kind} is not supported`);
      await this.request("POST", path, obj);
    }
  }

  /**
   * Write a kubeconfig for this apiserver and return its path. `user` picks the credential: a
   * bearer `token` (given, or the admin's), a `tokenFile`, or a client certificate (CN `admin`, O
   * `system:masters`, signed by the cluster CA). `caInline` puts the CA in
   * `certificate-authority-data` instead of a file path.
   */
  async writeKubeconfig(
    name: string,
    user:
      | { token?: string }
      | { tokenFile: string }
      | { clientCert: true }
      | { none: true; server: string },
    options: { caInline?: boolean } = {},
  ): Promise<string> {
    const path = `${this.dir}/${name}.kubeconfig`;
    const server = "none" in user ? user.server : this.url;
    const cluster: Record<string, unknown> = { server };
    if (!("none" in user)) {
      if (options.caInline) cluster["certificate-authority-data"] = btoa(this.caPem);
      else cluster["certificate-authority"] = this.caFile;
    }
    let u: Record<string, unknown> = {};
    if ("token" in user) u = { token: user.token ?? this.adminToken };
    else if ("tokenFile" in user) u = { tokenFile: user.tokenFile };
    else if ("clientCert" in user) {
      const { certFile, keyFile } = await this.#clientCert();
      u = { "client-certificate": certFile, "client-key": keyFile };
    }
    const doc = {
      apiVersion: "v1",
      kind: "Config",
      "current-context": name,
      contexts: [{ name, context: { cluster: name, user: name } }],
      clusters: [{ name, cluster }],
      users: [{ name, user: u }],
    };
    await Deno.writeTextFile(path, JSON.stringify(doc, null, 2));
    return path;
  }

  #clientCert(): Promise<{ certFile: string; keyFile: string }> {
    return issueCertificate(this.dir, "admin-client", {
      subject: "/O=system:masters/CN=admin",
      extensions:
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    });
  }

  /** Run the real kubectl (same binary) with the admin's kubeconfig; resolves to stdout. */
  async kubectl(args: readonly string[]): Promise<string> {
    const kubeconfig = `${this.dir}/admin.kubeconfig`;
    await Deno.stat(kubeconfig).catch(() =>
      this.writeKubeconfig("admin", { token: this.adminToken })
    );
    return await run(
      this.#bin,
      ["kubectl", `--kubeconfig=${kubeconfig}`, ...args],
      `kubectl ${args[0]}`,
    );
  }

  /**
   * Start the real `kubectl proxy` on a free loopback port (plain http, the admin's credentials
   * added by kubectl); resolves to its URL and a handle that stops it.
   */
  async proxy(): Promise<{ url: string } & AsyncDisposable> {
    const kubeconfig = `${this.dir}/admin.kubeconfig`;
    await Deno.stat(kubeconfig).catch(() =>
      this.writeKubeconfig("admin", { token: this.adminToken })
    );
    const port = freePort();
    const child = new Deno.Command(this.#bin, {
      args: [
        "kubectl",
        `--kubeconfig=${kubeconfig}`,
        "proxy",
        "--address=127.0.0.1",
        `--port=${port}`,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const url = `http://127.0.0.1:${port}`;
    await waitFor(async () => {
      const res = await fetch(`${url}/readyz`);
      await res.body?.cancel();
      return res.status === 200;
    }, { timeoutMs: 20_000, what: "kubectl proxy" });
    return {
      url,
      async [Symbol.asyncDispose]() {
        try {
          child.kill("SIGTERM");
        } catch { /* gone */ }
        await child.status;
      },
    };
  }

  /**
   * Restart the apiserver (same ports, same etcd data). `rotateSigningKey` signs new tokens with a
   * fresh key; `dropOldKeys` also stops accepting (and publishing) every earlier key.
   */
  async restart(
    options: { rotateSigningKey?: boolean; dropOldKeys?: boolean } = {},
  ): Promise<void> {
    await this.stop();
    if (options.rotateSigningKey) this.#saKeys.push(await newSaKey(this.dir, this.#saKeys.length));
    if (options.dropOldKeys) this.#saKeys = this.#saKeys.slice(-1);
    await this.#spawn();
  }

  /** Stop the process (etcd data stays for {@linkcode restart}). */
  async stop(): Promise<void> {
    if (!this.#child) return;
    try {
      this.#child.kill("SIGTERM");
    } catch { /* already gone */ }
    const timer = setTimeout(() => {
      try {
        this.#child?.kill("SIGKILL");
      } catch { /* gone */ }
    }, 10_000);
    await this.#exited;
    clearTimeout(timer);
    this.#child = undefined;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
    this.#client.close();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

async function newSaKey(dir: string, n: number): Promise<SaKey> {
  const keyFile = `${dir}/sa-${n}.key`;
  const pubFile = `${dir}/sa-${n}.pub`;
  await run("openssl", ["genrsa", "-out", keyFile, "2048"], "create a ServiceAccount signing key");
  await run(
    "openssl",
    ["rsa", "-in", keyFile, "-pubout", "-out", pubFile],
    "derive its public key",
  );
  return { keyFile, pubFile };
}
