/**
 * The server's callout request, from the bytes on `$SYS.REQ.USER.AUTH` to a
 * {@linkcode CalloutRequest} the authorizer can trust, in three steps: open the xkey seal, verify
 * the request JWT's signature by its `iss`, check its claims. `@nats-io/jwt`'s `decode()` does only
 * the middle step; the checks around it are what make the request the server's own, for this login,
 * now. A request that fails any step is dropped: every step throws a {@linkcode RequestError} whose
 * `code` names the {@linkcode DropReason}, and the handler answers nothing.
 *
 * Ground truth: nats-server `server/auth_callout.go` (DESIGN §2).
 *
 * @module
 */
import { type DropReason, RequestError } from "../core/errors.ts";
import {
  decodeAndVerifyNatsJwt,
  isPublicNkey,
  type NatsJwtClaims,
  NatsJwtError,
  type NkeyKeyCache,
} from "./nkey_jwt.ts";
import type { Xkey } from "./xkey.ts";
import {
  REQUEST_CLOCK_TOLERANCE_SEC,
  type ServerClockReading,
  serverClockSkewSeconds,
} from "./clock_skew.ts";

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
    /** An nkey user's public key (a configured user, never a workload). */
    nkey?: string;
    name?: string;
    lang?: string;
    version?: string;
  }>;
  /**
   * The client's TLS certificate (`nats.client_tls`), when it presented one: the leaf of the first
   * verified chain (`verified: true`, the server checked it against its CA) or of the unverified
   * peer certificates. PEM; parsed only when a refusal names it.
   */
  readonly clientCertificate?: Readonly<{ verified: boolean; pem: string }>;
  /** Whether the request came sealed with xkey. */
  readonly encrypted: boolean;
  /**
   * The request's `iat`: the server's clock when it asked, in whole seconds since the epoch
   * (nats-server truncates). Undefined when the request has none. A user JWT's expiry is judged
   * by the server's clock, not ours.
   */
  readonly issuedAt?: number;
}

/**
 * A request that passed every check, plus what the response needs from it: the response must
 * expire with the request and go back sealed when the request came sealed.
 */
export interface VerifiedRequest {
  /** What the authorizer is asked about. */
  readonly request: CalloutRequest;
  /** The request's `exp`, seconds since the epoch in the server's clock. */
  readonly expires: number;
  /** The server's xkey to seal the response to, when the request was sealed. */
  readonly sealTo: string | undefined;
}

/** Options of {@linkcode verifyRequest}. */
export interface VerifyRequestOptions {
  /**
   * Our xkey, when the server is configured with it: then every request must be sealed to it, and
   * none may be sealed without it.
   */
  readonly xkey: Xkey | undefined;
  /** The imported server keys, kept across requests (importing costs a third of a verification). */
  readonly keyCache: NkeyKeyCache;
  /** The time to check `exp` against, in milliseconds since the epoch. */
  readonly now: number;
  /**
   * How far past its `exp`, by our clock, a request is still accepted, in seconds.
   * @default {REQUEST_CLOCK_TOLERANCE_SEC}
   */
  readonly clockToleranceSec?: number;
}

/**
 * A request dropped as expired, with what the server's clock said: the caller measures the skew
 * from it (a request expired by more than the tolerance is usually a clock far ahead).
 */
export class RequestExpiredError extends RequestError {
  /** The server that asked, and its clock (`iat`) when it did. */
  readonly serverClock: ServerClockReading;

  /** Create the drop; `code` is always `request_expired`. */
  constructor(message: string, serverClock: ServerClockReading) {
    super("request_expired", message);
    this.name = "RequestExpiredError";
    this.serverClock = serverClock;
  }
}

/**
 * Turn one message on `$SYS.REQ.USER.AUTH` (`data`, and the `Nats-Server-Xkey` header as
 * `serverXkey`) into a request the authorizer can trust, or throw a {@linkcode RequestError} that
 * names why it was dropped. The steps run in this order, and the first failure is the reason:
 * {@linkcode openSeal}, the JWT signature by `iss`, {@linkcode checkRequestClaims}.
 *
 * @example
 * ```ts
 * import { verifyRequest } from "./request.ts";
 * import { NkeyKeyCache } from "./nkey_jwt.ts";
 * import { RequestError } from "../core/errors.ts";
 * const junk = new TextEncoder().encode("junk");
 * const options = { xkey: undefined, keyCache: new NkeyKeyCache(), now: Date.now() };
 * await verifyRequest(junk, undefined, options).catch((err) => {
 *   console.assert(err instanceof RequestError && err.code === "request_malformed");
 * });
 * ```
 */
export async function verifyRequest(
  data: Uint8Array,
  serverXkey: string | undefined,
  options: VerifyRequestOptions,
): Promise<VerifiedRequest> {
  const { payload, sealedBy } = openSeal(data, serverXkey, options.xkey);
  const claims = await verifySignature(payload, options.keyCache);
  return checkRequestClaims(claims, {
    now: options.now,
    sealedBy,
    ...(options.clockToleranceSec !== undefined
      ? { clockToleranceSec: options.clockToleranceSec }
      : {}),
  });
}

const XKV1 = [0x78, 0x6b, 0x76, 0x31];
const decoder = new TextDecoder("utf-8", { fatal: true });

function drop(code: DropReason, message: string, cause?: unknown): never {
  throw new RequestError(code, message, cause === undefined ? undefined : { cause });
}

function isSealed(data: Uint8Array): boolean {
  return data.length >= XKV1.length && XKV1.every((b, i) => data[i] === b);
}

/**
 * Step 1: the request JWT's bytes, opened with our `xkey` when one is configured. Sealing must
 * match the configuration both ways (a server that seals to a key we do not hold, or a request in
 * the clear while we expect a seal, is not our server), and a sealed request must name the
 * server's key in its header. `sealedBy` is that header when the request was sealed.
 */
function openSeal(
  data: Uint8Array,
  serverXkey: string | undefined,
  xkey: Xkey | undefined,
): { payload: Uint8Array; sealedBy: string | undefined } {
  const sealed = isSealed(data);
  if (!xkey) {
    if (sealed) drop("request_decrypt_failed", "request is sealed but no xkey is configured");
    return { payload: data, sealedBy: undefined };
  }
  if (!sealed) drop("request_not_encrypted", "request is not sealed but an xkey is configured");
  if (!serverXkey) drop("request_xkey_mismatch", "sealed request without Nats-Server-Xkey header");
  const opened = xkey.open(data, serverXkey);
  if (!opened) drop("request_decrypt_failed", "sealed request does not open with our xkey");
  return { payload: opened, sealedBy: serverXkey };
}

/** Step 2: the payload as a NATS JWT signed by the key in its own `iss` (which is not yet trusted). */
async function verifySignature(
  payload: Uint8Array,
  keyCache: NkeyKeyCache,
): Promise<NatsJwtClaims & { readonly iss: string }> {
  let token: string;
  try {
    token = decoder.decode(payload);
  } catch (err) {
    drop("request_malformed", "request is not UTF-8", err);
  }
  try {
    return (await decodeAndVerifyNatsJwt(token, { keyCache })).claims;
  } catch (err) {
    if (err instanceof NatsJwtError) drop(dropReasonOf(err), err.message, err);
    throw err;
  }
}

function dropReasonOf(err: NatsJwtError): DropReason {
  switch (err.code) {
    case "jwt_signature_invalid":
    case "jwt_algorithm_invalid":
      return "request_signature_invalid";
    case "jwt_issuer_invalid":
      return "request_issuer_invalid";
    default:
      return "request_malformed";
  }
}

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

/** What {@linkcode checkRequestClaims} needs besides the claims. */
export interface RequestContext {
  /** The time to check `exp` against, in milliseconds since the epoch. */
  readonly now: number;
  /** The `Nats-Server-Xkey` header when the request was sealed; it must be `server_id.xkey`. */
  readonly sealedBy: string | undefined;
  /**
   * How far past its `exp`, by our clock, a request is still accepted, in seconds.
   * @default {REQUEST_CLOCK_TOLERANCE_SEC}
   */
  readonly clockToleranceSec?: number;
}

/**
 * Step 3, pure: the claims of a request JWT whose signature by `iss` verified are a request from
 * that server, for one fresh login, not yet expired. In this order (the first failure is the drop
 * reason): `iss` is an `N…` key equal to `server_id.id`; `aud` is `nats-authorization-request`;
 * `nats.type` is `authorization_request`; `exp` is a number and is not more than
 * `clockToleranceSec` behind `now` (the server set it from its own clock a moment ago, and this
 * host's clock may run ahead of it: {@linkcode REQUEST_CLOCK_TOLERANCE_SEC}; the drop is a
 * {@linkcode RequestExpiredError} carrying the server's clock); `user_nkey` is a `U…` key; a sealed
 * request's header names `server_id.xkey`. Then the parts the authorizer reads are picked out:
 * `client_info` and `connect_opts` keep their string fields (and the numeric cid), `client_tls`
 * its leaf certificate, nothing else.
 *
 * @example
 * ```ts
 * import { checkRequestClaims } from "./request.ts";
 * import { RequestError } from "../core/errors.ts";
 * try {
 *   checkRequestClaims({ iss: "Nxyz", aud: "NATS" }, { now: Date.now(), sealedBy: undefined });
 * } catch (err) {
 *   console.assert(err instanceof RequestError && err.code === "request_issuer_invalid");
 * }
 * ```
 */
export function checkRequestClaims(
  claims: NatsJwtClaims & { readonly iss: string },
  context: RequestContext,
): VerifiedRequest {
  const { now, sealedBy, clockToleranceSec = REQUEST_CLOCK_TOLERANCE_SEC } = context;
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
  const iat = typeof claims.iat === "number" && Number.isFinite(claims.iat)
    ? claims.iat
    : undefined;
  const nowSeconds = Math.floor(now / 1000);
  if (nowSeconds > exp + clockToleranceSec) {
    const clock = { serverId, serverName: str(server?.name) ?? "", issuedAt: iat, checkedAt: now };
    const skew = serverClockSkewSeconds(clock);
    throw new RequestExpiredError(
      `request expired ${nowSeconds - exp}s ago by this host's clock, beyond the ` +
        `${clockToleranceSec}s tolerated${
          skew === undefined
            ? ": this host's clock is ahead of the server's, or this replica was stalled"
            : `: this host's clock is about ${skew}s ahead of the server's, or this replica ` +
              `was stalled that long`
        }`,
      clock,
    );
  }
  const userNkey = nats.user_nkey;
  if (typeof userNkey !== "string" || !isPublicNkey(userNkey, "U")) {
    drop("request_user_nkey_invalid", "request user_nkey is not a U key");
  }
  if (sealedBy !== undefined && server?.xkey !== sealedBy) {
    drop("request_xkey_mismatch", "Nats-Server-Xkey header differs from server_id.xkey");
  }

  const ci = obj(nats.client_info);
  const cid = ci?.id;
  return {
    request: {
      serverId,
      serverName: str(server?.name) ?? "",
      userNkey,
      clientInfo: {
        ...pickStrings(ci, ["host", "user", "name", "kind", "type"] as const),
        ...(typeof cid === "number" ? { id: cid } : {}),
      },
      connectOpts: pickStrings(
        obj(nats.connect_opts),
        ["jwt", "auth_token", "user", "pass", "nkey", "name", "lang", "version"] as const,
      ),
      ...clientCertificateOf(obj(nats.client_tls)),
      encrypted: sealedBy !== undefined,
      ...(iat !== undefined ? { issuedAt: iat } : {}),
    },
    expires: exp,
    sealTo: sealedBy,
  };
}

/**
 * The client's certificate from `nats.client_tls`: nats-server sends the verified chains when it
 * verified the client (`verify: true`), else the peer certificates as presented; the leaf is first.
 */
function clientCertificateOf(
  tls: Json | undefined,
): { clientCertificate?: { verified: boolean; pem: string } } {
  const firstString = (value: unknown): string | undefined =>
    Array.isArray(value) && typeof value[0] === "string" ? value[0] : undefined;
  const chains = tls?.verified_chains;
  const verified = Array.isArray(chains) ? firstString(chains[0]) : undefined;
  if (verified !== undefined) return { clientCertificate: { verified: true, pem: verified } };
  const presented = firstString(tls?.certs);
  return presented !== undefined ? { clientCertificate: { verified: false, pem: presented } } : {};
}
