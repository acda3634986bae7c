/**
 * The login's way in to provisioning ({@linkcode createEnsure}): before a namespace's login is
 * placed in its account, the account's current version must be on the resolver (pushed now if
 * not, with the exporters it imports from) and in place on every server (lib/accounts/settle.ts):
 * the resolver holding the JWT does not mean every server has loaded it, and a server still
 * loading an account hands it out without JetStream. Settled accounts are remembered per version
 * and server inventory, so this costs a login nothing once done.
 *
 * @module
 */
import type { NamespaceAccountResult } from "../decision/namespace_account.ts";
import type { AccountMetrics } from "../telemetry/account_metrics.ts";
import type { Logger } from "../telemetry/log.ts";
import type { AccountContent } from "./claims.ts";
import type { AccountLedger } from "./ledger.ts";
import type { AccountPlan } from "./plan.ts";
import type { Planner } from "./planner.ts";
import type { ResolverClient } from "./resolver.ts";
import type { AccountSettler, SettleResult } from "./settle.ts";
import type { AccountWriter } from "./writes.ts";

/** Options of {@linkcode createEnsure}. */
export interface EnsureOptions {
  /** The accounts to have. */
  readonly planner: Planner;
  /** The servers' resolver (for its connection state). */
  readonly resolver: ResolverClient;
  /** Loads an account on every server and confirms it; without one only the push is waited for. */
  readonly settler: AccountSettler | undefined;
  /** What this replica knows. */
  readonly ledger: AccountLedger;
  /** Pushes accounts. */
  readonly writer: AccountWriter;
  /** Where settling is logged. */
  readonly logger: Logger;
  /** The accounts_* metrics. */
  readonly metrics: AccountMetrics;
  /** Clock in milliseconds. */
  readonly now: () => number;
  /** Told of every settle attempt's outcome (readiness reads whether accounts load at all). */
  readonly onSettle?: (account: string, result: SettleResult) => void;
}

/** Place a namespace's login in its account: the account is on the resolver and on every server. */
export type Ensure = (namespace: string) => Promise<NamespaceAccountResult>;

/**
 * The login's `ensure`.
 *
 * @example
 * ```ts ignore
 * const ensure = createEnsure({ planner, resolver, settler, ledger, writer, logger, metrics, now });
 * await ensure("team-a"); // { ok: true, account: "A…", … } once every server holds it
 * ```
 */
export function createEnsure(options: EnsureOptions): Ensure {
  const { planner, resolver, settler, ledger, writer, logger, metrics, now } = options;
  const settling = new Map<string, Promise<string | undefined>>();

  const refused = (message: string): NamespaceAccountResult => ({
    ok: false,
    reason: "account_unavailable",
    message,
  });

  /** The resolver holds `plan`'s current version, or why not. */
  const pushed = async (plan: AccountPlan, content: AccountContent) => {
    const { namespace } = plan;
    if (ledger.isCurrent(plan.keys.account, content.jti)) return undefined;
    if (!resolver.connected) {
      return `the account of Namespace ${namespace} cannot be pushed: no system-account connection`;
    }
    if (await writer.push(plan)) return undefined;
    const why = ledger.failure(plan.keys.account);
    return `the account of Namespace ${namespace} is not on the resolver yet (${
      why?.reason ?? "push failed"
    }); it is retried`;
  };

  /** A server loading this account resolves its imports then: their exporters must be stored. */
  const pushExporters = async (plan: AccountPlan) => {
    await Promise.all(plan.imports.map(async ({ exporter }) => {
      const theirs = planner.plans().get(exporter.namespace);
      if (theirs && !ledger.isCurrent(theirs.keys.account, (await ledger.contentOf(theirs)).jti)) {
        await writer.push(theirs);
      }
    }));
  };

  /** One settle attempt of `account`, logged; resolves to why it failed, or `undefined`. */
  const attempt = async (
    plan: AccountPlan,
    version: string,
    inventory: Awaited<ReturnType<AccountSettler["inventory"]>>,
  ): Promise<string | undefined> => {
    const account = plan.keys.account;
    const fields = { namespace: plan.namespace, namespace_uid: plan.uid, account };
    const jetstream = plan.settings.jetstream !== undefined;
    const started = now();
    let r: SettleResult;
    try {
      r = await settler!.settle(account, { jetstream, inventory });
    } catch (err) {
      return `could not be checked on the servers (${
        err instanceof Error ? err.message : String(err)
      })`;
    }
    options.onSettle?.(account, r);
    if (!r.ok) {
      metrics.settleFailures.inc();
      logger.warn("account_not_settled", {
        ...fields,
        jetstream,
        missing: r.missing.map((m) => `${m.server}:${m.gap}`),
        duration_ms: now() - started,
      });
      return `not in place on every server yet (${r.message}); it is retried`;
    }
    ledger.settled(account, version);
    logger.debug("account_settled", {
      ...fields,
      servers: r.servers,
      rounds: r.rounds,
      duration_ms: now() - started,
    });
    if (r.importsIncompleteOn.length > 0) {
      logger.warn("account_imports_incomplete", { ...fields, servers: r.importsIncompleteOn });
    }
    return undefined;
  };

  /**
   * Every server holds `plan`'s account as `content` says, or why not. Once per version and
   * server inventory; logins of the same account wait for one attempt.
   */
  const settled = async (plan: AccountPlan, content: AccountContent) => {
    if (!settler) return undefined;
    const account = plan.keys.account;
    const inventory = await settler.inventory().catch(() => undefined);
    if (!inventory) {
      // Without the servers' answers nothing can be checked; a version confirmed before stands.
      return ledger.settledVersion(account)?.startsWith(`${content.jti}|`)
        ? undefined
        : "could not be checked: the servers did not answer $SYS.REQ.SERVER.PING.STATSZ";
    }
    const version = `${content.jti}|${inventory.key}`;
    if (ledger.settledVersion(account) === version) return undefined;
    const running = settling.get(account);
    if (running) return await running;
    const run = attempt(plan, version, inventory).finally(() => settling.delete(account));
    settling.set(account, run);
    return await run;
  };

  return async (namespace) => {
    const result = planner.accountOf(namespace);
    if (!result.ok) return result;
    const plan = planner.plans().get(namespace);
    if (!plan) return planner.accountOf(namespace);
    const content = await ledger.contentOf(plan);
    const notPushed = await pushed(plan, content);
    if (notPushed !== undefined) return refused(notPushed);
    await pushExporters(plan);
    const unsettled = await settled(plan, content);
    if (unsettled === undefined) return result;
    return refused(`the account of Namespace ${namespace} is on the resolver but ${unsettled}`);
  };
}
