/**
 * One login, top to bottom: extract the token from the CONNECT options → verify it → look its
 * ServiceAccount up → derive permissions → grant. This is the `Authorizer` the callout protocol
 * module calls; it owns the decision and nothing of the protocol (request checks, signing).
 *
 * @module
 */
import type { Authorizer, AuthorizeResult, CalloutRequest } from "../callout/handler.ts";
import { AuthError, type DenyReason } from "../core/errors.ts";
import type { Logger } from "../telemetry/log.ts";
import type {
  NamespaceLabelsLookup,
  Permissions,
  PodLookup,
  ServiceAccountLookup,
  ServiceAccountRecord,
  TokenIdentity,
} from "../core/model.ts";
import {
  checkLogin,
  type ClusterPolicy,
  connectionTypeOf,
  type DroppedEntry,
  permissionsFor,
  type PolicyOptions,
  type PolicyResult,
  type ResolvedSettings,
  resolveSettings,
  usesLabels,
} from "./policy.ts";
import type { ServiceMetrics } from "../telemetry/service_metrics.ts";
import type { TokenVerifier } from "../tokens/verifier.ts";

/** Options of {@linkcode createAuthorizer}. */
export interface AuthorizerOptions {
  /** Verifies a ServiceAccount token; throws {@linkcode AuthError}. */
  verifyToken: TokenVerifier;
  /** ServiceAccount lookup in the current snapshot. */
  lookup: ServiceAccountLookup;
  /**
   * Pod lookup for tokens bound to a Pod (`kubernetes.io.pod`): such a token is refused once its Pod
   * is gone or has another uid, as the apiserver refuses it. Unbound tokens are not affected.
   * @default {undefined (no Pod check)}
   */
  pods?: PodLookup;
  /** Whether the ServiceAccount (and Pod) snapshots are complete; before that every login is refused. */
  isSynced: () => boolean;
  /** Annotation prefix and response settings for the policy. */
  policy: PolicyOptions;
  /**
   * The cluster policy in force now (`POLICY_FILE`), read on every login so a reload applies to
   * the next one. @default {() => undefined (no policy file: the reference's behaviour)}
   */
  clusterPolicy?: () => ClusterPolicy | undefined;
  /**
   * The labels of a Namespace (lib/cache/namespaces.ts), for policy rules with `labels:`; read on every
   * login, so a relabelled Namespace applies to the next one.
   * @default {undefined (no rule matches by labels)}
   */
  namespaceLabels?: NamespaceLabelsLookup;
  /** `NATS_ACCOUNT`, shown by explain when the policy names no account. */
  defaultAccount?: string;
  /**
   * Optional cap on the life of a user JWT. Unset, a user JWT expires with its token (DESIGN D6:
   * connections live as long as their token; live revocation ends them earlier when needed).
   */
  userJwtTtlMs?: number;
  logger: Logger;
  metrics: ServiceMetrics;
  /** Clock in milliseconds. @default {() => Date.now()} */
  now?: () => number;
}

/**
 * Pick the Kubernetes token out of the CONNECT options: `auth_token`, else `pass`, else `jwt` —
 * the last only when it is not a NATS JWT (in operator mode `jwt` carries the sentinel user, and
 * the Go reference's habit of reading it first breaks that mode).
 *
 * @example
 * ```ts
 * import { extractToken } from "./login.ts";
 * console.assert(extractToken({ auth_token: "t" }) === "t");
 * console.assert(extractToken({}) === undefined);
 * ```
 */
export function extractToken(
  connectOpts: CalloutRequest["connectOpts"],
): string | undefined {
  if (connectOpts.auth_token) return connectOpts.auth_token;
  if (connectOpts.pass) return connectOpts.pass;
  if (connectOpts.jwt && !isNatsJwt(connectOpts.jwt)) return connectOpts.jwt;
  return undefined;
}

/** True when `token`'s header says it is signed with an nkey (a NATS JWT, not a Kubernetes one). */
export function isNatsJwt(token: string): boolean {
  const dot = token.indexOf(".");
  if (dot <= 0) return false;
  try {
    const header = JSON.parse(atob(token.slice(0, dot).replace(/-/g, "+").replace(/_/g, "/")));
    return typeof header?.alg === "string" && header.alg.toLowerCase().startsWith("ed25519");
  } catch {
    return false;
  }
}

/** The NATS user name of a ServiceAccount, as Kubernetes writes the subject of its tokens. */
export function userName(namespace: string, serviceAccount: string): string {
  return `system:serviceaccount:${namespace}:${serviceAccount}`;
}

/**
 * Build the login decision. Every refusal is an {@linkcode AuthorizeResult} with a stable reason;
 * nothing here throws for a bad input.
 *
 * @example
 * ```ts ignore
 * const authorize = createAuthorizer({ verifyToken, lookup, isSynced, policy, userJwtTtlMs, logger, metrics });
 * const result = await authorize(request);
 * ```
 */
export function createAuthorizer(options: AuthorizerOptions): Authorizer {
  return createLogin(options).authorize;
}

/**
 * Build the login decision together with its explanation ({@linkcode Login}): `authorize` is what
 * the callout calls; `explain` runs the same steps for `deno task explain` and `/explain`, without
 * recording metrics.
 *
 * @example
 * ```ts ignore
 * const login = createLogin({ verifyToken, lookup, isSynced, policy, userJwtTtlMs, logger, metrics });
 * const why = await login.explain({ namespace: "team-a", name: "orders" });
 * ```
 */
export function createLogin(options: AuthorizerOptions): Login {
  const { verifyToken, lookup, pods, isSynced, policy, userJwtTtlMs, logger, metrics } = options;
  const namespaceLabels = options.namespaceLabels;
  const defaultAccount = options.defaultAccount;
  const now = options.now ?? (() => Date.now());
  const clusterPolicy = options.clusterPolicy ?? (() => undefined);
  // Records and policies are immutable and replaced on every change, so the permissions derived
  // from one pair can be remembered (the policy is pure), and the first derivation is the one
  // moment to warn about its ignored annotation entries: once per ServiceAccount and policy version.
  const derived = new WeakMap<object, WeakMap<ServiceAccountRecord, Derived>>();
  const policyFor = (sa: ServiceAccountRecord): Derived => {
    const cluster = clusterPolicy();
    const key = cluster ?? NO_POLICY;
    let perPolicy = derived.get(key);
    if (!perPolicy) {
      perPolicy = new WeakMap();
      derived.set(key, perPolicy);
    }
    let result = perPolicy.get(sa);
    // With rules by labels the result also depends on the Namespace's labels: each change of them
    // is a new (frozen) object, so a different object means derive again.
    const labels = cluster && namespaceLabels && usesLabels(cluster)
      ? namespaceLabels(sa.namespace)
      : undefined;
    if (!result || result.labels !== labels) {
      const resolved = cluster
        ? resolveSettings(cluster, sa.namespace, sa.name, namespaceLabels)
        : undefined;
      result = {
        ...permissionsFor(sa, resolved ? { ...policy, settings: resolved.settings } : policy),
        resolved,
        labels,
      };
      perPolicy.set(sa, result);
      if (result.dropped.length > 0) {
        logger.warn("annotation_subjects_ignored", {
          namespace: sa.namespace,
          serviceaccount: sa.name,
          filtered_internal: result.filteredInternal,
          invalid: result.invalid,
          ...(result.outsidePolicy.length > 0
            ? {
              outside_policy: result.dropped.filter((d) => d.reason === "outside_policy")
                .map((d) => `${d.annotation} ${d.entry}: ${d.detail}`),
            }
            : {}),
        });
      }
    }
    return result;
  };

  /**
   * The decision, for a real login (a token from a request, metrics recorded) and for explain
   * (a token, or a ServiceAccount by name with the token checks skipped; nothing recorded).
   */
  async function evaluate(
    source: { token: string } | { namespace: string; name: string },
    clientInfo: CalloutRequest["clientInfo"],
    record: boolean,
  ): Promise<Evaluation> {
    if (!isSynced()) {
      return {
        result: deny("cache_not_ready", "ServiceAccount cache has not completed its first sync"),
      };
    }
    let identity: TokenIdentity | undefined;
    if ("token" in source) {
      try {
        identity = await verifyToken(source.token);
      } catch (err) {
        if (err instanceof AuthError) return { result: deny(err.code, err.message) };
        throw err;
      }
    }
    const namespace = identity?.namespace ?? ("namespace" in source ? source.namespace : "");
    const name = identity?.serviceAccount ?? ("name" in source ? source.name : "");
    const fields = { namespace, serviceaccount: name };
    const sa = lookup(namespace, name);
    if (!sa) {
      if (record) metrics.cacheMisses.inc();
      return {
        result: deny(
          "serviceaccount_not_found",
          `ServiceAccount ${namespace}/${name} does not exist`,
          fields,
        ),
      };
    }
    if (record) metrics.cacheHits.inc();
    if (identity && sa.uid !== identity.uid) {
      return {
        result: deny(
          "serviceaccount_uid_mismatch",
          `ServiceAccount ${sa.namespace}/${sa.name} was recreated (uid ${sa.uid}, token for ${identity.uid})`,
          fields,
        ),
      };
    }
    if (pods && identity?.podName !== undefined) {
      const podFields = { ...fields, pod: identity.podName };
      const pod = pods(identity.namespace, identity.podName);
      if (!pod) {
        return {
          result: deny(
            "pod_not_found",
            `Pod ${identity.namespace}/${identity.podName}, to which the token is bound, does not exist`,
            podFields,
          ),
        };
      }
      if (identity.podUid !== undefined && pod.uid !== identity.podUid) {
        return {
          result: deny(
            "pod_uid_mismatch",
            `Pod ${pod.namespace}/${pod.name} was recreated (uid ${pod.uid}, token for ${identity.podUid})`,
            podFields,
          ),
        };
      }
      // As the apiserver (pkg/serviceaccount/claims.go): a Pod being deleted for longer than the
      // JWT leeway of 60 s no longer vouches for its tokens.
      if (pod.deletingSince !== undefined && pod.deletingSince < now() - POD_DELETION_LEEWAY_MS) {
        return {
          result: deny(
            "pod_not_found",
            `Pod ${pod.namespace}/${pod.name}, to which the token is bound, is being deleted since ${
              new Date(pod.deletingSince).toISOString()
            }`,
            podFields,
          ),
        };
      }
    }
    const derivedFor = policyFor(sa);
    const { permissions, filteredInternal, invalid, outsidePolicy, resolved } = derivedFor;
    if (resolved) {
      // Without a token (explain by name) there is no lifetime to check.
      const { maxTokenLifetimeMs, ...withoutLifetime } = resolved.settings;
      const denial = checkLogin(
        identity || maxTokenLifetimeMs === undefined ? resolved.settings : withoutLifetime,
        {
          connectionType: connectionTypeOf(clientInfo),
          issuedAt: identity?.issuedAt,
          expiresAt: identity?.expiresAt ?? 0,
        },
      );
      if (denial) {
        return { result: deny(denial.reason, denial.message, fields), derived: derivedFor };
      }
    }
    if (record) {
      if (filteredInternal.length > 0) {
        metrics.filteredInternalSubjects.inc(undefined, filteredInternal.length);
      }
      if (invalid.length > 0) metrics.invalidSubjects.inc(undefined, invalid.length);
      if (outsidePolicy.length > 0) {
        metrics.policyDroppedSubjects.inc(undefined, outsidePolicy.length);
      }
    }
    // Without a token (explain), the kubelet's default token lifetime stands in for its expiry.
    const tokenExpiresMs = identity ? identity.expiresAt * 1000 : now() + 3_600_000;
    const expiresAt = Math.floor(
      (userJwtTtlMs === undefined
        ? tokenExpiresMs
        : Math.min(now() + userJwtTtlMs, tokenExpiresMs)) / 1000,
    );
    const account = resolved?.settings.account;
    return {
      result: {
        ok: true,
        user: {
          name: userName(sa.namespace, sa.name),
          permissions,
          expiresAt,
          ...(account !== undefined ? { account } : {}),
        },
        fields: {
          ...fields,
          expires_at: expiresAt,
          ...(account !== undefined ? { account } : {}),
        },
        grantFields: {
          dropped: derivedFor.dropped.map((d) => ({
            annotation: d.annotation,
            subject: d.entry,
            why: d.reason,
            ...(d.detail ? { detail: d.detail } : {}),
          })),
        },
      },
      derived: derivedFor,
    };
  }

  const authorize: Authorizer = async (request) => {
    const token = extractToken(request.connectOpts);
    if (!token) {
      return deny("token_missing", "no token in auth_token, pass or a non-NATS jwt field");
    }
    return (await evaluate({ token }, request.clientInfo, true)).result;
  };

  const explain = async (input: ExplainInput): Promise<Explanation> => {
    const clientInfo = clientInfoFor(input.connectionType ?? "STANDARD");
    const source = "token" in input
      ? { token: input.token }
      : { namespace: input.namespace, name: input.name };
    if ("token" in input && input.token === "") {
      return explanation(deny("token_missing", "no token given"), undefined, true);
    }
    const { result, derived } = await evaluate(source, clientInfo, false);
    return explanation(result, derived, "token" in input);
  };

  function explanation(
    result: AuthorizeResult,
    derivedFor: Derived | undefined,
    tokenChecked: boolean,
  ): Explanation {
    const f = result.fields ?? {};
    const base = {
      token_checked: tokenChecked,
      ...(typeof f.namespace === "string" ? { namespace: f.namespace } : {}),
      ...(typeof f.serviceaccount === "string" ? { serviceaccount: f.serviceaccount } : {}),
      ...(derivedFor
        ? {
          account: derivedFor.resolved?.settings.account ?? defaultAccount,
          dropped: derivedFor.dropped,
          policy: derivedFor.resolved ? { matched: derivedFor.resolved.matched } : null,
        }
        : {}),
    };
    if (!result.ok) {
      return { allowed: false, reason: result.reason, message: result.message, ...base };
    }
    const { pub, sub, resp } = result.user.permissions;
    return {
      allowed: true,
      ...base,
      user: result.user.name,
      permissions: {
        pub: { allow: [...pub.allow], deny: [...(pub.deny ?? [])] },
        sub: { allow: [...sub.allow], deny: [...(sub.deny ?? [])] },
        resp: { max: resp.max, ttl_ms: resp.ttlNs / 1e6 },
      },
      expires_at: new Date(result.user.expiresAt * 1000).toISOString(),
    };
  }

  const grantOf = (sa: ServiceAccountRecord): { permissions: Permissions; account?: string } => {
    const { permissions, resolved } = policyFor(sa);
    const account = resolved?.settings.account;
    return account !== undefined ? { permissions, account } : { permissions };
  };

  return { authorize, explain, grantOf };
}

/** What to explain: a token (the whole login), or a ServiceAccount by name (token checks skipped). */
export type ExplainInput =
  & { /** As `client_info` would say it. @default {"STANDARD"} */ connectionType?: string }
  & ({ token: string } | { namespace: string; name: string });

/**
 * What a login would get, as JSON for people: allowed or the exact reason, and if allowed the
 * account, allow/deny lists, response limits and expiry; the annotation entries the policy dropped
 * and why, and which policy parts applied. Never contains the token.
 */
export interface Explanation {
  readonly allowed: boolean;
  readonly reason?: DenyReason;
  readonly message?: string;
  /** False when explained by ServiceAccount name: signature, expiry, uid and lifetime not checked. */
  readonly token_checked: boolean;
  readonly namespace?: string;
  readonly serviceaccount?: string;
  readonly account?: string;
  readonly user?: string;
  readonly permissions?: {
    readonly pub: { readonly allow: string[]; readonly deny: string[] };
    readonly sub: { readonly allow: string[]; readonly deny: string[] };
    readonly resp: { readonly max: number; readonly ttl_ms: number };
  };
  readonly expires_at?: string;
  readonly dropped?: readonly DroppedEntry[];
  readonly policy?: { readonly matched: readonly string[] } | null;
}

/** The login decision and its explanation: one code path, so explain cannot disagree with a login. */
export interface Login {
  readonly authorize: Authorizer;
  explain(input: ExplainInput): Promise<Explanation>;
  /**
   * What a login of `sa` would be granted now by the policy and its annotations (token and
   * connection checks aside): live revocation compares it with what a connection was granted.
   * Synchronous and memoized per ServiceAccount and policy version.
   */
  grantOf(sa: ServiceAccountRecord): { permissions: Permissions; account?: string };
}

/** The evaluation behind both: the result, and what the policy derived when it got that far. */
interface Evaluation {
  readonly result: AuthorizeResult;
  readonly derived?: Derived;
}

/** A `client_info` as nats-server would send it for a connection type. */
function clientInfoFor(connectionType: string): CalloutRequest["clientInfo"] {
  switch (connectionType.toUpperCase()) {
    case "LEAFNODE":
      return { kind: "Leafnode" };
    case "WEBSOCKET":
      return { kind: "Client", type: "websocket" };
    case "MQTT":
      return { kind: "Client", type: "mqtt" };
    case "STANDARD":
      return { kind: "Client", type: "nats" };
  }
  return { kind: "Client", type: connectionType.toLowerCase() };
}

/** What the policy gave one ServiceAccount under one cluster policy (none: `resolved` undefined). */
interface Derived extends PolicyResult {
  readonly resolved: ResolvedSettings | undefined;
  /** The Namespace labels it was derived with (only when the policy has rules by labels). */
  readonly labels: Readonly<Record<string, string>> | undefined;
}

/** The memo key when no cluster policy is configured. */
const NO_POLICY = Object.freeze({});

function deny(
  reason: AuthError["code"],
  message: string,
  fields?: Record<string, unknown>,
): AuthorizeResult {
  return fields ? { ok: false, reason, message, fields } : { ok: false, reason, message };
}

/** The apiserver's JWT leeway (pkg/serviceaccount/claims.go): how long a terminating Pod still vouches. */
const POD_DELETION_LEEWAY_MS = 60_000;
