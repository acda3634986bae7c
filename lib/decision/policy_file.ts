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
 * not the shared `NATS_ACCOUNT`; unknown fields are errors (a typo never silently widens a grant).
 *
 * @module
 */
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from "yaml";
import { extractSeed } from "../config/config.ts";
import { formatDuration, parseDuration } from "../core/duration.ts";
import { type FileWatch, watchFile } from "../core/file_watch.ts";
import type { Logger } from "../telemetry/log.ts";
import { decodeNkeySeed, isPublicNkey } from "../callout/nkey_jwt.ts";
import {
  type ClusterPolicy,
  CONNECTION_TYPES,
  type ConnectionType,
  type JetStreamSettings,
  type NamespaceRule,
  type PolicySettings,
} from "./policy.ts";
import type { ServiceMetrics } from "../telemetry/service_metrics.ts";
import { subjectProblem } from "../core/subjects.ts";

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
}

const SETTINGS_KEYS = [
  "account",
  "annotations",
  "deny",
  "connectionTypes",
  "maxTokenLifetime",
  "response",
  "jetstream",
];
const STREAM_NAME = /^[^.*>\s/\\]+$/;
/** A label key: optional DNS-subdomain prefix and `/`, then a name of up to 63 characters. */
const LABEL_KEY =
  /^(?:[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
/** A label value: empty, or up to 63 characters like a name. */
const LABEL_VALUE = /^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

type Pos = { line: number; col: number };

/**
 * Parse the text of a policy file. Pure apart from reading the `signingKeyFile`s through
 * `readTextFile`. Throws {@linkcode PolicyFileError} listing every problem found.
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
  const readTextFile = options.readTextFile ?? ((p: string) => Deno.readTextFileSync(p));
  const operatorMode = isPublicNkey(defaultAccount, "A");
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true });
  const problems: string[] = [];
  const posOf = (node: unknown): Pos | undefined => {
    const offset = (node as { range?: [number, number, number] } | undefined)?.range?.[0];
    return offset === undefined ? undefined : lines.linePos(offset);
  };
  const where = (node: unknown): string => {
    const p = posOf(node);
    return p ? `${path}:${p.line}:${p.col}` : path;
  };
  const problem = (node: unknown, message: string): void => {
    problems.push(`${where(node)}: ${message}`);
  };

  for (const err of [...doc.errors, ...doc.warnings]) {
    const p = err.linePos?.[0];
    const first = err.message.split("\n", 1)[0]!.replace(/ at line \d+, column \d+:?$/, "");
    problems.push(`${p ? `${path}:${p.line}:${p.col}` : path}: ${first}`);
  }
  if (problems.length > 0) throw new PolicyFileError(problems);

  // Small typed readers over yaml nodes; each reports its own problem and returns undefined.
  const mapEntries = (
    node: unknown,
    what: string,
  ): [string, Node | null, unknown][] | undefined => {
    if (node === null || node === undefined) return [];
    if (!isMap(node)) {
      problem(node, `${what} must be a mapping`);
      return undefined;
    }
    const out: [string, Node | null, unknown][] = [];
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? pair.key.value : undefined;
      if (typeof key !== "string") {
        problem(pair.key, `${what}: keys must be strings`);
        continue;
      }
      out.push([key, (pair.value as Node | null) ?? null, pair.key]);
    }
    return out;
  };
  const str = (node: Node | null, what: string): string | undefined => {
    if (isScalar(node) && typeof node.value === "string" && node.value !== "") return node.value;
    problem(node, `${what} must be a non-empty string`);
    return undefined;
  };
  const strList = (node: Node | null, what: string): string[] | undefined => {
    if (!isSeq(node)) {
      problem(node, `${what} must be a list of strings`);
      return undefined;
    }
    const out: string[] = [];
    let ok = true;
    for (const item of node.items) {
      const v = str(item as Node | null, `${what} entries`);
      if (v === undefined) ok = false;
      else out.push(v);
    }
    return ok ? out : undefined;
  };
  const subjectList = (node: Node | null, what: string): string[] | undefined => {
    const list = strList(node, what);
    if (!list || !isSeq(node)) return undefined;
    let ok = true;
    list.forEach((pattern, i) => {
      const bad = subjectProblem(expandForCheck(pattern));
      if (bad) {
        problem(node.items[i], `${what}: "${pattern}" ${bad}`);
        ok = false;
      }
    });
    return ok ? list : undefined;
  };
  const direction = (node: Node | null, what: string) => {
    const entries = mapEntries(node, what);
    if (!entries) return undefined;
    const out: { pub?: string[]; sub?: string[] } = {};
    for (const [key, value, keyNode] of entries) {
      if (key !== "pub" && key !== "sub") {
        problem(keyNode, `${what}: unknown field "${key}" (expected pub, sub)`);
        continue;
      }
      const list = subjectList(value, `${what}.${key}`);
      if (list) out[key] = list;
    }
    return out;
  };
  const duration = (node: Node | null, what: string, min: number): number | undefined => {
    const raw = isScalar(node) ? node.value : undefined;
    if (typeof raw !== "string" && raw !== 0) {
      problem(node, `${what} must be a duration such as "1h" or "90s"`);
      return undefined;
    }
    try {
      const ms = raw === 0 ? 0 : parseDuration(raw as string);
      if (ms < min) {
        problem(node, `${what} must be at least ${formatDuration(min)}`);
        return undefined;
      }
      return ms;
    } catch (err) {
      problem(node, `${what}: ${err instanceof Error ? err.message : String(err)}`);
      return undefined;
    }
  };

  // accounts
  const root = doc.contents;
  if (
    root === null || root === undefined || (isScalar(root) && root.value === null) ||
    (isMap(root) && root.items.length === 0)
  ) {
    // An emptied ConfigMap must not silently drop every bound: it is a bad edit like any other.
    throw new PolicyFileError([
      `${path}: the policy is empty; a policy file must set accounts, defaults or namespaces ` +
      "(to run without a policy, unset POLICY_FILE)",
    ]);
  }
  const accountSeeds = new Map<string, string>();
  const accounts = new Set<string>([defaultAccount]);
  const rootEntries = mapEntries(root, "the policy") ?? [];
  const field = (name: string) => rootEntries.find(([k]) => k === name);
  for (const [key, , keyNode] of rootEntries) {
    if (!["accounts", "defaults", "namespaces"].includes(key)) {
      problem(keyNode, `unknown field "${key}" (expected accounts, defaults, namespaces)`);
    }
  }
  for (const [name, value, keyNode] of mapEntries(field("accounts")?.[1], "accounts") ?? []) {
    accounts.add(name);
    const entries = mapEntries(value, `accounts.${name}`) ?? [];
    let seedFile: string | undefined;
    for (const [key, v, k] of entries) {
      if (key === "signingKeyFile") seedFile = str(v, `accounts.${name}.signingKeyFile`);
      else problem(k, `accounts.${name}: unknown field "${key}" (expected signingKeyFile)`);
    }
    if (!operatorMode) {
      if (/^A[A-Z2-7]{55}$/.test(name)) {
        problem(
          keyNode,
          `accounts.${name}: looks like an account public key, but NATS_ACCOUNT is a name ` +
            "(config mode); list accounts by name",
        );
      }
      if (seedFile !== undefined) {
        problem(
          keyNode,
          `accounts.${name}: signingKeyFile is for operator mode; in config mode every user ` +
            "JWT is signed by NATS_SIGNING_KEY_FILE (the auth_callout issuer)",
        );
      }
      continue;
    }
    if (!isPublicNkey(name, "A")) {
      problem(keyNode, `accounts.${name}: in operator mode accounts are public keys (A...)`);
      continue;
    }
    if (name === defaultAccount && seedFile === undefined) continue;
    if (seedFile === undefined) {
      problem(
        keyNode,
        `accounts.${name}: signingKeyFile is required in operator mode (the account's seed or ` +
          "one of its signing keys)",
      );
      continue;
    }
    let seedText: string;
    try {
      seedText = readTextFile(seedFile);
    } catch (err) {
      problem(
        keyNode,
        `accounts.${name}: cannot read signingKeyFile "${seedFile}": ${
          err instanceof Error ? err.message : String(err)
        }`,
      );
      continue;
    }
    const seed = extractSeed(seedText);
    let role: string | undefined;
    try {
      role = seed ? decodeNkeySeed(seed).role : undefined;
    } catch {
      role = undefined;
    }
    if (role !== "A" || !seed) {
      problem(
        keyNode,
        `accounts.${name}: signingKeyFile "${seedFile}" does not hold an SA... seed`,
      );
      continue;
    }
    accountSeeds.set(name, seed);
  }

  const settingsOf = (
    node: Node | null,
    what: string,
    extraKeys: readonly string[],
    inherited: { account?: string },
  ): PolicySettings => {
    const out: {
      -readonly [K in keyof PolicySettings]: PolicySettings[K];
    } = {};
    for (const [key, value, keyNode] of mapEntries(node, what) ?? []) {
      if (extraKeys.includes(key)) continue;
      const at = `${what}.${key}`;
      switch (key) {
        case "account": {
          const account = str(value, at);
          if (account === undefined) break;
          if (!accounts.has(account)) {
            problem(
              value,
              `${at}: unknown account "${account}"; list it under accounts (or use NATS_ACCOUNT)`,
            );
          } else out.account = account;
          break;
        }
        case "annotations": {
          const bound: { allow?: { pub?: string[]; sub?: string[] }; deny?: string[] } = {};
          for (const [k, v, kn] of mapEntries(value, at) ?? []) {
            if (k === "allow") {
              const allow = direction(v, `${at}.allow`);
              if (allow) bound.allow = allow;
            } else if (k === "deny") {
              const deny = subjectList(v, `${at}.deny`);
              if (deny) bound.deny = deny;
            } else problem(kn, `${at}: unknown field "${k}" (expected allow, deny)`);
          }
          out.annotations = bound;
          break;
        }
        case "deny": {
          const deny = direction(value, at);
          if (deny) out.deny = deny;
          break;
        }
        case "connectionTypes": {
          const list = strList(value, at);
          if (!list || !isSeq(value)) break;
          const bad = list.findIndex((t) => !(CONNECTION_TYPES as readonly string[]).includes(t));
          if (bad >= 0) {
            problem(
              value.items[bad],
              `${at}: "${list[bad]}" is not one of ${CONNECTION_TYPES.join(", ")}`,
            );
          } else out.connectionTypes = list as ConnectionType[];
          break;
        }
        case "maxTokenLifetime": {
          const ms = duration(value, at, 1000);
          if (ms !== undefined) out.maxTokenLifetimeMs = ms;
          break;
        }
        case "response": {
          let max = 1;
          let ttlMs = 0;
          let ok = true;
          for (const [k, v, kn] of mapEntries(value, at) ?? []) {
            if (k === "max") {
              const n = isScalar(v) ? v.value : undefined;
              if (typeof n === "number" && Number.isInteger(n) && n >= 1) max = n;
              else {
                problem(v, `${at}.max must be an integer >= 1`);
                ok = false;
              }
            } else if (k === "ttl") {
              const ms = duration(v, `${at}.ttl`, 0);
              if (ms === undefined) ok = false;
              else ttlMs = ms;
            } else problem(kn, `${at}: unknown field "${k}" (expected max, ttl)`);
          }
          if (ok) out.response = { max, ttlMs };
          break;
        }
        case "jetstream": {
          const js: { -readonly [K in keyof JetStreamSettings]: JetStreamSettings[K] } = {};
          for (const [k, v, kn] of mapEntries(value, at) ?? []) {
            if (k === "api") {
              const b = isScalar(v) ? v.value : undefined;
              if (typeof b !== "boolean") problem(v, `${at}.api must be true or false`);
              else js.api = b;
            } else if (k === "streams" || k === "kv") {
              const list = strList(v, `${at}.${k}`);
              if (!list || !isSeq(v)) continue;
              const bad = list.findIndex((s) => !STREAM_NAME.test(expandForCheck(s)));
              if (bad >= 0) {
                problem(
                  v.items[bad],
                  `${at}.${k}: "${
                    list[bad]
                  }" is not a stream/bucket name (no ".", "*", ">", spaces)`,
                );
              } else js[k] = list;
            } else problem(kn, `${at}: unknown field "${k}" (expected api, streams, kv)`);
          }
          const account = out.account ?? inherited.account ?? defaultAccount;
          if (js.api && account === defaultAccount) {
            problem(
              value,
              `${at}.api: the whole JetStream API is only for a namespace in an account of its ` +
                "own (set account); in the shared account use streams/kv",
            );
          }
          out.jetstream = js;
          break;
        }
        case "labels":
          problem(
            keyNode,
            `${at}: labels pick namespaces, so they belong only on a namespace rule`,
          );
          break;
        case "selector":
          problem(
            keyNode,
            `${at}: selector is not supported; match namespaces by names, glob or labels ` +
              "(labels: {key: value}, every pair must be on the Namespace)",
          );
          break;
        default:
          problem(
            keyNode,
            `${what}: unknown field "${key}" (expected ${
              [...extraKeys, ...SETTINGS_KEYS].join(", ")
            })`,
          );
      }
    }
    return Object.freeze(out);
  };

  const defaults = settingsOf(field("defaults")?.[1] ?? null, "defaults", [], {});
  const namespaces: NamespaceRule[] = [];
  const nsNode = field("namespaces")?.[1] ?? null;
  if (nsNode !== null && !isSeq(nsNode)) problem(nsNode, "namespaces must be a list of rules");
  for (const [i, item] of (isSeq(nsNode) ? nsNode.items : []).entries()) {
    const what = `namespaces[${i}]`;
    const node = item as Node | null;
    const entries = mapEntries(node, what);
    if (!entries) continue;
    const get = (k: string) => entries.find(([key]) => key === k)?.[1];
    const namesNode = get("names");
    const globNode = get("glob");
    const names = namesNode === undefined ? [] : strList(namesNode, `${what}.names`) ?? [];
    const globs = globNode === undefined
      ? []
      : isSeq(globNode)
      ? strList(globNode, `${what}.glob`) ?? []
      : [str(globNode, `${what}.glob`)].filter((g): g is string => g !== undefined);
    for (const g of globs) {
      if (!/^[a-z0-9*?-]+$/.test(g)) {
        problem(globNode, `${what}.glob: "${g}" may hold only a-z, 0-9, "-", "*" and "?"`);
      }
    }
    const labelsNode = get("labels");
    let labels: Record<string, string> | undefined;
    if (labelsNode !== undefined) {
      const at = `${what}.labels`;
      const pairs = mapEntries(labelsNode, at);
      if (pairs && pairs.length === 0) problem(labelsNode, `${at} must name at least one label`);
      if (pairs && pairs.length > 0) {
        const out: Record<string, string> = {};
        let ok = true;
        for (const [k, v, kn] of pairs) {
          if (!LABEL_KEY.test(k)) {
            problem(kn, `${at}: "${k}" is not a Kubernetes label key`);
            ok = false;
          } else if (!isScalar(v) || typeof v.value !== "string") {
            problem(v ?? kn, `${at}.${k} must be a string (quote numbers and booleans)`);
            ok = false;
          } else if (!LABEL_VALUE.test(v.value)) {
            problem(v, `${at}.${k}: "${v.value}" is not a Kubernetes label value`);
            ok = false;
          } else out[k] = v.value;
        }
        if (ok) labels = Object.freeze(out);
      }
    }
    if (namesNode === undefined && globNode === undefined && labelsNode === undefined) {
      problem(node, `${what}: needs names, glob or labels to say which namespaces it is for`);
    }
    const settings = settingsOf(node, what, ["names", "glob", "labels", "serviceAccounts"], {
      ...(defaults.account ? { account: defaults.account } : {}),
    });
    const serviceAccounts = new Map<string, PolicySettings>();
    for (
      const [name, value]
        of mapEntries(get("serviceAccounts") ?? null, `${what}.serviceAccounts`) ?? []
    ) {
      const account = settings.account ?? defaults.account;
      serviceAccounts.set(
        name,
        settingsOf(value, `${what}.serviceAccounts.${name}`, [], account ? { account } : {}),
      );
    }
    const p = posOf(node);
    const label = [
      ...names,
      ...globs,
      ...Object.entries(labels ?? {}).map(([k, v]) => `${k}=${v}`),
    ].join(", ");
    namespaces.push(Object.freeze({
      source: `${path}:${p?.line ?? 0} (${label})`,
      names,
      globs,
      ...(labels ? { labels } : {}),
      settings,
      serviceAccounts,
    }));
  }

  if (problems.length > 0) throw new PolicyFileError(problems);
  return {
    policy: Object.freeze({ defaults, namespaces: Object.freeze(namespaces) }),
    accountSeeds,
  };
}

/** A pattern with its placeholders filled by sample values, for syntax checks. */
function expandForCheck(pattern: string): string {
  return pattern.replaceAll("{namespace}", "ns").replaceAll("{serviceaccount}", "sa");
}

/** Options of {@linkcode startPolicyFile}. */
export interface PolicyFileOptions extends PolicyParseOptions {
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
