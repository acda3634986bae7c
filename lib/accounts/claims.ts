/**
 * What a provisioned account's JWT says, as a pure function of its plan (lib/accounts/plan.ts: the
 * policy's `namespaceAccount` for the Namespace, its derived keys, its exports and the imports
 * other namespaces' exports give it). Nothing here depends on the clock or on randomness, so every
 * replica computes the same claims and the same `jti` for the same inputs:
 *
 * - `jti` is the SHA-256 of the claims without `jti` and `iat` (base32): equal content, equal id.
 *   nats-server's resolver skips a JWT whose `jti` it already holds (server/dirstore.go
 *   `saveIfNewer`), and the service pushes only when the `jti` differs from what it last saw.
 * - `iat` is chosen by the caller when it pushes (`issuedAt`, lib/accounts/writes.ts): now, and
 *   at least one second after the last version seen, so a newer version always wins the
 *   resolvers' periodic merge (which keeps the JWT with the later `iat`), and a version pushed
 *   again after a removal is never byte-identical to the one the servers remember (expired) from
 *   before it — nats-server would take that for the same claims and leave the account expired.
 *   Replicas decide by `jti` alone, never by `iat`, so two that push the same content with
 *   different `iat`s still agree (the servers hold the same content).
 * - every limit is written: a NATS JWT's missing limit is 0, which means "none allowed".
 *
 * @module
 */
import { createHash } from "node:crypto";
import {
  base32Encode,
  encodeExactNatsJwt,
  type NatsJwtClaims,
  type NkeySigner,
} from "../callout/nkey_jwt.ts";
import { UNLIMITED } from "../decision/namespace_account.ts";
import type { AccountPlan, PlannedImport } from "./plan.ts";

/** The tag every account this service provisions carries (lower case: nats-io/jwt lowers tags). */
export const MANAGED_TAG = "managed-by:nats-k8s-oidc-callout";
/** The tag naming the Namespace uid an account was derived from. */
export const UID_TAG_PREFIX = "namespace-uid:";
/** The tag of an account that was removed where the resolver does not allow deletes. */
export const REVOKED_TAG = "revoked:namespace-deleted";

/** An account JWT's content before `iat` and the signature: its claims and content id. */
export interface AccountContent {
  /** Claims without `jti`, `iat` and `iss`. */
  readonly claims: NatsJwtClaims;
  /** Content id: SHA-256 of `claims`, base32. */
  readonly jti: string;
}

/**
 * The content id of `claims`: what nats-io/jwt (Go) computes as `jti` (a hash of the claims), but
 * without `iat`, so content that did not change keeps its id.
 */
export function contentId(claims: NatsJwtClaims): string {
  return base32Encode(createHash("sha256").update(JSON.stringify(claims)).digest());
}

/**
 * The activation token with which `plan`'s account may import `imp`: issued by the exporter's
 * signing key to the importer's account for exactly that subject. Deterministic (its `iat` is the
 * later of the two Namespaces' creation; nats-server treats an activation without `iat` as
 * revoked, jwt/v2 exports.go `IsClaimRevoked`).
 */
export function activationClaims(
  importer: string,
  imp: PlannedImport,
): NatsJwtClaims & { jti: string; iat: number } {
  const body: NatsJwtClaims = {
    sub: importer,
    name: imp.subject,
    nats: {
      subject: imp.subject,
      kind: imp.kind,
      issuer_account: imp.exporter.account,
      type: "activation",
      version: 2,
    },
  };
  return { jti: contentId(body), iat: imp.issuedAt, ...body };
}

/** Sign the activation tokens of `plan`'s imports (deterministic: same plan, same tokens). */
async function activations(plan: AccountPlan): Promise<string[]> {
  return await Promise.all(
    plan.imports.map((imp) =>
      encodeExactNatsJwt(activationClaims(plan.keys.account, imp), imp.exporter.signer)
    ),
  );
}

/**
 * The account's claims and content id. Pure (async only because signing activation tokens is).
 *
 * @example
 * ```ts ignore
 * const { claims, jti } = await accountContent(plan);
 * claims.nats.limits.conn; // the policy's connections, or -1
 * ```
 */
export async function accountContent(plan: AccountPlan): Promise<AccountContent> {
  const { limits, jetstream } = plan.settings;
  const tokens = await activations(plan);
  const claims: NatsJwtClaims = {
    sub: plan.keys.account,
    name: plan.namespace,
    nats: {
      limits: {
        subs: limits.subscriptions,
        data: UNLIMITED,
        payload: limits.payload,
        imports: UNLIMITED,
        exports: UNLIMITED,
        wildcards: true,
        conn: limits.connections,
        leaf: limits.leafNodes,
        mem_storage: jetstream?.memory ?? 0,
        disk_storage: jetstream?.disk ?? 0,
        streams: jetstream ? jetstream.streams : 0,
        consumer: jetstream ? jetstream.consumers : 0,
      },
      signing_keys: [plan.keys.signer.publicKey],
      ...(plan.exports.length > 0
        ? {
          exports: plan.exports.map((e) => ({
            name: e.subject,
            subject: e.subject,
            type: e.kind,
            token_req: true,
          })),
        }
        : {}),
      ...(plan.imports.length > 0
        ? {
          imports: plan.imports.map((imp, i) => ({
            name: `${imp.exporter.namespace}: ${imp.subject}`,
            subject: imp.subject,
            account: imp.exporter.account,
            token: tokens[i],
            type: imp.kind,
          })),
        }
        : {}),
      default_permissions: { pub: {}, sub: {} },
      tags: [MANAGED_TAG, `namespace:${plan.namespace}`, `${UID_TAG_PREFIX}${plan.uid}`],
      type: "account",
      version: 2,
    },
  };
  return { claims, jti: contentId(claims) };
}

/**
 * The claims that end an account where the resolver cannot delete it (no `allow_delete`): no
 * connection, subscription, leaf node or JetStream, every user revoked (`"*"`), no imports or
 * exports, no signing keys — nothing can log in to it, and nothing it had crosses into another
 * account. The key is never used again (a new Namespace has a new uid).
 */
export function revokedContent(
  account: string,
  namespace: string,
  uid: string,
  revokedAt: number,
): AccountContent {
  const claims: NatsJwtClaims = {
    sub: account,
    name: namespace,
    nats: {
      limits: {
        subs: 0,
        data: 0,
        payload: 0,
        imports: 0,
        exports: 0,
        wildcards: false,
        conn: 0,
        leaf: 0,
        mem_storage: 0,
        disk_storage: 0,
        streams: 0,
        consumer: 0,
      },
      revocations: { "*": revokedAt },
      default_permissions: { pub: { deny: [">"] }, sub: { deny: [">"] } },
      tags: [MANAGED_TAG, `namespace:${namespace}`, `${UID_TAG_PREFIX}${uid}`, REVOKED_TAG],
      type: "account",
      version: 2,
    },
  };
  return { claims, jti: contentId(claims) };
}

/** Sign `content` as issued at `iat` (seconds) by the operator signing key. */
export function signAccount(
  content: AccountContent,
  iat: number,
  operator: NkeySigner,
): Promise<string> {
  return encodeExactNatsJwt({ jti: content.jti, iat, ...content.claims }, operator);
}

/**
 * The request that deletes `accounts` from a full resolver with `allow_delete`: a generic JWT that
 * the operator signing key issues to itself (nats-server `handleDeleteRequest` wants `sub` ==
 * `iss`, a trusted operator key, and `nats.accounts`).
 */
export function deleteRequest(
  accounts: readonly string[],
  operator: NkeySigner,
  now: number,
): Promise<string> {
  const body: NatsJwtClaims = { sub: operator.publicKey, nats: { accounts: [...accounts] } };
  return encodeExactNatsJwt({ jti: contentId({ ...body, iat: now }), iat: now, ...body }, operator);
}
