/**
 * NATS JWTs (`ed25519-nkey`) signed and verified with the runtime's native Ed25519 (`node:crypto`,
 * i.e. OpenSSL).
 *
 * `@nats-io/jwt` signs through `@nats-io/nkeys`' pure-JS ed25519, about 100 signatures a second —
 * a login needs two. An nkey seed is the raw 32-byte Ed25519 seed, so it imports as PKCS#8 and
 * signs byte-identically, two orders of magnitude faster (DESIGN §8, D4). `node:crypto` rather than
 * WebCrypto: Deno runs every WebCrypto call on a thread pool and resolves it through the event loop,
 * which costs more than the signature itself (sign 20 µs vs 85 µs, verify 39 µs vs 92 µs per call
 * on the benchmark machine). The nkey text encoding (base32 + CRC16, role prefix) is implemented
 * here so that parsing a key never touches the slow library either.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import {
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  sign as nodeSign,
  verify as nodeVerify,
} from "node:crypto";

/** The role letter of a public nkey: Operator, Account, User, Server (`N`), Cluster, curve (`X`). */
export type NkeyRole = "O" | "A" | "U" | "N" | "C" | "X";

const ROLE_BYTE: Readonly<Record<NkeyRole, number>> = {
  O: 14 << 3,
  A: 0,
  U: 20 << 3,
  N: 13 << 3,
  C: 2 << 3,
  X: 23 << 3,
};
const SEED_BYTE = 18 << 3;
const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const PKCS8_ED25519_PREFIX = Uint8Array.fromHex("302e020100300506032b657004220420");
const JWT_ALG = "ed25519-nkey";
const encoder = new TextEncoder();
/** The encoded JOSE header every NATS JWT we sign carries. */
const JWT_HEADER = encoder.encode(JSON.stringify({ typ: "JWT", alg: JWT_ALG }))
  .toBase64({ alphabet: "base64url", omitPadding: true });
const decoder = new TextDecoder("utf-8", { fatal: true });

/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the 32 raw key bytes follow. */
const SPKI_ED25519_PREFIX = Uint8Array.fromHex("302a300506032b6570032100");

/** A plain `Uint8Array` view of a Node `Buffer` (no copy), so callers compare it like any other. */
function plainBytes(buf: Uint8Array): Uint8Array {
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

const ROLE_OF_BYTE: ReadonlyMap<number, NkeyRole> = new Map(
  Object.entries(ROLE_BYTE).map(([role, byte]) => [byte, role as NkeyRole]),
);

function roleOf(byte: number): NkeyRole | undefined {
  return ROLE_OF_BYTE.get(byte);
}

/** CRC-16/XMODEM, one table lookup per byte. */
const CRC16_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let n = 0; n < 256; n++) {
    let crc = n << 8;
    for (let i = 0; i < 8; i++) {
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    table[n] = crc;
  }
  return table;
})();

function crc16(data: Uint8Array): number {
  let crc = 0;
  for (let i = 0; i < data.length; i++) {
    crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >>> 8) ^ data[i]!) & 0xff]!;
  }
  return crc;
}

/**
 * `data` in RFC 4648 base32 without padding, the alphabet of nkeys and of nats-io/jwt's `jti`.
 *
 * @example
 * ```ts
 * import { base32Encode } from "./nkey_jwt.ts";
 * console.assert(base32Encode(new Uint8Array([0xff])) === "74");
 * ```
 */
export function base32Encode(data: Uint8Array): string {
  let out = "";
  let bits = 0;
  let value = 0;
  for (let i = 0; i < data.length; i++) {
    value = ((value << 8) | data[i]!) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/** Value of each base32 character by char code; -1 for characters outside the alphabet. */
const BASE32_VALUE = (() => {
  const table = new Int8Array(128).fill(-1);
  for (let i = 0; i < BASE32.length; i++) table[BASE32.charCodeAt(i)] = i;
  return table;
})();

function base32Decode(text: string): Uint8Array | undefined {
  const out = new Uint8Array(Math.floor((text.length * 5) / 8));
  let bits = 0;
  let value = 0;
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    const v = code < 128 ? BASE32_VALUE[code]! : -1;
    if (v < 0) return undefined;
    value = ((value << 5) | v) & 0xfff;
    bits += 5;
    if (bits >= 8) {
      out[n++] = (value >>> (bits - 8)) & 0xff;
      bits -= 8;
    }
  }
  return out;
}

/** Base32-decode and check the CRC; returns the payload without the checksum. */
function unpack(text: string): Uint8Array | undefined {
  const raw = base32Decode(text);
  if (!raw || raw.length < 4) return undefined;
  const body = raw.subarray(0, raw.length - 2);
  const sum = (raw[raw.length - 2] ?? 0) | ((raw[raw.length - 1] ?? 0) << 8);
  return crc16(body) === sum ? body : undefined;
}

function pack(body: Uint8Array): string {
  const sum = crc16(body);
  const out = new Uint8Array(body.length + 2);
  out.set(body);
  out[body.length] = sum & 0xff;
  out[body.length + 1] = sum >>> 8;
  return base32Encode(out);
}

/**
 * Decode a seed (`SA…`, `SU…`, `SX…`, …) into its role and raw 32-byte key. Throws `TypeError`
 * on anything else, so a misconfigured key fails at start, not on the first login.
 *
 * @example
 * ```ts
 * import { decodeNkeySeed } from "./nkey_jwt.ts";
 * try { decodeNkeySeed("not a seed"); } catch (e) { console.assert(e instanceof TypeError); }
 * ```
 */
export function decodeNkeySeed(seed: string): { role: NkeyRole; raw: Uint8Array } {
  const body = unpack(seed.trim());
  if (!body || body.length !== 34) throw new TypeError("Invalid nkey seed: bad encoding");
  const b0 = body[0] ?? 0;
  const b1 = body[1] ?? 0;
  if ((b0 & 0xf8) !== SEED_BYTE) throw new TypeError("Invalid nkey seed: not a seed");
  const role = roleOf(((b0 & 7) << 5) | ((b1 & 0xf8) >> 3));
  if (!role) throw new TypeError("Invalid nkey seed: unknown role");
  return { role, raw: body.slice(2) };
}

/**
 * Decode a public nkey into its raw 32 bytes, checking the checksum and, when given, the role.
 * Returns `undefined` for anything that is not such a key (callers decide whether that is an error).
 */
export function decodePublicNkey(
  key: string,
  role?: NkeyRole,
): Uint8Array<ArrayBuffer> | undefined {
  if (typeof key !== "string" || key.length !== 56) return undefined;
  const body = unpack(key);
  if (!body || body.length !== 33) return undefined;
  const actual = roleOf(body[0] ?? -1);
  if (!actual || (role !== undefined && actual !== role)) return undefined;
  return body.slice(1);
}

/**
 * True when `key` is a well-formed public nkey of `role` (checksum included). Used to check the
 * `iss` and `user_nkey` of a callout request.
 */
export function isPublicNkey(key: unknown, role: NkeyRole): boolean {
  return typeof key === "string" && decodePublicNkey(key, role) !== undefined;
}

/** Encode raw 32 public-key bytes as a public nkey of `role` (e.g. an `X…` key from a curve seed). */
export function encodePublicNkey(role: NkeyRole, raw: Uint8Array): string {
  if (raw.length !== 32) throw new RangeError(`Public key must be 32 bytes, got ${raw.length}`);
  const body = new Uint8Array(33);
  body[0] = ROLE_BYTE[role];
  body.set(raw, 1);
  return pack(body);
}

/** Signs with one nkey on native Ed25519. */
export interface NkeySigner {
  /** The public nkey (`A…`, `U…`, …) matching the seed; the `iss` of every JWT it signs. */
  readonly publicKey: string;
  /** The role of the key. */
  readonly role: NkeyRole;
  /** Ed25519 signature of `data`, identical to nkeys' `sign()`. */
  sign(data: Uint8Array): Promise<Uint8Array>;
}

/**
 * Create a signer from a seed string (`SA…`). The private key lives in a `KeyObject`; the seed
 * string is not kept.
 *
 * @example
 * ```ts
 * import { createNkeySigner } from "./nkey_jwt.ts";
 * import { createAccount } from "@nats-io/nkeys";
 * const signer = await createNkeySigner(new TextDecoder().decode(createAccount().getSeed()));
 * console.assert(signer.publicKey.startsWith("A"));
 * ```
 */
export function createNkeySigner(seed: string): Promise<NkeySigner> {
  try {
    return Promise.resolve(nkeySignerFromSeed(seed));
  } catch (err) {
    return Promise.reject(err);
  }
}

/**
 * {@linkcode createNkeySigner}, synchronously: for callers that derive many keys in a pure step
 * (provisioned accounts, lib/accounts/keys.ts). Throws `TypeError` for anything but a signing seed.
 *
 * @example
 * ```ts
 * import { nkeySignerFromSeed } from "./nkey_jwt.ts";
 * import { createAccount } from "@nats-io/nkeys";
 * const signer = nkeySignerFromSeed(new TextDecoder().decode(createAccount().getSeed()));
 * console.assert(signer.role === "A");
 * ```
 */
export function nkeySignerFromSeed(seed: string): NkeySigner {
  const { role, raw } = decodeNkeySeed(seed);
  if (role === "X") throw new TypeError("A curve (X) seed cannot sign");
  const pkcs8 = new Uint8Array(PKCS8_ED25519_PREFIX.length + 32);
  pkcs8.set(PKCS8_ED25519_PREFIX);
  pkcs8.set(raw, PKCS8_ED25519_PREFIX.length);
  let key: KeyObject;
  let x: string | undefined;
  try {
    key = createPrivateKey({ key: Buffer.from(pkcs8.buffer), format: "der", type: "pkcs8" });
    x = createPublicKey(key).export({ format: "jwk" }).x;
  } catch (err) {
    throw new TypeError("Invalid nkey seed: not an Ed25519 key", { cause: err });
  } finally {
    pkcs8.fill(0);
    raw.fill(0);
  }
  if (!x) throw new TypeError("Ed25519 key export has no public part");
  const publicKey = encodePublicNkey(role, Uint8Array.fromBase64(x, { alphabet: "base64url" }));
  return {
    publicKey,
    role,
    sign: (data) => Promise.resolve(plainBytes(nodeSign(null, data, key))),
  };
}

/**
 * Encode raw 32 seed bytes as an nkey seed of `role` (`SA…` for an account): the text
 * `nk -gen account` prints, checksum included. The inverse of {@linkcode decodeNkeySeed}.
 *
 * @example
 * ```ts
 * import { decodeNkeySeed, encodeNkeySeed } from "./nkey_jwt.ts";
 * const seed = encodeNkeySeed("A", new Uint8Array(32));
 * console.assert(seed.startsWith("SA") && decodeNkeySeed(seed).role === "A");
 * ```
 */
export function encodeNkeySeed(role: NkeyRole, raw: Uint8Array): string {
  if (raw.length !== 32) throw new RangeError(`Seed must be 32 bytes, got ${raw.length}`);
  const body = new Uint8Array(34);
  body[0] = SEED_BYTE | (ROLE_BYTE[role] >> 5);
  body[1] = (ROLE_BYTE[role] & 31) << 3;
  body.set(raw, 2);
  return pack(body);
}

/** Options of {@linkcode NkeyKeyCache}. */
export interface NkeyKeyCacheOptions {
  /** Most public keys kept imported; the least recently used is evicted. @default {64} */
  maxKeys?: number;
}

/**
 * Imported verification keys by public nkey. Decoding and importing a key costs about a third of a
 * verification, and a deployment talks to a handful of servers, so the callout keeps one of these.
 */
export class NkeyKeyCache {
  readonly #max: number;
  readonly #keys = new Map<string, KeyObject>();

  /** Create an empty cache. */
  constructor(options: NkeyKeyCacheOptions = {}) {
    const { maxKeys = 64 } = options;
    if (!Number.isInteger(maxKeys) || maxKeys < 1) {
      throw new RangeError(`maxKeys must be a positive integer, got ${maxKeys}`);
    }
    this.#max = maxKeys;
  }

  /** Number of keys held. */
  get size(): number {
    return this.#keys.size;
  }

  /**
   * The verification key of `publicKey`; `undefined` when it is not a valid public nkey of a
   * signing role (a curve `X…` key never verifies).
   */
  get(publicKey: string): KeyObject | undefined {
    const hit = this.#keys.get(publicKey);
    if (hit) {
      if (this.#keys.size > 1) {
        this.#keys.delete(publicKey);
        this.#keys.set(publicKey, hit);
      }
      return hit;
    }
    const raw = decodePublicNkey(publicKey);
    if (!raw || publicKey.startsWith("X")) return undefined;
    const spki = new Uint8Array(SPKI_ED25519_PREFIX.length + 32);
    spki.set(SPKI_ED25519_PREFIX);
    spki.set(raw, SPKI_ED25519_PREFIX.length);
    let key: KeyObject;
    try {
      key = createPublicKey({ key: Buffer.from(spki.buffer), format: "der", type: "spki" });
    } catch {
      return undefined;
    }
    this.#keys.set(publicKey, key);
    if (this.#keys.size > this.#max) {
      const oldest = this.#keys.keys().next().value;
      if (oldest !== undefined) this.#keys.delete(oldest);
    }
    return key;
  }
}

/** Options shared by the verification functions. */
export interface VerifyOptions {
  /** Reuse imported public keys. @default {a fresh import per call} */
  keyCache?: NkeyKeyCache;
}

/**
 * Verify an Ed25519 signature by a public nkey. Returns `false` (never throws) for a bad key, a
 * bad signature length or a signature that does not match.
 *
 * @example
 * ```ts
 * import { createNkeySigner, verifyNkeySignature } from "./nkey_jwt.ts";
 * import { createUser } from "@nats-io/nkeys";
 * const s = await createNkeySigner(new TextDecoder().decode(createUser().getSeed()));
 * const data = new TextEncoder().encode("hi");
 * console.assert(await verifyNkeySignature(s.publicKey, data, await s.sign(data)));
 * ```
 */
export function verifyNkeySignature(
  publicKey: string,
  data: Uint8Array,
  sig: Uint8Array,
  options: VerifyOptions = {},
): Promise<boolean> {
  return Promise.resolve(verifyNow(publicKey, data, sig, options.keyCache));
}

function verifyNow(
  publicKey: string,
  data: Uint8Array,
  sig: Uint8Array,
  keyCache: NkeyKeyCache | undefined,
): boolean {
  if (sig.length !== 64) return false;
  const key = (keyCache ?? new NkeyKeyCache({ maxKeys: 1 })).get(publicKey);
  return key !== undefined && verifyWithKey(key, data, sig);
}

function verifyWithKey(key: KeyObject, data: Uint8Array, sig: Uint8Array): boolean {
  if (sig.length !== 64) return false;
  try {
    return nodeVerify(null, data, key, sig);
  } catch {
    return false;
  }
}

/** The JOSE header of a NATS JWT. */
export interface NatsJwtHeader {
  /** `JWT` when written; `JWT` or `jwt` when read (nats-io/jwt v2 `header.go` upper-cases it). */
  readonly typ: string;
  /** Always `ed25519-nkey`, the one algorithm written or read (nats-io/jwt v2 `AlgorithmNkey`). */
  readonly alg: string;
}

/** Claims of a NATS JWT: the registered names plus the `nats` object; all else passes through. */
export interface NatsJwtClaims {
  /** Any other claim, passed through as written. */
  readonly [key: string]: unknown;
  /** The JWT's id; {@linkcode encodeNatsJwt} ignores the caller's and writes a random one. */
  readonly jti?: string;
  /** Issued at, in seconds since the epoch; {@linkcode encodeNatsJwt} sets it from its clock. */
  readonly iat?: number;
  /** The signer's public nkey: {@linkcode encodeNatsJwt} sets it, decoding verifies by it. */
  readonly iss?: string;
  /** Whom the JWT is about: a public nkey (the user's `U…` key in a user JWT and a response). */
  readonly sub?: string;
  /** Audience (a user JWT's account, a response's server id); never defaulted here. */
  readonly aud?: string;
  /** Expiry, in seconds since the epoch; absent for none. Decoding does not check it. */
  readonly exp?: number;
  /** Not valid before, in seconds since the epoch. Decoding does not check it. */
  readonly nbf?: number;
  /** A name for people: in a user JWT, the connection's user name in connz and server logs. */
  readonly name?: string;
  /** The NATS-specific claims: `type`, `version` and the claim type's own fields. */
  readonly nats?: Readonly<Record<string, unknown>>;
}

/** Options of {@linkcode encodeNatsJwt}. */
export interface EncodeOptions {
  /** Clock in milliseconds, for `iat`. @default {() => Date.now()} */
  now?: () => number;
}

/**
 * A `jti`: 32 random bytes in unpadded base32 — the shape nats-io/jwt (Go) gives it, where it is
 * the SHA-512/256 of the claims. Nothing checks it against the claims: nats-io/jwt v2 `Decode`
 * verifies the signature and the issuer's key type, `Validate` checks times and the claim type's
 * own fields, and nats-server reads `jti` only to skip storing an unchanged account JWT in its
 * resolver (`server/dirstore.go`), never for user or authorization-response JWTs. Random is
 * unique per JWT, as an id should be, and costs a quarter of hashing the claims (1 µs vs 4 µs,
 * twice per login).
 */
function randomJti(): string {
  return base32Encode(crypto.getRandomValues(new Uint8Array(32)));
}

function b64url(data: Uint8Array): string {
  return data.toBase64({ alphabet: "base64url", omitPadding: true });
}

/**
 * Encode and sign a NATS JWT (`{"typ":"JWT","alg":"ed25519-nkey"}`). Sets `iss` to the signer's
 * public key, `iat` from the clock and a random `jti`; every other claim is
 * the caller's. `@nats-io/jwt` cannot do this without its slow signer, and it silently defaults
 * `aud` to `"NATS"` — here nothing is defaulted.
 *
 * @example
 * ```ts
 * import { createNkeySigner, decodeAndVerifyNatsJwt, encodeNatsJwt } from "./nkey_jwt.ts";
 * import { createAccount } from "@nats-io/nkeys";
 * const s = await createNkeySigner(new TextDecoder().decode(createAccount().getSeed()));
 * const jwt = await encodeNatsJwt({ sub: "x", nats: { type: "generic", version: 2 } }, s);
 * console.assert((await decodeAndVerifyNatsJwt(jwt)).claims.iss === s.publicKey);
 * ```
 */
export async function encodeNatsJwt(
  claims: NatsJwtClaims,
  signer: NkeySigner,
  options: EncodeOptions = {},
): Promise<string> {
  const { now = () => Date.now() } = options;
  const { jti: _jti, ...rest } = claims;
  const body = JSON.stringify({ ...rest, iat: Math.floor(now() / 1000), iss: signer.publicKey });
  // `jti` first, as nats-io/jwt writes it (body is never `{}`: it has `iat` and `iss`).
  const payload = `{"jti":"${randomJti()}",${body.slice(1)}`;
  const signingInput = `${JWT_HEADER}.${b64url(encoder.encode(payload))}`;
  const sig = await signer.sign(encoder.encode(signingInput));
  return `${signingInput}.${b64url(sig)}`;
}

/**
 * Encode and sign a NATS JWT exactly as given: `jti` and `iat` are the caller's (written first, as
 * nats-io/jwt writes them), `iss` is the signer's key. Ed25519 signatures are deterministic, so the
 * same claims and key always give the same bytes — what lets several replicas push one account JWT
 * without fighting (lib/accounts/claims.ts).
 *
 * @example
 * ```ts
 * import { encodeExactNatsJwt, nkeySignerFromSeed } from "./nkey_jwt.ts";
 * import { createAccount } from "@nats-io/nkeys";
 * const s = nkeySignerFromSeed(new TextDecoder().decode(createAccount().getSeed()));
 * const claims = { jti: "J", iat: 1, sub: "x", nats: { type: "generic", version: 2 } };
 * console.assert(await encodeExactNatsJwt(claims, s) === await encodeExactNatsJwt(claims, s));
 * ```
 */
export async function encodeExactNatsJwt(
  claims: NatsJwtClaims & { readonly jti: string; readonly iat: number },
  signer: NkeySigner,
): Promise<string> {
  const { jti, iat, iss: _iss, ...rest } = claims;
  const body = JSON.stringify({ jti, iat, iss: signer.publicKey, ...rest });
  const signingInput = `${JWT_HEADER}.${b64url(encoder.encode(body))}`;
  const sig = await signer.sign(encoder.encode(signingInput));
  return `${signingInput}.${b64url(sig)}`;
}

/** Why a NATS JWT was refused by {@linkcode decodeAndVerifyNatsJwt}. */
export type NatsJwtErrorCode =
  | "jwt_malformed"
  | "jwt_algorithm_invalid"
  | "jwt_issuer_invalid"
  | "jwt_signature_invalid";

/** A NATS JWT that is malformed or not signed by its `iss`. */
export class NatsJwtError extends Error {
  /** Stable reason. */
  readonly code: NatsJwtErrorCode;

  /** Create an error with a stable `code`. */
  constructor(code: NatsJwtErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "NatsJwtError";
    this.code = code;
  }
}

function parseJson(part: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(Uint8Array.fromBase64(part, { alphabet: "base64url" })));
  } catch (err) {
    throw new NatsJwtError("jwt_malformed", `JWT ${what} is not base64url JSON`, { cause: err });
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new NatsJwtError("jwt_malformed", `JWT ${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

/**
 * Decode a NATS JWT and verify its signature by the key in its `iss` claim. Checks only the
 * format, `alg` (`ed25519-nkey`) and signature — which issuer to trust, audience, type and expiry
 * are the caller's business. Throws {@linkcode NatsJwtError}.
 *
 * @example
 * ```ts
 * import { decodeAndVerifyNatsJwt, NatsJwtError } from "./nkey_jwt.ts";
 * try { await decodeAndVerifyNatsJwt("a.b.c"); } catch (e) { console.assert(e instanceof NatsJwtError); }
 * ```
 */
export function decodeAndVerifyNatsJwt(
  token: string,
  options: VerifyOptions = {},
): Promise<{ header: NatsJwtHeader; claims: NatsJwtClaims & { readonly iss: string } }> {
  try {
    return Promise.resolve(decodeAndVerify(token, options));
  } catch (err) {
    return Promise.reject(err);
  }
}

function decodeAndVerify(
  token: string,
  options: VerifyOptions,
): { header: NatsJwtHeader; claims: NatsJwtClaims & { readonly iss: string } } {
  const parts = token.split(".");
  if (parts.length !== 3) throw new NatsJwtError("jwt_malformed", "JWT must have three parts");
  const [h, p, s] = parts as [string, string, string];
  // nats-server writes exactly the header we write; anything else is parsed and checked.
  let typ = "JWT";
  if (h !== JWT_HEADER) {
    const header = parseJson(h, "header");
    if (header.alg !== JWT_ALG) {
      throw new NatsJwtError("jwt_algorithm_invalid", `JWT alg must be ${JWT_ALG}`);
    }
    if (header.typ !== "JWT" && header.typ !== "jwt") {
      throw new NatsJwtError("jwt_malformed", "JWT typ must be JWT");
    }
    typ = header.typ;
  }
  const claims = parseJson(p, "claims");
  const iss = claims.iss;
  const keyCache = options.keyCache ?? new NkeyKeyCache({ maxKeys: 1 });
  // The cache decodes and checks the key once; a cached key is known to be a valid signing key.
  const key = typeof iss === "string" ? keyCache.get(iss) : undefined;
  if (key === undefined) {
    throw new NatsJwtError("jwt_issuer_invalid", "JWT iss is not a public nkey");
  }
  let sig: Uint8Array;
  try {
    sig = Uint8Array.fromBase64(s, { alphabet: "base64url" });
  } catch (err) {
    throw new NatsJwtError("jwt_malformed", "JWT signature is not base64url", { cause: err });
  }
  if (!verifyWithKey(key, encoder.encode(`${h}.${p}`), sig)) {
    throw new NatsJwtError("jwt_signature_invalid", "JWT signature does not verify");
  }
  return {
    header: { typ, alg: JWT_ALG },
    claims: claims as NatsJwtClaims & { readonly iss: string },
  };
}
