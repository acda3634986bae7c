/**
 * Dev-mode ServiceAccount tokens: what the kubelet would project into a pod, minted on a laptop.
 * `deno task dev` plays the apiserver — it owns an RS256 key (a private JWK in the git-ignored state
 * directory), publishes its public half as the JWKS the service verifies against, and mints tokens
 * shaped like real projected tokens, so the service runs its real verification path in dev.
 *
 * A token is only accepted if its ServiceAccount UID matches the one the service knows, so the
 * minter reads the same ServiceAccounts file the service reads and copies the UID from there.
 *
 * @module
 */
import {
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JWK,
  SignJWT,
} from "jose";
import { loadServiceAccountsFile } from "../lib/cache/serviceaccounts_file.ts";

/** The RS256 key dev mode signs with, as a private JWK (`kty` RSA, with `d`, `kid`, `alg`, `use`). */
export type DevSigningKey = JWK & { readonly kty: "RSA"; readonly d: string; readonly kid: string };

/** A JSON Web Key Set, the shape the service reads from `JWKS_PATH`. */
export interface DevJwks {
  keys: JWK[];
}

/** Minting failed: a bad key file, an unknown ServiceAccount, a malformed `<ns>/<sa>`. */
export class DevTokenError extends Error {
  /** Create an error with a message a developer can act on. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "DevTokenError";
  }
}

/** Which ServiceAccount a token is for, and the UID the service expects. */
export interface DevTokenSubject {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly uid: string;
}

/** Options of {@linkcode signDevToken}. */
export interface SignDevTokenOptions {
  /** The private signing key ({@linkcode generateDevSigningKey}). */
  key: DevSigningKey;
  /** `iss` claim; must equal the service's `JWT_ISSUER`. */
  issuer: string;
  /** `aud` claim (Kubernetes writes a list). @default {"nats"} */
  audience?: string | readonly string[];
  /** Seconds from `iat` to `exp`. @default {3600} (the kubelet's default) */
  lifetimeSeconds?: number;
  /** Clock in milliseconds. @default {() => Date.now()} */
  now?: () => number;
  /** Pod the token is bound to. @default {`${serviceAccount}-dev`} */
  podName?: string;
  /** UID of that pod. @default {a random UUID} */
  podUid?: string;
}

const REF = /^([^/\s]+)\/([^/\s]+)$/;

/**
 * Split `<namespace>/<serviceaccount>` as the `token` command takes it. Throws
 * {@linkcode DevTokenError} with the expected form when it does not fit.
 *
 * @example
 * ```ts
 * import { parseServiceAccountRef } from "./issuer.ts";
 * const ref = parseServiceAccountRef("team-a/orders");
 * console.assert(ref.namespace === "team-a" && ref.serviceAccount === "orders");
 * ```
 */
export function parseServiceAccountRef(
  ref: string,
): { namespace: string; serviceAccount: string } {
  const m = REF.exec(ref);
  if (!m) {
    throw new DevTokenError(
      `"${ref}" is not <namespace>/<serviceaccount> (for example team-a/orders)`,
    );
  }
  return { namespace: m[1]!, serviceAccount: m[2]! };
}

/**
 * Create a fresh RS256 signing key for dev mode. Its `kid` is the key's RFC 7638 thumbprint, so the
 * JWKS and the tokens agree without bookkeeping. The result contains the private key: write it only
 * into the git-ignored state directory, with mode 0600, and never log it.
 *
 * @example
 * ```ts
 * import { generateDevSigningKey } from "./issuer.ts";
 * const key = await generateDevSigningKey();
 * console.assert(key.kty === "RSA" && key.alg === "RS256");
 * ```
 */
export async function generateDevSigningKey(): Promise<DevSigningKey> {
  const { privateKey } = await generateKeyPair("RS256", { modulusLength: 2048, extractable: true });
  const jwk = await exportJWK(privateKey);
  const kid = await calculateJwkThumbprint(jwk);
  return { ...jwk, kty: "RSA", d: jwk.d!, kid, alg: "RS256", use: "sig" };
}

/**
 * The public half of `key` as a JWKS document, for `JWKS_PATH`. Every private member is dropped,
 * so the result is safe to write anywhere and to print.
 *
 * @example
 * ```ts
 * import { devJwks, generateDevSigningKey } from "./issuer.ts";
 * const jwks = devJwks(await generateDevSigningKey());
 * console.assert(jwks.keys[0]?.d === undefined);
 * ```
 */
export function devJwks(key: DevSigningKey): DevJwks {
  const { kty, n, e, kid, alg, use } = key;
  return { keys: [{ kty, n, e, kid, alg, use } as JWK] };
}

/**
 * Read a signing key written from {@linkcode generateDevSigningKey}. Throws
 * {@linkcode DevTokenError} naming the file when it is missing or is not an RSA private JWK; the
 * file's content never appears in the message.
 */
export async function readDevSigningKey(path: string): Promise<DevSigningKey> {
  let value: unknown;
  try {
    value = JSON.parse(await Deno.readTextFile(path));
  } catch (err) {
    const why = err instanceof Deno.errors.NotFound
      ? "not found (run `deno task dev` once to create it)"
      : err instanceof SyntaxError
      ? "is not JSON"
      : `cannot be read (${err instanceof Error ? err.name : "error"})`;
    throw new DevTokenError(`dev signing key ${path} ${why}`, { cause: err });
  }
  const k = value as Record<string, unknown>;
  if (
    typeof value !== "object" || value === null || k.kty !== "RSA" ||
    typeof k.d !== "string" || typeof k.n !== "string" || typeof k.kid !== "string"
  ) {
    throw new DevTokenError(`dev signing key ${path} is not an RSA private JWK with a kid`);
  }
  return value as DevSigningKey;
}

/**
 * Sign a token shaped like a Kubernetes projected ServiceAccount token: header `{alg: RS256, kid}`;
 * claims `iss`, `sub` = `system:serviceaccount:<ns>:<sa>`, `aud` (a list), `exp`, `iat`, `nbf`,
 * `jti`, and `kubernetes.io` = `{namespace, serviceaccount{name, uid}, pod{name, uid}, warnafter}`.
 * `warnafter` equals `exp` because a dev token is never an extended-lifetime legacy token.
 *
 * @example
 * ```ts
 * import { generateDevSigningKey, signDevToken } from "./issuer.ts";
 * const key = await generateDevSigningKey();
 * const token = await signDevToken(
 *   { namespace: "team-a", serviceAccount: "orders", uid: "0000-1" },
 *   { key, issuer: "https://dev.local" },
 * );
 * console.assert(token.split(".").length === 3);
 * ```
 */
export async function signDevToken(
  subject: DevTokenSubject,
  options: SignDevTokenOptions,
): Promise<string> {
  const {
    key,
    issuer,
    audience = "nats",
    lifetimeSeconds = 3600,
    now = () => Date.now(),
    podName = `${subject.serviceAccount}-dev`,
    podUid = crypto.randomUUID(),
  } = options;
  if (!Number.isInteger(lifetimeSeconds) || lifetimeSeconds <= 0) {
    throw new RangeError(`lifetimeSeconds must be a positive integer, got ${lifetimeSeconds}`);
  }
  const aud = typeof audience === "string" ? [audience] : [...audience];
  if (aud.length === 0 || aud.some((a) => a === "")) {
    throw new RangeError("audience must name at least one non-empty audience");
  }
  const iat = Math.floor(now() / 1000);
  const exp = iat + lifetimeSeconds;
  const { namespace, serviceAccount, uid } = subject;
  const signingKey = await importJWK(key, "RS256");
  return await new SignJWT({
    "kubernetes.io": {
      namespace,
      pod: { name: podName, uid: podUid },
      serviceaccount: { name: serviceAccount, uid },
      warnafter: exp,
    },
  })
    .setProtectedHeader({ alg: "RS256", kid: key.kid })
    .setIssuer(issuer)
    .setSubject(`system:serviceaccount:${namespace}:${serviceAccount}`)
    .setAudience(aud)
    .setIssuedAt(iat)
    .setNotBefore(iat)
    .setExpirationTime(exp)
    .setJti(crypto.randomUUID())
    .sign(signingKey);
}

/** Options of {@linkcode mintDevToken}. */
export interface MintDevTokenOptions
  extends Omit<SignDevTokenOptions, "key" | "podName" | "podUid"> {
  /** The private JWK file in the dev state directory. */
  keyFile: string;
  /** The ServiceAccounts file the service reads; the UID is taken from there. */
  serviceAccountsFile: string;
}

/**
 * Mint a dev token for `<namespace>/<serviceaccount>` as the `token` command does: read the key
 * file, look the ServiceAccount up in the ServiceAccounts file to copy its UID, sign. A
 * ServiceAccount that is not in the file is an error listing the ones that are, because a token
 * for it could never log in.
 *
 * @example
 * ```ts ignore
 * import { mintDevToken } from "./issuer.ts";
 * const token = await mintDevToken("team-a/orders", {
 *   keyFile: ".dev/signing-key.jwk.json",
 *   serviceAccountsFile: ".dev/serviceaccounts.yaml",
 *   issuer: "https://dev.nats-k8s-oidc-callout.local",
 *   audience: "nats",
 *   lifetimeSeconds: 600,
 * });
 * ```
 */
export async function mintDevToken(ref: string, options: MintDevTokenOptions): Promise<string> {
  const { keyFile, serviceAccountsFile, ...signOptions } = options;
  const { namespace, serviceAccount } = parseServiceAccountRef(ref);
  const key = await readDevSigningKey(keyFile);
  const records = await loadServiceAccountsFile(serviceAccountsFile, { annotationPrefix: "" });
  const record = records.find((r) => r.namespace === namespace && r.name === serviceAccount);
  if (!record) {
    const known = records.map((r) => `${r.namespace}/${r.name}`).join(", ") || "none";
    throw new DevTokenError(
      `ServiceAccount ${namespace}/${serviceAccount} is not in ${serviceAccountsFile} (known: ${known}); add it there first`,
    );
  }
  return await signDevToken({ namespace, serviceAccount, uid: record.uid }, {
    key,
    ...signOptions,
  });
}
