/**
 * Read a kubeconfig (the `KUBECONFIG` files, or `~/.kube/config`) into what one apiserver request
 * needs: the server URL, the CA, a client certificate, a bearer token or token file, basic auth,
 * impersonation — the current context's cluster and user, merged across files as kubectl does
 * (the first file to define a name wins; `current-context` from the first file that sets one).
 *
 * Why our own reader instead of `@kubernetes/client-node`'s `KubeConfig`: importing client-node costs
 * about 85 MiB of RSS (measured: bench `cache_scale`), more than the whole service at 1k
 * ServiceAccounts, and its `applyToHTTPSOptions` refuses an `http://` server ("HTTP protocol is not
 * allowed when skipTLSVerify is not set or false"), a rule of that library, not of Kubernetes:
 * kubectl and client-go accept `http://` servers such as `kubectl proxy`. Credential plugins
 * (`exec`, `auth-provider`) stay client-node's job: a kubeconfig that uses one is reported as such
 * here and loaded by client-node on demand (lib/kubernetes/access.ts).
 *
 * Parsing is pure (text in, typed selection out, errors naming the file and the field); reading
 * files is injected.
 *
 * @module
 */
import { parse as parseYaml } from "yaml";

/** The cluster and user of the current context, with file references resolved to absolute paths. */
export interface KubeconfigSelection {
  /** Name of the current context. */
  readonly context: string;
  /** `cluster.server`, without a trailing slash (`https://127.0.0.1:6443`, `http://127.0.0.1:8001`). */
  readonly server: string;
  /** PEM of `certificate-authority-data`, or the path of `certificate-authority`. */
  readonly ca?: { readonly pem: string } | { readonly file: string };
  /** `insecure-skip-tls-verify`. */
  readonly insecureSkipTlsVerify: boolean;
  /** `tls-server-name`, when set. */
  readonly tlsServerName?: string;
  /** `proxy-url`, when set. */
  readonly proxyUrl?: string;
  /** Client certificate and key (PEM data or paths). */
  readonly clientCert?: { readonly pem: string } | { readonly file: string };
  /** PEM of `client-key-data`, or the path of `client-key` (resolved against its file's folder). */
  readonly clientKey?: { readonly pem: string } | { readonly file: string };
  /** `token`. */
  readonly token?: string;
  /** `tokenFile`, re-read on every request. */
  readonly tokenFile?: string;
  /** `username` and `password` (basic auth). */
  readonly basic?: { readonly username: string; readonly password: string };
  /** `as`, `as-groups`, `as-uid`: impersonation headers. */
  readonly impersonate?: {
    readonly user?: string;
    readonly groups?: readonly string[];
    readonly uid?: string;
  };
  /** The user authenticates through a credential plugin (`exec` or `auth-provider`). */
  readonly plugin?: "exec" | "auth-provider";
  /** `exec.command`: the program of an exec plugin. */
  readonly execCommand?: string;
}

/** One kubeconfig file's text and where it came from (relative paths resolve against its folder). */
export interface KubeconfigFile {
  /** The file's path, named in messages; relative paths inside it resolve against its folder. */
  readonly path: string;
  /** The file's content, YAML; an empty one is skipped. */
  readonly text: string;
}

/** A kubeconfig that cannot be used; the message names the file and the field. */
export class KubeconfigError extends Error {
  /** Stable code, in the style of jose's error codes. */
  readonly code = "ERR_KUBECONFIG";

  /** Create the error. */
  constructor(message: string) {
    super(message);
    this.name = "KubeconfigError";
  }
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function dirOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? (i === 0 ? "/" : ".") : path.slice(0, i);
}

function resolvePath(file: string, ref: string): string {
  return ref.startsWith("/") ? ref : `${dirOf(file)}/${ref}`;
}

function decodeBase64Pem(data: string, where: string): string {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(
      Uint8Array.from(atob(data.replace(/\s+/g, "")), (c) => c.charCodeAt(0)),
    );
  } catch {
    throw new KubeconfigError(`${where} is not base64-encoded PEM`);
  }
  if (!text.includes("-----BEGIN ")) throw new KubeconfigError(`${where} holds no PEM block`);
  return text;
}

/** Named entries (`clusters`, `users`, `contexts`) of all files, the first definition winning. */
function collect(
  docs: readonly { file: string; doc: Obj }[],
  list: "clusters" | "users" | "contexts",
  field: "cluster" | "user" | "context",
): Map<string, { file: string; value: Obj }> {
  const out = new Map<string, { file: string; value: Obj }>();
  for (const { file, doc } of docs) {
    const entries = doc[list];
    if (entries === undefined || entries === null) continue;
    if (!Array.isArray(entries)) throw new KubeconfigError(`${file}: "${list}" is not a list`);
    for (const entry of entries) {
      if (!isObj(entry) || typeof entry.name !== "string") {
        throw new KubeconfigError(`${file}: an entry of "${list}" has no name`);
      }
      const value = entry[field] ?? {};
      if (!isObj(value)) {
        throw new KubeconfigError(`${file}: ${list} "${entry.name}" has no "${field}" mapping`);
      }
      if (!out.has(entry.name)) out.set(entry.name, { file, value });
    }
  }
  return out;
}

function str(o: Obj, key: string, where: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v !== "string") throw new KubeconfigError(`${where}: "${key}" is not a string`);
  return v;
}

/**
 * Select the current context's cluster and user from kubeconfig files, merged in order.
 *
 * @throws {KubeconfigError} when a file is not YAML, there is no current context, the context names
 * a missing cluster or user, the server is not an http(s) URL, or a field has the wrong type.
 *
 * @example
 * ```ts
 * import { selectKubeconfig } from "./kubeconfig.ts";
 * const sel = selectKubeconfig([{
 *   path: "/home/me/.kube/config",
 *   text: `
 * current-context: proxy
 * contexts: [{name: proxy, context: {cluster: local, user: me}}]
 * clusters: [{name: local, cluster: {server: "http://127.0.0.1:8001"}}]
 * users: [{name: me, user: {}}]
 * `,
 * }]);
 * console.assert(sel.server === "http://127.0.0.1:8001");
 * ```
 */
export function selectKubeconfig(files: readonly KubeconfigFile[]): KubeconfigSelection {
  if (files.length === 0) throw new KubeconfigError("no kubeconfig file");
  const docs = parseDocuments(files);
  const current = currentContext(docs, files.map((f) => f.path).join(":"));
  return Object.freeze({
    ...clusterSettings(current),
    ...(current.user ? userSettings(current.user) : {}),
  });
}

/** A mutable {@linkcode KubeconfigSelection}, filled field by field. */
type Draft<T> = { -readonly [K in keyof T]: T[K] };

/** A named entry of the merged kubeconfig, and the file that defined it. */
interface Entry {
  readonly name: string;
  readonly file: string;
  readonly value: Obj;
}

/** The files as YAML mappings, in order; empty files are skipped. */
function parseDocuments(files: readonly KubeconfigFile[]): { file: string; doc: Obj }[] {
  const docs: { file: string; doc: Obj }[] = [];
  for (const { path, text } of files) {
    let doc: unknown;
    try {
      doc = parseYaml(text);
    } catch (err) {
      throw new KubeconfigError(`${path}: not YAML: ${(err as Error).message.split("\n")[0]}`);
    }
    if (doc === null || doc === undefined) continue;
    if (!isObj(doc)) throw new KubeconfigError(`${path}: not a kubeconfig (expected a mapping)`);
    docs.push({ file: path, doc });
  }
  return docs;
}

/**
 * The current context (from the first file that sets one) and the cluster and user it names;
 * `names` is the file list, for messages.
 */
function currentContext(
  docs: readonly { file: string; doc: Obj }[],
  names: string,
): { context: string; cluster: Entry; user: Entry | undefined } {
  const current = docs.map((d) => d.doc["current-context"]).find((c) =>
    typeof c === "string" && c !== ""
  );
  if (typeof current !== "string") {
    throw new KubeconfigError(`${names}: no current-context is set`);
  }
  const context = collect(docs, "contexts", "context").get(current);
  if (!context) throw new KubeconfigError(`${names}: current-context "${current}" is not defined`);
  const ctxWhere = `${context.file}: context "${current}"`;
  const clusterName = str(context.value, "cluster", ctxWhere);
  if (!clusterName) throw new KubeconfigError(`${ctxWhere} names no cluster`);
  const cluster = collect(docs, "clusters", "cluster").get(clusterName);
  if (!cluster) throw new KubeconfigError(`${ctxWhere}: cluster "${clusterName}" is not defined`);
  const userName = str(context.value, "user", ctxWhere);
  const user = userName ? collect(docs, "users", "user").get(userName) : undefined;
  if (userName && !user) {
    throw new KubeconfigError(`${ctxWhere}: user "${userName}" is not defined`);
  }
  return {
    context: current,
    cluster: { name: clusterName, ...cluster },
    user: user && userName ? { name: userName, ...user } : undefined,
  };
}

/** The context's name and what its cluster says: server, CA, TLS and proxy settings. */
function clusterSettings(
  current: { context: string; cluster: Entry },
): Draft<KubeconfigSelection> {
  const { cluster } = current;
  const cw = `${cluster.file}: cluster "${cluster.name}"`;
  const c = cluster.value;
  const serverRaw = str(c, "server", cw);
  if (!serverRaw) throw new KubeconfigError(`${cw} has no server`);
  let server: URL;
  try {
    server = new URL(serverRaw);
  } catch {
    throw new KubeconfigError(`${cw}: server is not a URL`);
  }
  if (server.protocol !== "https:" && server.protocol !== "http:") {
    throw new KubeconfigError(`${cw}: server must be an http:// or https:// URL`);
  }
  if (server.username || server.password) {
    throw new KubeconfigError(`${cw}: server URL must not carry credentials`);
  }
  const caData = str(c, "certificate-authority-data", cw);
  const caFile = str(c, "certificate-authority", cw);
  const insecure = c["insecure-skip-tls-verify"];
  if (insecure !== undefined && typeof insecure !== "boolean") {
    throw new KubeconfigError(`${cw}: "insecure-skip-tls-verify" is not a boolean`);
  }
  const tlsServerName = str(c, "tls-server-name", cw);
  const proxyUrl = str(c, "proxy-url", cw);

  const selection: Draft<KubeconfigSelection> = {
    context: current.context,
    server: `${server.protocol}//${server.host}${server.pathname.replace(/\/+$/, "")}`,
    insecureSkipTlsVerify: insecure === true,
  };
  if (caData) selection.ca = { pem: decodeBase64Pem(caData, `${cw}: certificate-authority-data`) };
  else if (caFile) selection.ca = { file: resolvePath(cluster.file, caFile) };
  if (tlsServerName) selection.tlsServerName = tlsServerName;
  if (proxyUrl) selection.proxyUrl = proxyUrl;
  return selection;
}

/** What the context's user says: client certificate, token, basic auth, impersonation, plugin. */
function userSettings(user: Entry): Partial<Draft<KubeconfigSelection>> {
  const uw = `${user.file}: user "${user.name}"`;
  const u = user.value;
  const selection: Partial<Draft<KubeconfigSelection>> = {};
  const certData = str(u, "client-certificate-data", uw);
  const certFile = str(u, "client-certificate", uw);
  const keyData = str(u, "client-key-data", uw);
  const keyFile = str(u, "client-key", uw);
  if (certData) {
    selection.clientCert = { pem: decodeBase64Pem(certData, `${uw}: client-certificate-data`) };
  } else if (certFile) selection.clientCert = { file: resolvePath(user.file, certFile) };
  if (keyData) selection.clientKey = { pem: decodeBase64Pem(keyData, `${uw}: client-key-data`) };
  else if (keyFile) selection.clientKey = { file: resolvePath(user.file, keyFile) };
  if (!selection.clientCert !== !selection.clientKey) {
    throw new KubeconfigError(
      `${uw}: a client certificate needs its key, and a key its certificate`,
    );
  }
  const token = str(u, "token", uw);
  const tokenFile = str(u, "tokenFile", uw);
  if (token) selection.token = token;
  if (tokenFile) selection.tokenFile = resolvePath(user.file, tokenFile);
  const username = str(u, "username", uw);
  const password = str(u, "password", uw);
  if (username !== undefined || password !== undefined) {
    selection.basic = { username: username ?? "", password: password ?? "" };
  }
  const impersonate = impersonation(u, uw);
  if (impersonate) selection.impersonate = impersonate;
  if (u.exec !== undefined && u.exec !== null) {
    selection.plugin = "exec";
    const command = isObj(u.exec) ? u.exec.command : undefined;
    if (typeof command === "string" && command !== "") selection.execCommand = command;
  } else if (u["auth-provider"] !== undefined && u["auth-provider"] !== null) {
    selection.plugin = "auth-provider";
  }
  return selection;
}

/** `as`, `as-groups` and `as-uid`, when any is set. */
function impersonation(u: Obj, uw: string): KubeconfigSelection["impersonate"] {
  const as = str(u, "as", uw);
  const asUid = str(u, "as-uid", uw);
  const asGroups = u["as-groups"];
  if (
    asGroups !== undefined && asGroups !== null && (!Array.isArray(asGroups) ||
      !asGroups.every((g) => typeof g === "string"))
  ) {
    throw new KubeconfigError(`${uw}: "as-groups" is not a list of strings`);
  }
  if (!(as || asUid || (Array.isArray(asGroups) && asGroups.length > 0))) return undefined;
  return {
    ...(as ? { user: as } : {}),
    ...(Array.isArray(asGroups) && asGroups.length > 0 ? { groups: asGroups as string[] } : {}),
    ...(asUid ? { uid: asUid } : {}),
  };
}

/**
 * The kubeconfig files kubectl would read: the `KUBECONFIG` list (split on `:`, empty entries
 * dropped), else `$HOME/.kube/config`.
 *
 * @example
 * ```ts
 * import { kubeconfigPaths } from "./kubeconfig.ts";
 * console.assert(kubeconfigPaths("/a:/b", "/root").join() === "/a,/b");
 * console.assert(kubeconfigPaths(undefined, "/root")[0] === "/root/.kube/config");
 * ```
 */
export function kubeconfigPaths(
  kubeconfig: string | undefined,
  home: string | undefined,
): string[] {
  const listed = (kubeconfig ?? "").split(":").filter((p) => p !== "");
  if (listed.length > 0) return listed;
  if (!home) throw new KubeconfigError("KUBECONFIG is not set and HOME is unknown");
  return [`${home}/.kube/config`];
}
