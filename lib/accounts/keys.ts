/**
 * The keys of a provisioned account, derived — never stored. Each Namespace's account key and the
 * signing key its user JWTs are signed with are HKDF-SHA256 (RFC 5869) of one secret seed
 * (`NATS_ACCOUNTS_SEED_FILE`) and the Namespace's uid:
 *
 * ```
 * account key  = Ed25519 seed HKDF(ikm = root seed bytes, salt = "nats-k8s-oidc-callout/accounts/v1", info = "account:<uid>")
 * signing key  = Ed25519 seed HKDF(ikm = root seed bytes, salt = same,                               info = "signing-key:<uid>")
 * ```
 *
 * Why: every replica computes the same keys from what it already has (the Secret and the
 * Namespace), so no replica needs storage another cannot reach and none can disagree; a Namespace
 * deleted and created again under the same name has a new uid, so it gets a new account and
 * nothing of the old one (JetStream data, revocations, imports) carries over; and the keys of an
 * account found on the resolver can be recomputed from its `namespace-uid` tag, which proves the
 * account is this service's before it is ever deleted (lib/accounts/held.ts, survey.ts).
 *
 * @module
 */
import { hkdfSync } from "node:crypto";
import {
  decodeNkeySeed,
  encodeNkeySeed,
  type NkeySigner,
  nkeySignerFromSeed,
} from "../callout/nkey_jwt.ts";

/** Domain separation: a key derived here is never the key of anything else made from the seed. */
const SALT = "nats-k8s-oidc-callout/accounts/v1";

/** The keys of one provisioned account. The account's own seed is never kept: nothing needs it. */
export interface AccountKeys {
  /** The account's public key (`A…`): its identity, `sub` of its JWT, `issuer_account` of its users. */
  readonly account: string;
  /** Signs the account's user JWTs and activation tokens; listed in the JWT's `signing_keys`. */
  readonly signer: NkeySigner;
}

/**
 * The root secret: the 32 bytes of an nkey seed (`nk -gen account` makes one). Throws `TypeError`
 * for anything that is not an account seed, so a wrong file fails at start.
 */
export function rootSecret(seed: string): Uint8Array {
  const { role, raw } = decodeNkeySeed(seed);
  if (role !== "A") throw new TypeError(`the accounts seed must be an account seed (SA...)`);
  return raw;
}

function derive(root: Uint8Array, info: string): Uint8Array {
  return new Uint8Array(hkdfSync("sha256", root, SALT, info, 32));
}

/**
 * The keys of the account for the Namespace with `uid`. Pure: the same root and uid always give
 * the same keys.
 *
 * @example
 * ```ts
 * import { deriveAccountKeys } from "./keys.ts";
 * const root = new Uint8Array(32).fill(7);
 * const a = deriveAccountKeys(root, "0b9c…uid");
 * console.assert(a.account === deriveAccountKeys(root, "0b9c…uid").account);
 * console.assert(a.account !== deriveAccountKeys(root, "another-uid").account);
 * ```
 */
export function deriveAccountKeys(root: Uint8Array, uid: string): AccountKeys {
  const accountSeed = encodeNkeySeed("A", derive(root, `account:${uid}`));
  const account = nkeySignerFromSeed(accountSeed).publicKey;
  const signer = nkeySignerFromSeed(encodeNkeySeed("A", derive(root, `signing-key:${uid}`)));
  return { account, signer };
}

/**
 * {@linkcode deriveAccountKeys}, remembered per uid (a deployment has one account per provisioned
 * Namespace; deriving costs two HKDFs and two key imports, about 60 µs). Forgets uids not asked
 * for since the last {@linkcode KeyRing.retain}.
 */
export class KeyRing {
  readonly #root: Uint8Array;
  readonly #keys = new Map<string, AccountKeys>();

  /** A ring over the root secret of {@linkcode rootSecret}. */
  constructor(root: Uint8Array) {
    this.#root = root;
  }

  /** The keys for `uid`. */
  keysFor(uid: string): AccountKeys {
    let keys = this.#keys.get(uid);
    if (!keys) {
      keys = deriveAccountKeys(this.#root, uid);
      this.#keys.set(uid, keys);
    }
    return keys;
  }

  /** Keep only the keys of `uids` (the Namespaces that have accounts now). */
  retain(uids: ReadonlySet<string>): void {
    for (const uid of this.#keys.keys()) if (!uids.has(uid)) this.#keys.delete(uid);
  }
}
