/**
 * Accounts that follow Namespaces (DESIGN D9), kept level-triggered like live revocation: every
 * tick compares the accounts the policy gives the Namespaces now (lib/accounts/planner.ts) with
 * what this replica knows the resolver holds, pushes what differs, and removes what no Namespace
 * has any more. A missed watch event, a push the resolver refused, a replica restart: each only
 * delays the next tick's repair.
 *
 * One account, one step at a time (single flight per key), shared by the tick and the login that
 * needs it now ({@linkcode Provisioner.ensure}):
 * 1. the account's content and content id (lib/accounts/claims.ts, pure);
 * 2. the version the resolver holds, when this replica has not seen one (`CLAIMS.LOOKUP`) — the
 *    same content id means nothing to do, which is how several replicas never fight;
 * 3. otherwise sign with `iat` = the Namespace's creation for a new account, one second after
 *    the held version for an update (every replica computes the same bytes), and push;
 * 4. a refusal is logged with the resolver's words, counted, and retried with backoff.
 *
 * Before the first login of an account version is admitted, {@linkcode Provisioner.ensure} also
 * settles it (lib/accounts/settle.ts): the resolver holding the JWT does not mean every server has
 * loaded it, and a server still loading an account hands it out without JetStream. The login
 * waits until every server holds the account complete, JetStream included when it grants it;
 * settled accounts are remembered per version and server inventory.
 *
 * Removal: an account planned before and not now (Namespace deleted or being deleted, or the
 * policy no longer gives it one) is deleted with an operator-signed `CLAIMS.DELETE` — the servers
 * then disconnect its clients — or, where the resolver does not allow deletes, replaced by a
 * revoked JWT nothing can log in to. A sweep after start and every few minutes lists the resolver's
 * accounts and removes the ones this service made (its tag, and a key that derives from the
 * tagged uid) whose Namespace is gone — including those that vanished while no replica ran.
 *
 * @module
 */
import { delay } from "../core/abort.ts";
import type { NamespaceAccountResult, NamespaceAccounts } from "../decision/namespace_account.ts";
import type { NkeySigner } from "../callout/nkey_jwt.ts";
import type { AccountMetrics } from "../telemetry/account_metrics.ts";
import type { Logger } from "../telemetry/log.ts";
import {
  type AccountContent,
  accountContent,
  deleteRequest,
  MANAGED_TAG,
  REVOKED_TAG,
  revokedContent,
  signAccount,
  UID_TAG_PREFIX,
} from "./claims.ts";
import { deriveAccountKeys } from "./keys.ts";
import type { AccountPlan } from "./plan.ts";
import type { Planner } from "./planner.ts";
import { type ResolverClient, ResolverError, type ResolverFailure } from "./resolver.ts";
import type { AccountSettler } from "./settle.ts";

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
  /** Where pushes, refusals and reconciles are logged. */
  logger: Logger;
  /** The accounts_* metrics. */
  metrics: AccountMetrics;
  /** Clock in milliseconds. @default {() => Date.now()} */
  now?: () => number;
  /** How often the planned accounts are compared with the resolver's. @default {500} */
  tickMs?: number;
  /** How often the resolver's accounts are swept for ones whose Namespace is gone. @default {300000} */
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

/** What the resolver holds for one account, as far as this replica knows. */
export interface Held {
  /** The held JWT's id (a hash of its content). */
  readonly jti: string;
  /** Its issue time, seconds since the epoch (the later `iat` wins a resolvers' merge). */
  readonly iat: number;
  /** The namespace it was provisioned for (from the JWT's tags). */
  readonly namespace: string;
  /** The Namespace uid its keys derive from (from the JWT's tags). */
  readonly uid: string;
  /** The held JWT is the "revoked" one (the resolver does not allow delete). */
  readonly revoked: boolean;
}

/** A failed push or delete: when to try again. */
interface Failure {
  readonly attempts: number;
  readonly retryAt: number;
  readonly reason: ResolverFailure;
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
  const { planner, resolver, settler, operator, root, logger, metrics } = options;
  const now = options.now ?? (() => Date.now());
  const tickMs = options.tickMs ?? 500;
  const sweepIntervalMs = options.sweepIntervalMs ?? 300_000;
  const retryInitial = options.retry?.initialMs ?? 1000;
  const retryMax = options.retry?.maxMs ?? 30_000;
  const concurrency = options.concurrency ?? 16;

  const held = new Map<string, Held>();
  const failures = new Map<string, Failure>();
  const inflight = new Map<string, Promise<boolean>>();
  /** Per account, `<jti>|<servers key>` of the version every server was confirmed to hold. */
  const settled = new Map<string, string>();
  const settling = new Map<string, Promise<string | undefined>>();
  const contents = new WeakMap<AccountPlan, Promise<AccountContent>>();
  let deleteAllowed: boolean | undefined;
  /** From the last list probe: no server answers as a full (or cache) resolver does. */
  let probeProblem: string | undefined = "the resolver has not answered yet";
  /** From the last push: the resolver does not store pushed accounts (a cache or memory resolver). */
  let pushProblem: string | undefined;
  let lastSweep = -Infinity;
  let lastProbe = -Infinity;
  const closing = new AbortController();

  const contentOf = (plan: AccountPlan): Promise<AccountContent> => {
    let c = contents.get(plan);
    if (!c) {
      c = accountContent(plan);
      contents.set(plan, c);
    }
    return c;
  };

  const failed = (account: string, err: unknown, fields: Record<string, unknown>): void => {
    const reason: ResolverFailure = err instanceof ResolverError ? err.reason : "no_response";
    const attempts = (failures.get(account)?.attempts ?? 0) + 1;
    const wait = Math.min(retryMax, retryInitial * 2 ** (attempts - 1));
    failures.set(account, { attempts, retryAt: now() + wait, reason });
    if (reason === "resolver_not_full") {
      pushProblem = err instanceof Error ? err.message : String(err);
    }
    metrics.pushFailures.inc({ reason });
    logger.warn("account_push_failed", {
      ...fields,
      account,
      reason,
      error: err instanceof Error ? err.message : String(err),
      attempts,
      retry_in_ms: wait,
    });
  };

  /** What the resolver holds for `account`: remembered, else looked up. */
  const heldVersion = async (account: string): Promise<Held | undefined> => {
    const known = held.get(account);
    if (known) return known;
    const jwt = await resolver.lookup(account);
    return jwt === undefined ? undefined : parseHeld(jwt);
  };

  /** Steps 1–4 for one planned account; true when the resolver holds its current version. */
  const pushPlan = (plan: AccountPlan): Promise<boolean> => {
    const account = plan.keys.account;
    const running = inflight.get(account);
    if (running) return running;
    const fields = { namespace: plan.namespace, namespace_uid: plan.uid };
    const run = (async () => {
      try {
        const content = await contentOf(plan);
        const prev = await heldVersion(account);
        if (prev?.jti === content.jti) {
          held.set(account, prev);
          failures.delete(account);
          return true;
        }
        const iat = Math.max(plan.createdAt, prev ? prev.iat + 1 : 0);
        const answer = await resolver.push(await signAccount(content, iat, operator));
        held.set(account, {
          jti: content.jti,
          iat,
          namespace: plan.namespace,
          uid: plan.uid,
          revoked: false,
        });
        failures.delete(account);
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
      } finally {
        inflight.delete(account);
      }
    })();
    inflight.set(account, run);
    return run;
  };

  /** Remove an account whose Namespace is gone: delete it, or revoke it where deletes are refused. */
  const removeAccount = (account: string, was: Held): Promise<boolean> => {
    const running = inflight.get(account);
    if (running) return running;
    const fields = { namespace: was.namespace, namespace_uid: was.uid };
    const run = (async () => {
      try {
        if (deleteAllowed !== false) {
          try {
            const nowSec = Math.floor(now() / 1000);
            const answer = await resolver.delete(await deleteRequest([account], operator, nowSec));
            deleteAllowed = true;
            held.delete(account);
            settled.delete(account);
            failures.delete(account);
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
          }
        }
        const nowSec = Math.floor(now() / 1000);
        const content = revokedContent(account, was.namespace, was.uid, nowSec);
        const iat = Math.max(nowSec, was.iat + 1);
        const answer = await resolver.push(await signAccount(content, iat, operator));
        held.set(account, { ...was, jti: content.jti, iat, revoked: true });
        settled.delete(account);
        failures.delete(account);
        metrics.deleted.inc({ how: "revoked" });
        logger.info("account_revoked", { ...fields, account, server: answer.server });
        return true;
      } catch (err) {
        failed(account, err, fields);
        return false;
      } finally {
        inflight.delete(account);
      }
    })();
    inflight.set(account, run);
    return run;
  };

  const due = (account: string): boolean => (failures.get(account)?.retryAt ?? 0) <= now();

  /** Ask the resolvers for their list: a full (or cache) resolver answers; nothing else does. */
  const probe = async (): Promise<string[] | undefined> => {
    lastProbe = now();
    try {
      const keys = await resolver.list();
      probeProblem = undefined;
      return keys;
    } catch (err) {
      probeProblem = "no server answers $SYS.REQ.CLAIMS.LIST: the servers need resolver: " +
        `{ type: full } (${err instanceof Error ? err.message : String(err)})`;
      return undefined;
    }
  };

  /** Remove accounts this service made whose Namespace has no account now. */
  const sweep = async (planned: ReadonlySet<string>): Promise<void> => {
    const keys = await probe();
    if (keys === undefined) return;
    lastSweep = now();
    const unknown = keys.filter((k) => !planned.has(k) && !held.has(k));
    await eachLimited(unknown, concurrency, async (key) => {
      const jwt = await resolver.lookup(key).catch(() => undefined);
      const mine = jwt === undefined ? undefined : ownAccount(jwt, key, operator.publicKey, root);
      if (mine && !mine.revoked) await removeAccount(key, mine);
      else if (mine) held.set(key, mine);
    });
  };

  const reconcile = async (): Promise<void> => {
    if (!resolver.connected) return;
    if (probeProblem !== undefined && now() - lastProbe > 10_000) await probe();
    // Without the whole picture nothing may be removed, and there is nothing to push.
    if (!planner.plansReady()) return;
    const plans = planner.plans();
    const planned = new Set([...plans.values()].map((p) => p.keys.account));
    metrics.planned.set(planned.size);
    // Push what differs (a tick does not wait for a retry that is not due).
    const work: AccountPlan[] = [];
    for (const plan of plans.values()) {
      const account = plan.keys.account;
      const content = await contentOf(plan);
      if (held.get(account)?.jti !== content.jti && due(account)) work.push(plan);
    }
    metrics.pending.set(work.length);
    await eachLimited(work, concurrency, (plan) => pushPlan(plan));
    // Remove what was planned before and is not now.
    const gone = [...held.entries()].filter(([k, h]) => !planned.has(k) && !h.revoked && due(k));
    await eachLimited(gone, concurrency, ([k, h]) => removeAccount(k, h));
    if (now() - lastSweep >= sweepIntervalMs) await sweep(planned);
    let pending = 0;
    for (const plan of plans.values()) {
      if (held.get(plan.keys.account)?.jti !== (await contentOf(plan)).jti) pending++;
    }
    metrics.pending.set(pending);
  };

  let running: Promise<void> | undefined;
  const reconcileOnce = (): Promise<void> => {
    running ??= reconcile().catch((err) => {
      logger.error("account_reconcile_failed", { error: err });
    }).finally(() => {
      running = undefined;
    });
    return running;
  };

  const loop = (async () => {
    while (!closing.signal.aborted) {
      await reconcileOnce();
      await delay(tickMs, closing.signal).catch(() => {});
    }
  })();

  const ensure = async (namespace: string): Promise<NamespaceAccountResult> => {
    const result = planner.accountOf(namespace);
    if (!result.ok) return result;
    const plan = planner.plans().get(namespace);
    if (!plan) return planner.accountOf(namespace);
    const content = await contentOf(plan);
    if (held.get(plan.keys.account)?.jti !== content.jti) {
      if (!resolver.connected) {
        return {
          ok: false,
          reason: "account_unavailable",
          message:
            `the account of Namespace ${namespace} cannot be pushed: no system-account connection`,
        };
      }
      if (!(await pushPlan(plan))) {
        const why = failures.get(plan.keys.account);
        return {
          ok: false,
          reason: "account_unavailable",
          message: `the account of Namespace ${namespace} is not on the resolver yet (${
            why?.reason ?? "push failed"
          }); it is retried`,
        };
      }
    }
    // A server loading this account resolves its imports then: their exporters must be stored.
    await Promise.all(plan.imports.map(async ({ exporter }) => {
      const theirs = planner.plans().get(exporter.namespace);
      if (theirs && held.get(theirs.keys.account)?.jti !== (await contentOf(theirs)).jti) {
        await pushPlan(theirs);
      }
    }));
    const unsettled = await settle(plan, content);
    if (unsettled === undefined) return result;
    return {
      ok: false,
      reason: "account_unavailable",
      message: `the account of Namespace ${namespace} is on the resolver but ${unsettled}`,
    };
  };

  /**
   * Every server holds `plan`'s account as `content` says, or why not. Once per version and
   * server inventory; logins of the same account wait for one attempt.
   */
  const settle = async (plan: AccountPlan, content: AccountContent) => {
    if (!settler) return undefined;
    const account = plan.keys.account;
    const inventory = await settler.inventory().catch(() => undefined);
    if (!inventory) {
      // Without the servers' answers nothing can be checked; a version confirmed before stands.
      return settled.get(account)?.startsWith(`${content.jti}|`)
        ? undefined
        : "could not be checked: the servers did not answer $SYS.REQ.SERVER.PING.STATSZ";
    }
    const version = `${content.jti}|${inventory.key}`;
    if (settled.get(account) === version) return undefined;
    const running = settling.get(account);
    if (running) return await running;
    const started = now();
    const jetstream = plan.settings.jetstream !== undefined;
    const run = settler.settle(account, { jetstream, inventory }).then(
      (r) => {
        const fields = { namespace: plan.namespace, namespace_uid: plan.uid, account };
        if (r.ok) {
          settled.set(account, version);
          logger.debug("account_settled", {
            ...fields,
            servers: r.servers,
            rounds: r.rounds,
            duration_ms: now() - started,
          });
          if (r.importsIncompleteOn.length > 0) {
            logger.warn("account_imports_incomplete", {
              ...fields,
              servers: r.importsIncompleteOn,
            });
          }
          return undefined;
        }
        metrics.settleFailures.inc();
        logger.warn("account_not_settled", {
          ...fields,
          jetstream,
          missing: r.missing.map((m) => `${m.server}:${m.gap}`),
          duration_ms: now() - started,
        });
        return `not in place on every server yet (${r.message}); it is retried`;
      },
      (err: unknown) =>
        `could not be checked on the servers (${err instanceof Error ? err.message : String(err)})`,
    ).finally(() => settling.delete(account));
    settling.set(account, run);
    return await run;
  };

  const close = async (): Promise<void> => {
    closing.abort();
    await loop;
    await Promise.allSettled([...inflight.values()]);
  };

  return {
    accountOf: (namespace) => planner.accountOf(namespace),
    ensure,
    reconcile: reconcileOnce,
    get state(): ProvisioningState {
      const problem = !resolver.connected
        ? "no system-account connection"
        : !planner.plansReady()
        ? "the Namespace cache has not completed its first list"
        : probeProblem ?? pushProblem;
      return { ready: problem === undefined, problem };
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Run `fn` over `items`, at most `limit` at a time. */
async function eachLimited<T>(
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

/** The claims of a JWT, unverified (the resolver only holds JWTs it verified). */
function claimsOf(jwt: string): Record<string, unknown> | undefined {
  try {
    const part = jwt.split(".")[1] ?? "";
    const value: unknown = JSON.parse(
      new TextDecoder().decode(Uint8Array.fromBase64(part, { alphabet: "base64url" })),
    );
    return value !== null && typeof value === "object"
      ? value as Record<string, unknown>
      : undefined;
  } catch {
    return undefined;
  }
}

function tagsOf(claims: Record<string, unknown>): string[] {
  const nats = claims.nats as { tags?: unknown } | undefined;
  return Array.isArray(nats?.tags)
    ? nats.tags.filter((t): t is string => typeof t === "string")
    : [];
}

/** What a JWT the resolver holds says of its version (for an account of ours). */
function parseHeld(jwt: string): Held | undefined {
  const claims = claimsOf(jwt);
  if (!claims || typeof claims.jti !== "string" || typeof claims.iat !== "number") return undefined;
  const tags = tagsOf(claims);
  return {
    jti: claims.jti,
    iat: claims.iat,
    namespace: typeof claims.name === "string" ? claims.name : "",
    uid: tags.find((t) => t.startsWith(UID_TAG_PREFIX))?.slice(UID_TAG_PREFIX.length) ?? "",
    revoked: tags.includes(REVOKED_TAG),
  };
}

/**
 * The held version of `key` when the JWT is this service's: signed by our operator signing key,
 * tagged as ours, and `key` derives from our root and the tagged uid (so another deployment
 * sharing the operator key never has its accounts removed by this one).
 */
export function ownAccount(
  jwt: string,
  key: string,
  operator: string,
  root: Uint8Array,
): Held | undefined {
  const claims = claimsOf(jwt);
  if (!claims || claims.iss !== operator || claims.sub !== key) return undefined;
  if (!tagsOf(claims).includes(MANAGED_TAG)) return undefined;
  const h = parseHeld(jwt);
  if (!h || h.uid === "" || deriveAccountKeys(root, h.uid).account !== key) return undefined;
  return h;
}
