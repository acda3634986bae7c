/**
 * One login, top to bottom. This is the `Authorizer` the callout protocol module calls; it owns
 * the decision and nothing of the protocol (request checks, signing). `createLogin` reads as the
 * list of steps, each a function below it; the first step that refuses ends the login with a
 * stable reason:
 *
 * 1. {@linkcode extractToken} from the CONNECT options (`token_missing`), unless the CONNECT is a
 *    user configured in nats-server that is missing from `auth_users` (`not_in_auth_users`,
 *    lib/decision/configured_users.ts);
 * 2. verify it (`identify`: signature, issuer, audience, expiry, by the token verifier);
 * 3. look its ServiceAccount up (`serviceaccount_not_found`), the one the token was issued for
 *    (`checkServiceAccountUid`);
 * 4. the Pod a bound token names still vouches for it (`checkBoundPod`);
 * 5. the policy: the ServiceAccount's permissions (lib/decision/policy.ts, remembered per policy
 *    version by `memoizedPermissions`) and the policy file's checks on this login (`checkPolicy`);
 * 6. the grant: user name, permissions, account, expiry (`grant`).
 *
 * `explain` runs steps 2–6 without recording metrics; by ServiceAccount name it skips step 2.
 *
 * @module
 */
import type { Authorizer, AuthorizeResult, CalloutRequest } from "../callout/handler.ts";
import { AuthError, type DenyReason } from "../core/errors.ts";
import type { LogFields, Logger } from "../telemetry/log.ts";
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
import { configuredUserRefusal } from "./configured_users.ts";
import { inboxPrefix } from "../core/subjects.ts";
import type {
  NamespaceAccountResult,
  NamespaceAccounts,
  NamespaceAccountSummary,
} from "./namespace_account.ts";

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
   * Accounts that follow namespaces (operator mode, lib/accounts/): where a namespace whose
   * settings say `namespaceAccount` is placed. A login waits until the servers' resolver holds its
   * account (`ensure`); explain and live revocation only ask (`accountOf`). Without it such a login
   * is refused (`account_unavailable`). @default {undefined}
   */
  namespaceAccounts?: NamespaceAccounts;
  /**
   * Optional cap on the life of a user JWT. Unset, a user JWT expires with its token (DESIGN D6:
   * connections live as long as their token; live revocation ends them earlier when needed).
   */
  userJwtTtlMs?: number;
  /** Receives `annotation_subjects_ignored`, once per ServiceAccount and policy version. */
  logger: Logger;
  /** Counts, for real logins only, cache hits and misses and the annotation entries dropped. */
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
  const { verifyToken, lookup, pods, isSynced, userJwtTtlMs, metrics } = options;
  const now = options.now ?? (() => Date.now());
  const permissionsOf = memoizedPermissions(options);

  const authorize: Authorizer = async (request) => {
    // 1. The token, unless the CONNECT is a configured user's.
    const token = extractToken(request.connectOpts);
    const configured = configuredUserRefusal(request, token);
    if (configured) return deny(configured.reason, configured.message);
    if (!token) {
      return deny("token_missing", "no token in auth_token, pass or a non-NATS jwt field");
    }
    // A capped user JWT lives its TTL by the server's clock (the request's iat), which checks it.
    const serverNow = request.issuedAt !== undefined ? request.issuedAt * 1000 : now();
    return (await evaluate({ token }, request.clientInfo, true, serverNow)).result;
  };

  const explain = async (input: ExplainInput): Promise<Explanation> => {
    const clientInfo = clientInfoFor(input.connectionType ?? "STANDARD");
    const source = "token" in input
      ? { token: input.token }
      : { namespace: input.namespace, name: input.name };
    if ("token" in input && input.token === "") {
      return explanation(deny("token_missing", "no token given"), undefined, true, options);
    }
    const { result, derived, placed } = await evaluate(source, clientInfo, false);
    return explanation(result, derived, "token" in input, options, placed);
  };

  /**
   * One login, step by step; the first step that refuses ends it. Run for a real login (a token
   * from a request, metrics recorded) and for explain (a token, or a ServiceAccount by name with
   * the token checks skipped; nothing recorded). `serverNow` is the NATS server's clock in ms,
   * from which a `NATS_USER_JWT_TTL` cap counts.
   */
  async function evaluate(
    source: LoginSource,
    clientInfo: CalloutRequest["clientInfo"],
    record: boolean,
    serverNow: number = now(),
  ): Promise<Evaluation> {
    // Before its snapshots are complete a replica cannot tell a new ServiceAccount from none.
    if (!isSynced()) {
      return {
        result: deny("cache_not_ready", "ServiceAccount cache has not completed its first sync"),
      };
    }
    // 2. Verify the token (explain by name: take the name).
    const who = await identify(verifyToken, source);
    if (!who.ok) return { result: who };
    const fields = { namespace: who.namespace, serviceaccount: who.name };

    // 3. Its ServiceAccount, as the cache has it now.
    const sa = lookup(who.namespace, who.name);
    if (record) (sa ? metrics.cacheHits : metrics.cacheMisses).inc();
    if (!sa) return { result: serviceAccountNotFound(who, fields) };
    const recreated = checkServiceAccountUid(sa, who.identity, fields);
    if (recreated) return { result: recreated };

    // 4. The Pod a bound token names.
    const podRefusal = pods && who.identity
      ? checkBoundPod(pods, who.identity, fields, now)
      : undefined;
    if (podRefusal) return { result: podRefusal };

    // 5. The policy: permissions, and whether this login may have them.
    const derived = permissionsOf(sa);
    const policyRefusal = checkPolicy(derived.resolved, who.identity, clientInfo, fields);
    if (policyRefusal) return { result: policyRefusal, derived };

    // 5b. An account of its own: on the resolver before the user JWT names it.
    const placed = derived.resolved?.settings.namespaceAccount
      ? await namespaceAccount(options.namespaceAccounts, sa.namespace, record)
      : undefined;
    if (placed && !placed.ok) {
      return { result: deny(placed.reason, placed.message, fields), derived, placed };
    }

    // 6. The grant.
    if (record) countDroppedEntries(metrics, derived);
    const expiresAt = userJwtExpiry(who.identity, userJwtTtlMs, serverNow);
    return { result: grant(sa, derived, fields, expiresAt, placed), derived, placed };
  }

  const grantOf = (sa: ServiceAccountRecord): { permissions: Permissions; account?: string } => {
    const derived = permissionsOf(sa);
    if (derived.resolved?.settings.namespaceAccount) {
      const placed = options.namespaceAccounts?.accountOf(sa.namespace);
      // No account now (Namespace gone): no account is what a login would get, so it differs.
      if (!placed?.ok) return { permissions: derived.permissions };
      return {
        permissions: withImports(derived.permissions, placed.imported),
        account: placed.account,
      };
    }
    const account = derived.resolved?.settings.account;
    return account !== undefined
      ? { permissions: derived.permissions, account }
      : { permissions: derived.permissions };
  };

  return { authorize, explain, grantOf };
}

/** The login decision and its explanation: one code path, so explain cannot disagree with a login. */
export interface Login {
  /** Decide one callout request: the function the callout handler calls for every login. */
  readonly authorize: Authorizer;
  /** What a login would get, by the same steps as `authorize`; records no metrics. */
  explain(input: ExplainInput): Promise<Explanation>;
  /**
   * What a login of `sa` would be granted now by the policy and its annotations (token and
   * connection checks aside): live revocation compares it with what a connection was granted.
   * Synchronous and memoized per ServiceAccount and policy version.
   */
  grantOf(sa: ServiceAccountRecord): { permissions: Permissions; account?: string };
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
  /** Whether the login would get a user JWT; when false, `reason` and `message` say why. */
  readonly allowed: boolean;
  /** The stable refusal reason, as in `login_denied` lines and metric labels; only when refused. */
  readonly reason?: DenyReason;
  /** The refusal in words; only when refused. */
  readonly message?: string;
  /** False when explained by ServiceAccount name: signature, expiry, uid and lifetime not checked. */
  readonly token_checked: boolean;
  /** The ServiceAccount's namespace, once the token (or the request) named one. */
  readonly namespace?: string;
  /** The ServiceAccount's name, present whenever `namespace` is. */
  readonly serviceaccount?: string;
  /** The user's account: the policy's, else `defaultAccount`; present once the policy ran. */
  readonly account?: string;
  /** The user JWT's `name` (what connz shows); only when allowed. */
  readonly user?: string;
  /** The user JWT's allow/deny lists and reply limit (`ttl_ms` in ms); only when allowed. */
  readonly permissions?: {
    readonly pub: { readonly allow: string[]; readonly deny: string[] };
    readonly sub: { readonly allow: string[]; readonly deny: string[] };
    readonly resp: { readonly max: number; readonly ttl_ms: number };
  };
  /** When the user JWT would expire, as an ISO 8601 UTC time; only when allowed. */
  readonly expires_at?: string;
  /**
   * The inbox prefix the client sets for request/reply (its private inbox, `_INBOX_<ns>_<sa'>`),
   * and whether the shared `_INBOX.>` is granted too (policy `inbox: shared`, the default). With
   * `shared: false` a client that keeps the default `_INBOX` prefix gets no replies.
   */
  readonly inbox?: { readonly prefix: string; readonly shared: boolean };
  /** The annotation entries the policy dropped, with why; present once the policy ran. */
  readonly dropped?: readonly DroppedEntry[];
  /** Policy parts applied; `null` without a policy file; absent when refused before the policy. */
  readonly policy?: { readonly matched: readonly string[] } | null;
  /** The namespace's own account (policy `namespaceAccount`): its key, limits, exports, imports. */
  readonly namespace_account?: NamespaceAccountSummary;
}

/** Whom a login is for: a token to verify, or (explain only) a ServiceAccount by name. */
type LoginSource = { token: string } | { namespace: string; name: string };

/** The evaluation behind both: the result, and what the policy derived when it got that far. */
interface Evaluation {
  readonly result: AuthorizeResult;
  readonly derived?: Derived;
  /** The namespace's own account, when its settings say `namespaceAccount`. */
  readonly placed?: NamespaceAccountResult | undefined;
}

/**
 * Step 5b, the namespace's own account: ensured on the resolver for a login (`record`), asked
 * for explain. Not configured: refused, never placed in the shared account by mistake.
 */
async function namespaceAccount(
  accounts: NamespaceAccounts | undefined,
  namespace: string,
  record: boolean,
): Promise<NamespaceAccountResult> {
  if (!accounts) {
    return {
      ok: false,
      reason: "account_unavailable",
      message:
        "the policy gives this namespace an account of its own, but provisioning is not running",
    };
  }
  return record ? await accounts.ensure(namespace) : accounts.accountOf(namespace);
}

/**
 * `permissions` with the subjects an account's imports bring: publish on imported services,
 * subscribe to imported streams (the same object when there are none).
 */
export function withImports(
  permissions: Permissions,
  imported: { readonly pub: readonly string[]; readonly sub: readonly string[] },
): Permissions {
  if (imported.pub.length === 0 && imported.sub.length === 0) return permissions;
  const add = (
    allow: readonly string[],
    more: readonly string[],
  ) => [...new Set([...allow, ...more])];
  return {
    ...permissions,
    pub: { ...permissions.pub, allow: add(permissions.pub.allow, imported.pub) },
    sub: { ...permissions.sub, allow: add(permissions.sub.allow, imported.sub) },
  };
}

/** A refusal: the end of a login, with its stable reason. */
type Refusal = Extract<AuthorizeResult, { ok: false }>;

/** Who logs in: the ServiceAccount, and the verified token's claims when there was a token. */
interface Identified {
  readonly ok: true;
  readonly namespace: string;
  readonly name: string;
  /** `undefined` when explained by name: no token, so no uid, Pod, or lifetime to check. */
  readonly identity: TokenIdentity | undefined;
}

/** What the policy gave one ServiceAccount under one cluster policy (none: `resolved` undefined). */
interface Derived extends PolicyResult {
  readonly resolved: ResolvedSettings | undefined;
  /** The Namespace labels it was derived with (only when the policy has rules by labels). */
  readonly labels: Readonly<Record<string, string>> | undefined;
}

/**
 * Step 2, verify the token: its signature, issuer, audience and expiry (the verifier's refusals
 * keep their reasons). Explain by name skips it. A verifier failure that is no {@linkcode
 * AuthError} is a bug and is thrown, not turned into a refusal.
 */
async function identify(
  verifyToken: TokenVerifier,
  source: LoginSource,
): Promise<Identified | Refusal> {
  if (!("token" in source)) {
    return { ok: true, namespace: source.namespace, name: source.name, identity: undefined };
  }
  let identity: TokenIdentity;
  try {
    identity = await verifyToken(source.token);
  } catch (err) {
    if (err instanceof AuthError) return deny(err.code, err.message);
    throw err;
  }
  return { ok: true, namespace: identity.namespace, name: identity.serviceAccount, identity };
}

/** Step 3, the ServiceAccount: the cache has none of that name. */
function serviceAccountNotFound(who: Identified, fields: LogFields): Refusal {
  return deny(
    "serviceaccount_not_found",
    `ServiceAccount ${who.namespace}/${who.name} does not exist`,
    fields,
  );
}

/** Step 3, the ServiceAccount: the one in the cache is not the one the token was issued for. */
function checkServiceAccountUid(
  sa: ServiceAccountRecord,
  identity: TokenIdentity | undefined,
  fields: LogFields,
): Refusal | undefined {
  if (!identity || sa.uid === identity.uid) return undefined;
  return deny(
    "serviceaccount_uid_mismatch",
    `ServiceAccount ${sa.namespace}/${sa.name} was recreated (uid ${sa.uid}, token for ${identity.uid})`,
    fields,
  );
}

/**
 * Step 4, the bound Pod (`kubernetes.io.pod`), as the apiserver judges it: the Pod exists, has
 * the uid the token names, and is not being deleted for longer than the JWT leeway. A token bound
 * to no Pod passes.
 */
function checkBoundPod(
  pods: PodLookup,
  identity: TokenIdentity,
  fields: LogFields,
  now: () => number,
): Refusal | undefined {
  if (identity.podName === undefined) return undefined;
  const podFields = { ...fields, pod: identity.podName };
  const pod = pods(identity.namespace, identity.podName);
  if (!pod) {
    return deny(
      "pod_not_found",
      `Pod ${identity.namespace}/${identity.podName}, to which the token is bound, does not exist`,
      podFields,
    );
  }
  if (identity.podUid !== undefined && pod.uid !== identity.podUid) {
    return deny(
      "pod_uid_mismatch",
      `Pod ${pod.namespace}/${pod.name} was recreated (uid ${pod.uid}, token for ${identity.podUid})`,
      podFields,
    );
  }
  // As the apiserver (pkg/serviceaccount/claims.go): a Pod being deleted for longer than the
  // JWT leeway of 60 s no longer vouches for its tokens.
  if (pod.deletingSince !== undefined && pod.deletingSince < now() - POD_DELETION_LEEWAY_MS) {
    return deny(
      "pod_not_found",
      `Pod ${pod.namespace}/${pod.name}, to which the token is bound, is being deleted since ${
        new Date(pod.deletingSince).toISOString()
      }`,
      podFields,
    );
  }
  return undefined;
}

/** The apiserver's JWT leeway (pkg/serviceaccount/claims.go): how long a terminating Pod still vouches. */
const POD_DELETION_LEEWAY_MS = 60_000;

/**
 * Step 5, the policy file's checks on this login: connection type and token lifetime. Without a
 * policy file nothing is checked; without a token (explain by name) there is no lifetime.
 */
function checkPolicy(
  resolved: ResolvedSettings | undefined,
  identity: TokenIdentity | undefined,
  clientInfo: CalloutRequest["clientInfo"],
  fields: LogFields,
): Refusal | undefined {
  if (!resolved) return undefined;
  const { maxTokenLifetimeMs, ...withoutLifetime } = resolved.settings;
  const denial = checkLogin(
    identity || maxTokenLifetimeMs === undefined ? resolved.settings : withoutLifetime,
    {
      connectionType: connectionTypeOf(clientInfo),
      issuedAt: identity?.issuedAt,
      expiresAt: identity?.expiresAt ?? 0,
    },
  );
  return denial ? deny(denial.reason, denial.message, fields) : undefined;
}

/** Count, on every login, the annotation entries the grant leaves out (the warning is once). */
function countDroppedEntries(metrics: ServiceMetrics, derived: Derived): void {
  const { filteredInternal, invalid, outsidePolicy } = derived;
  if (filteredInternal.length > 0) {
    metrics.filteredInternalSubjects.inc(undefined, filteredInternal.length);
  }
  if (invalid.length > 0) metrics.invalidSubjects.inc(undefined, invalid.length);
  if (outsidePolicy.length > 0) {
    metrics.policyDroppedSubjects.inc(undefined, outsidePolicy.length);
  }
}

/**
 * When the user JWT expires, in seconds: with its token, or earlier at `NATS_USER_JWT_TTL` after
 * `serverNow` (the NATS server's clock, which checks the expiry) when that cap is set. Without a
 * token (explain), the kubelet's default token lifetime stands in.
 */
function userJwtExpiry(
  identity: TokenIdentity | undefined,
  userJwtTtlMs: number | undefined,
  serverNow: number,
): number {
  const tokenExpiresMs = identity ? identity.expiresAt * 1000 : serverNow + 3_600_000;
  return Math.floor(
    (userJwtTtlMs === undefined
      ? tokenExpiresMs
      : Math.min(serverNow + userJwtTtlMs, tokenExpiresMs)) / 1000,
  );
}

/**
 * Step 6, the grant: the user named after the ServiceAccount, its permissions and account, and
 * for the log line each annotation entry left out and why.
 */
function grant(
  sa: ServiceAccountRecord,
  derived: Derived,
  fields: LogFields,
  expiresAt: number,
  placed: NamespaceAccountResult | undefined,
): AuthorizeResult {
  const own = placed?.ok ? placed : undefined;
  const account = own?.account ?? derived.resolved?.settings.account;
  return {
    ok: true,
    user: {
      name: userName(sa.namespace, sa.name),
      permissions: own ? withImports(derived.permissions, own.imported) : derived.permissions,
      expiresAt,
      ...(account !== undefined ? { account } : {}),
    },
    fields: {
      ...fields,
      expires_at: expiresAt,
      ...(account !== undefined ? { account } : {}),
    },
    grantFields: {
      dropped: derived.dropped.map((d) => ({
        annotation: d.annotation,
        subject: d.entry,
        why: d.reason,
        ...(d.detail ? { detail: d.detail } : {}),
      })),
    },
  };
}

/**
 * The permissions of a ServiceAccount under the cluster policy in force, remembered. Records and
 * policies are immutable and replaced on every change, and the policy is pure, so what one pair
 * gives can be kept (with rules by labels, also per Namespace labels object); and the first
 * derivation is the one moment to warn about its ignored annotation entries: once per
 * ServiceAccount and policy version.
 */
function memoizedPermissions(options: AuthorizerOptions): (sa: ServiceAccountRecord) => Derived {
  const { policy, namespaceLabels, logger } = options;
  const clusterPolicy = options.clusterPolicy ?? (() => undefined);
  const memo = new WeakMap<object, WeakMap<ServiceAccountRecord, Derived>>();
  return (sa) => {
    const cluster = clusterPolicy();
    const key = cluster ?? NO_POLICY;
    let perPolicy = memo.get(key);
    if (!perPolicy) {
      perPolicy = new WeakMap();
      memo.set(key, perPolicy);
    }
    const known = perPolicy.get(sa);
    // With rules by labels the result also depends on the Namespace's labels: each change of them
    // is a new (frozen) object, so a different object means derive again.
    const labels = cluster && namespaceLabels && usesLabels(cluster)
      ? namespaceLabels(sa.namespace)
      : undefined;
    if (known && known.labels === labels) return known;
    const resolved = cluster
      ? resolveSettings(cluster, sa.namespace, sa.name, namespaceLabels)
      : undefined;
    const derived: Derived = {
      ...permissionsFor(sa, resolved ? { ...policy, settings: resolved.settings } : policy),
      resolved,
      labels,
    };
    perPolicy.set(sa, derived);
    if (derived.dropped.length > 0) warnIgnoredEntries(logger, sa, derived);
    return derived;
  };
}

/** The memo key when no cluster policy is configured. */
const NO_POLICY = Object.freeze({});

/** The `annotation_subjects_ignored` warning: which entries were left out, grouped by why. */
function warnIgnoredEntries(logger: Logger, sa: ServiceAccountRecord, derived: Derived): void {
  logger.warn("annotation_subjects_ignored", {
    namespace: sa.namespace,
    serviceaccount: sa.name,
    filtered_internal: derived.filteredInternal,
    invalid: derived.invalid,
    ...(derived.outsidePolicy.length > 0
      ? {
        outside_policy: derived.dropped.filter((d) => d.reason === "outside_policy")
          .map((d) => `${d.annotation} ${d.entry}: ${d.detail}`),
      }
      : {}),
  });
}

/** A login's result as explain shows it (`defaultAccount` stands in when the policy names none). */
function explanation(
  result: AuthorizeResult,
  derived: Derived | undefined,
  tokenChecked: boolean,
  { defaultAccount }: AuthorizerOptions,
  placed?: NamespaceAccountResult,
): Explanation {
  const f = result.fields ?? {};
  const own = placed?.ok ? placed : undefined;
  const base = {
    token_checked: tokenChecked,
    ...(typeof f.namespace === "string" ? { namespace: f.namespace } : {}),
    ...(typeof f.serviceaccount === "string" ? { serviceaccount: f.serviceaccount } : {}),
    ...(own ? { namespace_account: own.summary } : {}),
    ...(derived
      ? {
        account: own?.account ?? derived.resolved?.settings.account ?? defaultAccount,
        dropped: derived.dropped,
        policy: derived.resolved ? { matched: derived.resolved.matched } : null,
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
    ...(typeof f.namespace === "string" && typeof f.serviceaccount === "string"
      ? {
        inbox: {
          prefix: inboxPrefix(f.namespace, f.serviceaccount),
          shared: sub.allow.includes("_INBOX.>"),
        },
      }
      : {}),
  };
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

/** A refusal with its reason, message and log fields. */
function deny(reason: AuthError["code"], message: string, fields?: LogFields): Refusal {
  return fields ? { ok: false, reason, message, fields } : { ok: false, reason, message };
}
