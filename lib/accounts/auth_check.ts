/**
 * Whether AUTH — the callout's own account — admits the accounts the service places users in. A
 * callout answer places its user by `issuer_account`, and nats-server accepts an account other than
 * AUTH only when AUTH's JWT lists it in `authorization.allowed_accounts`, or lists exactly `["*"]`
 * (`getIssuerAccount`, `server/auth_callout.go:189`; `isAllowedAcount`, `server/accounts.go`).
 * Provisioned accounts are made at run time, so only `["*"]` admits them. Without it the servers
 * refuse every login placed in a namespace's account (the client sees `Authorization Violation`)
 * while this service has nothing to go on: its own answers are well-formed and signed.
 *
 * {@linkcode judgeAuthAccount} is the decision (pure); {@linkcode createAuthCheck} looks AUTH's JWT
 * up on the resolver (`$SYS.REQ.ACCOUNT.<key>.CLAIMS.LOOKUP`), keeps the verdict for readiness,
 * logs each change once and sets `nats_auth_accounts_auth_admits_all`. `nsc push` can change AUTH
 * at any time, so the provisioner asks again every few seconds.
 *
 * @module
 */
import { unverifiedClaims } from "../core/jwt_shape.ts";
import type { Gauge } from "../telemetry/metrics.ts";
import type { Logger } from "../telemetry/log.ts";
import type { ResolverClient } from "./resolver.ts";

/** Why AUTH does not (or cannot be seen to) admit the provisioned accounts; a log field. */
export type AuthProblemReason =
  | "not_admitting"
  | "servers_disagree"
  | "not_on_resolver"
  | "malformed_jwt"
  | "lookup_failed";

/** The verdict on AUTH's JWT. */
export type AuthVerdict =
  | { readonly ok: true }
  | {
    readonly ok: false;
    readonly reason: AuthProblemReason;
    /** What AUTH lists (`not_admitting`; each copy's list for `servers_disagree`), for the log. */
    readonly allowedAccounts?: readonly string[];
    /** One sentence for `/readyz` and the log: what is wrong and the fix. */
    readonly problem: string;
  };

/** `allowed_accounts` of account claims, or `[]` when absent; `undefined` when malformed. */
function allowedAccountsOf(claims: Record<string, unknown>): string[] | undefined {
  const nats = claims.nats as { authorization?: { allowed_accounts?: unknown } } | undefined;
  const list = nats?.authorization?.allowed_accounts;
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list) || !list.every((a) => typeof a === "string")) return undefined;
  return list;
}

/** Exactly `["*"]`: the only list that admits accounts made at run time (`isAllowedAcount`). */
function admitsAll(list: readonly string[]): boolean {
  return list.length === 1 && list[0] === "*";
}

/** One server's copy of AUTH's JWT, read. */
interface Copy {
  readonly name: string;
  readonly iat: number;
  readonly allowed: readonly string[];
}

/**
 * Judge what the servers hold for AUTH (`authAccount`): every server's copy of its JWT
 * (lib/accounts/resolver.ts `copies`; none when no server holds it), or the error of a lookup that
 * failed. Ok only when every copy lists `allowed_accounts` exactly `["*"]`: each nats-server checks
 * a callout's placement against its own copy (`getIssuerAccount`, `server/auth_callout.go:189`),
 * so one stale copy refuses the logins that reach that server.
 *
 * @example
 * ```ts
 * import { judgeAuthAccount } from "./auth_check.ts";
 * const verdict = judgeAuthAccount("AAUTH", []);
 * console.assert(!verdict.ok && verdict.reason === "not_on_resolver");
 * ```
 */
export function judgeAuthAccount(
  authAccount: string,
  held: readonly string[] | Error,
): AuthVerdict {
  const named = `AUTH, the callout's account ${authAccount} (of the NATS_USER_CREDS_FILE user),`;
  const want = 'allowed_accounts ["*"]';
  if (held instanceof Error) {
    return {
      ok: false,
      reason: "lookup_failed",
      problem: `${named} cannot be looked up on the resolver ` +
        `($SYS.REQ.ACCOUNT.${authAccount}.CLAIMS.LOOKUP: ${held.message}), so it cannot be ` +
        `checked that it admits the namespaces' accounts (${want})`,
    };
  }
  if (held.length === 0) {
    return {
      ok: false,
      reason: "not_on_resolver",
      problem: `${named} is on no server's resolver, so it cannot be checked that it admits ` +
        `the namespaces' accounts (${want}): push it (nsc push --account <its nsc name>)`,
    };
  }
  const copies: Copy[] = [];
  for (const jwt of held) {
    const claims = unverifiedClaims(jwt);
    const allowed = claims && claims.sub === authAccount ? allowedAccountsOf(claims) : undefined;
    if (claims === undefined || allowed === undefined) {
      return {
        ok: false,
        reason: "malformed_jwt",
        problem: `${named} has a JWT on the resolver that is not its account JWT (no sub ` +
          `${authAccount}, or authorization.allowed_accounts not a list of keys): push AUTH's ` +
          `account JWT again, with ${want} (nsc push --account <its nsc name>)`,
      };
    }
    const name = typeof claims.name === "string" && claims.name !== "" ? claims.name : "AUTH";
    copies.push({ name, iat: Number(claims.iat) || 0, allowed });
  }
  if (copies.every((c) => admitsAll(c.allowed))) return { ok: true };
  const newest = copies.reduce((a, b) => (b.iat > a.iat ? b : a));
  const lists = [...new Set(copies.map((c) => JSON.stringify(c.allowed)))];
  if (lists.length > 1) {
    return {
      ok: false,
      reason: "servers_disagree",
      allowedAccounts: lists,
      problem: `${named} differs between servers: ${copies.length} copies list ` +
        `${lists.join(" / ")}; each server admits a namespace's login by its own copy, so the ` +
        `servers with a copy other than ${want} refuse them (Authorization Violation). Fix: ` +
        (admitsAll(newest.allowed)
          ? `nsc push --account ${newest.name} (sends the newest copy to every server again)`
          : fixOf(newest)),
    };
  }
  return {
    ok: false,
    reason: "not_admitting",
    allowedAccounts: newest.allowed,
    problem: `${named} lists allowed_accounts ${JSON.stringify(newest.allowed)}, not exactly ` +
      `["*"]: nats-server refuses every login placed in a namespace's account (Authorization ` +
      `Violation). Fix: ${fixOf(newest)}`,
  };
}

/** The nsc commands that make `copy`'s list exactly `["*"]` (nsc adds before it removes). */
function fixOf(copy: Copy): string {
  const remove = copy.allowed.filter((a) => a !== "*").map((a) => ` --rm-allowed-account ${a}`);
  const add = copy.allowed.includes("*") ? "" : " --allowed-account '*'";
  return `nsc edit authcallout --account ${copy.name}${remove.join("")}${add} && ` +
    `nsc push --account ${copy.name}`;
}

/** Options of {@linkcode createAuthCheck}. */
export interface AuthCheckOptions {
  /** The servers' resolver. */
  readonly resolver: ResolverClient;
  /** AUTH's public key (`Config.provisioning.authAccount`). */
  readonly authAccount: string;
  /** Where each change of verdict is logged, once. */
  readonly logger: Logger;
  /** `nats_auth_accounts_auth_admits_all`: 1 while AUTH admits every account, else 0. */
  readonly gauge: Gauge;
}

/** The check's state, asked again by the provisioner. */
export interface AuthCheck {
  /** Why AUTH does not admit the provisioned accounts, for readiness; `undefined` when it does. */
  readonly problem: string | undefined;
  /** Look AUTH's JWT up and judge it; logs only when the verdict changed. */
  check(): Promise<void>;
}

/**
 * The check of `options.authAccount` over `options.resolver`; unchecked (a problem) until the
 * first {@linkcode AuthCheck.check}.
 *
 * @example
 * ```ts ignore
 * const auth = createAuthCheck({ resolver, authAccount, logger, gauge: metrics.authAdmitsAll });
 * await auth.check();
 * auth.problem; // undefined when AUTH lists allowed_accounts ["*"]
 * ```
 */
export function createAuthCheck(options: AuthCheckOptions): AuthCheck {
  const { resolver, authAccount, logger, gauge } = options;
  let problem: string | undefined = `AUTH (${authAccount}) has not been checked yet`;
  /** The last verdict logged: its reason and what AUTH listed (not the words of an error). */
  let logged: string | undefined;
  /** True once a lookup was answered: from then on a failed lookup keeps the last verdict. */
  let judged = false;
  return {
    get problem() {
      return problem;
    },
    async check() {
      // A longer wait than a push's lookup: a server that holds AUTH but answers late must not
      // look like one without it.
      const held = await resolver.copies(authAccount, { stallMs: 250 }).catch((err: unknown) =>
        err instanceof Error ? err : new Error(String(err))
      );
      const verdict = judgeAuthAccount(authAccount, held);
      if (held instanceof Error && judged) {
        // A lookup that failed (no server answered: a restart, a reconnect) says nothing about
        // AUTH: the last answer stands, or every replica would leave the queue group at once.
        if (logged !== "lookup_failed") {
          logged = "lookup_failed";
          logger.warn("auth_account_lookup_failed", { auth_account: authAccount, error: held });
        }
        return;
      }
      judged = true;
      problem = verdict.ok ? undefined : verdict.problem;
      gauge.set(verdict.ok ? 1 : 0);
      const key = verdict.ok ? "ok" : `${verdict.reason} ${verdict.allowedAccounts?.join(",")}`;
      if (key === logged) return;
      logged = key;
      if (verdict.ok) {
        logger.info("auth_account_admitting", {
          auth_account: authAccount,
          allowed_accounts: ["*"],
        });
        return;
      }
      logger.error(
        verdict.reason === "not_admitting" || verdict.reason === "servers_disagree"
          ? "auth_account_not_admitting"
          : "auth_account_unchecked",
        {
          auth_account: authAccount,
          reason: verdict.reason,
          ...(verdict.allowedAccounts ? { allowed_accounts: verdict.allowedAccounts } : {}),
          problem: verdict.problem,
        },
      );
    },
  };
}
