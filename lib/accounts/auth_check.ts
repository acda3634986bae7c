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
  | "not_on_resolver"
  | "malformed_jwt"
  | "lookup_failed";

/** The verdict on AUTH's JWT. */
export type AuthVerdict =
  | { readonly ok: true }
  | {
    readonly ok: false;
    readonly reason: AuthProblemReason;
    /** What AUTH lists (`not_admitting`), for the log. */
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

/**
 * Judge what the resolver holds for AUTH (`authAccount`): its JWT, `undefined` when no server
 * holds one, or the error of a lookup that failed. Only `allowed_accounts` exactly `["*"]` is ok.
 *
 * @example
 * ```ts
 * import { judgeAuthAccount } from "./auth_check.ts";
 * const verdict = judgeAuthAccount("AAUTH", undefined);
 * console.assert(!verdict.ok && verdict.reason === "not_on_resolver");
 * ```
 */
export function judgeAuthAccount(
  authAccount: string,
  held: string | undefined | Error,
): AuthVerdict {
  const named = `AUTH, the callout's account ${authAccount} (of the NATS_USER_CREDS_FILE user),`;
  if (held instanceof Error) {
    return {
      ok: false,
      reason: "lookup_failed",
      problem: `${named} cannot be looked up on the resolver ` +
        `($SYS.REQ.ACCOUNT.${authAccount}.CLAIMS.LOOKUP: ${held.message}), so it cannot be ` +
        `checked that it admits the namespaces' accounts (allowed_accounts ["*"])`,
    };
  }
  if (held === undefined || held === "") {
    return {
      ok: false,
      reason: "not_on_resolver",
      problem: `${named} is on no server's resolver, so it cannot be checked that it admits ` +
        `the namespaces' accounts (allowed_accounts ["*"]): push it (nsc push --account AUTH)`,
    };
  }
  const claims = unverifiedClaims(held);
  const listed = claims && claims.sub === authAccount ? allowedAccountsOf(claims) : undefined;
  if (listed === undefined) {
    return {
      ok: false,
      reason: "malformed_jwt",
      problem: `${named} has a JWT on the resolver that is not its account JWT ` +
        `(no sub ${authAccount}, or authorization.allowed_accounts not a list of keys)`,
    };
  }
  if (listed.length === 1 && listed[0] === "*") return { ok: true };
  const remove = listed.map((a) => ` --rm-allowed-account ${a === "*" ? "'*'" : a}`).join("");
  return {
    ok: false,
    reason: "not_admitting",
    allowedAccounts: listed,
    problem: `${named} lists allowed_accounts ${JSON.stringify(listed)}, not exactly ["*"]: ` +
      "nats-server refuses every login placed in a namespace's account (Authorization " +
      `Violation). Fix: nsc edit authcallout --account AUTH${remove} --allowed-account '*' ` +
      "&& nsc push --account AUTH",
  };
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
      const held = await resolver.lookup(authAccount).catch((err: unknown) =>
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
        verdict.reason === "not_admitting"
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
