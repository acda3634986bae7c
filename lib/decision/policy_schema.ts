/**
 * What a policy file may hold: every key at every level, its type and its check, each with the
 * reader that turns its YAML node into the typed value of lib/decision/policy.ts or reports why
 * it cannot. docs/policy.md says what the fields mean to users; this module is the same list for
 * the parser, and lib/decision/policy_file.ts walks the file with it.
 *
 * ```
 * accounts:    <account>: { signingKeyFile }          readAccountFields
 * defaults:    <settings>                             readSettings
 * namespaces:  - names | glob | labels                readNames, readGlobs, readLabels
 *                <settings>
 *                serviceAccounts: <name>: <settings>
 * <settings>:  SETTINGS_FIELDS (account, annotations, deny, connectionTypes, maxTokenLifetime,
 *              response, jetstream, inbox, namespaceAccount)
 * ```
 *
 * Unknown keys are errors at every level, so a typo never silently widens a grant.
 *
 * @module
 */
import { isScalar, isSeq, type Node } from "yaml";
import { formatDuration, parseDuration } from "../core/duration.ts";
import { subjectProblem } from "../core/subjects.ts";
import {
  CONNECTION_TYPES,
  type ConnectionType,
  INBOX_MODES,
  type InboxMode,
  type JetStreamSettings,
  overlaySettings,
  type PolicySettings,
} from "./policy.ts";
import { itemOf, type MappingEntry, type YamlReader } from "./policy_yaml.ts";
import { readNamespaceAccount } from "./namespace_account.ts";

/** The keys of the file's top level, in the order messages list them. */
export const POLICY_KEYS: readonly string[] = ["accounts", "defaults", "namespaces"];

/**
 * The keys of a rule under `namespaces` that are not settings: which namespaces it is for
 * (`names`, `glob`, `labels`) and its per-ServiceAccount settings (`serviceAccounts`).
 */
export const RULE_KEYS: readonly string[] = ["names", "glob", "labels", "serviceAccounts"];

/** The keys of one entry under `accounts`. */
export interface AccountFields {
  /** Operator mode: the file holding the account's `SA…` seed (or one of its signing keys). */
  readonly signingKeyFile?: string;
}

/** Read the fields of `accounts.<name>`. Whether they fit the mode is the caller's check. */
export function readAccountFields(
  yaml: YamlReader,
  name: string,
  node: Node | null,
): AccountFields {
  return yaml.fields<Required<AccountFields>>(node, `accounts.${name}`, {
    signingKeyFile: (value, at) => yaml.string(value, at),
  })?.value ?? {};
}

/** `names`: exact namespace names (absent: none). */
export function readNames(yaml: YamlReader, node: Node | null | undefined, rule: string): string[] {
  return node === undefined ? [] : yaml.strings(node, `${rule}.names`) ?? [];
}

/** What a namespace glob may hold: a DNS label's characters and the wildcards `*` and `?`. */
const NAMESPACE_GLOB = /^[a-z0-9*?-]+$/;

/** `glob`: one namespace glob or a list of them (absent: none). */
export function readGlobs(yaml: YamlReader, node: Node | null | undefined, rule: string): string[] {
  if (node === undefined) return [];
  const at = `${rule}.glob`;
  const globs = isSeq(node)
    ? yaml.strings(node, at) ?? []
    : [yaml.string(node, at)].filter((g): g is string => g !== undefined);
  for (const glob of globs) {
    if (!NAMESPACE_GLOB.test(glob)) {
      yaml.problem(node, `${at}: "${glob}" may hold only a-z, 0-9, "-", "*" and "?"`);
    }
  }
  return globs;
}

/** A label key: optional DNS-subdomain prefix and `/`, then a name of up to 63 characters. */
const LABEL_KEY =
  /^(?:[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
/** A label value: empty, or up to 63 characters like a name. */
const LABEL_VALUE = /^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

/**
 * `labels`: Kubernetes label pairs that must all be on the Namespace (matchLabels); at least one,
 * every value a string. `undefined` when absent or not usable (the problem reported).
 */
export function readLabels(
  yaml: YamlReader,
  node: Node | null | undefined,
  rule: string,
): Readonly<Record<string, string>> | undefined {
  if (node === undefined) return undefined;
  const at = `${rule}.labels`;
  const pairs = yaml.mapping(node, at);
  if (pairs === undefined) return undefined;
  if (pairs.length === 0) {
    yaml.problem(node, `${at} must name at least one label`);
    return undefined;
  }
  const labels: Record<string, string> = {};
  let ok = true;
  for (const { key, value, keyNode } of pairs) {
    if (!LABEL_KEY.test(key)) {
      yaml.problem(keyNode, `${at}: "${key}" is not a Kubernetes label key`);
      ok = false;
    } else if (!isScalar(value) || typeof value.value !== "string") {
      yaml.problem(value ?? keyNode, `${at}.${key} must be a string (quote numbers and booleans)`);
      ok = false;
    } else if (!LABEL_VALUE.test(value.value)) {
      yaml.problem(value, `${at}.${key}: "${value.value}" is not a Kubernetes label value`);
      ok = false;
    } else labels[key] = value.value;
  }
  return ok ? Object.freeze(labels) : undefined;
}

/** What reading settings needs besides the entries: where problems go, and the accounts known. */
export interface SettingsContext {
  /** The file being read: every problem is reported to it, at the node it concerns. */
  readonly yaml: YamlReader;
  /** `NATS_ACCOUNT` and every account listed under `accounts`. */
  readonly accounts: ReadonlySet<string>;
  /** `NATS_ACCOUNT`, the shared account. */
  readonly defaultAccount: string;
  /**
   * Why `namespaceAccount` cannot be used with this configuration (not operator mode, no operator
   * signing key…), or `undefined` when it can. @default {undefined}
   */
  readonly namespaceAccountsUnavailable?: string;
}

/** One field of {@linkcode PolicySettings} as the file writes it. */
interface SettingsField {
  /** The key in the file. */
  readonly key: string;
  /** Read the value: the settings holding this field, or `{}` after reporting a problem. */
  readonly read: (value: Node | null, at: string, context: SettingsContext) => PolicySettings;
}

/**
 * Every setting a policy may give a namespace or a ServiceAccount, in the order messages list
 * them. A mapping of settings (`defaults`, a rule, a ServiceAccount entry) is read field by field
 * in the file's order.
 */
const SETTINGS_FIELDS: readonly SettingsField[] = [
  { key: "account", read: readAccount },
  { key: "annotations", read: readAnnotationBound },
  { key: "deny", read: readDeny },
  { key: "connectionTypes", read: readConnectionTypes },
  { key: "maxTokenLifetime", read: readMaxTokenLifetime },
  { key: "response", read: readResponse },
  { key: "jetstream", read: readJetStream },
  { key: "inbox", read: readInbox },
  { key: "namespaceAccount", read: readNamespaceAccountField },
];

/** Keys people write where settings are read, though they mean nothing there: why not. */
const MISPLACED_FIELDS: ReadonlyMap<string, string> = new Map([
  ["labels", "labels pick namespaces, so they belong only on a namespace rule"],
  [
    "selector",
    "selector is not supported; match namespaces by names, glob or labels " +
    "(labels: {key: value}, every pair must be on the Namespace)",
  ],
]);

/** What a mapping of settings inherits: the resolved settings of the levels above it. */
export interface InheritedSettings {
  /** `defaults`, then the rule over them ({@linkcode overlaySettings}); `{}` for `defaults`. */
  readonly settings: PolicySettings;
  /** Where the inherited `jetstream` is written (`defaults`, `namespaces[0]`), for messages. */
  readonly jetstreamFrom: string;
}

/**
 * Read the entries of a mapping of settings (`defaults`, a namespace rule, whose `otherKeys`,
 * {@linkcode RULE_KEYS}, are read by the caller, or a ServiceAccount's entry); then check what it
 * resolves to over `inherited` (the levels above it), the way a login resolves it.
 */
export function readSettings(
  context: SettingsContext,
  entries: readonly MappingEntry[],
  what: string,
  otherKeys: readonly string[],
  inherited: InheritedSettings,
): PolicySettings {
  const { yaml } = context;
  const settings: { -readonly [K in keyof PolicySettings]: PolicySettings[K] } = {};
  for (const { key, value, keyNode } of entries) {
    if (otherKeys.includes(key)) continue;
    const at = `${what}.${key}`;
    const field = SETTINGS_FIELDS.find((f) => f.key === key);
    const misplaced = MISPLACED_FIELDS.get(key);
    if (field) Object.assign(settings, field.read(value, at, context));
    else if (misplaced !== undefined) yaml.problem(keyNode, `${at}: ${misplaced}`);
    else {
      const expected = [...otherKeys, ...SETTINGS_FIELDS.map((f) => f.key)].join(", ");
      yaml.problem(keyNode, `${what}: unknown field "${key}" (expected ${expected})`);
    }
  }
  if (settings.account !== undefined && settings.namespaceAccount !== undefined) {
    yaml.problem(
      entries.find((e) => e.key === "namespaceAccount")?.keyNode,
      `${what}: set account or namespaceAccount, not both (where logins go is one choice)`,
    );
  }
  checkJetStreamApi(context, entries, what, settings, inherited);
  return Object.freeze(settings);
}

/**
 * The whole JetStream API (`jetstream.api`) never reaches the shared `NATS_ACCOUNT`: judged on
 * what this mapping resolves to over the levels above it, since `api` set on the defaults or a
 * rule is inherited by a rule or ServiceAccount entry that moves its logins to the shared account.
 * Reported where this mapping makes it so — its `jetstream`, else its `account` — and only when
 * it sets one of the three fields that decide it (otherwise it resolves as the level above, which
 * was judged there).
 */
function checkJetStreamApi(
  context: SettingsContext,
  entries: readonly MappingEntry[],
  what: string,
  settings: PolicySettings,
  inherited: InheritedSettings,
): void {
  if (
    settings.jetstream === undefined && settings.account === undefined &&
    settings.namespaceAccount === undefined
  ) return;
  const resolved = overlaySettings(inherited.settings, settings);
  const shared = resolved.namespaceAccount === undefined &&
    (resolved.account ?? context.defaultAccount) === context.defaultAccount;
  if (!resolved.jetstream?.api || !shared) return;
  const node = (key: string) => entries.find((e) => e.key === key)?.value;
  if (settings.jetstream !== undefined) {
    context.yaml.problem(
      node("jetstream"),
      `${what}.jetstream.api: the whole JetStream API is only for a namespace in an account of ` +
        "its own (set account); in the shared account use streams/kv",
    );
    return;
  }
  context.yaml.problem(
    node("account") ?? node("namespaceAccount"),
    `${what}.account: places these logins in the shared account, but they inherit the whole ` +
      `JetStream API from ${inherited.jetstreamFrom}.jetstream.api; set jetstream here ` +
      "(streams/kv, without api) or keep them in an account of their own",
  );
}

/** `account`: a name (or key) listed under `accounts`, or `NATS_ACCOUNT`. */
function readAccount(value: Node | null, at: string, context: SettingsContext): PolicySettings {
  const account = context.yaml.string(value, at);
  if (account === undefined) return {};
  if (!context.accounts.has(account)) {
    context.yaml.problem(
      value,
      `${at}: unknown account "${account}"; list it under accounts (or use NATS_ACCOUNT)`,
    );
    return {};
  }
  return { account };
}

/**
 * `namespaceAccount`: an account of its own per namespace (lib/decision/namespace_account.ts).
 * Not per ServiceAccount, and only where the configuration can provision accounts.
 */
function readNamespaceAccountField(
  value: Node | null,
  at: string,
  context: SettingsContext,
): PolicySettings {
  const { yaml } = context;
  if (at.includes(".serviceAccounts.")) {
    yaml.problem(value, `${at}: an account belongs to a namespace; set it on the namespace rule`);
    return {};
  }
  if (context.namespaceAccountsUnavailable !== undefined) {
    yaml.problem(value, `${at}: ${context.namespaceAccountsUnavailable}`);
    return {};
  }
  const namespaceAccount = readNamespaceAccount(yaml, value, at);
  return namespaceAccount ? { namespaceAccount } : {};
}

/** `annotations`: the bound on annotation grants, `allow` (`pub`/`sub` patterns) and `deny`. */
function readAnnotationBound(
  value: Node | null,
  at: string,
  { yaml }: SettingsContext,
): PolicySettings {
  const bound = yaml.fields<Required<NonNullable<PolicySettings["annotations"]>>>(value, at, {
    allow: (node, at) => readDirections(yaml, node, at),
    deny: (node, at) => readSubjects(yaml, node, at),
  });
  return { annotations: bound?.value ?? {} };
}

/** `deny`: subjects denied in the user JWT, per direction (`pub`, `sub`). */
function readDeny(value: Node | null, at: string, { yaml }: SettingsContext): PolicySettings {
  const deny = readDirections(yaml, value, at);
  return deny ? { deny } : {};
}

/** `connectionTypes`: a list of {@linkcode CONNECTION_TYPES}. */
function readConnectionTypes(
  value: Node | null,
  at: string,
  { yaml }: SettingsContext,
): PolicySettings {
  const list = yaml.strings(value, at);
  if (!list) return {};
  const bad = list.findIndex((t) => !(CONNECTION_TYPES as readonly string[]).includes(t));
  if (bad >= 0) {
    yaml.problem(
      itemOf(value, bad),
      `${at}: "${list[bad]}" is not one of ${CONNECTION_TYPES.join(", ")}`,
    );
    return {};
  }
  return { connectionTypes: list as ConnectionType[] };
}

/** `maxTokenLifetime`: a duration of at least one second. */
function readMaxTokenLifetime(
  value: Node | null,
  at: string,
  { yaml }: SettingsContext,
): PolicySettings {
  const ms = readDuration(yaml, value, at, 1000);
  return ms === undefined ? {} : { maxTokenLifetimeMs: ms };
}

/** `response`: `max` replies (an integer ≥ 1, default 1) within `ttl` (a duration, 0: no limit). */
function readResponse(value: Node | null, at: string, { yaml }: SettingsContext): PolicySettings {
  const read = yaml.fields<{ max: number; ttl: number }>(value, at, {
    max: (node, at) => readPositiveInteger(yaml, node, at),
    ttl: (node, at) => readDuration(yaml, node, at, 0),
  });
  if (read && !read.complete) return {};
  return { response: { max: read?.value.max ?? 1, ttlMs: read?.value.ttl ?? 0 } };
}

/**
 * `jetstream`: `api` (a boolean; only where the account is not the shared `NATS_ACCOUNT`, which
 * {@linkcode readSettings} checks on what the mapping resolves to), or the shared-account
 * preset's `streams` and `kv` (stream and bucket names).
 */
function readJetStream(value: Node | null, at: string, { yaml }: SettingsContext): PolicySettings {
  const js = yaml.fields<Required<JetStreamSettings>>(value, at, {
    api: (node, at) => readBoolean(yaml, node, at),
    streams: (node, at) => readStreamNames(yaml, node, at),
    kv: (node, at) => readStreamNames(yaml, node, at),
  })?.value ?? {};
  return { jetstream: js };
}

/** `inbox`: `shared` (`_INBOX.>` granted, the default) or `private` (withheld). */
function readInbox(value: Node | null, at: string, { yaml }: SettingsContext): PolicySettings {
  const mode = isScalar(value) ? value.value : undefined;
  if (typeof mode === "string" && (INBOX_MODES as readonly string[]).includes(mode)) {
    return { inbox: mode as InboxMode };
  }
  yaml.problem(
    value,
    `${at} must be ${INBOX_MODES.map((m) => `"${m}"`).join(" or ")} ` +
      "(private withholds _INBOX.>; clients then set their inbox prefix to _INBOX_<ns>_<sa'>)",
  );
  return {};
}

/** `pub` and `sub` lists of subject patterns. `undefined` if `node` is no mapping. */
function readDirections(
  yaml: YamlReader,
  node: Node | null,
  at: string,
): { pub?: string[]; sub?: string[] } | undefined {
  return yaml.fields<{ pub: string[]; sub: string[] }>(node, at, {
    pub: (value, at) => readSubjects(yaml, value, at),
    sub: (value, at) => readSubjects(yaml, value, at),
  })?.value;
}

/** A list of subject patterns, valid once `{namespace}` and `{serviceaccount}` are filled in. */
function readSubjects(yaml: YamlReader, node: Node | null, what: string): string[] | undefined {
  const list = yaml.strings(node, what);
  if (!list) return undefined;
  let ok = true;
  list.forEach((pattern, i) => {
    const bad = subjectProblem(expandForCheck(pattern));
    if (bad) {
      yaml.problem(itemOf(node, i), `${what}: "${pattern}" ${bad}`);
      ok = false;
    }
  });
  return ok ? list : undefined;
}

/** What a stream or bucket name may not hold: `.`, `*`, `>`, whitespace, `/`, `\`. */
const STREAM_NAME = /^[^.*>\s/\\]+$/;

/** A list of stream (or KV bucket) names, valid once the placeholders are filled in. */
function readStreamNames(yaml: YamlReader, node: Node | null, what: string): string[] | undefined {
  const list = yaml.strings(node, what);
  if (!list) return undefined;
  const bad = list.findIndex((s) => !STREAM_NAME.test(expandForCheck(s)));
  if (bad >= 0) {
    yaml.problem(
      itemOf(node, bad),
      `${what}: "${list[bad]}" is not a stream/bucket name (no ".", "*", ">", spaces)`,
    );
    return undefined;
  }
  return list;
}

/** A Go duration (`"90s"`, `"1h"`, or the number 0) of at least `minMs`, in milliseconds. */
function readDuration(
  yaml: YamlReader,
  node: Node | null,
  what: string,
  minMs: number,
): number | undefined {
  const raw = isScalar(node) ? node.value : undefined;
  if (typeof raw !== "string" && raw !== 0) {
    yaml.problem(node, `${what} must be a duration such as "1h" or "90s"`);
    return undefined;
  }
  try {
    const ms = raw === 0 ? 0 : parseDuration(raw as string);
    if (ms < minMs) {
      yaml.problem(node, `${what} must be at least ${formatDuration(minMs)}`);
      return undefined;
    }
    return ms;
  } catch (err) {
    yaml.problem(node, `${what}: ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  }
}

/** `true` or `false`. */
function readBoolean(yaml: YamlReader, node: Node | null, what: string): boolean | undefined {
  const value = isScalar(node) ? node.value : undefined;
  if (typeof value === "boolean") return value;
  yaml.problem(node, `${what} must be true or false`);
  return undefined;
}

/** An integer ≥ 1. */
function readPositiveInteger(
  yaml: YamlReader,
  node: Node | null,
  what: string,
): number | undefined {
  const value = isScalar(node) ? node.value : undefined;
  if (typeof value === "number" && Number.isInteger(value) && value >= 1) return value;
  yaml.problem(node, `${what} must be an integer >= 1`);
  return undefined;
}

/** A pattern with its placeholders filled by sample values, for syntax checks. */
function expandForCheck(pattern: string): string {
  return pattern.replaceAll("{namespace}", "ns").replaceAll("{serviceaccount}", "sa");
}
