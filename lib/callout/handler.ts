/**
 * The auth callout protocol, and nothing but the protocol: open the xkey seal, verify the server's
 * request JWT, hand a plain {@linkcode CalloutRequest} to the injected {@linkcode Authorizer}, then
 * sign the user JWT and the response JWT (and seal the response) — like synadia-io/callout.go, the
 * decision lives elsewhere. One log line and one metric sample per request.
 *
 * Ground truth: nats-server `server/auth_callout.go` (DESIGN §2).
 *
 * @module
 */
import { type DenyReason, type DropReason, RequestError } from "../core/errors.ts";
import type { LogFields, Logger } from "../telemetry/log.ts";
import type { Permissions } from "../core/model.ts";
import {
  createNkeySigner,
  decodeAndVerifyNatsJwt,
  encodeNatsJwt,
  isPublicNkey,
  NatsJwtError,
  NkeyKeyCache,
} from "./nkey_jwt.ts";
import type { ServiceMetrics } from "../telemetry/service_metrics.ts";
import { createXkey } from "./xkey.ts";

/** The audience nats-server puts on every callout request. */
export const AUTH_REQUEST_AUDIENCE = "nats-authorization-request";

/** What the authorizer learns about one login attempt; already verified to come from a server. */
export interface CalloutRequest {
  /** The server's id (its `N…` public key): the audience of our response. */
  readonly serverId: string;
  /** The server's configured name (`server_name`), for logs. */
  readonly serverName: string;
  /** Fresh user key per attempt; the user JWT must be issued to it. */
  readonly userNkey: string;
  /** Who connects: `host` (address), `id` (cid), `kind` (Client, Leafnode…), `type` (nats, mqtt…). */
  readonly clientInfo: Readonly<{
    host?: string;
    id?: number;
    user?: string;
    name?: string;
    kind?: string;
    type?: string;
  }>;
  /** The client's CONNECT options; `auth_token`/`pass`/`jwt` are secrets: never log them. */
  readonly connectOpts: Readonly<{
    jwt?: string;
    auth_token?: string;
    user?: string;
    pass?: string;
    name?: string;
    lang?: string;
    version?: string;
  }>;
  /** Whether the request came sealed with xkey. */
  readonly encrypted: boolean;
}

/** An approved login: who, what they may do, until when. */
export interface UserGrant {
  /** The connection's user name in connz and server logs (e.g. `namespace/serviceaccount`). */
  readonly name: string;
  /** Explicit allow lists; an empty list is sent as deny-all for that direction. */
  readonly permissions: Permissions;
  /** Expiry of the user JWT, seconds since the epoch; the server disconnects the client then. */
  readonly expiresAt: number;
  /**
   * Account to place the user in, when not the handler's `account` (a cluster policy's choice):
   * a name in config mode, an `A…` key in operator mode (then signed with its seed from
   * `accountSeeds`).
   */
  readonly account?: string;
}

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
  /** Makes the decision. */
  authorizer: Authorizer;
  logger: Logger;
  metrics: ServiceMetrics;
  /** Clock in milliseconds (request expiry, `iat`). @default {() => Date.now()} */
  now?: () => number;
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

const XKV1 = [0x78, 0x6b, 0x76, 0x31];
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

type Json = Readonly<Record<string, unknown>>;

function obj(value: unknown): Json | undefined {
  return value !== null && typeof value === "object" && !Array.isArray(value)
    ? (value as Json)
    : undefined;
}

function str(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function pickStrings<K extends string>(
  source: Json | undefined,
  keys: readonly K[],
): Partial<Record<K, string>> {
  const out: Partial<Record<K, string>> = {};
  if (!source) return out;
  for (const key of keys) {
    const v = source[key];
    if (typeof v === "string") out[key] = v;
  }
  return out;
}

/** A request that passed every check, plus what the response needs. */
interface VerifiedRequest {
  readonly request: CalloutRequest;
  /** The request's `exp`, in the server's clock. */
  readonly expires: number;
  /** Where to seal the response, when the request was sealed. */
  readonly sealTo: string | undefined;
}

function drop(code: DropReason, message: string, cause?: unknown): never {
  throw new RequestError(code, message, cause === undefined ? undefined : { cause });
}

function isSealed(data: Uint8Array): boolean {
  return data.length >= XKV1.length && XKV1.every((b, i) => data[i] === b);
}

function permissionClaim(p: { allow: readonly string[]; deny?: readonly string[] }): Json {
  // With no allow and no deny list the server applies no restriction at all in that direction.
  if (p.allow.length === 0) return { deny: [">"] };
  return p.deny && p.deny.length > 0
    ? { allow: [...p.allow], deny: [...p.deny] }
    : { allow: [...p.allow] };
}

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
  const { accountSeed, account, xkeySeed, authorizer, logger, metrics, now = () => Date.now() } =
    options;
  if (typeof account !== "string" || account.trim() === "") {
    throw new TypeError("account must name the target account");
  }
  const signer = await createNkeySigner(accountSeed);
  if (signer.role !== "A") {
    throw new TypeError(`accountSeed must be an account (SA…) seed, got role ${signer.role}`);
  }
  // Operator mode, signing key of the target account: the server places the user by
  // `issuer_account` and checks that the signer is one of that account's keys. Config mode names
  // the account, never by a key, and rejects `issuer_account`.
  const issuerAccount = isPublicNkey(account, "A") && account !== signer.publicKey
    ? account
    : undefined;
  const xkey = xkeySeed === undefined ? undefined : createXkey(xkeySeed);
  const accountSeeds = options.accountSeeds ?? (() => new Map<string, string>());
  // One signer per seed, made on first use (a handful of accounts; a reloaded policy may add one).
  const signers = new Map<string, Promise<Awaited<ReturnType<typeof createNkeySigner>>>>();
  async function userSigner(target: string) {
    if (target === account || !isPublicNkey(target, "A")) {
      // Config mode places users by name, all signed by the callout's issuer key.
      return { signer, issuerAccount: target === account ? issuerAccount : undefined };
    }
    const seed = accountSeeds().get(target);
    if (seed === undefined) throw new Error(`no signing key for account ${target}`);
    let made = signers.get(seed);
    if (!made) {
      made = createNkeySigner(seed);
      signers.set(seed, made);
    }
    const s = await made;
    return { signer: s, issuerAccount: s.publicKey === target ? undefined : target };
  }
  const keyCache = new NkeyKeyCache();
  const clock = { now };

  async function verify(
    data: Uint8Array,
    serverXkey: string | undefined,
  ): Promise<VerifiedRequest> {
    const sealed = isSealed(data);
    let payload = data;
    if (xkey) {
      if (!sealed) drop("request_not_encrypted", "request is not sealed but an xkey is configured");
      if (!serverXkey) {
        drop("request_xkey_mismatch", "sealed request without Nats-Server-Xkey header");
      }
      const opened = xkey.open(data, serverXkey);
      if (!opened) drop("request_decrypt_failed", "sealed request does not open with our xkey");
      payload = opened;
    } else if (sealed) {
      drop("request_decrypt_failed", "request is sealed but no xkey is configured");
    }

    let token: string;
    try {
      token = decoder.decode(payload);
    } catch (err) {
      drop("request_malformed", "request is not UTF-8", err);
    }
    let claims;
    try {
      ({ claims } = await decodeAndVerifyNatsJwt(token, { keyCache }));
    } catch (err) {
      if (err instanceof NatsJwtError) {
        const code: DropReason = err.code === "jwt_signature_invalid" ||
            err.code === "jwt_algorithm_invalid"
          ? "request_signature_invalid"
          : err.code === "jwt_issuer_invalid"
          ? "request_issuer_invalid"
          : "request_malformed";
        drop(code, err.message, err);
      }
      throw err;
    }

    const nats = obj(claims.nats);
    const server = obj(nats?.server_id);
    const serverId = str(server?.id);
    // The signature verified with the key in `iss`, so it is a well-formed public nkey, and a
    // public nkey's first character is its role letter.
    if (!claims.iss.startsWith("N") || claims.iss !== serverId) {
      drop("request_issuer_invalid", "request iss is not the server's own N key (server_id.id)");
    }
    if (claims.aud !== AUTH_REQUEST_AUDIENCE) {
      drop("request_audience_invalid", `request aud is not ${AUTH_REQUEST_AUDIENCE}`);
    }
    if (nats?.type !== "authorization_request") {
      drop("request_type_invalid", "request nats.type is not authorization_request");
    }
    const exp = claims.exp;
    if (typeof exp !== "number" || !Number.isFinite(exp)) {
      drop("request_malformed", "request has no exp");
    }
    const nowSeconds = Math.floor(clock.now() / 1000);
    if (nowSeconds > exp) {
      drop("request_expired", `request expired ${nowSeconds - exp}s ago`);
    }
    const userNkey = nats.user_nkey;
    if (typeof userNkey !== "string" || !isPublicNkey(userNkey, "U")) {
      drop("request_user_nkey_invalid", "request user_nkey is not a U key");
    }
    if (xkey && server?.xkey !== serverXkey) {
      drop("request_xkey_mismatch", "Nats-Server-Xkey header differs from server_id.xkey");
    }

    const ci = obj(nats.client_info);
    const cid = ci?.id;
    const clientInfo = {
      ...pickStrings(ci, ["host", "user", "name", "kind", "type"] as const),
      ...(typeof cid === "number" ? { id: cid } : {}),
    };
    const connectOpts = pickStrings(
      obj(nats.connect_opts),
      ["jwt", "auth_token", "user", "pass", "name", "lang", "version"] as const,
    );
    return {
      request: {
        serverId,
        serverName: str(server?.name) ?? "",
        userNkey,
        clientInfo,
        connectOpts,
        encrypted: sealed,
      },
      expires: exp,
      sealTo: xkey ? serverXkey : undefined,
    };
  }

  async function respond(
    verified: VerifiedRequest,
    body: { jwt: string } | { error: string },
  ): Promise<Uint8Array> {
    const { request, expires, sealTo } = verified;
    const response = await encodeNatsJwt(
      {
        sub: request.userNkey,
        aud: request.serverId,
        exp: expires,
        nats: { ...body, type: "authorization_response", version: 2 },
      },
      signer,
      clock,
    );
    const bytes = encoder.encode(response);
    return xkey && sealTo ? xkey.seal(bytes, sealTo) : bytes;
  }

  async function userJwt(request: CalloutRequest, grant: UserGrant): Promise<string> {
    const { pub, sub, resp } = grant.permissions;
    const target = grant.account ?? account;
    const user = await userSigner(target);
    return encodeNatsJwt(
      {
        sub: request.userNkey,
        aud: target,
        name: grant.name,
        exp: Math.floor(grant.expiresAt),
        nats: {
          ...(user.issuerAccount ? { issuer_account: user.issuerAccount } : {}),
          pub: permissionClaim(pub),
          sub: permissionClaim(sub),
          resp: { max: resp.max, ttl: resp.ttlNs },
          subs: -1,
          data: -1,
          payload: -1,
          type: "user",
          version: 2,
        },
      },
      user.signer,
      clock,
    );
  }

  function finish(
    result: "allowed" | "denied" | "dropped" | "error",
    reason: string,
    started: number,
  ) {
    const seconds = (performance.now() - started) / 1000;
    metrics.requests.inc({ result, reason });
    metrics.requestDuration.observe(seconds, { result });
    return Math.round(seconds * 1e5) / 100;
  }

  return async (data, serverXkey) => {
    const started = performance.now();
    let verified: VerifiedRequest;
    try {
      verified = await verify(data, serverXkey);
    } catch (err) {
      if (err instanceof RequestError) {
        const duration_ms = finish("dropped", err.code, started);
        logger.warn("request_dropped", { reason: err.code, message: err.message, duration_ms });
      } else {
        const duration_ms = finish("error", "internal_error", started);
        logger.error("request_failed", { reason: "internal_error", error: err, duration_ms });
      }
      return undefined;
    }

    const { request } = verified;
    const base: LogFields = {
      server: request.serverName,
      server_id: request.serverId,
      client_host: request.clientInfo.host,
      client_cid: request.clientInfo.id,
      client_kind: request.clientInfo.kind,
      encrypted: request.encrypted,
    };
    let result: AuthorizeResult;
    let failure: unknown;
    try {
      result = await authorizer(request);
    } catch (err) {
      failure = err;
      result = { ok: false, reason: "internal_error", message: "authorizer failed" };
    }
    if (result.ok && !(result.user.expiresAt > clock.now() / 1000)) {
      result = {
        ok: false,
        reason: "internal_error",
        message: "grant expires in the past",
        ...(result.fields ? { fields: result.fields } : {}),
      };
    }

    try {
      if (result.ok) {
        const reply = await respond(verified, { jwt: await userJwt(request, result.user) });
        const duration_ms = finish("allowed", "", started);
        logger.info("login_allowed", {
          ...base,
          user: result.user.name,
          expires_at: Math.floor(result.user.expiresAt),
          ...result.fields,
          duration_ms,
        });
        if (logger.enabled("debug")) {
          const { pub, sub, resp } = result.user.permissions;
          logger.debug("login_granted", {
            ...base,
            ...result.fields,
            account: result.user.account ?? account,
            user: result.user.name,
            pub: pub.allow,
            sub: sub.allow,
            ...(pub.deny?.length ? { pub_deny: pub.deny } : {}),
            ...(sub.deny?.length ? { sub_deny: sub.deny } : {}),
            resp_max: resp.max,
            resp_ttl_ms: resp.ttlNs / 1e6,
            expires_at: Math.floor(result.user.expiresAt),
            ...result.grantFields,
          });
        }
        return reply;
      }
      const reply = await respond(verified, { error: `${result.reason}: ${result.message}` });
      const duration_ms = finish("denied", result.reason, started);
      const fields = {
        ...base,
        ...result.fields,
        reason: result.reason,
        message: result.message,
        duration_ms,
      };
      if (failure === undefined) logger.warn("login_denied", fields);
      else logger.error("login_denied", { ...fields, error: failure });
      return reply;
    } catch (err) {
      const duration_ms = finish("error", "internal_error", started);
      logger.error("request_failed", {
        ...base,
        reason: "internal_error",
        error: err,
        duration_ms,
      });
      return undefined;
    }
  };
}
