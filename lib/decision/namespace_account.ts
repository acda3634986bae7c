/**
 * The policy's `namespaceAccount` setting (operator mode): the namespaces a rule matches get an
 * account of their own, provisioned by the service (lib/accounts/), with limits nats-server
 * enforces and the exports other namespaces may import. This module holds its types and its
 * reader; what the account JWT then carries is lib/accounts/claims.ts.
 *
 * ```yaml
 * namespaceAccount:
 *   limits: { connections: 100, subscriptions: 1000, payload: 1MiB, leafNodes: 0 }
 *   jetstream: { memory: 64MiB, disk: 1GiB, streams: 10, consumers: 100 }
 *   exports:
 *     - service: "{namespace}.api.>"   # only under the namespace's own subjects
 *       to: [team-b, "ops-*"]           # namespaces (names or globs) that import it
 * ```
 *
 * Every limit left out is unlimited; `jetstream` left out is JetStream off for the account. What
 * nats-server does not enforce is not offered: an account's `data` limit is never read by
 * nats-server (server/accounts.go, updateAccountClaimsWithRefresh reads subs, payload, conn and
 * leaf only), so `data` is refused with that reason rather than accepted and ignored.
 *
 * @module
 */
import { isScalar, isSeq, type Node } from "yaml";
import { subjectProblem } from "../core/subjects.ts";
import { itemOf, type YamlReader } from "./policy_yaml.ts";

/** Unlimited, as NATS JWTs write it. */
export const UNLIMITED: -1 = -1;

/** The NATS limits of a provisioned account; each `-1` (unlimited) when the policy leaves it out. */
export interface AccountLimitSettings {
  /** Client connections in the account across the cluster (JWT `limits.conn`). */
  readonly connections: number;
  /** Subscriptions **per connection** (JWT `limits.subs`: nats-server applies it to each client). */
  readonly subscriptions: number;
  /** Largest message payload in bytes (JWT `limits.payload`). */
  readonly payload: number;
  /** Leaf node connections into the account (JWT `limits.leaf`). */
  readonly leafNodes: number;
}

/** JetStream limits of a provisioned account (JWT `limits.mem_storage` …), `-1` unlimited. */
export interface JetStreamLimitSettings {
  /** Bytes of memory storage. */
  readonly memory: number;
  /** Bytes of file storage. */
  readonly disk: number;
  /** Streams. */
  readonly streams: number;
  /** Consumers. */
  readonly consumers: number;
}

/** One export: a service or stream on the namespace's subjects, for the namespaces named in `to`. */
export interface ExportSetting {
  /** A service (request/reply) or a stream (messages). */
  readonly kind: "service" | "stream";
  /** Subject pattern, `{namespace}` filled in per exporting namespace; always under `{namespace}.`. */
  readonly subject: string;
  /** Importing namespaces by exact name. */
  readonly toNames: readonly string[];
  /** Importing namespaces by glob (`*`, `?`). */
  readonly toGlobs: readonly string[];
}

/** What a rule's `namespaceAccount` says: the account each matching namespace gets. */
export interface NamespaceAccountSettings {
  /** The account's limits (connections, subscriptions, payload, leaf nodes). */
  readonly limits: AccountLimitSettings;
  /** `undefined`: JetStream disabled in the account. */
  readonly jetstream?: JetStreamLimitSettings;
  /** What the namespace exports, and to whom. */
  readonly exports: readonly ExportSetting[];
}

const NO_LIMITS: AccountLimitSettings = Object.freeze({
  connections: UNLIMITED,
  subscriptions: UNLIMITED,
  payload: UNLIMITED,
  leafNodes: UNLIMITED,
});

/**
 * Read `namespaceAccount` (a mapping, `{}` for an account without limits). `undefined` after
 * reporting a problem.
 */
export function readNamespaceAccount(
  yaml: YamlReader,
  node: Node | null,
  at: string,
): NamespaceAccountSettings | undefined {
  const read = yaml.fields<{
    limits: AccountLimitSettings;
    jetstream: JetStreamLimitSettings;
    exports: ExportSetting[];
    data: never;
  }>(node, at, {
    limits: (value, at) => readLimits(yaml, value, at),
    jetstream: (value, at) => readJetStreamLimits(yaml, value, at),
    exports: (value, at) => readExports(yaml, value, at),
    data: (value, at) => {
      yaml.problem(value, `${at}: ${DATA_NOT_ENFORCED}`);
      return undefined;
    },
  });
  if (!read || !read.complete) return undefined;
  const { limits = NO_LIMITS, jetstream, exports = [] } = read.value;
  return Object.freeze({ limits, ...(jetstream ? { jetstream } : {}), exports });
}

const DATA_NOT_ENFORCED = "the data limit is not offered: nats-server never enforces an " +
  "account's data limit (it reads connections, subscriptions, payload and leaf nodes only)";

function readLimits(
  yaml: YamlReader,
  node: Node | null,
  at: string,
): AccountLimitSettings | undefined {
  const read = yaml.fields<AccountLimitSettings & { data: never }>(node, at, {
    connections: (v, at) => readCount(yaml, v, at),
    subscriptions: (v, at) => readCount(yaml, v, at),
    payload: (v, at) => readBytes(yaml, v, at),
    leafNodes: (v, at) => readCount(yaml, v, at),
    data: (v, at) => {
      yaml.problem(v, `${at}: ${DATA_NOT_ENFORCED}`);
      return undefined;
    },
  });
  if (!read || !read.complete) return undefined;
  return Object.freeze({ ...NO_LIMITS, ...read.value });
}

function readJetStreamLimits(
  yaml: YamlReader,
  node: Node | null,
  at: string,
): JetStreamLimitSettings | undefined {
  const read = yaml.fields<JetStreamLimitSettings>(node, at, {
    memory: (v, at) => readBytes(yaml, v, at),
    disk: (v, at) => readBytes(yaml, v, at),
    streams: (v, at) => readCount(yaml, v, at),
    consumers: (v, at) => readCount(yaml, v, at),
  });
  if (!read || !read.complete) return undefined;
  const { memory = 0, disk = 0, streams = UNLIMITED, consumers = UNLIMITED } = read.value;
  if (memory === 0 && disk === 0) {
    yaml.problem(
      node,
      `${at}: set memory or disk (a size, or "unlimited"); with neither the account has no ` +
        "JetStream (leave jetstream out for that)",
    );
    return undefined;
  }
  return Object.freeze({ memory, disk, streams, consumers });
}

/** A count: an integer ≥ 0, or `unlimited`. */
function readCount(yaml: YamlReader, node: Node | null, at: string): number | undefined {
  const value = isScalar(node) ? node.value : undefined;
  if (value === "unlimited") return UNLIMITED;
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) return value;
  yaml.problem(node, `${at} must be an integer >= 0 or "unlimited"`);
  return undefined;
}

const UNITS: Readonly<Record<string, number>> = {
  "": 1,
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KIB: 2 ** 10,
  MIB: 2 ** 20,
  GIB: 2 ** 30,
  TIB: 2 ** 40,
};

/**
 * A size in bytes: an integer ≥ 0, a number with a unit (`512KiB`, `64MiB`, `1GB`; KB/MB/GB are
 * powers of 1000, KiB/MiB/GiB of 1024), or `unlimited`.
 *
 * @example
 * ```ts
 * import { parseBytes } from "./namespace_account.ts";
 * console.assert(parseBytes("64MiB") === 64 * 1024 * 1024);
 * console.assert(parseBytes("1GB") === 1e9 && parseBytes("unlimited") === -1);
 * console.assert(parseBytes("lots") === undefined);
 * ```
 */
export function parseBytes(value: unknown): number | undefined {
  if (value === "unlimited") return UNLIMITED;
  if (typeof value === "number") {
    return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  }
  if (typeof value !== "string") return undefined;
  const m = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/.exec(value.trim());
  const unit = m ? UNITS[m[2]!.toUpperCase()] : undefined;
  if (!m || unit === undefined) return undefined;
  const bytes = Math.round(Number(m[1]) * unit);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

function readBytes(yaml: YamlReader, node: Node | null, at: string): number | undefined {
  const bytes = parseBytes(isScalar(node) ? node.value : undefined);
  if (bytes === undefined) {
    yaml.problem(
      node,
      `${at} must be a size such as 1048576, "512KiB", "64MiB", "1GB" or "unlimited"`,
    );
  }
  return bytes;
}

/** What a namespace glob under `to` may hold (as a rule's `glob`). */
const NAMESPACE_GLOB = /^[a-z0-9*?-]+$/;

function readExports(yaml: YamlReader, node: Node | null, at: string): ExportSetting[] | undefined {
  if (!isSeq(node)) {
    yaml.problem(
      node,
      `${at} must be a list of exports ({service: subject, to: [...]} or {stream: ...})`,
    );
    return undefined;
  }
  const out: ExportSetting[] = [];
  let ok = true;
  node.items.forEach((_, i) => {
    const item = itemOf(node, i) as Node | null;
    const read = readExport(yaml, item, `${at}[${i}]`);
    if (read) out.push(read);
    else ok = false;
  });
  return ok ? out : undefined;
}

function readExport(yaml: YamlReader, node: Node | null, at: string): ExportSetting | undefined {
  const read = yaml.fields<{ service: string; stream: string; to: string[] }>(node, at, {
    service: (v, at) => readOwnSubject(yaml, v, at),
    stream: (v, at) => readOwnSubject(yaml, v, at),
    to: (v, at) => readTargets(yaml, v, at),
  });
  if (!read || !read.complete) return undefined;
  const { service, stream, to } = read.value;
  if ((service === undefined) === (stream === undefined)) {
    yaml.problem(node, `${at}: set exactly one of service or stream (the exported subject)`);
    return undefined;
  }
  if (!to || to.length === 0) {
    yaml.problem(node, `${at}: to must name the namespaces that may import it (names or globs)`);
    return undefined;
  }
  return Object.freeze({
    kind: service !== undefined ? "service" : "stream",
    subject: (service ?? stream)!,
    toNames: to.filter((t) => !/[*?]/.test(t)),
    toGlobs: to.filter((t) => /[*?]/.test(t)),
  });
}

/**
 * An exported subject: valid, and under the exporting namespace's own subjects (`{namespace}` or
 * `{namespace}.…`), so a namespace can only ever export what is its own.
 */
function readOwnSubject(yaml: YamlReader, node: Node | null, at: string): string | undefined {
  const subject = yaml.string(node, at);
  if (subject === undefined) return undefined;
  if (subject !== "{namespace}" && !subject.startsWith("{namespace}.")) {
    yaml.problem(
      node,
      `${at}: "${subject}" must be under the namespace's own subjects ("{namespace}.…")`,
    );
    return undefined;
  }
  const bad = subjectProblem(subject.replaceAll("{namespace}", "ns"));
  if (bad || subject.includes("{serviceaccount}")) {
    yaml.problem(
      node,
      `${at}: "${subject}" ${bad ?? "may not use {serviceaccount} (an export is per namespace)"}`,
    );
    return undefined;
  }
  return subject;
}

function readTargets(yaml: YamlReader, node: Node | null, at: string): string[] | undefined {
  const list = yaml.strings(node, at);
  if (!list) return undefined;
  const bad = list.findIndex((t) => !NAMESPACE_GLOB.test(t));
  if (bad >= 0) {
    yaml.problem(itemOf(node, bad), `${at}: "${list[bad]}" is not a namespace name or glob`);
    return undefined;
  }
  return list;
}

/** Whether namespace `name` is one of an export's importers. */
export function importsExport(
  name: string,
  exp: ExportSetting,
  matches: (name: string, glob: string) => boolean,
): boolean {
  return exp.toNames.includes(name) || exp.toGlobs.some((g) => matches(name, g));
}

/**
 * The account a namespace's logins go to when its settings say `namespaceAccount`, as the login
 * sees it (lib/accounts/ answers; the decision knows only this shape).
 */
export type NamespaceAccountResult =
  | {
    readonly ok: true;
    /** The account's public key: where the user is placed. */
    readonly account: string;
    /** Subjects its imports add to the user's allow lists (publish: services; subscribe: streams). */
    readonly imported: { readonly pub: readonly string[]; readonly sub: readonly string[] };
    /** What explain shows of the account: its name, limits, JetStream, exports and imports. */
    readonly summary: NamespaceAccountSummary;
  }
  | {
    readonly ok: false;
    readonly reason: "namespace_not_found" | "account_unavailable" | "cache_not_ready";
    readonly message: string;
  };

/** The account a namespace gets, for people (`deno task explain`, `/explain`). */
export interface NamespaceAccountSummary {
  /** The account's public key (`A…`). */
  readonly account: string;
  /** The account JWT's name (the namespace's). */
  readonly name: string;
  /** The Namespace's uid the keys derive from. */
  readonly namespace_uid: string;
  /** The account's limits, `-1` for unlimited. */
  readonly limits: {
    readonly connections: number;
    readonly subscriptions_per_connection: number;
    readonly payload: number;
    readonly leaf_nodes: number;
  };
  /** JetStream limits in bytes and counts, or `disabled`. */
  readonly jetstream:
    | {
      readonly memory: number;
      readonly disk: number;
      readonly streams: number;
      readonly consumers: number;
    }
    | "disabled";
  /** What the namespace exports (subjects filled in). */
  readonly exports: readonly { readonly kind: string; readonly subject: string }[];
  /** What it imports, and from which namespace. */
  readonly imports: readonly {
    readonly kind: string;
    readonly subject: string;
    readonly from: string;
  }[];
}

/** What the login asks of the accounts that follow namespaces (implemented by lib/accounts/). */
export interface NamespaceAccounts {
  /** The account of `namespace` now, without I/O (explain, live revocation). */
  accountOf(namespace: string): NamespaceAccountResult;
  /**
   * The account of `namespace`, once the servers' resolver holds its current JWT (pushed now if
   * needed): a login never gets a user JWT for an account the servers cannot find.
   */
  ensure(namespace: string): Promise<NamespaceAccountResult>;
}
