/**
 * The cluster policy file (`POLICY_FILE`): YAML owned by the platform team, usually mounted from a
 * ConfigMap, read at start and followed while the service runs (same watching as
 * `SERVICEACCOUNTS_FILE`, lib/core/file_watch.ts). At start every problem is reported at once with its
 * `file:line:column` and the service does not start; a bad edit later is logged the same way and
 * the last good policy stays in force. See docs/policy.md for the format and a commented example.
 *
 * Checks made here, so no login ever meets them: every `account` is `NATS_ACCOUNT` or listed under
 * `accounts`; in operator mode (`NATS_ACCOUNT` is an `A…` key) every listed account is a valid
 * public key with a readable `signingKeyFile` holding an `SA…` seed; subject patterns are valid
 * once `{namespace}`/`{serviceaccount}` are filled in; `jetstream.api` only where the account is
 * not the shared `NATS_ACCOUNT`, judged on what each rule and ServiceAccount entry resolves to
 * (an `api` inherited into the shared account is refused like one written there); unknown fields are errors (a typo never silently widens a grant).
 *
 * @module
 */
import { isMap, isScalar, isSeq, type Node } from "yaml";
import { extractSeed } from "../config/config.ts";
import { type FileWatch, watchFile } from "../core/file_watch.ts";
import type { Logger } from "../telemetry/log.ts";
import { decodeNkeySeed, isPublicNkey } from "../callout/nkey_jwt.ts";
import {
  type ClusterPolicy,
  type NamespaceRule,
  overlaySettings,
  type PolicySettings,
} from "./policy.ts";
import {
  type InheritedSettings,
  POLICY_KEYS,
  readAccountFields,
  readGlobs,
  readLabels,
  readNames,
  readSettings,
  RULE_KEYS,
  type SettingsContext,
} from "./policy_schema.ts";
import { type Position, YamlReader } from "./policy_yaml.ts";
import type { ServiceMetrics } from "../telemetry/service_metrics.ts";

/** A policy file that cannot be used: every problem, each starting with `path:line:column:`. */
export class PolicyFileError extends Error {
  /** One line per problem. */
  readonly problems: readonly string[];

  /** Create an error listing `problems`. */
  constructor(problems: readonly string[], options?: ErrorOptions) {
    super(
      problems.length === 1
        ? problems[0]!
        : `${problems.length} problems in the policy file:\n  ${problems.join("\n  ")}`,
      options,
    );
    this.name = "PolicyFileError";
    this.problems = problems;
  }
}

/** A loaded policy: the decision's part and the signing seeds of the accounts it names. */
export interface LoadedPolicy {
  /** What the decision reads; contains no secret. */
  readonly policy: ClusterPolicy;
  /** Account (as written under `accounts`) → `SA…` seed that signs its user JWTs (operator mode). */
  readonly accountSeeds: ReadonlyMap<string, string>;
}

/** Options of {@linkcode parsePolicy}. */
export interface PolicyParseOptions {
  /** The file name, for error positions and rule sources. */
  path: string;
  /** `NATS_ACCOUNT`: the default account; an `A…` key means operator mode. */
  defaultAccount: string;
  /** Reads `signingKeyFile`s. @default {Deno.readTextFileSync} */
  readTextFile?: (path: string) => string;
  /**
   * Why this configuration cannot provision accounts (`namespaceAccount` is then a problem), or
   * `undefined` when it can. @default {"namespaceAccount needs operator mode and NATS_OPERATOR_SIGNING_KEY_FILE"}
   */
  namespaceAccountsUnavailable?: string | undefined;
}

/** Why `namespaceAccount` is refused when the caller does not say it can be used. */
const NO_PROVISIONING = "namespaceAccount needs operator mode (NATS_ACCOUNT an A... key), " +
  "NATS_OPERATOR_SIGNING_KEY_FILE, NATS_ACCOUNTS_SEED_FILE and NATS_SYSTEM_* credentials";

/**
 * Parse the text of a policy file. Pure apart from reading the `signingKeyFile`s through
 * `readTextFile`. Throws {@linkcode PolicyFileError} listing every problem found.
 *
 * The steps, each reporting its problems and going on, so one run names them all: the YAML (a
 * syntax error stops here), the top level, the accounts and their signing keys, the defaults,
 * each namespace rule. The fields of each level and their checks are lib/decision/policy_schema.ts.
 *
 * @example
 * ```ts
 * import { parsePolicy } from "./policy_file.ts";
 * const { policy } = parsePolicy(
 *   "namespaces:\n  - glob: team-*\n    connectionTypes: [STANDARD]\n",
 *   { path: "policy.yaml", defaultAccount: "APP" },
 * );
 * console.assert(policy.namespaces[0]?.globs[0] === "team-*");
 * ```
 */
export function parsePolicy(text: string, options: PolicyParseOptions): LoadedPolicy {
  const { path, defaultAccount } = options;
  const yaml = new YamlReader(text, path);
  if (yaml.problems.length > 0) throw new PolicyFileError([...yaml.problems]);
  if (isEmptyDocument(yaml.root)) {
    // An emptied ConfigMap must not silently drop every bound: it is a bad edit like any other.
    throw new PolicyFileError([
      `${path}: the policy is empty; a policy file must set accounts, defaults or namespaces ` +
      "(to run without a policy, unset POLICY_FILE)",
    ]);
  }
  const top = readTopLevel(yaml);
  const { accounts, accountSeeds } = readAccounts(yaml, top.accounts, options);
  const context: SettingsContext = {
    yaml,
    accounts,
    defaultAccount,
    ...("namespaceAccountsUnavailable" in options
      ? options.namespaceAccountsUnavailable !== undefined
        ? { namespaceAccountsUnavailable: options.namespaceAccountsUnavailable }
        : {}
      : { namespaceAccountsUnavailable: NO_PROVISIONING }),
  };
  const defaults = readSettings(
    context,
    yaml.mapping(top.defaults, "defaults") ?? [],
    "defaults",
    [],
    { settings: {}, jetstreamFrom: "defaults" },
  );
  const namespaces = readNamespaceRules(context, top.namespaces, defaults);
  if (yaml.problems.length > 0) throw new PolicyFileError([...yaml.problems]);
  return {
    policy: Object.freeze({ defaults, namespaces: Object.freeze(namespaces) }),
    accountSeeds,
  };
}

/** Whether a document says nothing: no content, a bare `null`, or `{}`. */
function isEmptyDocument(root: unknown): boolean {
  return root === null || root === undefined || (isScalar(root) && root.value === null) ||
    (isMap(root) && root.items.length === 0);
}

/** The nodes of the top-level keys ({@linkcode POLICY_KEYS}); any other key is reported. */
function readTopLevel(
  yaml: YamlReader,
): { accounts: Node | null; defaults: Node | null; namespaces: Node | null } {
  const entries = yaml.mapping(yaml.root, "the policy") ?? [];
  for (const { key, keyNode } of entries) {
    if (!POLICY_KEYS.includes(key)) {
      yaml.problem(keyNode, `unknown field "${key}" (expected ${POLICY_KEYS.join(", ")})`);
    }
  }
  const node = (key: string) => entries.find((e) => e.key === key)?.value ?? null;
  return { accounts: node("accounts"), defaults: node("defaults"), namespaces: node("namespaces") };
}

/**
 * `accounts`: the accounts a rule may name (always `NATS_ACCOUNT` too) and, in operator mode
 * (`NATS_ACCOUNT` is an `A…` key), the signing seed of each, read from its `signingKeyFile`.
 */
function readAccounts(
  yaml: YamlReader,
  node: Node | null,
  options: PolicyParseOptions,
): { accounts: ReadonlySet<string>; accountSeeds: ReadonlyMap<string, string> } {
  const operatorMode = isPublicNkey(options.defaultAccount, "A");
  const accounts = new Set<string>([options.defaultAccount]);
  const accountSeeds = new Map<string, string>();
  for (const { key: name, value, keyNode } of yaml.mapping(node, "accounts") ?? []) {
    accounts.add(name);
    const { signingKeyFile } = readAccountFields(yaml, name, value);
    const account = { yaml, name, keyNode, signingKeyFile };
    if (!operatorMode) {
      checkConfigModeAccount(account);
      continue;
    }
    const seed = operatorModeSeed(account, options);
    if (seed !== undefined) accountSeeds.set(name, seed);
  }
  return { accounts, accountSeeds };
}

/** One entry under `accounts`, as the mode checks see it. */
interface AccountEntry {
  readonly yaml: YamlReader;
  readonly name: string;
  readonly keyNode: unknown;
  readonly signingKeyFile: string | undefined;
}

/** Config mode: accounts are names, and every user JWT is signed by the callout's own key. */
function checkConfigModeAccount({ yaml, name, keyNode, signingKeyFile }: AccountEntry): void {
  if (/^A[A-Z2-7]{55}$/.test(name)) {
    yaml.problem(
      keyNode,
      `accounts.${name}: looks like an account public key, but NATS_ACCOUNT is a name ` +
        "(config mode); list accounts by name",
    );
  }
  if (signingKeyFile !== undefined) {
    yaml.problem(
      keyNode,
      `accounts.${name}: signingKeyFile is for operator mode; in config mode every user ` +
        "JWT is signed by NATS_SIGNING_KEY_FILE (the auth_callout issuer)",
    );
  }
}

/**
 * Operator mode: the account is a public key and its `signingKeyFile` holds an `SA…` seed, which
 * is returned (`NATS_ACCOUNT` itself may leave the file out: the callout's key signs for it).
 */
function operatorModeSeed(
  { yaml, name, keyNode, signingKeyFile }: AccountEntry,
  options: PolicyParseOptions,
): string | undefined {
  if (!isPublicNkey(name, "A")) {
    yaml.problem(keyNode, `accounts.${name}: in operator mode accounts are public keys (A...)`);
    return undefined;
  }
  if (signingKeyFile === undefined) {
    if (name === options.defaultAccount) return undefined;
    yaml.problem(
      keyNode,
      `accounts.${name}: signingKeyFile is required in operator mode (the account's seed or ` +
        "one of its signing keys)",
    );
    return undefined;
  }
  const readTextFile = options.readTextFile ?? ((p: string) => Deno.readTextFileSync(p));
  let seedText: string;
  try {
    seedText = readTextFile(signingKeyFile);
  } catch (err) {
    yaml.problem(
      keyNode,
      `accounts.${name}: cannot read signingKeyFile "${signingKeyFile}": ${
        err instanceof Error ? err.message : String(err)
      }`,
    );
    return undefined;
  }
  const seed = extractSeed(seedText);
  if (!seed || accountSeedRole(seed) !== "A") {
    yaml.problem(
      keyNode,
      `accounts.${name}: signingKeyFile "${signingKeyFile}" does not hold an SA... seed`,
    );
    return undefined;
  }
  return seed;
}

/** The role letter of an nkey seed (`A` for an account), or `undefined` if it is no seed. */
function accountSeedRole(seed: string): string | undefined {
  try {
    return decodeNkeySeed(seed).role;
  } catch {
    return undefined;
  }
}

/** `namespaces`: the rules in file order. */
function readNamespaceRules(
  context: SettingsContext,
  node: Node | null,
  defaults: PolicySettings,
): NamespaceRule[] {
  if (node !== null && !isSeq(node)) {
    context.yaml.problem(node, "namespaces must be a list of rules");
    return [];
  }
  const rules: NamespaceRule[] = [];
  for (const [i, item] of (node?.items ?? []).entries()) {
    const rule = readNamespaceRule(context, item as Node | null, `namespaces[${i}]`, defaults);
    if (rule) rules.push(rule);
  }
  return rules;
}

/**
 * One rule: which namespaces it is for (`names`, `glob`, `labels`; at least one), its settings
 * over the defaults, and its per-ServiceAccount settings over its own. `undefined` if the rule is
 * no mapping.
 */
function readNamespaceRule(
  context: SettingsContext,
  node: Node | null,
  what: string,
  defaults: PolicySettings,
): NamespaceRule | undefined {
  const { yaml } = context;
  const entries = yaml.mapping(node, what);
  if (!entries) return undefined;
  const field = (key: string) => entries.find((e) => e.key === key)?.value;
  const names = readNames(yaml, field("names"), what);
  const globs = readGlobs(yaml, field("glob"), what);
  const labels = readLabels(yaml, field("labels"), what);
  if (
    field("names") === undefined && field("glob") === undefined && field("labels") === undefined
  ) {
    yaml.problem(node, `${what}: needs names, glob or labels to say which namespaces it is for`);
  }
  const settings = readSettings(context, entries, what, RULE_KEYS, {
    settings: defaults,
    jetstreamFrom: "defaults",
  });
  const serviceAccounts = readServiceAccounts(
    context,
    field("serviceAccounts") ?? null,
    `${what}.serviceAccounts`,
    {
      settings: overlaySettings(defaults, settings),
      jetstreamFrom: settings.jetstream !== undefined ? what : "defaults",
    },
  );
  return Object.freeze({
    source: ruleSource(yaml.path, yaml.positionOf(node), names, globs, labels),
    names,
    globs,
    ...(labels ? { labels } : {}),
    settings,
    serviceAccounts,
  });
}

/** A rule's `serviceAccounts`: ServiceAccount name → its settings, over the rule's resolved ones. */
function readServiceAccounts(
  context: SettingsContext,
  node: Node | null,
  what: string,
  rule: InheritedSettings,
): Map<string, PolicySettings> {
  const serviceAccounts = new Map<string, PolicySettings>();
  const { yaml } = context;
  for (const { key: name, value } of yaml.mapping(node, what) ?? []) {
    const at = `${what}.${name}`;
    serviceAccounts.set(name, readSettings(context, yaml.mapping(value, at) ?? [], at, [], rule));
  }
  return serviceAccounts;
}

/** Where a rule is written and what it matches, for explain and logs: `policy.yaml:12 (team-*)`. */
function ruleSource(
  path: string,
  position: Position | undefined,
  names: readonly string[],
  globs: readonly string[],
  labels: Readonly<Record<string, string>> | undefined,
): string {
  const label = [
    ...names,
    ...globs,
    ...Object.entries(labels ?? {}).map(([k, v]) => `${k}=${v}`),
  ].join(", ");
  return `${path}:${position?.line ?? 0} (${label})`;
}

/** Options of {@linkcode startPolicyFile}. */
export interface PolicyFileOptions extends PolicyParseOptions {
  /** Receives `policy_file_loaded`, and `policy_file_invalid`/`_unreadable` when a reload fails. */
  logger: Logger;
  /** `policy_file_reloads_total{result}` counts every reload after the first. */
  metrics: ServiceMetrics;
  /** Wait this long after the last file event before reloading. @default {100} */
  debounceMs?: number;
  /** Also re-read this often. @default {30000} */
  pollIntervalMs?: number;
}

/** The live policy: always the last good one. */
export interface PolicySource extends AsyncDisposable {
  /** The policy in force now. */
  readonly current: LoadedPolicy;
  /** Stop following the file (after a read in progress); `current` stays the last good policy. */
  close(): Promise<void>;
}

/**
 * Load the policy file now (throws {@linkcode PolicyFileError} naming every problem, so the
 * service does not start on a bad policy), then follow its changes: a good edit replaces the
 * policy for the next login, a bad one is logged (`policy_file_invalid`, with the problems and
 * their `file:line:column`) and the last good policy stays.
 *
 * @example
 * ```ts ignore
 * import { startPolicyFile } from "./policy_file.ts";
 * await using source = startPolicyFile({ path: "policy.yaml", defaultAccount: "APP", logger, metrics });
 * source.current.policy;
 * ```
 */
export function startPolicyFile(options: PolicyFileOptions): PolicySource {
  const { path, logger, metrics } = options;
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (err) {
    const why = err instanceof Deno.errors.NotFound ? "file not found" : `cannot read: ${err}`;
    throw new PolicyFileError([`${path}: ${why}`], { cause: err });
  }
  let current = parsePolicy(text, options);
  const summary = (p: LoadedPolicy) => ({
    path,
    namespace_rules: p.policy.namespaces.length,
    accounts: p.accountSeeds.size,
  });
  logger.info("policy_file_loaded", summary(current));
  let lastText = text;
  const watch: FileWatch = watchFile(path, {
    onText: (next) => {
      if (next === lastText) return;
      lastText = next;
      try {
        current = parsePolicy(next, options);
      } catch (err) {
        metrics.policyReloads.inc({ result: "error" });
        logger.error("policy_file_invalid", {
          path,
          problems: err instanceof PolicyFileError ? err.problems : [String(err)],
          kept: "last good policy",
        });
        return;
      }
      metrics.policyReloads.inc({ result: "ok" });
      logger.info("policy_file_loaded", summary(current));
    },
    onReadError: (problem) => {
      lastText = "";
      metrics.policyReloads.inc({ result: "error" });
      logger.error("policy_file_unreadable", { path, error: problem, kept: "last good policy" });
    },
    onWatchError: (error) => logger.warn("policy_file_watch_failed", { path, error }),
    ...(options.debounceMs !== undefined ? { debounceMs: options.debounceMs } : {}),
    ...(options.pollIntervalMs !== undefined ? { pollIntervalMs: options.pollIntervalMs } : {}),
  });
  return {
    get current() {
      return current;
    },
    close: () => watch.close(),
    [Symbol.asyncDispose]: () => watch.close(),
  };
}
