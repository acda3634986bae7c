/**
 * Render the Helm chart in `chart/` with real `helm template` and read the result, so tests assert
 * on what a cluster would receive — and so a test can start the service with exactly the
 * environment and files the chart gives the pod.
 *
 * @module
 */
import { parseAllDocuments } from "yaml";

/** One rendered Kubernetes object. */
export type Manifest = Record<string, unknown>;

/** Options of {@linkcode renderChart}. */
export interface RenderOptions {
  /** Release name. @default {"r"} */
  releaseName?: string;
  /** Release namespace. @default {"nats-system"} */
  namespace?: string;
  /** Chart directory. @default {"<repo>/chart"} */
  chartDir?: string;
  /** Extra values files, applied before `values`. @default {[]} */
  valuesFiles?: string[];
  /** Render only these templates (`templates/x.yaml`). @default {all} */
  showOnly?: string[];
  /** Pass `--skip-schema-validation` (to reach the templates' own `required` checks). @default {false} */
  skipSchemaValidation?: boolean;
  /** Kubernetes version to render for (`helm template` assumes v1.20 otherwise). @default {KUBE_VERSION} */
  kubeVersion?: string;
}

/** The Kubernetes version charts are rendered for: the real apiserver of the suite (DESIGN D2). */
export const KUBE_VERSION = "1.37.2";

/** `helm` exited non-zero; `stderr` carries its message (schema or template error). */
export class HelmError extends Error {
  /** Helm's standard error output. */
  readonly stderr: string;
  /** Helm's exit code. */
  readonly code: number;
  constructor(args: readonly string[], code: number, stderr: string) {
    super(`helm ${args.join(" ")} exited with ${code}: ${stderr.trim()}`);
    this.name = "HelmError";
    this.stderr = stderr;
    this.code = code;
  }
}

/** The repository's chart directory. */
export const CHART_DIR: string = new URL("../../chart", import.meta.url).pathname;

const HELM_INSTALL_HINT = "install it with `go install helm.sh/helm/v3/cmd/helm@v3.22.0` " +
  "(it lands in $(go env GOPATH)/bin, which is not on PATH by itself) or set HELM=/path/to/helm; `bash .ci/run` does this";

/**
 * Find the helm binary: `$HELM`, then `helm` on `PATH`, then `$HOME/go/bin/helm` (where `go install`
 * puts it). Throws with install instructions when there is none, so a test never skips silently.
 */
export async function findHelm(): Promise<string> {
  const candidates: string[] = [];
  const fromEnv = Deno.env.get("HELM");
  if (fromEnv) candidates.push(fromEnv);
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir) candidates.push(`${dir}/helm`);
  }
  const home = Deno.env.get("HOME");
  if (home) candidates.push(`${home}/go/bin/helm`);
  for (const path of candidates) {
    try {
      const info = await Deno.stat(path);
      if (info.isFile) return path;
    } catch {
      // try the next candidate
    }
  }
  throw new Error(`helm not found; ${HELM_INSTALL_HINT}`);
}

/** Run helm with `args`; resolve its stdout, or reject with {@linkcode HelmError}. */
export async function runHelm(args: readonly string[]): Promise<string> {
  const helm = await findHelm();
  const out = await new Deno.Command(helm, { args: [...args], stdout: "piped", stderr: "piped" })
    .output();
  const decoder = new TextDecoder();
  if (!out.success) throw new HelmError(args, out.code, decoder.decode(out.stderr));
  return decoder.decode(out.stdout);
}

/**
 * Render the chart with `values` (merged over the chart's values.yaml, as `helm install -f` would)
 * and return every non-empty document, parsed.
 *
 * @example
 * ```ts
 * import { renderChart } from "./chart.ts";
 * const docs = await renderChart({ nats: { account: "APP", signingKey: { existingSecret: "sk" } } });
 * console.assert(docs.some((d) => d.kind === "Deployment"));
 * ```
 */
export async function renderChart(
  values: object,
  options: RenderOptions = {},
): Promise<Manifest[]> {
  const {
    releaseName = "r",
    namespace = "nats-system",
    chartDir = CHART_DIR,
    valuesFiles = [],
    showOnly = [],
    skipSchemaValidation = false,
    kubeVersion = KUBE_VERSION,
  } = options;
  const file = await Deno.makeTempFile({ prefix: "chart-values-", suffix: ".json" });
  try {
    await Deno.writeTextFile(file, JSON.stringify(values));
    const args = [
      "template",
      releaseName,
      chartDir,
      "--namespace",
      namespace,
      "--kube-version",
      kubeVersion,
    ];
    for (const f of valuesFiles) args.push("-f", f);
    args.push("-f", file);
    for (const t of showOnly) args.push("--show-only", t);
    if (skipSchemaValidation) args.push("--skip-schema-validation");
    return parseManifests(await runHelm(args));
  } finally {
    await Deno.remove(file);
  }
}

/** Parse a multi-document YAML stream into objects, dropping empty documents. */
export function parseManifests(text: string): Manifest[] {
  const docs: Manifest[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw doc.errors[0];
    const value: unknown = doc.toJS();
    if (isRecord(value)) docs.push(value);
  }
  return docs;
}

/** The documents of `kind`, optionally only the one named `name`. */
export function findAll(docs: readonly Manifest[], kind: string, name?: string): Manifest[] {
  return docs.filter((d) =>
    d.kind === kind && (name === undefined || field(d, "metadata", "name") === name)
  );
}

/** The single document of `kind` (and `name`); throws when there is none or more than one. */
export function findOne(docs: readonly Manifest[], kind: string, name?: string): Manifest {
  const found = findAll(docs, kind, name);
  if (found.length !== 1) {
    throw new Error(`expected one ${kind}${name ? ` ${name}` : ""}, found ${found.length}`);
  }
  return found[0] as Manifest;
}

/** Secret contents by Secret name and key, for Secrets that exist in the cluster already. */
export type ExistingSecrets = Readonly<Record<string, Readonly<Record<string, string>>>>;

/** Options of {@linkcode deploymentEnv} and {@linkcode deploymentFiles}. */
export interface ResolveOptions {
  /** Contents of Secrets the chart references but does not create. @default {{}} */
  existingSecrets?: ExistingSecrets;
}

/**
 * The environment of the Deployment's container as the kubelet would set it: literal values, and
 * `secretKeyRef`s resolved from the Secrets in `docs` (base64 `data` or `stringData`) or from
 * `existingSecrets`. A later entry with the same name wins, as in Kubernetes. Throws on a reference
 * that cannot be resolved (an optional one is left out).
 */
export function deploymentEnv(
  docs: readonly Manifest[],
  options: ResolveOptions = {},
): Record<string, string> {
  const secrets = secretContents(docs, options.existingSecrets ?? {});
  const env: Record<string, string> = {};
  for (const entry of asArray(field(container(docs), "env"))) {
    if (!isRecord(entry) || typeof entry.name !== "string") continue;
    if (entry.value !== undefined) {
      env[entry.name] = String(entry.value);
      continue;
    }
    const ref = field(entry, "valueFrom", "secretKeyRef");
    if (!isRecord(ref)) {
      if (entry.valueFrom === undefined) env[entry.name] = "";
      else throw new Error(`env ${entry.name}: only value and secretKeyRef are supported`);
      continue;
    }
    const value = secrets[String(ref.name)]?.[String(ref.key)];
    if (value === undefined) {
      if (ref.optional === true) continue;
      throw new Error(
        `env ${entry.name}: Secret ${String(ref.name)} key ${
          String(ref.key)
        } is neither rendered ` +
          `nor in existingSecrets`,
      );
    }
    env[entry.name] = value;
  }
  return env;
}

/**
 * The files the container sees from Secret volumes (and the Secret sources of projected volumes),
 * by absolute path: a `subPath` mount is one file; a directory mount holds the volume's `items` (or
 * every key). Other sources (the API token, ConfigMaps, emptyDirs) are left out. Throws when a Secret cannot be resolved.
 */
export function deploymentFiles(
  docs: readonly Manifest[],
  options: ResolveOptions = {},
): Map<string, string> {
  const secrets = secretContents(docs, options.existingSecrets ?? {});
  const pod = field(findOne(docs, "Deployment"), "spec", "template", "spec");
  const volumes = new Map<string, Manifest>();
  for (const v of asArray(field(pod, "volumes"))) {
    if (isRecord(v) && typeof v.name === "string") volumes.set(v.name, v);
  }
  const files = new Map<string, string>();
  for (const mount of asArray(field(container(docs), "volumeMounts"))) {
    if (!isRecord(mount)) continue;
    const volume = volumes.get(String(mount.name));
    if (volume === undefined) continue;
    // A `secret` volume is one Secret; a `projected` volume may combine several (name, not secretName).
    const sources: { name: string; items: unknown }[] = [];
    const secret = field(volume, "secret");
    if (isRecord(secret)) sources.push({ name: String(secret.secretName), items: secret.items });
    for (const source of asArray(field(volume, "projected", "sources"))) {
      const s = field(source, "secret");
      if (isRecord(s)) sources.push({ name: String(s.name), items: s.items });
    }
    const mountPath = String(mount.mountPath);
    for (const { name, items: rawItems } of sources) {
      const content = secrets[name];
      if (content === undefined) {
        throw new Error(
          `volume ${String(mount.name)}: Secret ${name} is neither rendered nor given`,
        );
      }
      const items = asArray(rawItems).filter(isRecord).map((i) => ({
        key: String(i.key),
        path: String(i.path),
      }));
      const entries = items.length > 0
        ? items
        : Object.keys(content).map((key) => ({ key, path: key }));
      for (const { key, path } of entries) {
        if (typeof mount.subPath === "string" && mount.subPath !== path) continue;
        const value = content[key];
        if (value === undefined) throw new Error(`Secret ${name} has no key ${key}`);
        files.set(typeof mount.subPath === "string" ? mountPath : `${mountPath}/${path}`, value);
      }
    }
  }
  return files;
}

/** Options of {@linkcode materializePod}. */
export interface MaterializeOptions extends ResolveOptions {
  /** Directory that stands in for the container's root; the Secret files are written below it. */
  root: string;
}

/**
 * Lay the pod's Secret files out below `options.root` (so `/etc/nats/signing.key` becomes
 * `<root>/etc/nats/signing.key`) and return the container environment with every value that names
 * such a file or a directory holding them rewritten the same way. Everything else is returned as the
 * chart rendered it, so a test can start the service with the chart's own environment.
 *
 * @example
 * ```ts
 * import { materializePod, renderChart } from "./chart.ts";
 * const docs = await renderChart({ nats: { account: "APP", signingKey: { create: true, content: "SA..." } } });
 * const root = await Deno.makeTempDir();
 * const env = await materializePod(docs, { root });
 * console.assert(env.NATS_SIGNING_KEY_FILE === `${root}/etc/nats/signing.key`);
 * ```
 */
export async function materializePod(
  docs: readonly Manifest[],
  options: MaterializeOptions,
): Promise<Record<string, string>> {
  const root = options.root.replace(/\/+$/, "");
  const files = deploymentFiles(docs, options);
  for (const [path, content] of files) {
    const target = `${root}${path}`;
    await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(target, content, { mode: 0o600 });
  }
  const env = deploymentEnv(docs, options);
  const mounted = [...files.keys()];
  for (const [name, value] of Object.entries(env)) {
    if (mounted.some((path) => path === value || path.startsWith(`${value}/`))) {
      env[name] = `${root}${value}`;
    }
  }
  return env;
}

function container(docs: readonly Manifest[]): Manifest {
  const containers = asArray(
    field(findOne(docs, "Deployment"), "spec", "template", "spec", "containers"),
  );
  const first = containers[0];
  if (!isRecord(first)) throw new Error("the Deployment has no container");
  return first;
}

function secretContents(
  docs: readonly Manifest[],
  existing: ExistingSecrets,
): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const [name, data] of Object.entries(existing)) out[name] = { ...data };
  for (const doc of findAll(docs, "Secret")) {
    const name = String(field(doc, "metadata", "name"));
    const content: Record<string, string> = {};
    const data = field(doc, "data");
    if (isRecord(data)) {
      for (const [k, v] of Object.entries(data)) content[k] = decodeBase64(String(v));
    }
    const stringData = field(doc, "stringData");
    if (isRecord(stringData)) {
      for (const [k, v] of Object.entries(stringData)) content[k] = String(v);
    }
    out[name] = content;
  }
  return out;
}

function decodeBase64(text: string): string {
  const bin = atob(text);
  return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
}

/** Walk `keys` into nested objects; `undefined` when a step is missing. */
export function field(value: unknown, ...keys: string[]): unknown {
  let cur = value;
  for (const key of keys) {
    if (!isRecord(cur)) return undefined;
    cur = cur[key];
  }
  return cur;
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function isRecord(value: unknown): value is Manifest {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
