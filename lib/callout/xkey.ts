/**
 * xkey (curve25519) sealing as nats-server does it: `xkv1` + 24-byte nonce + NaCl box
 * (X25519, XSalsa20-Poly1305). When the server is configured with our `X…` public key it seals each
 * callout request to us with its ephemeral key; we open it and seal the reply back.
 *
 * WebCrypto has X25519 but no XSalsa20-Poly1305, so `tweetnacl` does the box. The X25519 step is
 * the expensive half and depends only on the peer, so its result (`box.before`) is cached per peer.
 *
 * Why not `@nats-io/nkeys`' `createCurve()`/`fromCurveSeed()` `seal`/`open`: they read the same
 * format (tests/callout/xkey_test.ts checks both directions byte for byte) but run the X25519 step of a
 * full `nacl.box` on every call. `deno bench -A bench/xkey_bench.ts` (open one request + seal one
 * reply, 2-core machine): this module 7,579/s (p75 55 µs), nkeys 213/s (4.7 ms) — 36× slower,
 * which alone would cap the service near 200 logins/s against ~5,000 decisions/s without xkey.
 *
 * @module
 */
import nacl from "tweetnacl";
import { decodeNkeySeed, decodePublicNkey, encodePublicNkey } from "./nkey_jwt.ts";

const VERSION = new Uint8Array([0x78, 0x6b, 0x76, 0x31]); // "xkv1"
const NONCE_LEN = 24;
const HEADER_LEN = VERSION.length + NONCE_LEN;

/** Options of {@linkcode createXkey}. */
export interface XkeyOptions {
  /** Peers whose shared key is kept; the least recently used is evicted. @default {64} */
  maxPeers?: number;
  /** Source of nonces. @default {crypto.getRandomValues} */
  randomBytes?: (n: number) => Uint8Array;
}

/** Our curve key: seal to a peer, open from a peer. */
export interface Xkey {
  /** Our public `X…` key — what goes into the server's `auth_callout.xkey`. */
  readonly publicKey: string;
  /**
   * Seal `data` to `recipient` (an `X…` key). Throws `TypeError` when `recipient` is not a curve
   * key: that is a bug or a forged request, and the caller decides.
   */
  seal(data: Uint8Array, recipient: string): Uint8Array;
  /**
   * Open a sealed message from `sender`. Returns `undefined` — never throws — when the message is
   * not `xkv1`, is truncated or tampered with, or `sender` is not a valid curve key.
   */
  open(data: Uint8Array, sender: string): Uint8Array | undefined;
}

/**
 * Create an xkey from an `SX…` seed. Throws `TypeError` for any other seed, at start.
 *
 * @example
 * ```ts
 * import { createXkey } from "./xkey.ts";
 * import { createCurve } from "@nats-io/nkeys";
 * const seed = (kp: { getSeed(): Uint8Array }) => new TextDecoder().decode(kp.getSeed());
 * const a = createXkey(seed(createCurve()));
 * const b = createXkey(seed(createCurve()));
 * const sealed = a.seal(new TextEncoder().encode("hi"), b.publicKey);
 * console.assert(new TextDecoder().decode(b.open(sealed, a.publicKey)!) === "hi");
 * ```
 */
export function createXkey(seed: string, options: XkeyOptions = {}): Xkey {
  const { maxPeers = 64, randomBytes = (n: number) => crypto.getRandomValues(new Uint8Array(n)) } =
    options;
  if (!Number.isInteger(maxPeers) || maxPeers < 1) {
    throw new RangeError(`maxPeers must be a positive integer, got ${maxPeers}`);
  }
  const { role, raw: secret } = decodeNkeySeed(seed);
  if (role !== "X") throw new TypeError(`xkey seed must be a curve (SX…) seed, got role ${role}`);
  const publicKey = encodePublicNkey("X", nacl.scalarMult.base(secret));
  const shared = new Map<string, Uint8Array>();

  const sharedKey = (peer: string): Uint8Array | undefined => {
    const hit = shared.get(peer);
    if (hit) {
      shared.delete(peer);
      shared.set(peer, hit);
      return hit;
    }
    const raw = decodePublicNkey(peer, "X");
    if (!raw) return undefined;
    const key = nacl.box.before(raw, secret);
    shared.set(peer, key);
    if (shared.size > maxPeers) {
      const oldest = shared.keys().next().value;
      if (oldest !== undefined) shared.delete(oldest);
    }
    return key;
  };

  return {
    publicKey,
    seal(data, recipient) {
      const key = sharedKey(recipient);
      if (!key) throw new TypeError("xkey recipient is not a public curve (X…) key");
      const nonce = randomBytes(NONCE_LEN);
      if (nonce.length !== NONCE_LEN) throw new RangeError("randomBytes returned a short nonce");
      const box = nacl.box.after(data, nonce, key);
      const out = new Uint8Array(HEADER_LEN + box.length);
      out.set(VERSION);
      out.set(nonce, VERSION.length);
      out.set(box, HEADER_LEN);
      return out;
    },
    open(data, sender) {
      if (data.length < HEADER_LEN + nacl.box.overheadLength) return undefined;
      for (let i = 0; i < VERSION.length; i++) {
        if (data[i] !== VERSION[i]) return undefined;
      }
      const key = sharedKey(sender);
      if (!key) return undefined;
      try {
        const nonce = data.subarray(VERSION.length, HEADER_LEN);
        return nacl.box.open.after(data.subarray(HEADER_LEN), nonce, key) ?? undefined;
      } catch {
        return undefined;
      }
    },
  };
}
