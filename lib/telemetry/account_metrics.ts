/**
 * The metrics of accounts that follow namespaces (lib/accounts/), registered on the service's
 * registry only when provisioning is configured. Labels stay bounded: `reason` is a
 * `ResolverFailure`, `how` is `deleted` or `revoked`.
 *
 * @module
 */
import type { Counter, Gauge, Registry } from "./metrics.ts";

/** The provisioning metrics. */
export interface AccountMetrics {
  /** `nats_auth_accounts_provisioned_total`: account JWTs pushed for a key the resolver did not hold. */
  readonly provisioned: Counter;
  /** `nats_auth_accounts_updated_total`: account JWTs pushed over an older version. */
  readonly updated: Counter;
  /** `nats_auth_accounts_deleted_total{how}`: accounts removed (`deleted`) or, without `allow_delete`, `revoked`. */
  readonly deleted: Counter;
  /** `nats_auth_account_push_failures_total{reason}`: pushes and deletes the resolver refused or missed. */
  readonly pushFailures: Counter;
  /**
   * `nats_auth_account_settle_failures_total`: first logins refused because an account was not yet
   * in place on every server (lib/accounts/settle.ts).
   */
  readonly settleFailures: Counter;
  /** `nats_auth_accounts`: accounts the policy gives Namespaces now. */
  readonly planned: Gauge;
  /** `nats_auth_accounts_pending`: of those, not (yet) confirmed on the resolver in their current version. */
  readonly pending: Gauge;
  /**
   * `nats_auth_accounts_auth_admits_all`: 1 while AUTH's JWT lists `allowed_accounts: ["*"]` (the
   * servers admit users placed in provisioned accounts), 0 while it does not or cannot be looked up.
   */
  readonly authAdmitsAll: Gauge;
  /**
   * `nats_auth_accounts_from_other_seed`: accounts on the resolver tagged as this service's whose
   * keys do not derive from this replica's `NATS_ACCOUNTS_SEED_FILE` (another seed, or a seed change).
   */
  readonly fromOtherSeed: Gauge;
}

/**
 * Register the provisioning metrics on `registry`.
 *
 * @example
 * ```ts
 * import { Registry } from "./metrics.ts";
 * import { createAccountMetrics } from "./account_metrics.ts";
 * const registry = new Registry();
 * createAccountMetrics(registry).provisioned.inc();
 * console.assert(registry.render().includes("nats_auth_accounts_provisioned_total 1"));
 * ```
 */
export function createAccountMetrics(registry: Registry): AccountMetrics {
  return {
    provisioned: registry.counter(
      "nats_auth_accounts_provisioned_total",
      "Account JWTs pushed to the resolver for a new account.",
    ),
    updated: registry.counter(
      "nats_auth_accounts_updated_total",
      "Account JWTs pushed over an older version of the account.",
    ),
    deleted: registry.counter(
      "nats_auth_accounts_deleted_total",
      "Accounts removed from the resolver (how: deleted, or revoked where delete is not allowed).",
    ),
    pushFailures: registry.counter(
      "nats_auth_account_push_failures_total",
      "Account pushes and deletes that failed, by reason.",
    ),
    settleFailures: registry.counter(
      "nats_auth_account_settle_failures_total",
      "Logins refused because their account was not yet in place on every server.",
    ),
    planned: registry.gauge("nats_auth_accounts", "Accounts the policy gives Namespaces now."),
    pending: registry.gauge(
      "nats_auth_accounts_pending",
      "Planned accounts whose current version the resolver has not confirmed yet.",
    ),
    authAdmitsAll: registry.gauge(
      "nats_auth_accounts_auth_admits_all",
      'Whether the callout\'s AUTH account JWT lists allowed_accounts ["*"] (1) or not, or cannot be looked up (0).',
    ),
    fromOtherSeed: registry.gauge(
      "nats_auth_accounts_from_other_seed",
      "Accounts on the resolver made by this service with another NATS_ACCOUNTS_SEED_FILE.",
    ),
  };
}
