/**
 * The accounts the policy gives the Namespaces now, remembered: {@linkcode planAccounts} runs again
 * only when the policy or a Namespace record changed (records and policies are immutable and
 * replaced on change, so identity says it). Answers the login's synchronous question — which
 * account, with which imports — and the callout's — which key signs that account's users — with
 * no I/O, so `deno task explain` can ask it without NATS.
 *
 * @module
 */
import type {
  NamespaceAccountResult,
  NamespaceAccountSummary,
} from "../decision/namespace_account.ts";
import type { ClusterPolicy } from "../decision/policy.ts";
import type { NkeySigner } from "../callout/nkey_jwt.ts";
import type { KeyRing } from "./keys.ts";
import {
  type AccountPlan,
  importedSubjects,
  namespaceAccountOf,
  type NamespaceFacts,
  planAccounts,
} from "./plan.ts";

/** The Namespaces as the planner reads them (lib/cache/namespaces.ts). */
export interface NamespaceDirectory {
  /** True after the first complete list. */
  readonly synced: boolean;
  /** Every Namespace now; the same record object while a Namespace does not change. */
  list(): readonly NamespaceFacts[];
  /** One Namespace by name. */
  get(name: string): NamespaceFacts | undefined;
}

/** Options of {@linkcode createPlanner}. */
export interface PlannerOptions {
  /** The cluster policy in force (undefined: none). */
  policy: () => ClusterPolicy | undefined;
  /** The Namespaces the cache knows (lib/cache/namespaces.ts). */
  namespaces: NamespaceDirectory;
  /** The account keys of a Namespace uid (lib/accounts/keys.ts). */
  keys: KeyRing;
}

/** The current plans and the answers derived from them. */
export interface Planner {
  /** Every planned account, by Namespace name (empty until the Namespaces are synced). */
  plans(): ReadonlyMap<string, AccountPlan>;
  /**
   * True when {@linkcode Planner.plans} is the whole truth (a policy and a synced Namespace
   * list): only then may an account missing from it be removed.
   */
  plansReady(): boolean;
  /** The plan of `namespace`'s account, or why it has none. */
  accountOf(namespace: string): NamespaceAccountResult;
  /** The key that signs user JWTs of `account` (a planned account, or one planned just before). */
  signerFor(account: string): NkeySigner | undefined;
}

/**
 * Build the planner.
 *
 * @example
 * ```ts ignore
 * const planner = createPlanner({ policy: () => source.current.policy, namespaces, keys });
 * planner.accountOf("team-a"); // { ok: true, account: "A…", imported, summary }
 * ```
 */
export function createPlanner(options: PlannerOptions): Planner {
  const { policy, namespaces, keys } = options;
  let lastPolicy: ClusterPolicy | undefined;
  let lastRecords: readonly NamespaceFacts[] = [];
  let current: ReadonlyMap<string, AccountPlan> = new Map();
  // Two generations of signers, so a login decided just before a change can still be signed.
  let signers = new Map<string, NkeySigner>();
  let previousSigners = new Map<string, NkeySigner>();

  const plans = (): ReadonlyMap<string, AccountPlan> => {
    const p = policy();
    if (!p || !namespaces.synced) return new Map();
    const records = namespaces.list();
    if (p === lastPolicy && sameRecords(records, lastRecords)) return current;
    lastPolicy = p;
    lastRecords = records;
    current = planAccounts({ policy: p, namespaces: records, keysFor: (uid) => keys.keysFor(uid) });
    previousSigners = signers;
    signers = new Map([...current.values()].map((plan) => [plan.keys.account, plan.keys.signer]));
    keys.retain(new Set([...current.values()].map((plan) => plan.uid)));
    return current;
  };

  const accountOf = (namespace: string): NamespaceAccountResult => {
    if (!namespaces.synced) {
      return {
        ok: false,
        reason: "cache_not_ready",
        message: "the Namespace cache has not completed its first list",
      };
    }
    const plan = plans().get(namespace);
    if (plan) {
      return {
        ok: true,
        account: plan.keys.account,
        imported: importedSubjects(plan),
        summary: summaryOf(plan),
      };
    }
    const facts = namespaces.get(namespace);
    const p = policy();
    if (!facts || facts.deleting) {
      return {
        ok: false,
        reason: "namespace_not_found",
        message: facts
          ? `Namespace ${namespace} is being deleted; its account is removed`
          : `Namespace ${namespace} does not exist, so it has no account`,
      };
    }
    const settings = p
      ? namespaceAccountOf(p, namespace, (n) => namespaces.get(n)?.labels)
      : undefined;
    return {
      ok: false,
      reason: "account_unavailable",
      message: settings
        ? `no account planned for Namespace ${namespace}`
        : `the policy gives Namespace ${namespace} no account of its own`,
    };
  };

  return {
    plans,
    plansReady: () => policy() !== undefined && namespaces.synced,
    accountOf,
    signerFor: (account) => {
      plans();
      return signers.get(account) ?? previousSigners.get(account);
    },
  };
}

function sameRecords(a: readonly NamespaceFacts[], b: readonly NamespaceFacts[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** What explain shows of a planned account. */
export function summaryOf(plan: AccountPlan): NamespaceAccountSummary {
  const { limits, jetstream } = plan.settings;
  return {
    account: plan.keys.account,
    name: plan.namespace,
    namespace_uid: plan.uid,
    limits: {
      connections: limits.connections,
      subscriptions_per_connection: limits.subscriptions,
      payload: limits.payload,
      leaf_nodes: limits.leafNodes,
    },
    jetstream: jetstream
      ? {
        memory: jetstream.memory,
        disk: jetstream.disk,
        streams: jetstream.streams,
        consumers: jetstream.consumers,
      }
      : "disabled",
    exports: plan.exports.map((e) => ({ kind: e.kind, subject: e.subject })),
    imports: plan.imports.map((i) => ({
      kind: i.kind,
      subject: i.subject,
      from: i.exporter.namespace,
    })),
  };
}
