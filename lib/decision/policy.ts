/**
 * The permissions one ServiceAccount gets, and whether it may log in at all. Pure: the same
 * policy, ServiceAccount and request always give the same result, and the caller (which owns the
 * logger and the metrics) reports what was dropped.
 *
 * Without a cluster policy the defaults are the Go reference's plus the bare namespace subject:
 * publish `<ns>` and `<ns>.>`; subscribe `_INBOX.>`, the private inbox `_INBOX_<ns>_<sa>.>`,
 * `<ns>` and `<ns>.>` (so an MQTT client's `<ns>/#` works); one response per request with no time
 * limit. A policy may withhold `_INBOX.>` (`inbox: private`). The annotations `<prefix>allowed-pub-subjects` and `<prefix>allowed-sub-subjects` add to
 * them; a subscribe entry may name a queue group after one space (`orders.> workers`).
 *
 * A cluster policy (the platform team's file, lib/decision/policy_file.ts) picks per namespace (name, glob
 * or labels of the Namespace) and per ServiceAccount: the account, the bound annotation grants must stay inside, deny
 * lists, connection types, the longest token lifetime, response limits, JetStream grants and
 * whether the shared inbox `_INBOX.>` is granted.
 *
 * @module
 */
import type { Permissions, ServiceAccountRecord } from "../core/model.ts";
import { inboxPrefix, subjectProblem, subscribeEntryProblem } from "../core/subjects.ts";
import type { NamespaceAccountSettings } from "./namespace_account.ts";

/** Annotation name (after the prefix) listing extra publish subjects. */
export const PUB_ANNOTATION = "allowed-pub-subjects";

/** Annotation name (after the prefix) listing extra subscribe subjects. */
export const SUB_ANNOTATION = "allowed-sub-subjects";

/** Options of {@linkcode permissionsFor}. */
export interface PolicyOptions {
  /** Annotation prefix, e.g. `nats.io/` (config `SA_ANNOTATION_PREFIX`). */
  annotationPrefix: string;
  /**
   * How long a responder may answer a request, in milliseconds; 0 means no limit. The reference
   * sets no limit (`Expires: 0`).
   * @default {0}
   */
  responseTtlMs?: number;
  /**
   * What the cluster policy says for this ServiceAccount ({@linkcode resolveSettings}).
   * @default {{} (no policy: the reference's behaviour)}
   */
  settings?: PolicySettings;
}

/** One annotation entry that was not granted, and why (for logs and `explain`). */
export interface DroppedEntry {
  /** Which annotation it came from. */
  readonly annotation: "pub" | "sub";
  /** The entry as split from the annotation (trimmed; a subscribe entry may name a queue group). */
  readonly entry: string;
  /** `internal`: `_INBOX…`/`_REPLY…`; `invalid`: not a subject; `outside_policy`: beyond the bound. */
  readonly reason: "internal" | "invalid" | "outside_policy";
  /** Human detail, e.g. the subject problem or the policy pattern it ran into. */
  readonly detail: string;
}

/** What {@linkcode permissionsFor} decided, including what it left out and why. */
export interface PolicyResult {
  /** The permissions to put in the user JWT. */
  readonly permissions: Permissions;
  /**
   * Annotation entries dropped because they start with `_INBOX` or `_REPLY`, or (under
   * `inbox: private`) subscribe to a leading wildcard that covers other workloads' private inboxes
   * (warn and count).
   */
  readonly filteredInternal: readonly string[];
  /** Annotation entries dropped because they are not valid NATS subjects (warn and count). */
  readonly invalid: readonly string[];
  /** Annotation entries dropped because the cluster policy does not allow them (warn and count). */
  readonly outsidePolicy: readonly string[];
  /** Every dropped entry with its reason, in annotation order. */
  readonly dropped: readonly DroppedEntry[];
}

/** Connection types a policy may allow, named as in NATS user JWTs (`allowed_connection_types`). */
export const CONNECTION_TYPES = ["STANDARD", "WEBSOCKET", "MQTT", "LEAFNODE"] as const;
/** One of {@linkcode CONNECTION_TYPES}. */
export type ConnectionType = typeof CONNECTION_TYPES[number];

/**
 * What a cluster policy may set for a namespace or a ServiceAccount. Every field is optional; a
 * field set on a namespace rule replaces the policy's default for it, a field set for a
 * ServiceAccount replaces the namespace's. Subject patterns may contain `{namespace}` and
 * `{serviceaccount}`, replaced per login.
 */
export interface PolicySettings {
  /** Account the user is placed in (config mode: name; operator mode: `A…` key). @default {NATS_ACCOUNT} */
  readonly account?: string;
  /** The bound on annotation grants. */
  readonly annotations?: {
    /** An annotation entry is granted only when one of these patterns covers it (per direction). */
    readonly allow?: { readonly pub?: readonly string[]; readonly sub?: readonly string[] };
    /** An annotation entry that overlaps any of these is never granted. */
    readonly deny?: readonly string[];
  };
  /** Deny lists sent in the user JWT: they win over every allow, defaults and annotations alike. */
  readonly deny?: { readonly pub?: readonly string[]; readonly sub?: readonly string[] };
  /** Connection types that may log in (`client_info.kind`/`type`). @default {all} */
  readonly connectionTypes?: readonly ConnectionType[];
  /** Longest token lifetime (`exp - iat`) accepted, in milliseconds. @default {no limit} */
  readonly maxTokenLifetimeMs?: number;
  /** Response permission: how many replies per request, for how long (0 = no limit). */
  readonly response?: { readonly max: number; readonly ttlMs: number };
  /** JetStream grants, see {@linkcode jetstreamSubjects}. */
  readonly jetstream?: JetStreamSettings;
  /**
   * Which inboxes a login may subscribe to: `shared` grants `_INBOX.>` next to the private inbox
   * `_INBOX_<ns>_<sa'>.>`, as the reference does, so in a shared account any workload can read
   * every other's replies; `private` withholds `_INBOX.>`, and clients must then set their inbox
   * prefix to their private inbox ({@linkcode inboxPrefix}). @default {"shared"}
   */
  readonly inbox?: InboxMode;
  /**
   * Operator mode: the namespace gets an account of its own, provisioned by the service
   * (lib/decision/namespace_account.ts, lib/accounts/); excludes `account` at the same level, and a
   * later `account` replaces it. Never per ServiceAccount: an account belongs to a namespace.
   */
  readonly namespaceAccount?: NamespaceAccountSettings;
}

/** The values of {@linkcode PolicySettings.inbox}. */
export const INBOX_MODES = ["shared", "private"] as const;
/** One of {@linkcode INBOX_MODES}. */
export type InboxMode = typeof INBOX_MODES[number];

/**
 * JetStream for a namespace's workloads.
 * - `api: true` grants the whole JetStream API (`$JS.>`, `$KV.>`, `$O.>`): for a namespace placed
 *   in an account of its own, where every stream is its own.
 * - `streams` / `kv`: the shared-account preset. For each named stream (and `KV_<bucket>` of each
 *   bucket): stream info, message get, direct get, consumer create/info/delete/next/list, and
 *   `$JS.ACK.<stream>.>` so a consumer can ack, nak, mark in progress and term its deliveries,
 *   `$JS.FC.<stream>.>` (flow control), and `$JS.API.INFO`; for each bucket also `$KV.<bucket>.>`
 *   (put, delete). No stream create/update/delete/purge: a
 *   stream could capture another namespace's subjects, so streams in a shared account are created
 *   by the platform team.
 */
export interface JetStreamSettings {
  /** Grant the whole JetStream API; when true, `streams` and `kv` add nothing. @default {false} */
  readonly api?: boolean;
  /** Streams of the shared-account preset, by name (`{namespace}`, `{serviceaccount}` expanded). */
  readonly streams?: readonly string[];
  /** KV buckets of the preset (their streams are `KV_<bucket>`), expanded like `streams`. */
  readonly kv?: readonly string[];
}

/** A namespace rule of a {@linkcode ClusterPolicy}. */
export interface NamespaceRule {
  /** Where the rule is written (e.g. `policy.yaml:12`), for explain and logs. */
  readonly source: string;
  /** Exact namespace names. */
  readonly names: readonly string[];
  /** Globs over namespace names: `*` any run of characters, `?` one character. */
  readonly globs: readonly string[];
  /**
   * Labels the Namespace must all carry (matchLabels: every key with exactly this value).
   * @default {undefined (no label match)}
   */
  readonly labels?: Readonly<Record<string, string>>;
  /** What the rule sets for the namespaces it matches, replacing the defaults field by field. */
  readonly settings: PolicySettings;
  /** Per-ServiceAccount settings, by ServiceAccount name. */
  readonly serviceAccounts: ReadonlyMap<string, PolicySettings>;
}

/** A parsed, validated cluster policy (see lib/decision/policy_file.ts). Immutable. */
export interface ClusterPolicy {
  /** Settings for every namespace, before any rule. */
  readonly defaults: PolicySettings;
  /** Rules in file order; the first whose names, globs or labels match the namespace applies. */
  readonly namespaces: readonly NamespaceRule[];
}

/** The settings for one ServiceAccount, and which parts of the policy produced them. */
export interface ResolvedSettings {
  /** The defaults, then the matching rule's fields, then its entry for the ServiceAccount. */
  readonly settings: PolicySettings;
  /** E.g. `["defaults", "policy.yaml:12 (team-*)", "policy.yaml:12 serviceAccounts.api"]`. */
  readonly matched: readonly string[];
}

function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${body}$`);
}

/** Whether namespace `name` matches `glob` (`*` any run, `?` one character). */
export function matchesGlob(name: string, glob: string): boolean {
  return globToRegExp(glob).test(name);
}

/** Whether `policy` has a namespace rule by labels (and so needs the Namespaces' labels). */
export function usesLabels(policy: ClusterPolicy): boolean {
  return policy.namespaces.some((r) => r.labels !== undefined);
}

/** Whether the labels `have` hold every key of `want` with the same value (matchLabels). */
export function labelsMatch(
  want: Readonly<Record<string, string>>,
  have: Readonly<Record<string, string>> | undefined,
): boolean {
  if (have === undefined) return false;
  return Object.entries(want).every(([k, v]) => Object.hasOwn(have, k) && have[k] === v);
}

/**
 * The settings the policy gives ServiceAccount `name` in `namespace`: the defaults, then the first
 * namespace rule that matches (by name, glob, or — given `labelsOf`, the Namespace's labels — by
 * labels; a Namespace whose labels are unknown matches no `labels` rule), then that rule's entry for the ServiceAccount, each field replacing
 * the one before.
 *
 * @example
 * ```ts
 * import { resolveSettings } from "./policy.ts";
 * const policy = {
 *   defaults: { response: { max: 1, ttlMs: 0 } },
 *   namespaces: [{
 *     source: "policy.yaml:3", names: [], globs: ["team-*"],
 *     settings: { account: "TEAMS" }, serviceAccounts: new Map(),
 *   }],
 * };
 * console.assert(resolveSettings(policy, "team-a", "api").settings.account === "TEAMS");
 * console.assert(resolveSettings(policy, "other", "api").settings.account === undefined);
 * ```
 */
export function resolveSettings(
  policy: ClusterPolicy,
  namespace: string,
  name: string,
  labelsOf?: (namespace: string) => Readonly<Record<string, string>> | undefined,
): ResolvedSettings {
  const matched = ["defaults"];
  let settings: PolicySettings = policy.defaults;
  let labels: Readonly<Record<string, string>> | undefined | null = null;
  const rule = policy.namespaces.find((r) => {
    if (r.names.includes(namespace) || r.globs.some((g) => matchesGlob(namespace, g))) return true;
    if (r.labels === undefined || labelsOf === undefined) return false;
    if (labels === null) labels = labelsOf(namespace);
    return labelsMatch(r.labels, labels);
  });
  if (rule) {
    matched.push(rule.source);
    settings = overlaySettings(settings, rule.settings);
    const own = rule.serviceAccounts.get(name);
    if (own) {
      matched.push(`${rule.source} serviceAccounts.${name}`);
      settings = overlaySettings(settings, own);
    }
  }
  return { settings, matched };
}

/**
 * `top` over `base`, field by field (a field set in `top` replaces the whole field of `base`);
 * `account` and `namespaceAccount` are one choice (where logins go), so setting either drops the
 * other one inherited. {@linkcode resolveSettings} resolves a login with it, and the policy file
 * checks what each rule and ServiceAccount entry resolves to with the same function.
 *
 * @example
 * ```ts
 * import { overlaySettings } from "./policy.ts";
 * const merged = overlaySettings({ jetstream: { api: true } }, { account: "APP" });
 * console.assert(merged.jetstream?.api === true && merged.account === "APP");
 * ```
 */
export function overlaySettings(base: PolicySettings, top: PolicySettings): PolicySettings {
  const merged: { -readonly [K in keyof PolicySettings]: PolicySettings[K] } = { ...base, ...top };
  if (top.account !== undefined && top.namespaceAccount === undefined) {
    delete merged.namespaceAccount;
  }
  if (top.namespaceAccount !== undefined && top.account === undefined) delete merged.account;
  return merged;
}

/**
 * The connection type of a callout request's `client_info`, named like NATS user JWTs name them:
 * kind `Leafnode` → `LEAFNODE`; type `nats` → `STANDARD`, `websocket` → `WEBSOCKET`, `mqtt` →
 * `MQTT`; anything else upper-cased as is (and so allowed by no policy list).
 */
export function connectionTypeOf(clientInfo: { kind?: string; type?: string }): string {
  if (clientInfo.kind?.toLowerCase() === "leafnode") return "LEAFNODE";
  switch (clientInfo.type?.toLowerCase()) {
    case "nats":
      return "STANDARD";
    case "websocket":
      return "WEBSOCKET";
    case "mqtt":
      return "MQTT";
  }
  return (clientInfo.type ?? clientInfo.kind ?? "unknown").toUpperCase();
}

/** What the policy checks on each login before permissions: the connection and the token. */
export interface LoginFacts {
  /** From {@linkcode connectionTypeOf}. */
  readonly connectionType: string;
  /** Token `iat` and `exp`, seconds since the epoch; `iat` may be missing. */
  readonly issuedAt: number | undefined;
  /** Token `exp`, seconds since the epoch. */
  readonly expiresAt: number;
}

/** A refusal by the policy, with a stable reason. */
export interface PolicyDenial {
  /** Stable refusal reason, the same in the error, the log line and the metric label. */
  readonly reason: "connection_type_not_allowed" | "token_lifetime_too_long";
  /** The refusal in words: the type and those allowed, or the lifetime and the maximum. */
  readonly message: string;
}

/**
 * Whether the policy refuses this login: a connection type outside `connectionTypes`, or a token
 * whose lifetime (`exp - iat`) exceeds `maxTokenLifetimeMs` (a token without `iat` has no provable
 * lifetime and is refused when a maximum is set). `undefined` when the login may go on.
 *
 * @example
 * ```ts
 * import { checkLogin } from "./policy.ts";
 * const denial = checkLogin({ maxTokenLifetimeMs: 3_600_000 }, {
 *   connectionType: "STANDARD", issuedAt: 0, expiresAt: 8760 * 3600,
 * });
 * console.assert(denial?.reason === "token_lifetime_too_long");
 * ```
 */
export function checkLogin(settings: PolicySettings, facts: LoginFacts): PolicyDenial | undefined {
  const types = settings.connectionTypes;
  if (types && !(types as readonly string[]).includes(facts.connectionType)) {
    return {
      reason: "connection_type_not_allowed",
      message: `connection type ${facts.connectionType} is not allowed (allowed: ${
        types.join(", ") || "none"
      })`,
    };
  }
  const max = settings.maxTokenLifetimeMs;
  if (max !== undefined) {
    if (facts.issuedAt === undefined) {
      return {
        reason: "token_lifetime_too_long",
        message: "token has no iat claim, so its lifetime cannot be checked against the maximum",
      };
    }
    const lifetime = facts.expiresAt - facts.issuedAt;
    if (lifetime * 1000 > max) {
      return {
        reason: "token_lifetime_too_long",
        message: `token lifetime ${lifetime}s exceeds the policy maximum of ${
          Math.floor(max / 1000)
        }s`,
      };
    }
  }
  return undefined;
}

/** Replace `{namespace}` and `{serviceaccount}` in a policy pattern. */
export function expandPattern(pattern: string, namespace: string, serviceAccount: string): string {
  return pattern.replaceAll("{namespace}", namespace).replaceAll(
    "{serviceaccount}",
    serviceAccount,
  );
}

/**
 * Whether every subject `entry` matches is also matched by `pattern` (NATS wildcards: `*` one
 * token, `>` one or more trailing tokens). `a.>` covers `a.b.*`; `a.*` does not cover `a.>`.
 *
 * @example
 * ```ts
 * import { subjectCovers } from "./policy.ts";
 * console.assert(subjectCovers("team-a.>", "team-a.orders.*"));
 * console.assert(!subjectCovers("team-a.>", ">"));
 * ```
 */
export function subjectCovers(pattern: string, entry: string): boolean {
  const p = pattern.split(".");
  const e = entry.split(".");
  for (let i = 0; i < p.length; i++) {
    const pt = p[i]!;
    const et = e[i];
    if (pt === ">") return et !== undefined;
    if (et === undefined || et === ">") return false;
    if (pt === "*") continue;
    if (et === "*" || et !== pt) return false;
  }
  return e.length === p.length;
}

/**
 * Whether some subject is matched by both `a` and `b`. `>` overlaps everything; `a.*` overlaps
 * `*.b`; `$SYS.>` and `team-a.>` do not overlap.
 *
 * @example
 * ```ts
 * import { subjectsOverlap } from "./policy.ts";
 * console.assert(subjectsOverlap(">", "$SYS.>"));
 * console.assert(!subjectsOverlap("team-a.>", "$SYS.>"));
 * ```
 */
export function subjectsOverlap(a: string, b: string): boolean {
  const x = a.split(".");
  const y = b.split(".");
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const xt = x[i];
    const yt = y[i];
    if (xt === undefined || yt === undefined) return false;
    if (xt === ">" || yt === ">") return true;
    if (xt === "*" || yt === "*") continue;
    if (xt !== yt) return false;
  }
  return true;
}

/**
 * The publish subjects a {@linkcode JetStreamSettings} grants (stream and bucket names already
 * expanded). See {@linkcode JetStreamSettings} for what the shared-account preset allows and why.
 *
 * @example
 * ```ts
 * import { jetstreamSubjects } from "./policy.ts";
 * console.assert(jetstreamSubjects({ api: true }).includes("$JS.>"));
 * console.assert(jetstreamSubjects({ streams: ["ORDERS"] }).includes("$JS.ACK.ORDERS.>"));
 * ```
 */
export function jetstreamSubjects(js: JetStreamSettings): string[] {
  if (js.api) return ["$JS.>", "$KV.>", "$O.>"];
  const streams = [...(js.streams ?? []), ...(js.kv ?? []).map((b) => `KV_${b}`)];
  const out: string[] = streams.length > 0 ? ["$JS.API.INFO"] : [];
  for (const s of streams) {
    out.push(
      `$JS.API.STREAM.INFO.${s}`,
      `$JS.API.STREAM.MSG.GET.${s}`,
      `$JS.API.DIRECT.GET.${s}`,
      `$JS.API.DIRECT.GET.${s}.>`,
      `$JS.API.CONSUMER.CREATE.${s}`,
      `$JS.API.CONSUMER.CREATE.${s}.>`,
      `$JS.API.CONSUMER.DURABLE.CREATE.${s}.*`,
      `$JS.API.CONSUMER.INFO.${s}.*`,
      `$JS.API.CONSUMER.DELETE.${s}.*`,
      `$JS.API.CONSUMER.MSG.NEXT.${s}.*`,
      `$JS.API.CONSUMER.NAMES.${s}`,
      `$JS.API.CONSUMER.LIST.${s}`,
      `$JS.ACK.${s}.>`,
      `$JS.FC.${s}.>`,
    );
  }
  for (const b of js.kv ?? []) out.push(`$KV.${b}.>`);
  return out;
}

/**
 * Split an annotation value the way the reference does: on commas, each entry trimmed, empty
 * entries dropped.
 *
 * @example
 * ```ts
 * import { parseSubjectList } from "./policy.ts";
 * console.assert(parseSubjectList(" a.b, ,c ").join("|") === "a.b|c");
 * ```
 */
export function parseSubjectList(value: string): string[] {
  return value.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

/**
 * Whether an annotation entry names a subject NATS manages itself. Same rule as the reference: a
 * case-sensitive prefix match on `_INBOX` or `_REPLY`, so `_INBOX.>`, `_INBOX_x.>` and
 * `_REPLY.x` are all internal; `_inbox.x` is an ordinary subject.
 */
export function isInternalSubject(subject: string): boolean {
  return subject.startsWith("_INBOX") || subject.startsWith("_REPLY");
}

/**
 * Derive the permissions of one ServiceAccount. Annotation entries are appended to the defaults
 * in order, duplicates removed; `_INBOX`/`_REPLY` entries (and, under `inbox: private`, subscribe
 * entries led by `*` or `>`, which would read other workloads' private inboxes) go to
 * `filteredInternal`, invalid subjects to `invalid`, and neither is ever granted. One bad entry
 * never voids the others.
 *
 * @example
 * ```ts
 * import { permissionsFor } from "./policy.ts";
 * const { permissions, invalid } = permissionsFor(
 *   {
 *     namespace: "team-a",
 *     name: "api",
 *     uid: "u1",
 *     annotations: { "nats.io/allowed-pub-subjects": "shared.events, a..b" },
 *   },
 *   { annotationPrefix: "nats.io/" },
 * );
 * console.assert(permissions.pub.allow.join(",") === "team-a,team-a.>,shared.events");
 * console.assert(invalid[0] === "a..b");
 * ```
 */
export function permissionsFor(sa: ServiceAccountRecord, options: PolicyOptions): PolicyResult {
  const { annotationPrefix, responseTtlMs = 0, settings = {} } = options;
  if (!Number.isFinite(responseTtlMs) || responseTtlMs < 0) {
    throw new RangeError(`responseTtlMs must be a finite number >= 0, got ${responseTtlMs}`);
  }
  const expand = (patterns: readonly string[] | undefined) =>
    patterns?.map((p) => expandPattern(p, sa.namespace, sa.name));
  const bound: AnnotationBound = {
    allow: {
      pub: expand(settings.annotations?.allow?.pub),
      sub: expand(settings.annotations?.allow?.sub),
    },
    deny: expand(settings.annotations?.deny) ?? [],
  };

  // The defaults. `<ns>` itself next to `<ns>.>`: MQTT's `<ns>/#` is the NATS subscription `<ns>`
  // plus `<ns>.>`, and a client refused either half is refused the whole subscription.
  const own = [sa.namespace, `${sa.namespace}.>`];
  const jsSettings = settings.jetstream;
  const js = jsSettings
    ? jetstreamSubjects({
      ...(jsSettings.api ? { api: true } : {}),
      streams: expand(jsSettings.streams) ?? [],
      kv: expand(jsSettings.kv) ?? [],
    })
    : [];
  const pubDefaults = [...own, ...js];
  // The private inbox always; the shared `_INBOX.>` unless the policy withholds it.
  const privateInbox = `${inboxPrefix(sa.namespace, sa.name)}.>`;
  const subDefaults = settings.inbox === "private"
    ? [privateInbox, ...own]
    : ["_INBOX.>", privateInbox, ...own];

  // The annotations' entries after them, each granted or dropped with a reason.
  const entries = (annotation: string) =>
    parseSubjectList(sa.annotations[annotationPrefix + annotation] ?? "");
  const inboxIsPrivate = settings.inbox === "private";
  const pub = withAnnotationEntries(pubDefaults, entries(PUB_ANNOTATION), "pub", bound, false);
  const sub = withAnnotationEntries(
    subDefaults,
    entries(SUB_ANNOTATION),
    "sub",
    bound,
    inboxIsPrivate,
  );
  const dropped = [...pub.dropped, ...sub.dropped];

  // The policy's deny lists and response limit.
  const pubDeny = expand(settings.deny?.pub) ?? [];
  const subDeny = expand(settings.deny?.sub) ?? [];
  const resp = settings.response ?? { max: 1, ttlMs: responseTtlMs };

  return {
    permissions: {
      pub: pubDeny.length > 0 ? { allow: pub.allow, deny: pubDeny } : { allow: pub.allow },
      sub: subDeny.length > 0 ? { allow: sub.allow, deny: subDeny } : { allow: sub.allow },
      resp: { max: resp.max, ttlNs: Math.round(resp.ttlMs * 1e6) },
    },
    filteredInternal: entriesDroppedAs(dropped, "internal"),
    invalid: entriesDroppedAs(dropped, "invalid"),
    outsidePolicy: entriesDroppedAs(dropped, "outside_policy"),
    dropped,
  };
}

/** The policy's bound on annotation entries, its patterns expanded for one ServiceAccount. */
interface AnnotationBound {
  /** Per direction, the patterns one of which must cover an entry; `undefined`: no such bound. */
  readonly allow: {
    readonly pub: readonly string[] | undefined;
    readonly sub: readonly string[] | undefined;
  };
  /** Patterns no entry may overlap. */
  readonly deny: readonly string[];
}

/**
 * Append an annotation's entries to the defaults, in order and without duplicates, except those
 * dropped (returned with their reason, in order). `inboxIsPrivate`: the policy says
 * `inbox: private`, so no entry may reach another workload's private inbox.
 */
function withAnnotationEntries(
  defaults: readonly string[],
  entries: readonly string[],
  direction: "pub" | "sub",
  bound: AnnotationBound,
  inboxIsPrivate: boolean,
): { allow: string[]; dropped: DroppedEntry[] } {
  const allow = new Set(defaults);
  const dropped: DroppedEntry[] = [];
  for (const entry of entries) {
    const why = whyDropped(entry, direction, bound, inboxIsPrivate);
    if (why) dropped.push(why);
    else allow.add(entry);
  }
  return { allow: [...allow], dropped };
}

/**
 * Why one annotation entry is not granted, or `undefined` if it is: a NATS-managed subject, not a
 * valid subject (a subscribe entry may carry a queue group after one space), a subscription that
 * would read other workloads' private inboxes under `inbox: private`, or beyond the bound.
 */
function whyDropped(
  entry: string,
  direction: "pub" | "sub",
  bound: AnnotationBound,
  inboxIsPrivate: boolean,
): DroppedEntry | undefined {
  if (isInternalSubject(entry)) {
    return { annotation: direction, entry, reason: "internal", detail: "NATS-managed subject" };
  }
  const problem = direction === "sub" ? subscribeEntryProblem(entry) : subjectProblem(entry);
  if (problem !== undefined) {
    return { annotation: direction, entry, reason: "invalid", detail: `subject ${problem}` };
  }
  // The bound looks at the subject, not at a subscribe entry's queue group, and at everything
  // nats-server lets a client subscribe to under it.
  const named = direction === "sub" ? entry.split(" ")[0]! : entry;
  const subject = direction === "sub" ? subscribeReach(named) : named;
  if (direction === "sub" && inboxIsPrivate && coversPrivateInboxes(subject)) {
    return {
      annotation: direction,
      entry,
      reason: "internal",
      detail: "its leading wildcard covers other workloads' private inboxes _INBOX_<ns>_<sa'>.> " +
        "(inbox: private)",
    };
  }
  const outside = outsideBound(subject, direction, bound);
  if (outside === undefined) return undefined;
  const widened = subject === named ? "" : ` (nats-server lets ${named} subscribe to ${subject})`;
  return { annotation: direction, entry, reason: "outside_policy", detail: outside + widened };
}

/**
 * The widest subject a subscribe permission `subject` lets a client subscribe to. nats-server
 * checks a SUB by matching its subject against the allow list as if it were a literal subject, so
 * a `>` token is matched by a `*` in the same place: allow `x.*` accepts `SUB x.>`, and allow `*`
 * accepts `SUB >` (checked against nats-server 2.15.1, `tests/service/private_inbox_test.ts`).
 * `>` must be the last token, so only a last `*` widens: `x.*` reaches `x.>`, `x.*.y` stays.
 */
function subscribeReach(subject: string): string {
  return subject === "*" ? ">" : subject.endsWith(".*") ? `${subject.slice(0, -1)}>` : subject;
}

/**
 * Whether a subscribe reach ({@linkcode subscribeReach}) matches some private inbox
 * `_INBOX_<ns>_<sa'>.<token>…`. The `_INBOX`/`_REPLY` prefix rule already drops a literal first
 * token of that kind; `*` inside a token is no wildcard (and refused as invalid), so the rest of the
 * kind is a first token `*` or `>` (`>`, `*.>`, `*.*`, `*.x`, and `*` itself, which reaches `>`).
 */
function coversPrivateInboxes(subject: string): boolean {
  const first = subject.split(".")[0];
  return (first === "*" || first === ">") && subjectsOverlap(subject, "_INBOX_ns_sa.>");
}

/** Why `subject` is beyond the bound (overlaps a denied pattern, or no allowed one covers it). */
function outsideBound(
  subject: string,
  direction: "pub" | "sub",
  bound: AnnotationBound,
): string | undefined {
  const denied = bound.deny.find((p) => subjectsOverlap(subject, p));
  if (denied !== undefined) return `overlaps the denied pattern ${denied}`;
  const allowed = bound.allow[direction];
  if (allowed && !allowed.some((p) => subjectCovers(p, subject))) {
    return allowed.length === 0
      ? `the policy allows no ${direction} annotation entries`
      : `not within the allowed patterns ${allowed.join(", ")}`;
  }
  return undefined;
}

/** The entries dropped for `reason`, in order. */
function entriesDroppedAs(
  dropped: readonly DroppedEntry[],
  reason: DroppedEntry["reason"],
): string[] {
  return dropped.filter((d) => d.reason === reason).map((d) => d.entry);
}
