/**
 * Test-time stand-in for a cluster's ServiceAccount token issuer: key pairs generated on the spot
 * (nothing is ever written to disk or committed), their public JWKS as the apiserver serves it, and
 * tokens shaped exactly like kubelet-projected ones. Hostile tokens — `alg: none`, HS256 keyed with the
 * public key, a look-alike key reusing a trusted `kid` — are here too, so every test attacks the
 * verifier the same way.
 *
 * Depends only on jose and WebCrypto, so dev tooling can mint tokens with it as well.
 *
 * @example
 * ```ts ignore
 * import { generateSigningKey, mintServiceAccountToken, publicJwks } from "./sa_tokens.ts";
 * const key = await generateSigningKey("RS256");
 * const jwks = publicJwks([key]); // serve this as /openid/v1/jwks
 * const token = await mintServiceAccountToken({
 *   key,
 *   issuer: "https://kubernetes.default.svc",
 *   namespace: "team-a",
 *   serviceAccount: "worker",
 *   uid: crypto.randomUUID(),
 * });
 * ```
 *
 * @module
 */
import {
  base64url,
  calculateJwkThumbprint,
  CompactSign,
  type CryptoKey,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type JSONWebKeySet,
  type JWK,
} from "jose";

/** Asymmetric JWS algorithms a test key can use. */
/** The issuer kubeadm and k3s clusters put in ServiceAccount tokens; the tests' cluster uses it. */
export const ISSUER = "https://kubernetes.default.svc.cluster.local";

export type SigningAlgorithm =
  | "RS256"
  | "RS384"
  | "RS512"
  | "PS256"
  | "PS384"
  | "PS512"
  | "ES256"
  | "ES384"
  | "ES512"
  | "EdDSA";

/** A generated key pair with its JWKS identity. The private key never leaves the process. */
export interface SigningKey {
  /** Key ID: the public key's RFC 7638 thumbprint unless chosen. */
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
  /** Public JWK as the apiserver publishes it (`kty`, `alg`, `use: "sig"`, `kid`, key fields). */
  readonly publicJwk: JWK;
}

/** Options of {@linkcode generateSigningKey}. */
export interface GenerateSigningKeyOptions {
  /** Key ID to publish and put in token headers. @default {the JWK thumbprint} */
  kid?: string;
}

/**
 * Generate a fresh, extractable key pair for `alg` (RS256 is what clusters use by default, ES256
 * the common alternative).
 */
export async function generateSigningKey(
  alg: SigningAlgorithm = "RS256",
  options: GenerateSigningKeyOptions = {},
): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(publicKey);
  const kid = options.kid ?? await calculateJwkThumbprint(jwk);
  return Object.freeze({
    kid,
    alg,
    privateKey,
    publicKey,
    publicJwk: Object.freeze({ ...jwk, use: "sig", alg, kid }),
  });
}

/** The JWKS document (`{"keys": [...]}`) publishing the public halves of `keys`. */
export function publicJwks(keys: readonly SigningKey[]): JSONWebKeySet {
  return { keys: keys.map((k) => ({ ...k.publicJwk })) };
}

/** Claim content of a ServiceAccount token; see {@linkcode mintServiceAccountToken}. */
export interface ServiceAccountClaimsOptions {
  /** `iss`; in-cluster usually `https://kubernetes.default.svc`. */
  issuer: string;
  namespace: string;
  serviceAccount: string;
  /** ServiceAccount UID (`kubernetes.io.serviceaccount.uid`). */
  uid: string;
  /** `aud`; always written as an array, as Kubernetes does. @default {"nats"} */
  audience?: string | readonly string[];
  /** `exp - iat` in seconds. @default {3600} */
  lifetimeSec?: number;
  /** `iat` in seconds since the epoch. @default {now} */
  iat?: number;
  /** `nbf` in seconds since the epoch. @default {iat} */
  nbf?: number;
  /** Pod the token is bound to; `null` for an unbound token. @default {`<sa>-pod`, random uid} */
  pod?: { name: string; uid: string } | null;
  /** Node the pod runs on (Kubernetes ≥ 1.30 adds it). @default {omitted} */
  node?: { name: string; uid: string };
  /** `kubernetes.io.warnafter`; `null` omits it. @default {exp} */
  warnAfter?: number | null;
  /**
   * Claims merged over the generated ones, last. A value of `undefined` removes a claim
   * (`{ exp: undefined }`); a replacement `"kubernetes.io"` object replaces the whole claim.
   */
  extraClaims?: Readonly<Record<string, unknown>>;
  /** Clock in milliseconds. @default {Date.now} */
  now?: () => number;
}

/** Options of {@linkcode mintServiceAccountToken}. */
export interface ServiceAccountTokenOptions extends ServiceAccountClaimsOptions {
  /** Key that signs the token. */
  key: SigningKey;
  /** Header `alg`; must suit the key. @default {key.alg} */
  alg?: SigningAlgorithm;
  /** Header `kid`; `null` omits it. @default {key.kid} */
  kid?: string | null;
}

/**
 * The claims set of a projected ServiceAccount token, as the kube-apiserver issues it: `iss`,
 * `sub = system:serviceaccount:<ns>:<sa>`, `aud` (array), `exp`, `iat`, `nbf`, `jti` and
 * `kubernetes.io {namespace, serviceaccount {name, uid}, pod {name, uid}, node?, warnafter}`.
 */
export function serviceAccountClaims(
  options: ServiceAccountClaimsOptions,
): Record<string, unknown> {
  const {
    issuer,
    namespace,
    serviceAccount,
    uid,
    audience = "nats",
    lifetimeSec = 3600,
    now = Date.now,
  } = options;
  const iat = options.iat ?? Math.floor(now() / 1000);
  const nbf = options.nbf ?? iat;
  const exp = iat + lifetimeSec;
  const pod = options.pod === undefined
    ? { name: `${serviceAccount}-pod`, uid: crypto.randomUUID() }
    : options.pod;
  const warnAfter = options.warnAfter === undefined ? exp : options.warnAfter;
  const k8s: Record<string, unknown> = {
    namespace,
    serviceaccount: { name: serviceAccount, uid },
  };
  if (pod) k8s.pod = { name: pod.name, uid: pod.uid };
  if (options.node) k8s.node = { name: options.node.name, uid: options.node.uid };
  if (warnAfter !== null) k8s.warnafter = warnAfter;
  return {
    aud: typeof audience === "string" ? [audience] : [...audience],
    exp,
    iat,
    iss: issuer,
    jti: crypto.randomUUID(),
    "kubernetes.io": k8s,
    nbf,
    sub: `system:serviceaccount:${namespace}:${serviceAccount}`,
    ...options.extraClaims,
  };
}

function encodeJson(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}

/**
 * Mint a signed ServiceAccount token (JWS compact serialization) with the header Kubernetes writes:
 * `{"alg": "RS256", "kid": "..."}`.
 */
export function mintServiceAccountToken(options: ServiceAccountTokenOptions): Promise<string> {
  const { key, alg = key.alg, kid = key.kid } = options;
  return new CompactSign(encodeJson(serviceAccountClaims(options)))
    .setProtectedHeader(kid === null ? { alg } : { alg, kid })
    .sign(key.privateKey);
}

/** Hostile: an unsigned token (`alg: none`, empty signature) carrying valid-looking claims. */
export function mintUnsecuredToken(
  options: ServiceAccountClaimsOptions & { kid?: string },
): string {
  const header = options.kid === undefined ? { alg: "none" } : { alg: "none", kid: options.kid };
  return `${base64url.encode(encodeJson(header))}.${
    base64url.encode(encodeJson(serviceAccountClaims(options)))
  }.`;
}

/**
 * Hostile: the "algorithm confusion" token — HS256, keyed with the trusted public key's PEM text as
 * the HMAC secret, under the trusted `kid`. A verifier that lets the token choose the algorithm
 * accepts it.
 */
export async function mintHmacConfusionToken(
  trusted: SigningKey,
  options: ServiceAccountClaimsOptions,
): Promise<string> {
  const secret = new TextEncoder().encode(await exportSPKI(trusted.publicKey));
  return new CompactSign(encodeJson(serviceAccountClaims(options)))
    .setProtectedHeader({ alg: "HS256", kid: trusted.kid })
    .sign(secret);
}

/**
 * Hostile: a token signed by a freshly generated key of the same algorithm that claims the trusted
 * key's `kid`. Only the signature check can catch it.
 */
export async function mintImpostorToken(
  trusted: SigningKey,
  options: ServiceAccountClaimsOptions,
): Promise<string> {
  const impostor = await generateSigningKey(trusted.alg, { kid: trusted.kid });
  return mintServiceAccountToken({ ...options, key: impostor });
}
