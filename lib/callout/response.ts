/**
 * The callout's answer to a verified request: for an approval, a user JWT made from the
 * {@linkcode UserGrant}; around it (or around a denial's error text) an `authorization_response`
 * JWT; both signed by an account key, and the response sealed back to the server's xkey when the
 * request came sealed.
 *
 * Which key signs a user JWT depends on the mode (DESIGN §2): in config mode every user is signed
 * by the configured issuer and placed by account **name**; in operator mode by the target account
 * or one of its signing keys, named in `issuer_account`.
 *
 * @module
 */
import type { Permissions } from "../core/model.ts";
import {
  createNkeySigner,
  encodeNatsJwt,
  isPublicNkey,
  type NatsJwtClaims,
  type NkeySigner,
} from "./nkey_jwt.ts";
import type { VerifiedRequest } from "./request.ts";
import type { Xkey } from "./xkey.ts";

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

/** What a response carries: the user JWT of an approval, or the text of a denial. */
export type ResponseBody = { readonly jwt: string } | { readonly error: string };

/** The key that signs user JWTs for one target account, and what the server must be told of it. */
export interface UserIssuer {
  /** Signs the user JWT. */
  readonly signer: NkeySigner;
  /**
   * The target account's key when `signer` is one of its signing keys (operator mode); the server
   * then places the user in that account. Never set in config mode, where the server rejects it.
   */
  readonly issuerAccount: string | undefined;
}

type Json = Readonly<Record<string, unknown>>;

function permissionClaim(p: { allow: readonly string[]; deny?: readonly string[] }): Json {
  // With no allow and no deny list the server applies no restriction at all in that direction.
  if (p.allow.length === 0) return { deny: [">"] };
  return p.deny && p.deny.length > 0
    ? { allow: [...p.allow], deny: [...p.deny] }
    : { allow: [...p.allow] };
}

/**
 * The claims of the user JWT for `grant`, issued to the request's `userNkey` and placed in the
 * account `target`. Pure. `aud` is always set (`@nats-io/jwt` would default it to `"NATS"`, an
 * account that does not exist); pub/sub are explicit allow lists, an empty one sent as deny-all
 * (with no list at all the account's default — usually everything — would apply); `resp.ttl` is in
 * nanoseconds; the connection limits are left to the account (`-1`).
 *
 * @example
 * ```ts
 * import { userClaims } from "./response.ts";
 * const permissions = { pub: { allow: [] }, sub: { allow: ["a.>"] }, resp: { max: 1, ttlNs: 0 } };
 * const claims = userClaims("Uxyz", "APP", { name: "n", permissions, expiresAt: 1 }, undefined);
 * console.assert(claims.aud === "APP");
 * ```
 */
export function userClaims(
  userNkey: string,
  target: string,
  grant: UserGrant,
  issuerAccount: string | undefined,
): NatsJwtClaims {
  const { pub, sub, resp } = grant.permissions;
  return {
    sub: userNkey,
    aud: target,
    name: grant.name,
    exp: Math.floor(grant.expiresAt),
    nats: {
      ...(issuerAccount ? { issuer_account: issuerAccount } : {}),
      pub: permissionClaim(pub),
      sub: permissionClaim(sub),
      resp: { max: resp.max, ttl: resp.ttlNs },
      subs: -1,
      data: -1,
      payload: -1,
      type: "user",
      version: 2,
    },
  };
}

/**
 * The claims of the `authorization_response` JWT answering `verified` with `body`. Pure. `sub` is
 * the request's `user_nkey` (it binds the answer to this login), `aud` the server's id, and `exp`
 * the request's own `exp`: the server stops waiting then, and its clock is the one that checks it.
 *
 * @example
 * ```ts
 * import { responseClaims } from "./response.ts";
 * const request = {
 *   serverId: "Nxyz", serverName: "", userNkey: "Uxyz", clientInfo: {}, connectOpts: {},
 *   encrypted: false,
 * };
 * const claims = responseClaims({ request, expires: 2, sealTo: undefined }, { error: "no" });
 * console.assert(claims.aud === "Nxyz" && claims.exp === 2);
 * ```
 */
export function responseClaims(verified: VerifiedRequest, body: ResponseBody): NatsJwtClaims {
  return {
    sub: verified.request.userNkey,
    aud: verified.request.serverId,
    exp: verified.expires,
    nats: { ...body, type: "authorization_response", version: 2 },
  };
}

/** Options of {@linkcode createResponder}. */
export interface ResponderOptions {
  /** Signs responses, and user JWTs for `account`. Its role is `A` (the handler checks). */
  readonly signer: NkeySigner;
  /** The handler's target account: a name (config mode) or an `A…` key (operator mode). */
  readonly account: string;
  /** Operator mode: the `SA…` seed for each other account, looked up per login. */
  readonly accountSeeds: () => ReadonlyMap<string, string>;
  /**
   * Operator mode: the signing key of an account the service provisioned (lib/accounts/), looked
   * up per login before `accountSeeds`. @default {() => undefined}
   */
  readonly provisionedSigner?: (account: string) => NkeySigner | undefined;
  /** Our xkey, when the server seals requests to it. */
  readonly xkey: Xkey | undefined;
  /** Clock in milliseconds, for `iat`. */
  readonly now: () => number;
}

/** Makes the reply payload for a verified request. */
export interface Responder {
  /** The reply approving the login with `grant`: a user JWT wrapped in the response. */
  allow(verified: VerifiedRequest, grant: UserGrant): Promise<Uint8Array>;
  /** The reply refusing the login; `error` reaches the server log, never the client. */
  deny(verified: VerifiedRequest, error: string): Promise<Uint8Array>;
}

const encoder = new TextEncoder();

/**
 * Create the {@linkcode Responder} of one handler. A user JWT is signed by the issuer
 * {@linkcode createUserIssuers} picks for the grant's account; the response by `signer`, then
 * sealed to the server's xkey when the request was sealed. Rejects when a grant names an account
 * it has no key for.
 */
export function createResponder(options: ResponderOptions): Responder {
  const { signer, account, xkey, now } = options;
  const clock = { now };
  const issuerFor = createUserIssuers(options);

  async function respond(verified: VerifiedRequest, body: ResponseBody): Promise<Uint8Array> {
    const bytes = encoder.encode(
      await encodeNatsJwt(responseClaims(verified, body), signer, clock),
    );
    return xkey && verified.sealTo ? xkey.seal(bytes, verified.sealTo) : bytes;
  }

  return {
    async allow(verified, grant) {
      const target = grant.account ?? account;
      const issuer = await issuerFor(target);
      const claims = userClaims(verified.request.userNkey, target, grant, issuer.issuerAccount);
      return respond(verified, { jwt: await encodeNatsJwt(claims, issuer.signer, clock) });
    },
    deny: (verified, error) => respond(verified, { error }),
  };
}

/**
 * The {@linkcode UserIssuer} for each target account. `account` and every account named (config
 * mode) are signed for by `signer`; when `account` is an `A…` key other than `signer`'s, `signer`
 * is one of its signing keys and the JWT carries `issuer_account`. Other `A…` keys (operator mode,
 * a policy's choice) are signed for with their seed from `accountSeeds`, asked on each login (the
 * policy file may change); one signer per seed, made on first use.
 */
function createUserIssuers(
  options: Pick<ResponderOptions, "signer" | "account" | "accountSeeds" | "provisionedSigner">,
): (target: string) => Promise<UserIssuer> {
  const { signer, account, accountSeeds, provisionedSigner } = options;
  // Operator mode, signing key of the target account: the server places the user by
  // `issuer_account` and checks that the signer is one of that account's keys. Config mode names
  // the account, never by a key, and rejects `issuer_account`.
  const issuerAccount = isPublicNkey(account, "A") && account !== signer.publicKey
    ? account
    : undefined;
  const signers = new Map<string, Promise<NkeySigner>>();
  return async (target) => {
    if (target === account || !isPublicNkey(target, "A")) {
      // Config mode places users by name, all signed by the callout's issuer key.
      return { signer, issuerAccount: target === account ? issuerAccount : undefined };
    }
    // A provisioned account: always signed by its signing key, named in issuer_account.
    const provisioned = provisionedSigner?.(target);
    if (provisioned) return { signer: provisioned, issuerAccount: target };
    const seed = accountSeeds().get(target);
    if (seed === undefined) throw new Error(`no signing key for account ${target}`);
    let made = signers.get(seed);
    if (!made) {
      made = createNkeySigner(seed);
      signers.set(seed, made);
    }
    const s = await made;
    return { signer: s, issuerAccount: s.publicKey === target ? undefined : target };
  };
}
