/**
 * Keys made at test time (never committed): account, user, server and curve key pairs, and a
 * temporary directory to write seed files into, as a deployment would mount them.
 *
 * @module
 */
import {
  createAccount,
  createCurve,
  createServer,
  createUser,
  fromCurveSeed,
  fromSeed,
  type KeyPair,
} from "@nats-io/nkeys";

/** A generated key pair as strings, plus the nkeys pair for cross-checks. */
export interface TestKey {
  /** `S…` seed. */
  readonly seed: string;
  /** Public key (`A…`, `U…`, `N…`, `X…`). */
  readonly publicKey: string;
  /** The same key as an `@nats-io/nkeys` pair (slow; for cross-checks only). */
  readonly pair: KeyPair;
}

function wrap(pair: KeyPair): TestKey {
  return { seed: new TextDecoder().decode(pair.getSeed()), publicKey: pair.getPublicKey(), pair };
}

/** A fresh account (`A…`) key: the issuer of user JWTs and callout responses. */
export function accountKey(): TestKey {
  return wrap(createAccount());
}

/** A fresh user (`U…`) key: what a server puts in `user_nkey`. */
export function userKey(): TestKey {
  return wrap(createUser());
}

/** A fresh server (`N…`) key: to craft callout requests as a server would. */
export function serverKey(): TestKey {
  return wrap(createServer());
}

/** A fresh curve (`X…`) key: xkey encryption. */
export function curveKey(): TestKey {
  return wrap(createCurve());
}

/** Rebuild a {@linkcode TestKey} from a seed (curve seeds included). */
export function keyFromSeed(seed: string): TestKey {
  const bytes = new TextEncoder().encode(seed);
  return wrap(seed.startsWith("SX") ? fromCurveSeed(bytes) : fromSeed(bytes));
}

/** A temporary directory for seed and creds files; removed on dispose. */
export class KeyDir implements AsyncDisposable {
  /** Absolute path of the directory. */
  readonly path: string;

  private constructor(path: string) {
    this.path = path;
  }

  /** Create a new empty directory under the system temp dir. */
  static async create(): Promise<KeyDir> {
    return new KeyDir(await Deno.makeTempDir({ prefix: "nkeys-test-" }));
  }

  /** Write `text` (a seed, a creds file) to `name` with mode 0600; returns the file's path. */
  async write(name: string, text: string): Promise<string> {
    const file = `${this.path}/${name}`;
    await Deno.writeTextFile(file, text, { mode: 0o600 });
    return file;
  }

  /** Remove the directory and everything in it. */
  async [Symbol.asyncDispose](): Promise<void> {
    await Deno.remove(this.path, { recursive: true }).catch(() => {});
  }
}

/** The text of `kp`'s seed. */
export function seedOf(kp: KeyPair): string {
  return new TextDecoder().decode(kp.getSeed());
}

/** Account limits with every bound off (`-1`), for the fixed accounts of an operator-mode test. */
export const UNLIMITED_ACCOUNT = Object.freeze({
  subs: -1,
  data: -1,
  payload: -1,
  imports: -1,
  exports: -1,
  wildcards: true,
  conn: -1,
  leaf: -1,
});
