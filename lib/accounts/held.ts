/**
 * What an account JWT the servers' resolver holds says of itself, read without verifying (the
 * resolver only stores JWTs it verified): its version (`jti`, `iat`), the Namespace it was made for
 * (tags), and whether it is this service's ({@linkcode ownAccount}) — the test the sweep applies
 * before it ever removes an account.
 *
 * @module
 */
import { unverifiedClaims } from "../core/jwt_shape.ts";
import { MANAGED_TAG, REVOKED_TAG, UID_TAG_PREFIX } from "./claims.ts";
import { deriveAccountKeys } from "./keys.ts";

/** What the resolver holds for one account, as far as this replica knows. */
export interface Held {
  /** The held JWT's id (a hash of its content). */
  readonly jti: string;
  /** Its issue time, seconds since the epoch (the later `iat` wins a resolvers' merge). */
  readonly iat: number;
  /** The namespace it was provisioned for (from the JWT's name). */
  readonly namespace: string;
  /** The Namespace uid its keys derive from (from the JWT's tags). */
  readonly uid: string;
  /** The held JWT is the "revoked" one (the resolver does not allow delete). */
  readonly revoked: boolean;
}

function tagsOf(claims: Record<string, unknown>): string[] {
  const nats = claims.nats as { tags?: unknown } | undefined;
  return Array.isArray(nats?.tags)
    ? nats.tags.filter((t): t is string => typeof t === "string")
    : [];
}

/**
 * What a JWT the resolver holds says of its version, or `undefined` when it has no `jti`/`iat`.
 *
 * @example
 * ```ts ignore
 * parseHeld(await resolver.lookup(account)); // { jti: "…", iat: 1700000000, namespace: "team-a", … }
 * ```
 */
export function parseHeld(jwt: string): Held | undefined {
  const claims = unverifiedClaims(jwt);
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

/** An account JWT made by this service's operator signing key and tag, whoever derived its key. */
export interface Tagged extends Held {
  /** The account's key (`sub`). */
  readonly account: string;
  /** The key derives from this replica's root and the tagged uid. */
  readonly derivedHere: boolean;
}

/**
 * `jwt` read as an account this service provisions — signed by `operator`, for `key`, with the
 * managed tag and a uid tag — or `undefined`. `derivedHere` says whether `key` derives from `root`
 * and that uid: an account tagged for a Namespace this replica plans whose key it does not derive
 * was made with another `NATS_ACCOUNTS_SEED_FILE`.
 */
export function taggedAccount(
  jwt: string,
  key: string,
  operator: string,
  root: Uint8Array,
): Tagged | undefined {
  const claims = unverifiedClaims(jwt);
  if (!claims || claims.iss !== operator || claims.sub !== key) return undefined;
  if (!tagsOf(claims).includes(MANAGED_TAG)) return undefined;
  const h = parseHeld(jwt);
  if (!h || h.uid === "") return undefined;
  return { ...h, account: key, derivedHere: deriveAccountKeys(root, h.uid).account === key };
}

/**
 * The held version of `key` when the JWT is this service's: signed by our operator signing key,
 * tagged as ours, and `key` derives from our root and the tagged uid (so another deployment
 * sharing the operator key never has its accounts removed by this one).
 *
 * @example
 * ```ts ignore
 * const mine = ownAccount(jwt, key, operator.publicKey, root);
 * if (mine && !mine.revoked) await remove(key, mine);
 * ```
 */
export function ownAccount(
  jwt: string,
  key: string,
  operator: string,
  root: Uint8Array,
): Held | undefined {
  const tagged = taggedAccount(jwt, key, operator, root);
  if (!tagged?.derivedHere) return undefined;
  const { account: _account, derivedHere: _derived, ...held } = tagged;
  return held;
}
