/**
 * The provisioner's look at what the servers' resolver actually holds (`$SYS.REQ.CLAIMS.LIST`,
 * the union of every server's answer), against what this replica believes:
 *
 * - **missing**: a planned account this replica believes held that no server lists was removed
 *   behind its back (`nsc push --prune`, an operator-signed `CLAIMS.DELETE`, a resolver directory
 *   lost): it is forgotten (`account_missing_on_resolver`), so the next tick pushes it again.
 *   Without this, logins kept being granted into an account no server has until a restart;
 * - **left over**: an account on the resolver that this service made (its tag, and a key that
 *   derives from the tagged uid) and no plan wants — a Namespace that went while no replica ran —
 *   is removed;
 * - **from another seed**: an account tagged as this service's, signed by the same operator signing
 *   key, for a Namespace uid, whose key does not derive from this replica's
 *   `NATS_ACCOUNTS_SEED_FILE` — a replica running with another seed (it places that namespace's
 *   logins in its own account: the namespace is split in two), or what a seed change left behind.
 *   Neither can be told from the other here, and neither is this replica's to remove: it is
 *   warned about once per account (`account_from_another_seed`) and counted
 *   ({@linkcode ResolverSurvey.fromOtherSeed}, `nats_auth_accounts_from_other_seed`).
 *
 * The list is cheap (one request); the keys it names that are not planned are looked up once each
 * and remembered, and every `fullEvery` they are all looked at again.
 *
 * @module
 */
import type { Logger } from "../telemetry/log.ts";
import { type Held, ownAccount, taggedAccount } from "./held.ts";
import type { AccountLedger } from "./ledger.ts";
import type { ResolverClient } from "./resolver.ts";
import type { AccountWriter } from "./writes.ts";

/** Options of {@linkcode createResolverSurvey}. */
export interface ResolverSurveyOptions {
  /** The servers' resolver. */
  readonly resolver: ResolverClient;
  /** The operator signing key's public key: the `iss` of this service's accounts. */
  readonly operator: string;
  /** The root secret the account keys derive from (lib/accounts/keys.ts). */
  readonly root: Uint8Array;
  /** What this replica knows. */
  readonly ledger: AccountLedger;
  /** Removes left-over accounts. */
  readonly writer: AccountWriter;
  /** Where missing and left-over accounts are logged. */
  readonly logger: Logger;
  /** Lookups in flight at once. */
  readonly concurrency: number;
}

/** The resolver's list, compared. */
export interface ResolverSurvey {
  /** Why the list cannot be had (no full resolver answers), for readiness; `undefined` when it can. */
  readonly problem: string | undefined;
  /**
   * How many accounts on the resolver were made with another `NATS_ACCOUNTS_SEED_FILE` (tagged as
   * this service's, signed by its operator signing key, a key that does not derive from this seed).
   */
  readonly fromOtherSeed: number;
  /** Ask for the list; `undefined` (and {@linkcode ResolverSurvey.problem} set) when none answers. */
  probe(): Promise<string[] | undefined>;
  /**
   * Compare the list with `planned` (the planned accounts' keys): forget the missing ones, remove
   * the left-over ones. `full` looks up every unplanned key again, not only new ones.
   */
  compare(planned: ReadonlySet<string>, full: boolean): Promise<void>;
}

/**
 * The survey over `options.resolver`.
 *
 * @example
 * ```ts ignore
 * const survey = createResolverSurvey({ resolver, operator: op.publicKey, root, ledger, writer, logger, concurrency: 16 });
 * await survey.compare(new Set(plannedKeys), false);
 * ```
 */
export function createResolverSurvey(options: ResolverSurveyOptions): ResolverSurvey {
  const { resolver, operator, root, ledger, writer, logger, concurrency } = options;
  let problem: string | undefined = "the resolver has not answered yet";
  /** Unplanned keys looked up and found not to be ours (or ours and revoked). */
  let examined = new Set<string>();
  /** Of those, the accounts made with another seed; warned about once each. */
  let otherSeed = new Set<string>();
  const warned = new Set<string>();

  const probe = async (): Promise<string[] | undefined> => {
    try {
      const keys = await resolver.list();
      problem = undefined;
      return keys;
    } catch (err) {
      problem = "no server answers $SYS.REQ.CLAIMS.LIST: the servers need resolver: " +
        `{ type: full } (${err instanceof Error ? err.message : String(err)})`;
      return undefined;
    }
  };

  /** Forget what this replica believed held (since before the list was asked) and none lists. */
  const forgetMissing = (
    listed: ReadonlySet<string>,
    before: ReadonlyMap<string, Held>,
    planned: ReadonlySet<string>,
  ) => {
    for (const [account, version] of before) {
      if (listed.has(account) || ledger.held(account) !== version) continue;
      ledger.forget(account);
      if (!planned.has(account)) continue;
      logger.warn("account_missing_on_resolver", {
        namespace: version.namespace,
        namespace_uid: version.uid,
        account,
        instead: "pushed again",
      });
    }
  };

  /** Look up unplanned keys; remove those this service made, remember the others. */
  const removeLeftOver = async (keys: readonly string[], planned: ReadonlySet<string>) => {
    const next = new Set<string>();
    const nextOtherSeed = new Set<string>();
    const unknown = keys.filter((k) => !planned.has(k) && !ledger.held(k));
    await eachLimited(unknown, concurrency, async (key) => {
      if (examined.has(key)) {
        next.add(key);
        if (otherSeed.has(key)) nextOtherSeed.add(key);
        return;
      }
      const jwt = await resolver.lookup(key).catch(() => null);
      if (jwt === null) return; // asked again next time
      const mine = jwt === undefined ? undefined : ownAccount(jwt, key, operator, root);
      if (mine && !mine.revoked) await writer.remove(key, mine);
      else if (mine) ledger.hold(key, mine);
      else {
        next.add(key);
        if (jwt !== undefined && madeWithOtherSeed(jwt, key)) nextOtherSeed.add(key);
      }
    });
    examined = next;
    otherSeed = nextOtherSeed;
  };

  /** True for a live account of this service's made with another seed; warns the first time. */
  const madeWithOtherSeed = (jwt: string, key: string): boolean => {
    const tagged = taggedAccount(jwt, key, operator, root);
    if (!tagged || tagged.derivedHere || tagged.revoked) return false;
    if (!warned.has(key)) {
      warned.add(key);
      logger.warn("account_from_another_seed", {
        account: key,
        namespace: tagged.namespace,
        namespace_uid: tagged.uid,
        problem: "an account tagged as this service's, signed by its operator signing key, whose " +
          "key does not derive from this replica's NATS_ACCOUNTS_SEED_FILE: a replica running " +
          "with another seed (it places this namespace's logins in this other account), or one " +
          "left by a seed change (remove it by hand, docs/operator-mode.md)",
      });
    }
    return true;
  };

  const compare = async (planned: ReadonlySet<string>, full: boolean): Promise<void> => {
    const before = new Map(ledger.holding());
    const keys = await probe();
    if (keys === undefined) return;
    forgetMissing(new Set(keys), before, planned);
    if (full) examined = new Set();
    await removeLeftOver(keys, planned);
  };

  return {
    get problem() {
      return problem;
    },
    get fromOtherSeed() {
      return otherSeed.size;
    },
    probe,
    compare,
  };
}

/** Run `fn` over `items`, at most `limit` at a time. */
export async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
