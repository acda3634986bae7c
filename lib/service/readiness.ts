/**
 * The service's readiness checks, built from its started sources: what `/readyz` reports, what
 * the `ready`/`not_ready` log lines name, and what decides membership of the callout queue group
 * (DESIGN D5) — readiness and doing the work are one state.
 *
 * @module
 */
import type { ExpiredStreak } from "../callout/clock_skew.ts";
import { formatDuration } from "../core/duration.ts";
import type { ServiceAccountSource } from "../core/model.ts";
import type { ReadinessCheck } from "../operations/http.ts";
import type { Sources } from "./sources.ts";

/** What the background start-up has reached, read live by the checks. */
export interface StartupState {
  /** True when this replica answers callouts (or is not meant to: `deno task explain`). */
  natsReady(): boolean;
  /** True once the token issuers are known (configured, or discovered from the apiserver). */
  issuersKnown(): boolean;
  /**
   * Accounts that follow namespaces: whether pushes can work now, and why not (no system-account
   * connection, no full resolver answering, Namespaces not listed yet). @default {always ready}
   */
  accounts?(): { ready: boolean; problem: string | undefined };
  /**
   * The requests dropped as expired in a row (this host's clock far ahead): the "clock" check,
   * present when given. @default {no clock check}
   */
  expiredStreak?: ExpiredStreak;
}

/**
 * Every readiness check of the service, in the order `/readyz` lists them: nats,
 * serviceaccounts, pods and namespaces (when started), keys, accounts (when provisioning), clock
 * (when answering callouts).
 */
export function readinessChecks(
  sources: Sources,
  state: StartupState,
  maxStalenessMs: number | undefined,
): ReadinessCheck[] {
  const { serviceAccounts, pods, namespaces, keys } = sources;
  return [
    { name: "nats", ready: () => state.natsReady() },
    serviceAccountsCheck(serviceAccounts, maxStalenessMs),
    ...(pods ? [{ name: "pods", ready: () => pods.synced === true }] : []),
    ...(namespaces ? [{ name: "namespaces", ready: () => namespaces.synced === true }] : []),
    { name: "keys", ready: () => keys.ready && state.issuersKnown() },
    ...(sources.accounts ? [accountsCheck(state)] : []),
    ...(state.expiredStreak ? [clockCheck(state.expiredStreak)] : []),
  ];
}

/**
 * The "accounts" readiness check (accounts that follow namespaces): a replica that cannot push an
 * account cannot place a login in a new namespace, so it does not take logins (DESIGN D5).
 */
function accountsCheck(state: StartupState): ReadinessCheck {
  const now = () => state.accounts?.() ?? { ready: false, problem: "provisioning has not started" };
  return {
    name: "accounts",
    ready: () => now().ready,
    details: () => {
      const { ready, problem } = now();
      return ready ? { provisioning: "ready" } : { reason: problem ?? "unknown" };
    },
  };
}

/**
 * The "clock" readiness check: a replica whose latest requests were all dropped as expired (its
 * clock far ahead of the servers') leaves the queue group so the others answer; it rejoins on
 * trial after a while, and stays once a request passes.
 */
function clockCheck(streak: ExpiredStreak): ReadinessCheck {
  return { name: "clock", ready: () => streak.ready(), details: () => streak.details() };
}

/**
 * The checks that say whether this replica can decide a login: all but "nats", which follows
 * from deciding (the replica joins the queue group only when it can decide).
 */
export function decidingChecks(checks: readonly ReadinessCheck[]): ReadinessCheck[] {
  return checks.filter((c) => c.name !== "nats");
}

/** Names of the checks that do not pass now; a throw counts as not passing. */
export function failingChecks(checks: readonly ReadinessCheck[]): string[] {
  return checks.filter((c) => {
    try {
      return c.ready() !== true;
    } catch {
      return true;
    }
  }).map((c) => c.name);
}

/**
 * How long ago the source last heard from its origin; 0 for sources that are always current.
 * The staleness gauge and the "serviceaccounts" check read the same number.
 */
export function stalenessMs(source: ServiceAccountSource): number {
  return source.freshAt === undefined ? 0 : Math.max(0, Date.now() - source.freshAt);
}

/**
 * The "serviceaccounts" readiness check: synced, and — when `maxStalenessMs` is set
 * (`CACHE_MAX_STALENESS`) — not staler than that. Its details always say how stale the cache is,
 * and why it fails when it does (issue 10, defects 6 and 7).
 */
export function serviceAccountsCheck(
  source: ServiceAccountSource,
  maxStalenessMs: number | undefined,
): ReadinessCheck {
  const tooStale = () => maxStalenessMs !== undefined && stalenessMs(source) > maxStalenessMs;
  return {
    name: "serviceaccounts",
    ready: () => source.synced && !tooStale(),
    details: () => {
      const staleness = Math.round(stalenessMs(source) / 100) / 10;
      const reason = !source.synced
        ? "the first list of ServiceAccounts has not completed"
        : tooStale()
        ? `no answer from the apiserver for ${staleness}s, more than CACHE_MAX_STALENESS (${
          formatDuration(maxStalenessMs!)
        }); decisions would use a stale ServiceAccount cache`
        : undefined;
      return {
        synced: source.synced,
        staleness_seconds: staleness,
        ...(maxStalenessMs !== undefined ? { max_staleness_seconds: maxStalenessMs / 1000 } : {}),
        ...(reason !== undefined ? { reason } : {}),
      };
    },
  };
}
