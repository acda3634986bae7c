/**
 * The provisioner's two writes to the servers' resolver, one account at a time (single flight per
 * key, lib/accounts/ledger.ts):
 *
 * - **push** a planned account: its content and content id (lib/accounts/claims.ts, pure); the
 *   version the resolver holds, looked up (`CLAIMS.LOOKUP`) when this replica has not seen one —
 *   the same content id means nothing to do, which is how replicas never fight; otherwise sign
 *   with the `iat` of {@linkcode issuedAt} and push (`CLAIMS.UPDATE`);
 * - **remove** an account no plan wants: an operator-signed `CLAIMS.DELETE` (the servers then
 *   disconnect its clients), or, where the resolver does not allow deletes, a revoked JWT nothing
 *   can log in to.
 *
 * A refusal is logged with the resolver's words, counted, and retried with backoff.
 *
 * @module
 */
import type { NkeySigner } from "../callout/nkey_jwt.ts";
import type { AccountMetrics } from "../telemetry/account_metrics.ts";
import type { Logger } from "../telemetry/log.ts";
import { deleteRequest, revokedContent, signAccount } from "./claims.ts";
import { type Held, parseHeld } from "./held.ts";
import type { AccountLedger } from "./ledger.ts";
import type { AccountPlan } from "./plan.ts";
import { type ResolverClient, ResolverError, type ResolverFailure } from "./resolver.ts";

/**
 * The `iat` (seconds) of a version about to be pushed: the latest of the Namespace's creation,
 * now, and one second after the last version of the account seen (`previous`: held, or removed).
 *
 * Why now: nats-server keeps an account it removed (`CLAIMS.DELETE`, or deleted from the
 * resolver behind the service's back) in memory, expired, and on a later push of a JWT
 * byte-identical to the one it remembers answers "jwt updated" but treats it as the same claims
 * and leaves the account expired — so a Namespace whose account was removed and is wanted again
 * (a policy edit reverted, a label rule that stops and starts matching) could never log in. A JWT
 * issued now differs from every version pushed before. Why one second after the previous: the
 * resolvers' periodic merge keeps the JWT with the later `iat` (and skips one whose `jti` it
 * holds), so a newer version must never carry an earlier or equal `iat`, not even within one
 * second. Two replicas pushing the same content in the same tick may now sign different `iat`s:
 * harmless, since replicas decide by content id (`jti`), never by `iat`, and the servers hold
 * the same content either way.
 *
 * @example
 * ```ts
 * import { issuedAt } from "./writes.ts";
 * console.assert(issuedAt(1_700_000_000, undefined, 1_800_000_000) === 1_800_000_000);
 * console.assert(issuedAt(1_700_000_000, 1_800_000_000, 1_800_000_000) === 1_800_000_001);
 * ```
 */
export function issuedAt(createdAt: number, previous: number | undefined, nowSec: number): number {
  return Math.max(createdAt, nowSec, previous === undefined ? 0 : previous + 1);
}

/** Options of {@linkcode createAccountWriter}. */
export interface AccountWriterOptions {
  /** The servers' resolver. */
  readonly resolver: ResolverClient;
  /** Signs account JWTs and delete requests. */
  readonly operator: NkeySigner;
  /** What this replica knows (held versions, failures, single flight). */
  readonly ledger: AccountLedger;
  /** Where pushes, removals and refusals are logged. */
  readonly logger: Logger;
  /** The accounts_* metrics. */
  readonly metrics: AccountMetrics;
  /** Clock in milliseconds. */
  readonly now: () => number;
}

/** The two writes; each resolves true when the resolver holds what was asked. */
export interface AccountWriter {
  /** Push `plan`'s account unless the resolver holds its current content. */
  push(plan: AccountPlan): Promise<boolean>;
  /** Remove `account` (last seen as `was`): delete it, or revoke it where deletes are refused. */
  remove(account: string, was: Held): Promise<boolean>;
  /** Why pushes cannot work (the resolver does not store pushed accounts), for readiness. */
  readonly problem: string | undefined;
}

/**
 * The writes over `options.resolver`.
 *
 * @example
 * ```ts ignore
 * const writer = createAccountWriter({ resolver, operator, ledger, logger, metrics, now });
 * await writer.push(plan); // true: the resolver holds plan's content
 * ```
 */
export function createAccountWriter(options: AccountWriterOptions): AccountWriter {
  const { resolver, operator, ledger, logger, metrics, now } = options;
  /** The last push said: the resolver does not store pushed accounts (a cache or memory resolver). */
  let pushProblem: string | undefined;
  /** Whether `CLAIMS.DELETE` is allowed, once a delete said so. */
  let deleteAllowed: boolean | undefined;

  const failed = (account: string, err: unknown, fields: Record<string, unknown>): void => {
    const reason: ResolverFailure = err instanceof ResolverError ? err.reason : "no_response";
    const error = err instanceof Error ? err.message : String(err);
    const failure = ledger.fail(account, reason, now());
    if (reason === "resolver_not_full") pushProblem = error;
    metrics.pushFailures.inc({ reason });
    logger.warn("account_push_failed", {
      ...fields,
      account,
      reason,
      error,
      attempts: failure.attempts,
      retry_in_ms: failure.retryAt - now(),
    });
  };

  /** What the resolver holds for `account`: remembered, else looked up. */
  const heldVersion = async (account: string): Promise<Held | undefined> => {
    const known = ledger.held(account);
    if (known) return known;
    const jwt = await resolver.lookup(account);
    return jwt === undefined ? undefined : parseHeld(jwt);
  };

  const push = (plan: AccountPlan): Promise<boolean> => {
    const account = plan.keys.account;
    const fields = { namespace: plan.namespace, namespace_uid: plan.uid };
    return ledger.once(account, async () => {
      try {
        const content = await ledger.contentOf(plan);
        const prev = await heldVersion(account);
        if (prev?.jti === content.jti) {
          ledger.hold(account, prev);
          return true;
        }
        const previous = prev?.iat ?? ledger.lastIssuedAt(account);
        const iat = issuedAt(plan.createdAt, previous, Math.floor(now() / 1000));
        const answer = await resolver.push(await signAccount(content, iat, operator));
        ledger.hold(account, {
          jti: content.jti,
          iat,
          namespace: plan.namespace,
          uid: plan.uid,
          revoked: false,
        });
        pushProblem = undefined;
        (prev ? metrics.updated : metrics.provisioned).inc();
        logger.info(prev ? "account_updated" : "account_provisioned", {
          ...fields,
          account,
          server: answer.server,
        });
        return true;
      } catch (err) {
        failed(account, err, fields);
        return false;
      }
    });
  };

  /** `CLAIMS.DELETE`; false where the resolver does not allow it (then revoke instead). */
  const deleteAccount = async (account: string, fields: Record<string, unknown>) => {
    try {
      const nowSec = Math.floor(now() / 1000);
      const answer = await resolver.delete(await deleteRequest([account], operator, nowSec));
      deleteAllowed = true;
      ledger.forget(account);
      metrics.deleted.inc({ how: "deleted" });
      logger.info("account_deleted", { ...fields, account, server: answer.server });
      return true;
    } catch (err) {
      if (!(err instanceof ResolverError && err.reason === "delete_not_allowed")) throw err;
      deleteAllowed = false;
      logger.warn("account_delete_not_allowed", {
        ...fields,
        account,
        error: err.message,
        instead: "revoked: every user revoked, no connections, no JetStream",
      });
      return false;
    }
  };

  /** Push the revoked JWT that ends `account` where it cannot be deleted. */
  const revokeAccount = async (account: string, was: Held, fields: Record<string, unknown>) => {
    const nowSec = Math.floor(now() / 1000);
    const content = revokedContent(account, was.namespace, was.uid, nowSec);
    const iat = issuedAt(0, was.iat, nowSec);
    const answer = await resolver.push(await signAccount(content, iat, operator));
    ledger.forget(account);
    ledger.hold(account, { ...was, jti: content.jti, iat, revoked: true });
    metrics.deleted.inc({ how: "revoked" });
    logger.info("account_revoked", { ...fields, account, server: answer.server });
  };

  const remove = (account: string, was: Held): Promise<boolean> => {
    const fields = { namespace: was.namespace, namespace_uid: was.uid };
    return ledger.once(account, async () => {
      try {
        if (deleteAllowed !== false && await deleteAccount(account, fields)) return true;
        await revokeAccount(account, was, fields);
        return true;
      } catch (err) {
        failed(account, err, fields);
        return false;
      }
    });
  };

  return {
    push,
    remove,
    get problem() {
      return pushProblem;
    },
  };
}
