/**
 * ServiceAccounts from a manifest file instead of the Kubernetes API (`SERVICEACCOUNTS_FILE`).
 * Dev mode uses it in place of an apiserver; outside dev it lets a cluster without apiserver access
 * (or a test rig) run the service from a ConfigMap. The file is a YAML or JSON stream of
 * ServiceAccount manifests — a `v1 List`, a `ServiceAccountList`, single objects, or several YAML
 * documents separated by `---` — and changes to it are picked up while the service runs.
 *
 * Rules, so a file behaves like `kubectl apply` would:
 * - Only `kind: ServiceAccount` becomes a record. Objects of other kinds are skipped (a file of
 *   mixed manifests works) and named in the load log line; an object with no `kind` is an error.
 *   Items of a `ServiceAccountList` may omit `kind`, as the API's list responses do.
 * - `metadata.namespace` defaults to `default`, like `kubectl apply` without `-n`.
 * - `metadata.uid` is used when given; otherwise a UUID is derived from `namespace/name`
 *   ({@linkcode stableServiceAccountUid}), so a token minted for it today still matches tomorrow.
 * - Names are checked like the apiserver checks them (namespace: DNS label; name: DNS subdomain),
 *   because they end up in NATS subjects. A ServiceAccount listed twice is an error.
 * - Only annotations under the configured prefix are kept; their values must be strings.
 * - An empty file is a valid, empty set.
 *
 * A bad file never changes what the running service knows: the live source logs one error naming
 * the file, line and column, and keeps serving the previous snapshot until the file is fixed.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { isMap, isSeq, LineCounter, parseAllDocuments } from "yaml";
import { abortable } from "../core/abort.ts";
import { isDnsLabel, isDnsSubdomain } from "../kubernetes/names.ts";
import { type FileWatch, watchFile } from "../core/file_watch.ts";
import type { Logger } from "../telemetry/log.ts";
import type { ServiceAccountRecord, ServiceAccountSource } from "../core/model.ts";
import type { ServiceMetrics } from "../telemetry/service_metrics.ts";

/**
 * A ServiceAccounts file that cannot be used. The message starts with `path:line:column:` so an
 * editor or terminal can jump to the spot; the parts are also fields for structured logs.
 */
export class ServiceAccountsFileError extends Error {
  /** The file, as given. */
  readonly path: string;
  /** 1-based line of the problem, when it has a position. */
  readonly line: number | undefined;
  /** 1-based column of the problem, when it has a position. */
  readonly column: number | undefined;
  /** The problem without the location prefix. */
  readonly reason: string;

  /** Create an error for `path`, optionally at a position. */
  constructor(
    path: string,
    reason: string,
    position?: { line: number; column: number },
    options?: ErrorOptions,
  ) {
    const where = position ? `${path}:${position.line}:${position.column}` : path;
    super(`${where}: ${reason}`, options);
    this.name = "ServiceAccountsFileError";
    this.path = path;
    this.line = position?.line;
    this.column = position?.column;
    this.reason = reason;
  }
}

/** Options of {@linkcode parseServiceAccounts} and {@linkcode loadServiceAccountsFile}. */
export interface ServiceAccountsParseOptions {
  /** Keep only annotations whose key starts with this (e.g. `nats.io/`). */
  annotationPrefix: string;
}

/** What one parse found. */
export interface ParsedServiceAccounts {
  /** The ServiceAccounts, in file order. */
  readonly records: readonly ServiceAccountRecord[];
  /** Kinds of objects that were skipped because they are not ServiceAccounts, in file order. */
  readonly skippedKinds: readonly string[];
}

/** UUID namespace for derived ServiceAccount UIDs (RFC 9562 v5). Fixed forever: changing it changes every derived UID. */
const UID_NAMESPACE = "4f0a7b1e-6c1d-4e55-9a3b-2d8c5e7f9a10";

/**
 * The UID a ServiceAccount gets when its manifest has none: a name-based UUID (RFC 9562 version 5)
 * of `namespace/name`. Stable across restarts and machines, so the dev token minter and the service
 * agree without sharing state; different for a deleted-and-recreated account only if its manifest
 * sets `metadata.uid`.
 *
 * @example
 * ```ts
 * import { stableServiceAccountUid } from "./serviceaccounts_file.ts";
 * const uid = stableServiceAccountUid("team-a", "orders");
 * console.assert(uid === stableServiceAccountUid("team-a", "orders"));
 * console.assert(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(uid));
 * ```
 */
export function stableServiceAccountUid(namespace: string, name: string): string {
  const ns = Uint8Array.from(
    UID_NAMESPACE.replaceAll("-", "").match(/../g)!,
    (h) => parseInt(h, 16),
  );
  const hash = createHash("sha1").update(ns).update(`${namespace}/${name}`).digest();
  const b = Uint8Array.from(hash.subarray(0, 16));
  b[6] = (b[6]! & 0x0f) | 0x50;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${
    hex.slice(20)
  }`;
}

type Position = { line: number; column: number };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The first line of a yaml error message, without its own " at line X, column Y" suffix. */
function yamlReason(message: string): string {
  const first = message.split("\n", 1)[0] ?? message;
  return first.replace(/ at line \d+, column \d+:?$/, "");
}

/**
 * Parse the text of a ServiceAccounts file. Pure: no I/O, so dev tooling and tests can use it on
 * strings. Throws {@linkcode ServiceAccountsFileError} for the first problem found; nothing is
 * returned from a file with any problem.
 *
 * @example
 * ```ts
 * import { parseServiceAccounts } from "./serviceaccounts_file.ts";
 * const text = "kind: ServiceAccount\nmetadata: {name: orders, namespace: team-a}\n";
 * const { records } = parseServiceAccounts(text, { path: "sa.yaml", annotationPrefix: "nats.io/" });
 * console.assert(records[0]?.name === "orders");
 * ```
 */
export function parseServiceAccounts(
  text: string,
  options: ServiceAccountsParseOptions & { path: string },
): ParsedServiceAccounts {
  const { path, annotationPrefix } = options;
  const fail: Fail = (reason, position) => {
    throw new ServiceAccountsFileError(path, reason, position);
  };
  const records: ServiceAccountRecord[] = [];
  const skippedKinds: string[] = [];
  const seen = new Map<string, number | undefined>();
  for (const { object, pos, impliedKind } of manifestObjects(text, fail)) {
    if (object === null || object === undefined) continue;
    if (!isObject(object)) fail("expected a Kubernetes object (a mapping)", pos);
    const o = object as Record<string, unknown>;
    const kind = o.kind ?? impliedKind;
    if (typeof kind !== "string" || kind === "") fail("object has no kind", pos);
    if (kind !== "ServiceAccount") {
      skippedKinds.push(kind as string);
      continue;
    }
    const record = serviceAccountRecord(o, annotationPrefix, (reason) => fail(reason, pos));
    const key = `${record.namespace}/${record.name}`;
    if (seen.has(key)) {
      const first = seen.get(key);
      fail(`ServiceAccount ${key} is listed twice${first ? ` (first at line ${first})` : ""}`, pos);
    }
    seen.set(key, pos?.line);
    records.push(record);
  }
  return { records, skippedKinds };
}

/** Throw the {@linkcode ServiceAccountsFileError} of a problem, at a position when known. */
type Fail = (reason: string, position?: Position) => never;

/** One object of the file, where it starts, and the kind its list implies for it. */
interface ManifestObject {
  readonly object: unknown;
  readonly pos: Position | undefined;
  readonly impliedKind?: string;
}

/**
 * The objects of a YAML/JSON stream, in file order: each document, or each item of a document that
 * is a `…List` (items of a `ServiceAccountList` imply their kind). Syntax errors fail at the
 * document that has them, after the objects before it were yielded.
 */
function* manifestObjects(text: string, fail: Fail): Generator<ManifestObject> {
  const lines = new LineCounter();
  const at = (offset: number | undefined): Position | undefined => {
    if (offset === undefined) return undefined;
    const p = lines.linePos(offset);
    return { line: p.line, column: p.col };
  };
  for (const doc of parseAllDocuments(text, { lineCounter: lines, prettyErrors: true })) {
    const err = doc.errors[0];
    if (err) {
      const p = err.linePos?.[0];
      fail(yamlReason(err.message), p ? { line: p.line, column: p.col } : undefined);
    }
    const node = doc.contents;
    if (node === null) continue;
    const pos = at(node.range?.[0]);
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      fail(e instanceof Error ? e.message : String(e), pos);
    }
    if (!isObject(value)) {
      if (value === null || value === undefined) continue;
      fail("expected a Kubernetes object (a mapping)", pos);
    }
    const v = value as Record<string, unknown>;
    const kind = v.kind;
    if (typeof kind === "string" && kind.endsWith("List")) {
      const itemsNode = isMap(node) ? node.get("items", true) : undefined;
      const items = v.items ?? [];
      if (!Array.isArray(items)) fail(`${kind}.items must be a list`, pos);
      const impliedKind = kind === "ServiceAccountList" ? "ServiceAccount" : undefined;
      for (const [i, item] of (items as unknown[]).entries()) {
        const itemNode = isSeq(itemsNode) ? itemsNode.items[i] : undefined;
        const range = (itemNode as { range?: [number, number, number] } | undefined)?.range;
        yield { object: item, pos: at(range?.[0]) ?? pos, ...(impliedKind ? { impliedKind } : {}) };
      }
    } else {
      yield { object: v, pos };
    }
  }
}

/**
 * The record of one `kind: ServiceAccount` object: names checked as the apiserver checks them,
 * namespace `default` when unset, a derived UID when none is given, and only the annotations under
 * the prefix (all of which must be strings).
 */
function serviceAccountRecord(
  o: Record<string, unknown>,
  annotationPrefix: string,
  fail: (reason: string) => never,
): ServiceAccountRecord {
  const meta = o.metadata;
  if (!isObject(meta)) fail("ServiceAccount has no metadata");
  const m = meta as Record<string, unknown>;
  const name = m.name;
  if (typeof name !== "string" || name === "") fail("ServiceAccount has no metadata.name");
  const n = name as string;
  if (!isDnsSubdomain(n)) {
    fail(`ServiceAccount name "${n}" is not a valid DNS subdomain`);
  }
  const namespace = m.namespace ?? "default";
  if (!isDnsLabel(namespace)) {
    fail(`ServiceAccount "${n}" has an invalid metadata.namespace`);
  }
  const ns = namespace as string;
  const uid = m.uid ?? stableServiceAccountUid(ns, n);
  if (typeof uid !== "string" || uid === "") {
    fail(`ServiceAccount ${ns}/${n} has an invalid metadata.uid`);
  }
  const annotations: Record<string, string> = {};
  if (m.annotations !== undefined && m.annotations !== null) {
    if (!isObject(m.annotations)) {
      fail(`ServiceAccount ${ns}/${n}: annotations must be a map`);
    }
    for (const [k, v] of Object.entries(m.annotations as Record<string, unknown>)) {
      if (typeof v !== "string") {
        fail(`ServiceAccount ${ns}/${n}: annotation "${k}" must be a string`);
      }
      if (k.startsWith(annotationPrefix)) annotations[k] = v as string;
    }
  }
  return Object.freeze({
    namespace: ns,
    name: n,
    uid: uid as string,
    annotations: Object.freeze(annotations),
  });
}

/**
 * Read and parse a ServiceAccounts file once. For one-shot tools (the dev token minter, checks in
 * CI); the running service uses {@linkcode startServiceAccountsFile}, which also follows changes.
 * Throws {@linkcode ServiceAccountsFileError} naming the file (and line, for content problems).
 *
 * @example
 * ```ts ignore
 * import { loadServiceAccountsFile } from "./serviceaccounts_file.ts";
 * const records = await loadServiceAccountsFile(".dev/serviceaccounts.yaml", { annotationPrefix: "nats.io/" });
 * ```
 */
export async function loadServiceAccountsFile(
  path: string,
  options: ServiceAccountsParseOptions,
): Promise<ServiceAccountRecord[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    const why = err instanceof Deno.errors.NotFound ? "file not found" : `cannot read: ${err}`;
    throw new ServiceAccountsFileError(path, why, undefined, { cause: err });
  }
  return [
    ...parseServiceAccounts(text, { path, annotationPrefix: options.annotationPrefix })
      .records,
  ];
}

/** Options of {@linkcode startServiceAccountsFile}. */
export interface ServiceAccountsFileOptions {
  /** The file to read and follow. */
  path: string;
  /** Keep only annotations whose key starts with this (e.g. `nats.io/`). */
  annotationPrefix: string;
  /** Where load results and errors are logged. */
  logger: Logger;
  /**
   * `sa_cache_size` and `sa_cache_synced` are set here; every reload (the first load and each
   * change of the file, good or bad) counts in `sa_file_reloads_total{result}`.
   */
  metrics: ServiceMetrics;
  /** Wait this long after the last file event before reloading (editors write in bursts). @default {100} */
  debounceMs?: number;
  /**
   * Also re-read the file this often, for file systems whose change events get lost (network
   * mounts, some container runtimes). Unchanged content costs one read. `0` turns it off.
   * @default {30000}
   */
  pollIntervalMs?: number;
}

class ServiceAccountsFile implements ServiceAccountSource {
  readonly #path: string;
  readonly #prefix: string;
  readonly #log: Logger;
  readonly #metrics: ServiceMetrics;
  #snapshot = new Map<string, ServiceAccountRecord>();
  #synced = false;
  #closed = false;
  /** Settles at the first good load, or rejects at close; nobody may be waiting on it. */
  readonly #syncedDeferred = Promise.withResolvers<void>();
  readonly #watch: FileWatch;

  constructor(options: ServiceAccountsFileOptions) {
    const { path, annotationPrefix, logger, metrics, debounceMs, pollIntervalMs } = options;
    this.#syncedDeferred.promise.catch(() => {});
    this.#path = path;
    this.#prefix = annotationPrefix;
    this.#log = logger;
    this.#metrics = metrics;
    metrics.cacheSynced.set(0);
    metrics.cacheSize.set(0);
    this.#watch = watchFile(path, {
      onText: (text) => this.#load(text),
      onReadError: (problem) => {
        this.#metrics.fileReloads.inc({ result: "error" });
        this.#log.error("serviceaccounts_file_unreadable", {
          path: this.#path,
          error: problem,
          kept: this.#snapshot.size,
        });
      },
      onWatchError: (error) => logger.warn("serviceaccounts_file_watch_failed", { path, error }),
      ...(debounceMs !== undefined ? { debounceMs } : {}),
      ...(pollIntervalMs !== undefined ? { pollIntervalMs } : {}),
    });
  }

  readonly lookup = (namespace: string, name: string): ServiceAccountRecord | undefined =>
    this.#snapshot.get(`${namespace}/${name}`);

  get synced(): boolean {
    return this.#synced;
  }

  get size(): number {
    return this.#snapshot.size;
  }

  waitSynced(signal?: AbortSignal): Promise<void> {
    if (this.#synced) return Promise.resolve();
    if (this.#closed) return Promise.reject(new Error("ServiceAccounts file source is closed"));
    return abortable(this.#syncedDeferred.promise, signal);
  }

  resync(): void {
    void this.#watch.reload();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#watch.close();
    this.#syncedDeferred.reject(new Error("ServiceAccounts file source is closed"));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #load(text: string): void {
    let parsed: ParsedServiceAccounts;
    try {
      parsed = parseServiceAccounts(text, { path: this.#path, annotationPrefix: this.#prefix });
    } catch (err) {
      this.#metrics.fileReloads.inc({ result: "error" });
      this.#log.error("serviceaccounts_file_invalid", {
        path: this.#path,
        ...(err instanceof ServiceAccountsFileError
          ? { line: err.line, column: err.column, error: err.message }
          : { error: err }),
        kept: this.#snapshot.size,
      });
      return;
    }
    const next = new Map<string, ServiceAccountRecord>();
    for (const r of parsed.records) next.set(`${r.namespace}/${r.name}`, r);
    this.#snapshot = next;
    this.#metrics.cacheSize.set(next.size);
    this.#metrics.fileReloads.inc({ result: "ok" });
    this.#log.info("serviceaccounts_file_loaded", {
      path: this.#path,
      serviceaccounts: next.size,
      ...(parsed.skippedKinds.length > 0
        ? { skipped_kinds: [...new Set(parsed.skippedKinds)] }
        : {}),
    });
    if (!this.#synced) {
      this.#synced = true;
      this.#metrics.cacheSynced.set(1);
      this.#syncedDeferred.resolve();
    }
  }
}

/**
 * Serve ServiceAccounts from a file and follow its changes (`SERVICEACCOUNTS_FILE`). Returns at
 * once; the first load runs in the background (`waitSynced()` for readiness). A missing or invalid
 * file is logged with its path and line and never replaces a good snapshot: before the first good
 * load the source stays not-synced, afterwards it keeps serving the last good content.
 *
 * @example
 * ```ts ignore
 * import { startServiceAccountsFile } from "./serviceaccounts_file.ts";
 * import { createLogger } from "../telemetry/log.ts";
 * import { createServiceMetrics } from "../telemetry/service_metrics.ts";
 * await using source = startServiceAccountsFile({
 *   path: ".dev/serviceaccounts.yaml",
 *   annotationPrefix: "nats.io/",
 *   logger: createLogger(),
 *   metrics: createServiceMetrics(),
 * });
 * await source.waitSynced();
 * source.lookup("team-a", "orders");
 * ```
 */
export function startServiceAccountsFile(
  options: ServiceAccountsFileOptions,
): ServiceAccountSource {
  return new ServiceAccountsFile(options);
}
