/**
 * Which Namespaces get an account of their own and what each account holds: a pure function of
 * the cluster policy and the Namespaces (name, uid, creation, labels). A Namespace gets one when
 * the policy's settings for it (defaults, then the first matching rule) say `namespaceAccount`
 * and it is not being deleted. Exports are the policy's, `{namespace}` filled in; an importer is
 * any other Namespace with an account of its own that an export's `to` names — a Namespace in a
 * shared account cannot import (the service manages no other account's JWT).
 *
 * @module
 */
import { importsExport, type NamespaceAccountSettings } from "../decision/namespace_account.ts";
import { type ClusterPolicy, matchesGlob, resolveSettings } from "../decision/policy.ts";
import type { AccountKeys } from "./keys.ts";

/** What planning needs of one Namespace (lib/cache/namespaces.ts keeps it). */
export interface NamespaceFacts {
  /** The Namespace's name. */
  readonly name: string;
  /** The Namespace's uid: the account keys derive from it, so a recreated Namespace gets a new account. */
  readonly uid: string;
  /** `metadata.creationTimestamp`, seconds since the epoch. */
  readonly createdAt: number;
  /** The Namespace's labels, for policy rules by label. */
  readonly labels: Readonly<Record<string, string>>;
  /** Being deleted (`metadata.deletionTimestamp` set): no account, logins refused. */
  readonly deleting: boolean;
}

/** The exporting side of an import. */
export interface Exporter {
  /** The exporting namespace. */
  readonly namespace: string;
  /** The exporting account's public key. */
  readonly account: string;
  /** The exporter's signing key, which signs the importer's activation token. */
  readonly signer: AccountKeys["signer"];
}

/** One import of a planned account. */
export interface PlannedImport {
  /** A service (request/reply) or a stream (messages) import. */
  readonly kind: "service" | "stream";
  /** The exported subject (the same subject in the importing account). */
  readonly subject: string;
  /** Who exports it. */
  readonly exporter: Exporter;
  /** `iat` of the activation token: the later of the two Namespaces' creation. */
  readonly issuedAt: number;
}

/** The account one Namespace gets. */
export interface AccountPlan {
  /** The namespace the account is for. */
  readonly namespace: string;
  /** The Namespace's uid. */
  readonly uid: string;
  /** `metadata.creationTimestamp`, seconds since the epoch: the account JWT's first `iat`. */
  readonly createdAt: number;
  /** The account's keys, derived from the secret and the uid. */
  readonly keys: AccountKeys;
  /** What the policy rule's `namespaceAccount` says. */
  readonly settings: NamespaceAccountSettings;
  /** The exports, subjects filled in. */
  readonly exports: readonly { readonly kind: "service" | "stream"; readonly subject: string }[];
  /** The imports, one per export of another namespace that names this one. */
  readonly imports: readonly PlannedImport[];
}

/** Inputs of {@linkcode planAccounts}. */
export interface PlanInput {
  /** The cluster policy in force. */
  readonly policy: ClusterPolicy;
  /** Every Namespace the cache knows. */
  readonly namespaces: readonly NamespaceFacts[];
  /** The derived keys of a Namespace uid (lib/accounts/keys.ts). */
  readonly keysFor: (uid: string) => AccountKeys;
}

/**
 * Every account the policy gives the Namespaces, by Namespace name. Pure.
 *
 * @example
 * ```ts ignore
 * const plans = planAccounts({ policy, namespaces, keysFor: (uid) => ring.keysFor(uid) });
 * plans.get("team-a")?.keys.account; // "A…"
 * ```
 */
export function planAccounts(input: PlanInput): Map<string, AccountPlan> {
  const { policy, namespaces, keysFor } = input;
  const labels = new Map(namespaces.map((n) => [n.name, n.labels]));
  const owners: { facts: NamespaceFacts; settings: NamespaceAccountSettings }[] = [];
  for (const facts of namespaces) {
    if (facts.deleting) continue;
    const settings = namespaceAccountOf(policy, facts.name, (n) => labels.get(n));
    if (settings) owners.push({ facts, settings });
  }
  const plans = new Map<string, AccountPlan>();
  const importsOf = new Map<string, PlannedImport[]>();
  for (const { facts } of owners) importsOf.set(facts.name, []);
  for (const { facts, settings } of owners) {
    const keys = keysFor(facts.uid);
    const exports = settings.exports.map((e) => ({
      kind: e.kind,
      subject: e.subject.replaceAll("{namespace}", facts.name),
    }));
    for (const [i, exp] of settings.exports.entries()) {
      for (const importer of owners) {
        if (importer.facts.name === facts.name) continue;
        if (!importsExport(importer.facts.name, exp, matchesGlob)) continue;
        importsOf.get(importer.facts.name)!.push({
          kind: exp.kind,
          subject: exports[i]!.subject,
          exporter: { namespace: facts.name, account: keys.account, signer: keys.signer },
          issuedAt: Math.max(facts.createdAt, importer.facts.createdAt),
        });
      }
    }
    plans.set(facts.name, {
      namespace: facts.name,
      uid: facts.uid,
      createdAt: facts.createdAt,
      keys,
      settings,
      exports,
      imports: importsOf.get(facts.name)!,
    });
  }
  return plans;
}

/**
 * The `namespaceAccount` the policy gives namespace `name` (namespace level: defaults, then the
 * first matching rule), or `undefined` when its logins go to a shared account.
 */
export function namespaceAccountOf(
  policy: ClusterPolicy,
  name: string,
  labelsOf?: (namespace: string) => Readonly<Record<string, string>> | undefined,
): NamespaceAccountSettings | undefined {
  // No ServiceAccount name can be empty, so no serviceAccounts entry applies.
  return resolveSettings(policy, name, "", labelsOf).settings.namespaceAccount;
}

/**
 * The subjects a login of the account may use because of its imports: publish on imported
 * services (requests), subscribe to imported streams. Added to its user JWTs' allow lists.
 */
export function importedSubjects(plan: AccountPlan): { pub: string[]; sub: string[] } {
  const pub: string[] = [];
  const sub: string[] = [];
  for (const imp of plan.imports) (imp.kind === "service" ? pub : sub).push(imp.subject);
  return { pub: [...new Set(pub)], sub: [...new Set(sub)] };
}
