/**
 * The auth callout protocol, and nothing but the protocol — like synadia-io/callout.go, the
 * decision lives elsewhere. One request, top to bottom, in {@linkcode createCalloutHandler}:
 * verify it ({@link ./request.ts}: open the xkey seal, check the server's request JWT), hand a
 * plain {@linkcode CalloutRequest} to the injected {@linkcode Authorizer}, answer
 * ({@link ./response.ts}: sign the user JWT and the response JWT, seal the response), then one log
 * line and one metric sample.
 *
 * This module is the callout's front door: the authorizer contract (`CalloutRequest`, `UserGrant`,
 * `AuthorizeResult`, `Authorizer`) is imported from here.
 *
 * Ground truth: nats-server `server/auth_callout.go` (DESIGN §2).
 *
 * @module
 */
import { type DenyReason, RequestError } from "../core/errors.ts";
import { looksLikeJwt } from "../core/jwt_shape.ts";
import type { LogFields, Logger } from "../telemetry/log.ts";
import { createNkeySigner, NkeyKeyCache, type NkeySigner } from "./nkey_jwt.ts";
import type { ServiceMetrics } from "../telemetry/service_metrics.ts";
import { createClockSkewWatch, type ExpiredStreak, serverClockSkewSeconds } from "./clock_skew.ts";
import { type CalloutRequest, RequestExpiredError, verifyRequest } from "./request.ts";
import { createResponder, type UserGrant } from "./response.ts";
import { createXkey, type Xkey } from "./xkey.ts";

export { AUTH_REQUEST_AUDIENCE } from "./request.ts";
export type { CalloutRequest } from "./request.ts";
export type { UserGrant } from "./response.ts";

/**
 * The decision on one login. `fields` are added to the decision's log line; `grantFields` only to
 * the debug-level `login_granted` line (e.g. annotation entries dropped and why).
 */
export type AuthorizeResult =
  | {
    readonly ok: true;
    readonly user: UserGrant;
    readonly fields?: LogFields;
    readonly grantFields?: LogFields;
  }
  | {
    readonly ok: false;
    readonly reason: DenyReason;
    readonly message: string;
    readonly fields?: LogFields;
  };

/** The decision, injected. A throw counts as a denial with `internal_error`. */
export type Authorizer = (req: CalloutRequest) => Promise<AuthorizeResult>;

/** Options of {@linkcode createCalloutHandler}. */
export interface CalloutHandlerOptions {
  /**
   * `SA…` seed: signs user JWTs and responses. Config mode: its public key is the `issuer` in the
   * server config. Operator mode: the target account's own key or one of its (unscoped) signing keys.
   */
  accountSeed: string;
  /**
   * Target account, the `aud` of every user JWT (never `"NATS"` by default): its **name** in config
   * mode, its public `A…` key in operator mode. When it is an `A…` key other than `accountSeed`'s
   * public key, `accountSeed` is one of its signing keys and user JWTs carry `issuer_account`.
   */
  account: string;
  /** `SX…` seed when the server is configured with our xkey; then every request must be sealed. */
  xkeySeed?: string;
  /**
   * Operator mode, accounts other than `account`: the `SA…` seed (the account's own or one of its
   * signing keys) that signs user JWTs for each, looked up per login (the policy file may change).
   * @default {() => new Map()}
   */
  accountSeeds?: () => ReadonlyMap<string, string>;
  /**
   * Operator mode: the signing key of an account the service provisioned (lib/accounts/), asked
   * per login. @default {() => undefined}
   */
  provisionedSigner?: (account: string) => NkeySigner | undefined;
  /** Makes the decision. */
  authorizer: Authorizer;
  /** Each request's line: `login_allowed`, `login_denied`, `request_dropped`, `request_failed`. */
  logger: Logger;
  /** Counts each request by result and reason (`nats_auth_requests_total`), times it by result. */
  metrics: ServiceMetrics;
  /** Clock in milliseconds (request expiry, `iat`). @default {() => Date.now()} */
  now?: () => number;
  /**
   * Told of every login answered with a user JWT, after the reply is made: the request, the grant
   * and the `login_allowed` line's fields (lib/nats/server_refusals.ts matches the server's later
   * refusals against them). A throw is logged and never fails the login.
   * @default {undefined}
   */
  onAllowed?: (request: CalloutRequest, grant: UserGrant, fields: LogFields) => void;
  /**
   * Told of each request dropped as expired and each that passed the expiry check: the "clock"
   * readiness check takes a replica whose clock is far ahead out of the queue group.
   * @default {undefined}
   */
  expiredStreak?: ExpiredStreak;
}

/**
 * Handle one message on `$SYS.REQ.USER.AUTH`: `data` is the payload, `serverXkey` the
 * `Nats-Server-Xkey` header. Resolves to the reply payload, or `undefined` to send nothing (the
 * request could not be trusted). Never rejects.
 */
export type CalloutHandler = (
  data: Uint8Array,
  serverXkey: string | undefined,
) => Promise<Uint8Array | undefined>;

/**
 * Build the handler for `$SYS.REQ.USER.AUTH`. Keys are parsed here, so a bad seed fails at start
 * (`TypeError`), never on a login.
 *
 * Request checks (any failure drops the request, logged as `request_dropped` and counted with the
 * {@linkcode DropReason}): the xkey seal matches our configuration and the `Nats-Server-Xkey` header
 * matches `server_id.xkey`; the JWT is signed by its `iss`, an `N…` key equal to `server_id.id`;
 * `aud` is `nats-authorization-request`; `nats.type` is `authorization_request`; `exp` has not
 * passed; `user_nkey` is a `U…` key.
 *
 * The response: a user JWT (`sub` = `user_nkey`, `aud` = `account`, `name`, pub/sub allow lists,
 * `resp`, `exp` from the grant; `issuer_account` = `account` when that is an `A…` key signed for by a
 * signing key — operator mode) wrapped in an `authorization_response` JWT (`sub` = `user_nkey`,
 * `aud` = server id, `exp` = the request's own `exp`: the server stops waiting then, and its clock is
 * the one that checks it), both signed by the account key; sealed to the server's xkey when the
 * request was sealed. A denial answers with `nats.error` so the client fails at once instead of
 * waiting for the server's timeout.
 *
 * @example
 * ```ts
 * import { createCalloutHandler } from "./handler.ts";
 * import { silentLogger } from "../telemetry/log.ts";
 * import { createServiceMetrics } from "../telemetry/service_metrics.ts";
 * import { createAccount } from "@nats-io/nkeys";
 * const handler = await createCalloutHandler({
 *   accountSeed: new TextDecoder().decode(createAccount().getSeed()),
 *   account: "APP",
 *   authorizer: () => Promise.resolve({ ok: false, reason: "token_missing", message: "no token" }),
 *   logger: silentLogger(),
 *   metrics: createServiceMetrics(),
 * });
 * console.assert((await handler(new TextEncoder().encode("junk"), undefined)) === undefined);
 * ```
 */
export async function createCalloutHandler(
  options: CalloutHandlerOptions,
): Promise<CalloutHandler> {
  const { account, authorizer, logger, metrics, now = () => Date.now() } = options;
  const { signer, xkey } = await parseKeys(options);
  const responder = createResponder({
    signer,
    account,
    accountSeeds: options.accountSeeds ?? (() => new Map<string, string>()),
    ...(options.provisionedSigner ? { provisionedSigner: options.provisionedSigner } : {}),
    xkey,
    now,
  });
  const keyCache = new NkeyKeyCache();
  const clockSkew = createClockSkewWatch({ logger, metrics });

  return async (data, serverXkey) => {
    const started = performance.now();
    const record = (result: Outcome, reason: string) =>
      recordOutcome(metrics, result, reason, started);

    let verified;
    const checkedAt = now();
    try {
      verified = await verifyRequest(data, serverXkey, { xkey, keyCache, now: checkedAt });
    } catch (err) {
      if (err instanceof RequestExpiredError) {
        clockSkew(err.serverClock);
        options.expiredStreak?.expired(serverClockSkewSeconds(err.serverClock));
      }
      logDropped(logger, err, record);
      return undefined;
    }

    const { request } = verified;
    options.expiredStreak?.passed();
    clockSkew({
      serverId: request.serverId,
      serverName: request.serverName,
      issuedAt: request.issuedAt,
      checkedAt,
    });
    const { result, failure } = await decide(authorizer, request, now);
    const fields = requestFields(request);
    try {
      if (result.ok) {
        const reply = await responder.allow(verified, result.user);
        logAllowed(logger, fields, result, account, record("allowed", ""));
        tellAllowed(options.onAllowed, request, result, fields, logger);
        return reply;
      }
      const reply = await responder.deny(verified, `${result.reason}: ${result.message}`);
      logDenied(logger, fields, result, failure, record("denied", result.reason));
      return reply;
    } catch (err) {
      const duration_ms = record("error", "internal_error");
      logger.error("request_failed", {
        ...fields,
        reason: "internal_error",
        error: err,
        duration_ms,
      });
      return undefined;
    }
  };
}

/**
 * The handler's keys, parsed once so a bad seed or account fails at start (`TypeError`), never on
 * a login: the account key that signs, and our xkey when one is configured.
 */
async function parseKeys(
  options: CalloutHandlerOptions,
): Promise<{ signer: NkeySigner; xkey: Xkey | undefined }> {
  const { accountSeed, account, xkeySeed } = options;
  if (typeof account !== "string" || account.trim() === "") {
    throw new TypeError("account must name the target account");
  }
  const signer = await createNkeySigner(accountSeed);
  if (signer.role !== "A") {
    throw new TypeError(`accountSeed must be an account (SA…) seed, got role ${signer.role}`);
  }
  return { signer, xkey: xkeySeed === undefined ? undefined : createXkey(xkeySeed) };
}

/**
 * Ask the authorizer. A throw becomes a denial with `internal_error` (the error is kept for the
 * log line), and so does a grant that has expired by our clock by the time it comes back: the
 * server would close such a connection at once, and that is our bug, not the client's. A grant
 * that has expired by the server's clock (the request's `iat`) but not by ours is a token that
 * expired while this host's clock runs behind the server's: the server checks the user JWT's
 * `exp` by its own clock and would refuse it after we logged an approval, so it is refused here
 * as `token_expired`, saying whose clock.
 */
async function decide(
  authorizer: Authorizer,
  request: CalloutRequest,
  now: () => number,
): Promise<{ result: AuthorizeResult; failure: unknown }> {
  let result: AuthorizeResult;
  try {
    result = await authorizer(request);
  } catch (err) {
    return {
      result: { ok: false, reason: "internal_error", message: "authorizer failed" },
      failure: err,
    };
  }
  if (result.ok && !(result.user.expiresAt > now() / 1000)) {
    result = {
      ok: false,
      reason: "internal_error",
      message: "grant expires in the past",
      ...(result.fields ? { fields: result.fields } : {}),
    };
  } else if (
    result.ok && request.issuedAt !== undefined && !(result.user.expiresAt > request.issuedAt)
  ) {
    const skew = serverClockSkewSeconds({
      serverId: request.serverId,
      serverName: request.serverName,
      issuedAt: request.issuedAt,
      checkedAt: now(),
    }) ?? 0;
    result = {
      ok: false,
      reason: "token_expired",
      message:
        `token expired ${
          request.issuedAt - Math.floor(result.user.expiresAt)
        }s ago by nats-server ${
          request.serverName || request.serverId
        }'s clock, which is about ${-skew}s ahead of this host's; the server would refuse the ` +
        "user JWT",
      ...(result.fields ? { fields: result.fields } : {}),
    };
  }
  return { result, failure: undefined };
}

/** Call `onAllowed` for an approval; what it throws is logged, never the login's failure. */
function tellAllowed(
  onAllowed: CalloutHandlerOptions["onAllowed"],
  request: CalloutRequest,
  result: Extract<AuthorizeResult, { ok: true }>,
  fields: LogFields,
  logger: Logger,
): void {
  if (!onAllowed) return;
  try {
    onAllowed(request, result.user, { ...fields, ...result.fields });
  } catch (err) {
    logger.error("on_allowed_failed", { error: err });
  }
}

/** How one request ended, the `result` label of the request metrics. */
type Outcome = "allowed" | "denied" | "dropped" | "error";

/** Count the request and observe its duration; returns the duration in ms for the log line. */
function recordOutcome(
  metrics: ServiceMetrics,
  result: Outcome,
  reason: string,
  started: number,
): number {
  const seconds = (performance.now() - started) / 1000;
  metrics.requests.inc({ result, reason });
  metrics.requestDuration.observe(seconds, { result });
  return Math.round(seconds * 1e5) / 100;
}

/**
 * The fields every decision line of a verified request carries: which server, which client — and
 * the CONNECT's user and connection name when it has them, so a refusal names who it was. Never
 * the password or a token: a `user` shaped like a JWT (a token in the wrong field) is not logged.
 */
function requestFields(request: CalloutRequest): LogFields {
  // Only the CONNECT's own user: for a token login nats-server's `client_info.user` is
  // "[REDACTED]", which would read as a user name.
  const user = request.connectOpts.user;
  const name = request.connectOpts.name ?? request.clientInfo.name;
  return {
    server: request.serverName,
    server_id: request.serverId,
    client_host: request.clientInfo.host,
    client_cid: request.clientInfo.id,
    client_kind: request.clientInfo.kind,
    ...(user ? { connect_user: looksLikeJwt(user) ? "[redacted]" : clip(user) } : {}),
    ...(name ? { client_name: clip(name) } : {}),
    encrypted: request.encrypted,
  };
}

/** A client-chosen string for a log field, at most 128 characters. */
function clip(text: string): string {
  return text.length > 128 ? `${text.slice(0, 125)}...` : text;
}

/** A request that failed verification: a drop names its reason; anything else is our bug. */
function logDropped(
  logger: Logger,
  err: unknown,
  record: (result: Outcome, reason: string) => number,
): void {
  if (err instanceof RequestError) {
    const duration_ms = record("dropped", err.code);
    logger.warn("request_dropped", { reason: err.code, message: err.message, duration_ms });
  } else {
    const duration_ms = record("error", "internal_error");
    logger.error("request_failed", { reason: "internal_error", error: err, duration_ms });
  }
}

/**
 * An approval: `login_allowed` at info, and at debug `login_granted` with everything granted
 * (account, allow and deny lists, `resp`, expiry, the authorizer's `grantFields`).
 */
function logAllowed(
  logger: Logger,
  fields: LogFields,
  result: Extract<AuthorizeResult, { ok: true }>,
  account: string,
  duration_ms: number,
): void {
  const { user } = result;
  const expires_at = Math.floor(user.expiresAt);
  logger.info("login_allowed", {
    ...fields,
    user: user.name,
    expires_at,
    ...result.fields,
    duration_ms,
  });
  if (!logger.enabled("debug")) return;
  const { pub, sub, resp } = user.permissions;
  logger.debug("login_granted", {
    ...fields,
    ...result.fields,
    account: user.account ?? account,
    user: user.name,
    pub: pub.allow,
    sub: sub.allow,
    ...(pub.deny?.length ? { pub_deny: pub.deny } : {}),
    ...(sub.deny?.length ? { sub_deny: sub.deny } : {}),
    resp_max: resp.max,
    resp_ttl_ms: resp.ttlNs / 1e6,
    expires_at,
    ...result.grantFields,
  });
}

/**
 * A denial: `login_denied` with its reason, at warn — at error when the authorizer threw, with
 * what it threw.
 */
function logDenied(
  logger: Logger,
  fields: LogFields,
  result: Extract<AuthorizeResult, { ok: false }>,
  failure: unknown,
  duration_ms: number,
): void {
  const denied = {
    ...fields,
    ...result.fields,
    reason: result.reason,
    message: result.message,
    duration_ms,
  };
  if (failure === undefined) logger.warn("login_denied", denied);
  else logger.error("login_denied", { ...denied, error: failure });
}
