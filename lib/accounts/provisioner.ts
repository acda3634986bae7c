/**
 * Accounts that follow Namespaces (DESIGN D9), kept level-triggered like live revocation: every
 * tick compares the accounts the policy gives the Namespaces now (lib/accounts/planner.ts) with
 * what this replica knows the resolver holds (lib/accounts/ledger.ts), pushes what differs and
 * removes what no Namespace has any more (lib/accounts/writes.ts); every few seconds it compares
 * with the resolver's own list (lib/accounts/survey.ts), so an account removed behind its back is
 * pushed again and one left over from a Namespace that went while no replica ran is removed. A
 * missed watch event, a push the resolver refused, a replica restart, an `nsc push --prune`: each
 * only delays a later tick's repair.
 *
 * A login reaches the same steps through {@linkcode Provisioner.ensure} (lib/accounts/ensure.ts),
 * which also waits until every server holds the account (lib/accounts/settle.ts).
 *
 * @module
 */
import { delay } from "../core/abort.ts";
import type { NamespaceAccounts } from "../decision/namespace_account.ts";
import type { NkeySigner } from "../callout/nkey_jwt.ts";
import type { AccountMetrics } from "../telemetry/account_metrics.ts";
import type { Logger } from "../telemetry/log.ts";
import { type AuthCheck, createAuthCheck } from "./auth_check.ts";
import { createEnsure, type Ensure } from "./ensure.ts";
import { createLoadProof, type LoadProof } from "./load_proof.ts";
import { AccountLedger } from "./ledger.ts";
import type { AccountPlan } from "./plan.ts";
import type { Planner } from "./planner.ts";
import type { ResolverClient } from "./resolver.ts";
import type { AccountSettler } from "./settle.ts";
import { createResolverSurvey, eachLimited, type ResolverSurvey } from "./survey.ts";
import { type AccountWriter, createAccountWriter } from "./writes.ts";

export type { Held } from "./held.ts";
export { ownAccount } from "./held.ts";

/** Options of {@linkcode startProvisioner}. */
export interface ProvisionerOptions {
  /** The accounts to have (the policy and the Namespaces, planned). */
  planner: Planner;
  /** The servers' resolver, over the system-account connection. */
  resolver: ResolverClient;
  /**
   * Loads an account on every server and confirms it before a login is admitted
   * (lib/accounts/settle.ts). Without one a login waits only for the resolver to hold the JWT.
   */
  settler?: AccountSettler;
  /** The operator signing key (`NATS_OPERATOR_SIGNING_KEY_FILE`): signs account JWTs and deletes. */
  operator: NkeySigner;
  /** The root secret the account keys derive from (lib/accounts/keys.ts), to recognise our own. */
  root: Uint8Array;
  /**
   * AUTH, the callout's own account: its JWT must list `allowed_accounts: ["*"]`, checked with the
   * resolver's list (lib/accounts/auth_check.ts).
   */
  authAccount: string;
  /** Where pushes, refusals and reconciles are logged. */
  logger: Logger;
  /** The accounts_* metrics. */
  metrics: AccountMetrics;
  /** Clock in milliseconds. @default {() => Date.now()} */
  now?: () => number;
  /** How often the planned accounts are compared with the resolver's. @default {500} */
  tickMs?: number;
  /**
   * How often the resolver's list is compared with what this replica believes it holds: a planned
   * account it no longer lists is pushed again, a new key is looked at. @default {5000}
   */
  listIntervalMs?: number;
  /**
   * How often every key on the resolver that no plan wants is looked at again (a left-over
   * account of this service is removed). @default {300000}
   */
  sweepIntervalMs?: number;
  /** Backoff after a failed push or delete: from `initialMs` doubling to `maxMs`. @default {{ initialMs: 1000, maxMs: 30000 }} */
  retry?: { initialMs?: number; maxMs?: number };
  /** Pushes and lookups in flight at once during a tick. @default {16} */
  concurrency?: number;
}

/** What readiness reports of provisioning. */
export interface ProvisioningState {
  /** True when pushes can work: connected, a full resolver answers, Namespaces synced. */
  readonly ready: boolean;
  /** Why not, for `/readyz`. */
  readonly problem: string | undefined;
}

/** The running provisioner: the login's port, readiness, and close. */
export interface Provisioner extends NamespaceAccounts, AsyncDisposable {
  /** Readiness: whether provisioning can work (system connection, full resolver), for `/readyz`. */
  readonly state: ProvisioningState;
  /** Run one reconcile pass now (tests, benchmarks); resolves when it is done. */
  reconcile(): Promise<void>;
  /** Stop the loop; pending pushes are abandoned. */
  close(): Promise<void>;
}

/**
 * Start reconciling in the background (first tick at once). `ensure` is the login's way in.
 *
 * @example
 * ```ts ignore
 * await using provisioner = startProvisioner({ planner, resolver, operator, root, logger, metrics });
 * const result = await provisioner.ensure("team-a"); // { ok: true, account: "A…", … }
 * ```
 */
export function startProvisioner(options: ProvisionerOptions): Provisioner {
  const { planner, resolver } = options;
  const now = options.now ?? (() => Date.now());
  const ledger = new AccountLedger(options.retry);
  const writer = createAccountWriter({ ...options, ledger, now });
  const survey = createResolverSurvey({
    ...options,
    operator: options.operator.publicKey,
    ledger,
    writer,
    concurrency: options.concurrency ?? 16,
  });
  const proof = createLoadProof(options.operator.publicKey);
  const auth = createAuthCheck({ ...options, gauge: options.metrics.authAdmitsAll });
  const ensure = createEnsure({
    ...options,
    settler: options.settler,
    ledger,
    writer,
    now,
    onSettle: (account, result) => proof.observe(account, result),
  });
  const reconcile = createReconcile({
    ...options,
    now,
    ledger,
    writer,
    survey,
    auth,
    ...(options.settler ? { proof: { state: proof, ensure } } : {}),
  });
  const loop = runEvery(options.tickMs ?? 500, reconcile.once);
  const close = async (): Promise<void> => {
    await loop.stop();
    await Promise.allSettled(ledger.inflight());
  };
  return {
    accountOf: (namespace) => planner.accountOf(namespace),
    ensure,
    reconcile: reconcile.once,
    get state(): ProvisioningState {
      const problem = !resolver.connected
        ? "no system-account connection"
        : !planner.plansReady()
        ? "the Namespace cache has not completed its first list"
        : survey.problem ?? auth.problem ?? writer.problem ?? proof.problem;
      return { ready: problem === undefined, problem };
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** What one reconcile pass needs. */
interface ReconcileParts {
  readonly planner: Planner;
  readonly resolver: ResolverClient;
  readonly ledger: AccountLedger;
  readonly writer: AccountWriter;
  readonly survey: ResolverSurvey;
  readonly auth: AuthCheck;
  readonly metrics: AccountMetrics;
  readonly logger: Logger;
  readonly now: () => number;
  readonly concurrency?: number;
  readonly listIntervalMs?: number;
  readonly sweepIntervalMs?: number;
  /** Proves pushed accounts load (with a settler): the proof and the login's way in. */
  readonly proof?: { readonly state: LoadProof; readonly ensure: Ensure };
}

/**
 * One reconcile pass, as named steps: probe a silent resolver; check AUTH when due; push the
 * plans that differ; remove what was planned before and is not now; compare with the resolver's
 * list when due; prove that pushed accounts load until one did. Passes never overlap (`once`
 * shares a running one).
 */
function createReconcile(parts: ReconcileParts): { once: () => Promise<void> } {
  const { planner, resolver, ledger, writer, survey, auth, metrics, logger, now } = parts;
  const concurrency = parts.concurrency ?? 16;
  const listIntervalMs = parts.listIntervalMs ?? 5000;
  const sweepIntervalMs = parts.sweepIntervalMs ?? 300_000;
  let lastProbe = -Infinity;
  let lastAuth = -Infinity;
  let lastList = -Infinity;
  let lastSweep = -Infinity;
  let lastProof = -Infinity;

  /** A resolver that has not answered is asked again every 10 s, plans or not (readiness). */
  const probeIfSilent = async () => {
    if (survey.problem === undefined || now() - lastProbe <= 10_000) return;
    lastProbe = now();
    await survey.probe();
  };

  /** AUTH's `allowed_accounts`, every `listIntervalMs` (`nsc push` may change it any time). */
  const checkAuthWhenDue = async () => {
    if (now() - lastAuth < listIntervalMs) return;
    lastAuth = now();
    await auth.check();
  };

  /** Push every plan whose content the resolver does not hold (a retry not due waits). */
  const pushChanged = async (plans: ReadonlyMap<string, AccountPlan>) => {
    const work: AccountPlan[] = [];
    for (const plan of plans.values()) {
      const account = plan.keys.account;
      const current = ledger.isCurrent(account, (await ledger.contentOf(plan)).jti);
      if (!current && ledger.due(account, now())) work.push(plan);
    }
    metrics.pending.set(work.length);
    await eachLimited(work, concurrency, (plan) => writer.push(plan));
  };

  /** Remove what was planned before and is not now. */
  const removeUnplanned = async (planned: ReadonlySet<string>) => {
    const gone = [...ledger.holding()].filter(([k, h]) =>
      !planned.has(k) && !h.revoked && ledger.due(k, now())
    );
    await eachLimited(gone, concurrency, ([k, h]) => writer.remove(k, h));
  };

  /** The resolver's list, every `listIntervalMs`; every key looked at every `sweepIntervalMs`. */
  const compareWhenDue = async (planned: ReadonlySet<string>) => {
    if (now() - lastList < listIntervalMs) return;
    lastList = lastProbe = now();
    const full = now() - lastSweep >= sweepIntervalMs;
    if (full) lastSweep = now();
    await survey.compare(planned, full);
    metrics.fromOtherSeed.set(survey.fromOtherSeed);
  };

  /**
   * While no settle has shown a pushed account loading, settle one (every 10 s): the servers may
   * store accounts they never load (lib/accounts/load_proof.ts).
   */
  const proveLoading = async (plans: ReadonlyMap<string, AccountPlan>) => {
    if (!parts.proof?.state.unproven || now() - lastProof < 10_000) return;
    for (const plan of plans.values()) {
      if (!ledger.isCurrent(plan.keys.account, (await ledger.contentOf(plan)).jti)) continue;
      lastProof = now();
      await parts.proof.ensure(plan.namespace);
      return;
    }
  };

  const pendingCount = async (plans: ReadonlyMap<string, AccountPlan>) => {
    let pending = 0;
    for (const plan of plans.values()) {
      if (!ledger.isCurrent(plan.keys.account, (await ledger.contentOf(plan)).jti)) pending++;
    }
    return pending;
  };

  const reconcile = async (): Promise<void> => {
    if (!resolver.connected) return;
    await probeIfSilent();
    await checkAuthWhenDue();
    // Without the whole picture nothing may be removed, and there is nothing to push.
    if (!planner.plansReady()) return;
    const plans = planner.plans();
    const planned = new Set([...plans.values()].map((p) => p.keys.account));
    metrics.planned.set(planned.size);
    await pushChanged(plans);
    await removeUnplanned(planned);
    await compareWhenDue(planned);
    await proveLoading(plans);
    metrics.pending.set(await pendingCount(plans));
    ledger.pruneIssuedAt(Math.floor(now() / 1000));
  };

  let running: Promise<void> | undefined;
  const once = (): Promise<void> => {
    running ??= reconcile().catch((err) => {
      logger.error("account_reconcile_failed", { error: err });
    }).finally(() => {
      running = undefined;
    });
    return running;
  };
  return { once };
}

/** Run `pass` now and then every `intervalMs` after the last one ended, until stopped. */
function runEvery(intervalMs: number, pass: () => Promise<void>): { stop: () => Promise<void> } {
  const closing = new AbortController();
  const loop = (async () => {
    while (!closing.signal.aborted) {
      await pass();
      await delay(intervalMs, closing.signal).catch(() => {});
    }
  })();
  return {
    stop: async () => {
      closing.abort();
      await loop;
    },
  };
}
