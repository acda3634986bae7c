/**
 * Key validation: raw JWKS JSON → a key set the verifier may use, or a reason to keep the last good
 * one. Every key is imported the way a token would use it before the set is used; broken keys are
 * left out and remembered with why, and a set with no usable key, or one with broken keys that
 * keeps none of the keys in use, is refused as a whole ({@linkcode KeySetRejected}): an endpoint
 * serving garbage must not turn every valid login into `unknown_key`.
 *
 * @module
 */
import { createLocalJWKSet, importJWK, type JWK, type LocalJWKSet } from "jose";

/** Key types that can verify an allowed token algorithm; others (e.g. `oct`) are ignored. */
const SIGNING_KEY_TYPES = new Set(["RSA", "EC", "OKP"]);

/** The algorithm a key is checked with when its JWK names none. */
const DEFAULT_ALG: Readonly<Record<string, string>> = {
  RSA: "RS256",
  "EC:P-256": "ES256",
  "EC:P-384": "ES384",
  "EC:P-521": "ES512",
  "OKP:Ed25519": "EdDSA",
};

/** Smallest RSA modulus jose verifies with (shorter ones fail at verification time). */
const MIN_RSA_BITS = 2048;
/**
 * Largest RSA modulus the runtime verifies with: Deno 2.9's `node:crypto` refuses to import a
 * bigger one ("SPKI cryptographic key data malformed") and its WebCrypto refuses valid signatures
 * made with one, so such a key would turn every login it signs into `internal_error`.
 */
const MAX_RSA_BITS = 4096;

/** A validated key set: its resolver for jose, what identifies its content, and its kids. */
export interface LoadedSet {
  /** jose's resolver over the usable keys. */
  readonly resolve: LocalJWKSet;
  /** The content of the set (its signing keys, as JSON): equal fingerprints, same set. */
  readonly fingerprint: string;
  /** The kids of the usable keys. */
  readonly kids: readonly string[];
  /** kid → why its key was left out of the set. */
  readonly invalid: ReadonlyMap<string, string>;
}

/** A load that produced a key set we refuse to use; the previous set stays. */
export class KeySetRejected extends Error {
  /** kid → why its key cannot be used, for the keys of the rejected set that are broken. */
  readonly invalid: ReadonlyMap<string, string>;

  /** Create the error; `invalid` names the broken keys. */
  constructor(message: string, invalid: ReadonlyMap<string, string>) {
    super(message);
    this.name = "KeySetRejected";
    this.invalid = invalid;
  }
}

function kidOf(key: JWK): string {
  return typeof key.kid === "string" ? key.kid : "(no kid)";
}

/** Import `key` the way a token would use it; resolves to why it cannot be used, or undefined. */
async function keyProblem(key: JWK): Promise<string | undefined> {
  const alg = typeof key.alg === "string"
    ? key.alg
    : DEFAULT_ALG[key.kty === "RSA" ? "RSA" : `${key.kty}:${String(key.crv)}`];
  if (alg === undefined) return `unsupported key type ${key.kty} ${String(key.crv ?? "")}`.trim();
  let imported: unknown;
  try {
    imported = await importJWK(key, alg);
  } catch (err) {
    return `does not import as ${alg}: ${err instanceof Error ? err.message : String(err)}`;
  }
  if (!(imported instanceof CryptoKey) || imported.type !== "public") {
    return "is not a public key";
  }
  const bits = (imported.algorithm as { modulusLength?: number }).modulusLength;
  if (bits !== undefined && bits < MIN_RSA_BITS) {
    return `RSA modulus is ${bits} bits, fewer than the ${MIN_RSA_BITS} required`;
  }
  if (bits !== undefined && bits > MAX_RSA_BITS) {
    return `RSA modulus is ${bits} bits, more than the ${MAX_RSA_BITS} this runtime verifies with`;
  }
  return undefined;
}

/**
 * Turn raw JSON into a usable key set, or throw saying why it is not one. Keys are imported here,
 * not when a token first names them. `previous` is the set in use: a new set with broken keys that
 * keeps none of its keys is refused rather than trusted (the endpoint is more likely broken than
 * rotated).
 */
export async function toKeySet(json: unknown, previous: LoadedSet | undefined): Promise<LoadedSet> {
  const all = typeof json === "object" && json !== null
    ? (json as { keys?: unknown }).keys
    : undefined;
  if (!Array.isArray(all)) {
    throw new Error('not a JSON Web Key Set (expected an object with a "keys" array)');
  }
  const keys = all.filter((k): k is JWK =>
    typeof k === "object" && k !== null && SIGNING_KEY_TYPES.has((k as JWK).kty ?? "")
  );
  if (keys.length === 0) throw new Error("JSON Web Key Set has no RSA, EC or OKP keys");
  const usable: JWK[] = [];
  const invalid = new Map<string, string>();
  for (const key of keys) {
    const problem = await keyProblem(key);
    if (problem === undefined) usable.push(key);
    else invalid.set(kidOf(key), problem);
  }
  const brokenList = () =>
    [...invalid].slice(0, 5).map(([kid, why]) => `kid ${JSON.stringify(kid)} ${why}`).join("; ");
  if (usable.length === 0) {
    throw new KeySetRejected(`no usable key in the set: ${brokenList()}`, invalid);
  }
  const kids = usable.map(kidOf);
  if (invalid.size > 0 && previous && !previous.kids.some((kid) => kids.includes(kid))) {
    throw new KeySetRejected(
      `the set drops every key in use (${previous.kids.join(", ")}) while ${invalid.size} of ` +
        `its keys are broken: ${brokenList()}`,
      invalid,
    );
  }
  let resolve: LocalJWKSet;
  try {
    resolve = createLocalJWKSet({ keys: usable });
  } catch (cause) {
    throw new Error("JSON Web Key Set is malformed", { cause });
  }
  return { resolve, fingerprint: JSON.stringify(keys), kids, invalid };
}
