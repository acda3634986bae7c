/**
 * What one replica knows of the accounts it provisions, in one place: the version the resolver
 * holds of each (as last seen), failed writes and when to retry them, the write in flight per
 * account (one at a time), the versions confirmed on every server, and the content of each plan.
 * Nothing here does I/O; the provisioner's steps (lib/accounts/writes.ts, survey.ts, ensure.ts)
 * read and record through it.
 *
 * @module
 */
import { type AccountContent, accountContent } from "./claims.ts";
import type { Held } from "./held.ts";
import type { AccountPlan } from "./plan.ts";
import type { ResolverFailure } from "./resolver.ts";

/** A failed push or delete: when to try again. */
export interface Failure {
  /** Failed attempts in a row. */
  readonly attempts: number;
  /** Not before this time (ms). */
  readonly retryAt: number;
  /** Why the last one failed. */
  readonly reason: ResolverFailure;
}

/** Backoff after a failed write: from `initialMs` doubling to `maxMs`. */
export interface RetryOptions {
  /** The first wait. @default {1000} */
  readonly initialMs?: number;
  /** The longest wait. @default {30000} */
  readonly maxMs?: number;
}

/** The provisioner's per-account memory; see the module doc. */
export class AccountLedger {
  readonly #held = new Map<string, Held>();
  readonly #failures = new Map<string, Failure>();
  readonly #inflight = new Map<string, Promise<boolean>>();
  readonly #settled = new Map<string, string>();
  readonly #lastIat = new Map<string, number>();
  readonly #contents = new WeakMap<AccountPlan, Promise<AccountContent>>();
  readonly #retryInitial: number;
  readonly #retryMax: number;

  /** An empty ledger. */
  constructor(retry: RetryOptions = {}) {
    this.#retryInitial = retry.initialMs ?? 1000;
    this.#retryMax = retry.maxMs ?? 30_000;
  }

  /** The content of `plan`'s account JWT (computed once per plan object). */
  contentOf(plan: AccountPlan): Promise<AccountContent> {
    let c = this.#contents.get(plan);
    if (!c) {
      c = accountContent(plan);
      this.#contents.set(plan, c);
    }
    return c;
  }

  /** The version the resolver holds of `account`, as this replica last saw it. */
  held(account: string): Held | undefined {
    return this.#held.get(account);
  }

  /** Every account this replica believes the resolver holds. */
  holding(): IterableIterator<[string, Held]> {
    return this.#held.entries();
  }

  /** The resolver holds `version` of `account`; a failure before is forgotten. */
  hold(account: string, version: Held): void {
    this.#held.set(account, version);
    this.#lastIat.set(account, version.iat);
    this.#failures.delete(account);
  }

  /**
   * The resolver no longer holds `account` (removed by this replica or behind its back): forget
   * the version and its settling, so a plan that wants it again pushes it. The last `iat` seen is
   * kept ({@linkcode AccountLedger.lastIssuedAt}).
   */
  forget(account: string): void {
    this.#held.delete(account);
    this.#settled.delete(account);
    this.#failures.delete(account);
  }

  /** The `iat` of the last version of `account` this replica saw, held or since removed. */
  lastIssuedAt(account: string): number | undefined {
    return this.#lastIat.get(account);
  }

  /**
   * Forget the remembered `iat` of accounts not held whose last version was issued before
   * `nowSec`: a version pushed from now on is issued at `nowSec` or later anyway.
   */
  pruneIssuedAt(nowSec: number): void {
    for (const [account, iat] of this.#lastIat) {
      if (iat < nowSec && !this.#held.has(account)) this.#lastIat.delete(account);
    }
  }

  /** The held version of `account` is `jti`. */
  isCurrent(account: string, jti: string): boolean {
    return this.#held.get(account)?.jti === jti;
  }

  /** Record a failed write; returns the failure with its backoff. */
  fail(account: string, reason: ResolverFailure, now: number): Failure {
    const attempts = (this.#failures.get(account)?.attempts ?? 0) + 1;
    const wait = Math.min(this.#retryMax, this.#retryInitial * 2 ** (attempts - 1));
    const failure = { attempts, retryAt: now + wait, reason };
    this.#failures.set(account, failure);
    return failure;
  }

  /** The last failure of `account`'s writes, while it is not retried successfully. */
  failure(account: string): Failure | undefined {
    return this.#failures.get(account);
  }

  /** No failed write of `account` waits for its retry at `now`. */
  due(account: string, now: number): boolean {
    return (this.#failures.get(account)?.retryAt ?? 0) <= now;
  }

  /** Run `write` for `account` unless one runs: then share its outcome (single flight). */
  once(account: string, write: () => Promise<boolean>): Promise<boolean> {
    const running = this.#inflight.get(account);
    if (running) return running;
    const run = write().finally(() => this.#inflight.delete(account));
    this.#inflight.set(account, run);
    return run;
  }

  /** Writes in flight (to wait for at close). */
  inflight(): Promise<boolean>[] {
    return [...this.#inflight.values()];
  }

  /** The settled version key (`<jti>|<servers>`) of `account`, if any. */
  settledVersion(account: string): string | undefined {
    return this.#settled.get(account);
  }

  /** Every server held `account` as `version` (`<jti>|<servers>`). */
  settled(account: string, version: string): void {
    this.#settled.set(account, version);
  }
}
