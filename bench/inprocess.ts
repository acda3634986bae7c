/**
 * One login decision without a server: the service's own callout handler, authorizer, token
 * verifier and policy, fed with request JWTs crafted as nats-server writes them. What the callout
 * costs in CPU is visible here without the noise of sockets, so regressions show up in
 * `deno bench` and in the `decision` section of `deno task bench`.
 *
 * @module
 */
import { createLocalJWKSet } from "jose";
import { type CalloutHandler, createCalloutHandler } from "../lib/callout/handler.ts";
import type { KeySource } from "../lib/tokens/jwks.ts";
import { createLogger } from "../lib/telemetry/log.ts";
import { createAuthorizer } from "../lib/decision/login.ts";
import type { ServiceAccountRecord } from "../lib/core/model.ts";
import { createNkeySigner, encodeNatsJwt } from "../lib/callout/nkey_jwt.ts";
import { createServiceMetrics, type ServiceMetrics } from "../lib/telemetry/service_metrics.ts";
import { createTokenVerifier, type TokenVerifier } from "../lib/tokens/verifier.ts";
import { accountKey, serverKey, userKey } from "../tests/support/nkeys.ts";
import {
  generateSigningKey,
  ISSUER,
  mintServiceAccountToken,
  publicJwks,
  type SigningKey,
} from "../tests/support/sa_tokens.ts";

/** The policy options the service uses by default. */
export const POLICY = { annotationPrefix: "nats.io/" } as const;

/** A key set that never changes: jose's local JWKS resolver, as the real key sources use. */
export function staticKeySource(keys: readonly SigningKey[]): KeySource {
  const getKey = createLocalJWKSet(publicJwks([...keys]));
  const close = () => Promise.resolve();
  return {
    getKey,
    ready: true,
    generation: 1,
    refresh: () => Promise.resolve(),
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Everything one in-process decision needs, built once. */
export interface DecisionPipeline {
  /** Callout handler whose token verifier caches verified tokens (the default, 10,000 entries). */
  readonly cached: CalloutHandler;
  /** The same handler with the token cache disabled: every token is verified as if first seen. */
  readonly uncached: CalloutHandler;
  /** The cached handler's token verifier. */
  readonly verifyCached: TokenVerifier;
  /** A token verifier without cache. */
  readonly verifyUncached: TokenVerifier;
  /** The ServiceAccount the tokens name. */
  readonly serviceAccount: ServiceAccountRecord;
  /** A valid ServiceAccount token. */
  readonly token: string;
  /** Request payloads as nats-server sends them (distinct `user_nkey`s), carrying `token`. */
  readonly requests: readonly Uint8Array[];
  /** A request JWT string (for verifying requests alone). */
  readonly requestJwt: string;
  /** Signs the user and response JWTs as the callout does. */
  readonly signTwo: () => Promise<[string, string]>;
  readonly metrics: ServiceMetrics;
}

/** Options of {@linkcode createDecisionPipeline}. */
export interface DecisionPipelineOptions {
  /** Distinct request payloads to cycle through. @default {64} */
  requests?: number;
  /** Annotations of the ServiceAccount (policy input). @default {two extra subjects each way} */
  annotations?: Record<string, string>;
  /**
   * Carry a forged token: signed by a look-alike key under the trusted key's `kid`, so only the
   * signature check refuses it (every decision is then a denial). @default {false}
   */
  forged?: boolean;
}

/**
 * Build the pipeline: a fresh RS256 cluster key, one ServiceAccount, an account signing key and a
 * server key that signs the crafted requests (valid for an hour, so a long benchmark never sees
 * them expire). The logger formats every line at `info` like production and discards it.
 */
export async function createDecisionPipeline(
  options: DecisionPipelineOptions = {},
): Promise<DecisionPipeline> {
  const {
    requests: requestCount = 64,
    annotations = {
      "nats.io/allowed-pub-subjects": "shared.events, metrics.bench",
      "nats.io/allowed-sub-subjects": "shared.events, config.bench.>",
    },
  } = options;
  const signingKey = await generateSigningKey("RS256");
  const keys = staticKeySource([signingKey]);
  const serviceAccount: ServiceAccountRecord = Object.freeze({
    namespace: "bench",
    name: "worker",
    uid: crypto.randomUUID(),
    annotations: Object.freeze({ ...annotations }),
  });
  const token = await mintServiceAccountToken({
    key: options.forged ? await generateSigningKey("RS256", { kid: signingKey.kid }) : signingKey,
    issuer: ISSUER,
    namespace: serviceAccount.namespace,
    serviceAccount: serviceAccount.name,
    uid: serviceAccount.uid,
  });
  const metrics = createServiceMetrics();
  const logger = createLogger({ level: "info", write: () => {} });
  const verifier = (cacheSize?: number) =>
    createTokenVerifier({
      keys,
      issuer: ISSUER,
      audience: "nats",
      metrics,
      ...(cacheSize === undefined ? {} : { cacheSize }),
    });
  const verifyCached = verifier();
  const verifyUncached = verifier(0);
  const account = accountKey();
  const handler = (verifyToken: TokenVerifier) =>
    createCalloutHandler({
      accountSeed: account.seed,
      account: "APP",
      authorizer: createAuthorizer({
        verifyToken,
        lookup: (ns, name) =>
          ns === serviceAccount.namespace && name === serviceAccount.name
            ? serviceAccount
            : undefined,
        isSynced: () => true,
        policy: POLICY,
        userJwtTtlMs: 3_600_000,
        logger,
        metrics,
      }),
      logger,
      metrics,
    });

  const server = serverKey();
  const serverSigner = await createNkeySigner(server.seed);
  const encoder = new TextEncoder();
  const craft = async () =>
    await encodeNatsJwt({
      sub: "AUTHISSUER",
      aud: "nats-authorization-request",
      exp: Math.floor(Date.now() / 1000) + 3600,
      nats: {
        server_id: { name: "bench", host: "127.0.0.1", id: server.publicKey, version: "2.15.1" },
        user_nkey: userKey().publicKey,
        client_info: { host: "127.0.0.1", id: 7, kind: "Client", type: "nats" },
        connect_opts: { auth_token: token, lang: "bench", version: "1.0.0", protocol: 1 },
        type: "authorization_request",
        version: 2,
      },
    }, serverSigner);
  const requestJwts = await Promise.all(Array.from({ length: requestCount }, craft));

  const signer = await createNkeySigner(account.seed);
  const user = userKey().publicKey;
  const signTwo = async (): Promise<[string, string]> => {
    const userJwt = await encodeNatsJwt({
      sub: user,
      aud: "APP",
      name: "system:serviceaccount:bench:worker",
      exp: Math.floor(Date.now() / 1000) + 3600,
      nats: {
        pub: { allow: ["bench.>"] },
        sub: { allow: ["_INBOX.>", "_INBOX_bench_worker.>", "bench.>"] },
        resp: { max: 1, ttl: 0 },
        subs: -1,
        data: -1,
        payload: -1,
        type: "user",
        version: 2,
      },
    }, signer);
    const response = await encodeNatsJwt({
      sub: user,
      aud: server.publicKey,
      exp: Math.floor(Date.now() / 1000) + 2,
      nats: { jwt: userJwt, type: "authorization_response", version: 2 },
    }, signer);
    return [userJwt, response];
  };

  return {
    cached: await handler(verifyCached),
    uncached: await handler(verifyUncached),
    verifyCached,
    verifyUncached,
    serviceAccount,
    token,
    requests: requestJwts.map((jwt) => encoder.encode(jwt)),
    requestJwt: requestJwts[0]!,
    signTwo,
    metrics,
  };
}

/** Throw unless `reply` is an authorization response carrying a user JWT (an approval). */
export function assertAllowed(reply: Uint8Array | undefined): void {
  if (!reply) throw new Error("the decision dropped the request");
  const payload = new TextDecoder().decode(reply).split(".")[1] ?? "";
  const claims = JSON.parse(
    new TextDecoder().decode(Uint8Array.fromBase64(payload, { alphabet: "base64url" })),
  ) as { nats?: { jwt?: string; error?: string } };
  if (!claims.nats?.jwt) throw new Error(`the decision was not an approval: ${claims.nats?.error}`);
}

/** Decisions per second of `handler` over `durationMs`, one at a time (one core's worth). */
export async function decisionsPerSecond(
  handler: CalloutHandler,
  requests: readonly Uint8Array[],
  durationMs: number,
): Promise<number> {
  let n = 0;
  const started = performance.now();
  const deadline = started + durationMs;
  while (performance.now() < deadline) {
    for (let i = 0; i < 50; i++) {
      const reply = await handler(requests[n % requests.length]!, undefined);
      if (!reply) throw new Error("the in-process decision dropped a request");
      n++;
    }
  }
  return n / ((performance.now() - started) / 1000);
}
