/**
 * Live revocation (DESIGN D6): remember every approved connection, forget it when the server says
 * it disconnected, and close it (`$SYS.REQ.SERVER.<server_id>.KICK {"cid": N}`) as soon as a
 * change would refuse or change its login — the ServiceAccount deleted or recreated, its
 * permissions changed, its Pod gone, the key that signed its token out of the JWKS. The client
 * then reconnects, and that login is decided anew on the current state.
 *
 * The work follows the changes (issue 18): the remembered connections are indexed by
 * ServiceAccount, Pod, key and Namespace (lib/nats/approved_connections.ts), the caches announce
 * each record they change ({@linkcode RevocationChanges}), and a short tick checks through the pure
 * {@linkcode kicksFor} only the connections those changes touch — plus every new approval once, and
 * every connection after a relist, a policy reload or a key set change of its `kid`. Between
 * changes a tick costs nothing per connection. Without a change feed (the ServiceAccounts file)
 * every tick checks every connection, as before. A missed event is healed by the next relist.
 *
 * Reading order: {@linkcode startRevocation} wires the parts — the remembered connections (added
 * by {@linkcode rememberApprovals} and by adopting what the servers' connz already hold; removed by
 * disconnect advisories, expiry and answered kicks), the change feeds, the key presence check, the
 * kicker — and runs the periodic check: forget the expired, adopt once, refresh key presence, kick
 * what {@linkcode kicksFor} names among the candidates.
 *
 * @module
 */
import { errors, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { delay } from "../core/abort.ts";
import type { Authorizer } from "../callout/handler.ts";
import type { Logger } from "../telemetry/log.ts";
import { extractToken } from "../decision/login.ts";
import type {
  Permissions,
  PodLookup,
  ServiceAccountLookup,
  ServiceAccountRecord,
} from "../core/model.ts";
import type { ServiceMetrics } from "../telemetry/service_metrics.ts";
import type { ChangeFeed } from "../core/changes.ts";
import { type ApprovedConnections, createApprovedConnections } from "./approved_connections.ts";

/** Why a live connection was closed; a metric label and a log field. */
export type KickReason =
  | "serviceaccount_deleted"
  | "serviceaccount_recreated"
  | "permissions_changed"
  | "pod_gone"
  | "signing_key_removed";

/** Every {@linkcode KickReason}, for metrics and tests. */
export const KICK_REASONS: readonly KickReason[] = Object.freeze([
  "serviceaccount_deleted",
  "serviceaccount_recreated",
  "permissions_changed",
  "pod_gone",
  "signing_key_removed",
]);

/**
 * One approved connection, as remembered from its callout request and its grant: what its token
 * says ({@linkcode TokenFacts}; a token without `kid` or `alg` is not checked against the key set,
 * a Pod of the same name with another uid counts as gone) and where it lives.
 */
export interface ApprovedConnection extends TokenFacts {
  /** `server_id.id` of the request: the server that holds the connection. */
  readonly serverId: string;
  /** `client_info.id`: the connection's id on that server. */
  readonly cid: number;
  /** What the connection was granted. */
  readonly permissions: Permissions;
  /** The account it was placed in, when the policy chose one (else `NATS_ACCOUNT`). */
  readonly account?: string;
  /** Expiry of the user JWT, seconds since the epoch: the server closes it then anyway. */
  readonly expiresAt: number;
}

/** The current state a remembered connection is checked against. */
export interface RevocationLookups {
  /** The ServiceAccount cache's lookup. */
  readonly serviceAccount: ServiceAccountLookup;
  /**
   * The permissions a login of this ServiceAccount would get now (the same policy the login uses),
   * or `undefined` when such a login would be refused.
   */
  readonly permissionsOf: (sa: ServiceAccountRecord) => Permissions | undefined;
  /**
   * The account a login of this ServiceAccount would be placed in now, when a policy chooses it;
   * without it accounts are not compared.
   */
  readonly accountOf?: (sa: ServiceAccountRecord) => string | undefined;
  /** The Pod cache's lookup; without it bound Pods are not checked. */
  readonly pod?: PodLookup;
  /** Whether the key `kid` is still in the JWKS; without it keys are not checked. */
  readonly keyPresent?: (kid: string) => boolean;
}

/** A connection to close, and why. */
export interface Kick {
  /** The remembered connection; its `serverId` and `cid` address the kick. */
  readonly connection: ApprovedConnection;
  /** Why: the `reason` label of `nats_auth_kicks_total` and the `connection_kicked` line. */
  readonly reason: KickReason;
}

function permissionsKey(p: Permissions): string {
  return JSON.stringify([p.pub.allow, p.sub.allow, p.resp.max, p.resp.ttlNs]);
}

/**
 * Which of `connections` must be closed given the current `lookups`. Pure: the same inputs give
 * the same kicks, in the order of `connections`, at most one per connection (the first reason in
 * the order ServiceAccount, permissions, Pod, key).
 *
 * @example
 * ```ts
 * import { kicksFor } from "./revocation.ts";
 * const permissions = { pub: { allow: ["a.>"] }, sub: { allow: [] }, resp: { max: 1, ttlNs: 0 } };
 * const kicks = kicksFor([{
 *   serverId: "N1", cid: 7, namespace: "a", serviceAccount: "s", uid: "u1", permissions, expiresAt: 0,
 * }], { serviceAccount: () => undefined, permissionsOf: () => permissions });
 * console.assert(kicks[0]?.reason === "serviceaccount_deleted");
 * ```
 */
export function kicksFor(
  connections: Iterable<ApprovedConnection>,
  lookups: RevocationLookups,
): Kick[] {
  // Permission sets are shared objects (memoized per ServiceAccount version), so their keys are
  // computed once per set and call, not once per connection.
  const current = new Map<ServiceAccountRecord, string | undefined>();
  const granted = new Map<Permissions, string>();
  const keyOf = (p: Permissions): string => {
    let key = granted.get(p);
    if (key === undefined) {
      key = permissionsKey(p);
      granted.set(p, key);
    }
    return key;
  };
  const kicks: Kick[] = [];
  for (const c of connections) {
    const reason = reasonFor(c, lookups, current, keyOf);
    if (reason) kicks.push({ connection: c, reason });
  }
  return kicks;
}

function reasonFor(
  c: ApprovedConnection,
  lookups: RevocationLookups,
  current: Map<ServiceAccountRecord, string | undefined>,
  keyOf: (p: Permissions) => string,
): KickReason | undefined {
  const sa = lookups.serviceAccount(c.namespace, c.serviceAccount);
  if (!sa) return "serviceaccount_deleted";
  if (sa.uid !== c.uid) return "serviceaccount_recreated";
  let now = current.get(sa);
  if (!current.has(sa)) {
    const p = lookups.permissionsOf(sa);
    now = p === undefined ? undefined : keyOf(p);
    current.set(sa, now);
  }
  if (now !== keyOf(c.permissions)) return "permissions_changed";
  if (lookups.accountOf && lookups.accountOf(sa) !== c.account) return "permissions_changed";
  if (lookups.pod && c.podName !== undefined) {
    const pod = lookups.pod(c.namespace, c.podName);
    if (!pod || (c.podUid !== undefined && pod.uid !== c.podUid)) return "pod_gone";
  }
  if (lookups.keyPresent && c.kid !== undefined && !lookups.keyPresent(c.kid)) {
    return "signing_key_removed";
  }
  return undefined;
}

/** What {@linkcode tokenFacts} reads from an (already verified) ServiceAccount token. */
export interface TokenFacts {
  /** `kubernetes.io.namespace` (the claims of Kubernetes' `pkg/serviceaccount/claims.go`). */
  readonly namespace: string;
  /** `kubernetes.io.serviceaccount.name`. */
  readonly serviceAccount: string;
  /** `kubernetes.io.serviceaccount.uid`. */
  readonly uid: string;
  /** `kubernetes.io.pod.name`, for a token bound to a Pod. */
  readonly podName?: string;
  /** `kubernetes.io.pod.uid`. */
  readonly podUid?: string;
  /** The header's `kid` (absent, like every optional field here, when missing or empty). */
  readonly kid?: string;
  /** The header's `alg`. */
  readonly alg?: string;
}

function decodeSegment(segment: string | undefined): Record<string, unknown> | undefined {
  if (!segment) return undefined;
  try {
    const bytes = Uint8Array.fromBase64(segment, { alphabet: "base64url" });
    const value: unknown = JSON.parse(new TextDecoder().decode(bytes));
    return value !== null && typeof value === "object" && !Array.isArray(value)
      ? value as Record<string, unknown>
      : undefined;
  } catch {
    return undefined;
  }
}

function text(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

/**
 * The ServiceAccount, Pod and key of a token the login has just verified: its header's `kid` and
 * `alg` and its `kubernetes.io` claim. No check happens here (the verifier did them); `undefined`
 * when the token does not have that shape.
 */
export function tokenFacts(token: string): TokenFacts | undefined {
  const [h, p] = token.split(".");
  const header = decodeSegment(h);
  const claims = decodeSegment(p);
  const k8s = claims?.["kubernetes.io"] as Record<string, Record<string, unknown> | undefined>;
  if (!header || !k8s || typeof k8s !== "object") return undefined;
  const namespace = text(k8s.namespace);
  const serviceAccount = text(k8s.serviceaccount?.name);
  const uid = text(k8s.serviceaccount?.uid);
  if (!namespace || !serviceAccount || !uid) return undefined;
  const podName = text(k8s.pod?.name);
  const podUid = text(k8s.pod?.uid);
  const kid = text(header.kid);
  const alg = text(header.alg);
  return {
    namespace,
    serviceAccount,
    uid,
    ...(podName !== undefined ? { podName } : {}),
    ...(podUid !== undefined ? { podUid } : {}),
    ...(kid !== undefined ? { kid } : {}),
    ...(alg !== undefined ? { alg } : {}),
  };
}

/** The keys whose presence in the JWKS is checked (a `KeySource` fits). */
export interface KeyPresence {
  /** Bumps whenever the key set's content changes. */
  readonly generation: number;
  /** jose's key resolver; throws or rejects when no key matches. */
  readonly getKey: (header: { alg: string; kid: string }, token: never) => unknown;
}

/** Options of {@linkcode startRevocation}. */
export interface RevocationOptions {
  /**
   * A connection as a system-account user: may send `$SYS.REQ.SERVER.*.KICK` and see events. May
   * be a promise (it connects in the background): approvals are remembered meanwhile, kicks wait.
   */
  system: NatsConnection | Promise<NatsConnection>;
  /** The current lookups, asked on every tick. */
  lookups: () => Omit<RevocationLookups, "keyPresent">;
  /**
   * Whether the lookups can be trusted now (the replica could decide a login: caches synced,
   * keys loaded). Nothing is kicked while false — a cache that is not synced is not a deletion.
   */
  canDecide: () => boolean;
  /** The token signing keys; removed keys kick the connections whose token they signed. */
  keys?: KeyPresence;
  /**
   * Receives `connection_kicked`, failed kicks, `connections_adopted` and
   * `revocation_check_failed`.
   */
  logger: Logger;
  /** Keeps `nats_auth_live_connections` current and counts `nats_auth_kicks_total{reason}`. */
  metrics: ServiceMetrics;
  /**
   * How often the connections touched by changes are checked (all of them when there is no
   * `changes` feed). @default {500}
   */
  tickMs?: number;
  /** Give up one kick request after this long (it is retried on a later tick). @default {2000} */
  kickTimeoutMs?: number;
  /**
   * Take over the live connections the servers already hold (approved by another replica, or
   * before a restart), found through `$SYS.REQ.SERVER.<id>.CONNZ` by their user name. @default {true}
   */
  adoptExisting?: boolean;
  /** Connections per connz request when adopting. @default {1000} */
  adoptPageSize?: number;
  /** Clock in milliseconds. @default {() => Date.now()} */
  now?: () => number;
  /**
   * What the lookups' sources announce when they change. With it a check looks only at the
   * connections a change touches; without it every check looks at every connection.
   * @default {undefined}
   */
  changes?: RevocationChanges;
}

/**
 * The change feeds of the sources behind {@linkcode RevocationLookups}: every source the lookups
 * read must announce its changes here, or a change it makes goes unseen until a relist.
 */
export interface RevocationChanges {
  /** Changes of the ServiceAccount cache. */
  readonly serviceAccounts: ChangeFeed;
  /** Changes of the Pod cache; required when the lookups include `pod`. */
  readonly pods?: ChangeFeed;
  /** Changes of the Namespace cache (labels the policy reads). */
  readonly namespaces?: ChangeFeed;
  /** The policy in force, compared by identity: a new one may change every grant. */
  readonly policyVersion?: () => unknown;
  /**
   * A Namespace change may change the grants of connections in other namespaces (accounts that
   * follow namespaces: an importer's allow lists hold its exporters' subjects), so every
   * connection is checked after one. @default {false}
   */
  readonly namespacesAffectOthers?: boolean;
}

/** A running revocation loop. */
export interface Revocation extends AsyncDisposable {
  /** Remember an approved connection. */
  remember(connection: ApprovedConnection): void;
  /** Connections remembered now. */
  readonly size: number;
  /** Run one check now (the tick does this on its own). Resolves when its kicks are answered. */
  check(): Promise<void>;
  /** Stop the tick and the event subscription. */
  close(): Promise<void>;
}

/** Subject of the server's disconnect advisories, for every account. */
export const DISCONNECT_EVENTS = "$SYS.ACCOUNT.*.DISCONNECT";

/** The kick request subject of one server. */
export function kickSubject(serverId: string): string {
  return `$SYS.REQ.SERVER.${serverId}.KICK`;
}

const KEY_SEP = "\u0000";

/** What an adopted connection is taken to hold when no login of its ServiceAccount is possible. */
const NO_PERMISSIONS: Permissions = Object.freeze({
  pub: { allow: [] },
  sub: { allow: [] },
  resp: { max: 0, ttlNs: 0 },
});

/** How long an adopted connection is remembered at most (its user JWT's expiry is unknown). */
const ADOPTED_LIFETIME_S = 24 * 3600;

/**
 * The namespace and ServiceAccount of a NATS user name given by the login
 * (`system:serviceaccount:<ns>:<sa>`), or `undefined` for any other user.
 *
 * @example
 * ```ts
 * import { parseUserName } from "./revocation.ts";
 * console.assert(parseUserName("system:serviceaccount:a:b")?.serviceAccount === "b");
 * console.assert(parseUserName("auth") === undefined);
 * ```
 */
export function parseUserName(
  name: string | undefined,
): { namespace: string; serviceAccount: string } | undefined {
  const parts = name?.split(":");
  if (parts?.length !== 4 || parts[0] !== "system" || parts[1] !== "serviceaccount") {
    return undefined;
  }
  const [, , namespace, serviceAccount] = parts as [string, string, string, string];
  return namespace && serviceAccount ? { namespace, serviceAccount } : undefined;
}

/**
 * Every client connection of every server reachable over the system account: the servers answer
 * `$SYS.REQ.SERVER.PING`, then each is asked for its connz page by page.
 */
async function* listConnections(
  nc: NatsConnection,
  pageSize: number,
): AsyncGenerator<{ serverId: string; cid: number; user: string | undefined }> {
  const ids = new Set<string>();
  const pings = await nc.requestMany("$SYS.REQ.SERVER.PING", "", { maxWait: 1000 });
  for await (const m of pings) {
    const id = m.json<{ server?: { id?: string } }>().server?.id;
    if (typeof id === "string") ids.add(id);
  }
  for (const serverId of ids) {
    for (let offset = 0;; offset += pageSize) {
      const reply = await nc.request(
        `$SYS.REQ.SERVER.${serverId}.CONNZ`,
        JSON.stringify({ offset, limit: pageSize, auth: true }),
        { timeout: 2000 },
      );
      const page = reply.json<{
        data?: { connections?: { cid?: number; authorized_user?: string }[] };
      }>().data?.connections ?? [];
      for (const c of page) {
        if (typeof c.cid === "number") yield { serverId, cid: c.cid, user: c.authorized_user };
      }
      if (page.length < pageSize) break;
    }
  }
}

/**
 * Start remembering, forgetting and kicking connections over the system connection `system`:
 * subscribes to {@linkcode DISCONNECT_EVENTS}, and every `tickMs` (while `canDecide()`) drops
 * expired entries and kicks what {@linkcode kicksFor} names among the connections the changes
 * since the last tick touched. A kick is logged (`connection_kicked`
 * with the reason, namespace, ServiceAccount, server and cid) and counted by reason; a kicked
 * connection is forgotten once the server answers, and retried on a later tick if it does not.
 *
 * @example
 * ```ts ignore
 * import { startRevocation } from "./revocation.ts";
 * await using revocation = startRevocation({ system, lookups, canDecide, logger, metrics });
 * ```
 */
export function startRevocation(options: RevocationOptions): Revocation {
  const {
    system,
    lookups,
    canDecide,
    keys,
    logger,
    metrics,
    tickMs = 500,
    kickTimeoutMs = 2000,
    adoptExisting = true,
    adoptPageSize = 1000,
    now = () => Date.now(),
    changes,
  } = options;
  const live = createApprovedConnections(metrics);
  const keyPresence = createKeyPresenceCheck(keys);
  const kick = createKicker({ live, kickTimeoutMs, logger, metrics });
  const unfollow = changes ? followChanges(changes, live) : () => {};
  let policyVersion: unknown = changes?.policyVersion?.();

  // The system connection may still be connecting: until it is, approvals are only remembered.
  let sys: NatsConnection | undefined;
  let events: Subscription | undefined;
  let closing = false;
  void Promise.resolve(system).then((nc) => {
    if (closing) return;
    sys = nc;
    events = forgetOnDisconnect(nc, live);
  }, () => {});

  // One check at a time: a tick that finds one running joins it.
  let adopted = false;
  let running: Promise<void> | undefined;
  const check = (): Promise<void> => {
    running ??= (async () => {
      live.forgetExpired(now() / 1000);
      if (!changes) live.everythingChanged();
      const nc = sys;
      // Marks stay while the replica cannot decide: nothing is kicked on a cache not synced.
      if (!nc || nc.isClosed() || !canDecide()) return;
      if (adoptExisting && !adopted) {
        adopted = true;
        await adoptConnections(nc, lookups(), live, { pageSize: adoptPageSize, now, logger });
        live.everythingChanged();
      }
      const policy = changes?.policyVersion?.();
      if (policy !== policyVersion) {
        policyVersion = policy;
        live.everythingChanged();
      }
      await keyPresence.refresh(live);
      if (!live.pending) return;
      const candidates = live.takeCandidates();
      let kicks: Kick[];
      try {
        kicks = kicksFor(candidates, { ...lookups(), ...keyPresence.lookup() });
      } catch (err) {
        // The marks were taken: give them back, or the changes they stand for wait for a relist.
        for (const c of candidates) live.retry(c);
        throw err;
      }
      await kickAll(kicks, (k) => kick(nc, k));
    })().catch((err) => logger.error("revocation_check_failed", { error: err }))
      .finally(() => (running = undefined));
    return running;
  };
  const timer = setInterval(() => void check(), tickMs);

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      closing = true;
      clearInterval(timer);
      unfollow();
      if (events && !events.isClosed() && !sys?.isClosed()) events.unsubscribe();
      // A check may be waiting on kick or connz replies; shutdown does not wait for them long.
      const timeout = new AbortController();
      await Promise.race([running, delay(300, timeout.signal)]);
      timeout.abort();
    })();
    return closed;
  };

  return {
    remember: (c) => live.remember(c),
    get size() {
      return live.size;
    },
    check,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/**
 * Mark in `live` what the sources announce: a ServiceAccount, Pod or Namespace that changed, or
 * everything after a relist. Returns the function that stops following.
 */
function followChanges(changes: RevocationChanges, live: ApprovedConnections): () => void {
  const stops = [
    changes.serviceAccounts.subscribe((c) =>
      c === "all" ? live.everythingChanged() : live.serviceAccountChanged(c.namespace, c.name)
    ),
    changes.pods?.subscribe((c) =>
      c === "all" ? live.everythingChanged() : live.podChanged(c.namespace, c.name)
    ),
    // A Namespace is cluster-scoped: its record's name is the namespace.
    changes.namespaces?.subscribe((c) =>
      c === "all" || changes.namespacesAffectOthers
        ? live.everythingChanged()
        : live.namespaceChanged(c.name)
    ),
  ];
  return () => {
    for (const stop of stops) stop?.();
  };
}

/**
 * Follow the servers' disconnect advisories ({@linkcode DISCONNECT_EVENTS}) and forget each
 * connection that closed, whoever closed it. Anything that is not such an advisory is ignored.
 */
function forgetOnDisconnect(nc: NatsConnection, live: ApprovedConnections): Subscription {
  return nc.subscribe(DISCONNECT_EVENTS, {
    callback: (err, msg) => {
      if (err) return;
      try {
        const event = msg.json<{ server?: { id?: string }; client?: { id?: number } }>();
        const serverId = event.server?.id;
        const cid = event.client?.id;
        if (typeof serverId === "string" && typeof cid === "number") live.forget(serverId, cid);
      } catch {
        // not an advisory we understand
      }
    },
  });
}

/** Whether the keys that signed the remembered tokens are still in the key set. */
interface KeyPresenceCheck {
  /**
   * Ask the key source again for the kids in use, when its content changed since last time, and
   * mark in `live` the connections whose key is gone.
   */
  refresh(live: ApprovedConnections): Promise<void>;
  /** The `keyPresent` lookup for {@linkcode kicksFor}; empty when keys are not checked. */
  lookup(): Pick<RevocationLookups, "keyPresent">;
}

/**
 * Key presence is asked of the key source only when its content changed (its `generation`), and
 * only for the kids in use; a kid not asked about counts as present.
 */
function createKeyPresenceCheck(keys: KeyPresence | undefined): KeyPresenceCheck {
  let keyGeneration = -1;
  let keyState = new Map<string, boolean>();
  return {
    refresh: async (live) => {
      if (!keys) return;
      const kids = live.kids();
      // A kid remembered since the last refresh (its login verified before a key set change that
      // refresh already saw) has not been asked about: it must not count as present unasked.
      const unasked = [...kids.keys()].some((kid) => !keyState.has(kid));
      if (keys.generation === keyGeneration && !unasked) return;
      const generation = keys.generation;
      const next = new Map<string, boolean>();
      for (const [kid, alg] of kids) {
        const found = await Promise.resolve()
          .then(() => keys.getKey({ kid, alg }, undefined as never))
          .then(() => true, () => false);
        next.set(kid, found);
        if (!found) live.keyChanged(kid);
      }
      keyGeneration = generation;
      keyState = next;
    },
    lookup: () => (keys ? { keyPresent: (kid: string) => keyState.get(kid) ?? true } : {}),
  };
}

/**
 * Close one connection with `$SYS.REQ.SERVER.<server_id>.KICK`, at most one request per
 * connection at a time. An answer forgets the connection: kicked (logged `connection_kicked` and
 * counted by reason) or refused (typically already gone, debug). No responders means that server is
 * gone, and the connection with it. Any other failure keeps it for the next check, logged at warn
 * the first time.
 */
function createKicker(context: {
  live: ApprovedConnections;
  kickTimeoutMs: number;
  logger: Logger;
  metrics: ServiceMetrics;
}): (system: NatsConnection, kick: Kick) => Promise<void> {
  const { live, kickTimeoutMs, logger, metrics } = context;
  const kicking = new Set<string>();
  return async (system, { connection: c, reason }) => {
    const key = `${c.serverId}${KEY_SEP}${c.cid}`;
    if (kicking.has(key)) return;
    kicking.add(key);
    const fields = {
      reason,
      namespace: c.namespace,
      serviceaccount: c.serviceAccount,
      server_id: c.serverId,
      client_cid: c.cid,
    };
    try {
      const reply = await system.request(
        kickSubject(c.serverId),
        JSON.stringify({ cid: c.cid }),
        { timeout: kickTimeoutMs },
      );
      const body = reply.json<{ error?: { code?: number; description?: string } }>();
      live.forget(c.serverId, c.cid);
      if (body.error) {
        // Typically "not found": the connection is already gone.
        logger.debug("connection_kick_refused", { ...fields, error: body.error.description });
      } else {
        metrics.kicks.inc({ reason });
        logger.info("connection_kicked", fields);
      }
    } catch (err) {
      if (err instanceof errors.NoRespondersError || /no responders|503/i.test(String(err))) {
        // No server with that id any more (restarted or gone): neither is the connection.
        live.forget(c.serverId, c.cid);
        logger.debug("connection_kick_no_server", fields);
      } else {
        // Checked again at the next tick; logged once per connection at warn (the system
        // connection says why).
        live.retry(c);
        if (live.firstKickFailure(c.serverId, c.cid)) {
          logger.warn("connection_kick_failed", { ...fields, error: err });
        }
      }
    } finally {
      kicking.delete(key);
    }
  };
}

/**
 * Kicks in flight at once. A ServiceAccount with 10,000 connections deleted at once would
 * otherwise send 10,000 requests together; under load most of them outlive their timeout, are
 * retried and answered "not found" (issue 18, bench/live_connections.ts).
 */
const KICKS_IN_FLIGHT = 256;

/** Run `kick` for every kick, at most {@linkcode KICKS_IN_FLIGHT} at a time. */
async function kickAll(kicks: readonly Kick[], kick: (k: Kick) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < kicks.length) await kick(kicks[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(KICKS_IN_FLIGHT, kicks.length) }, worker));
}

/**
 * Take over the live connections the servers already hold — approved by another replica, or by
 * this one before a restart — found through the servers' connz by their user name, once, when this
 * replica can first decide. What they were granted is not known, so they are taken as granted what
 * a login would get now: a change made while no replica watched them goes unnoticed, every later
 * one is caught. A connection whose ServiceAccount is already gone is adopted too: the check kicks
 * it. Logs `connections_adopted` with the count, or `connections_adopt_failed`.
 */
async function adoptConnections(
  nc: NatsConnection,
  current: Omit<RevocationLookups, "keyPresent">,
  live: ApprovedConnections,
  options: { pageSize: number; now: () => number; logger: Logger },
): Promise<void> {
  const { pageSize, now, logger } = options;
  let count = 0;
  try {
    for await (const found of listConnections(nc, pageSize)) {
      const who = parseUserName(found.user);
      if (!who || live.has(found.serverId, found.cid)) continue;
      const sa = current.serviceAccount(who.namespace, who.serviceAccount);
      const permissions = (sa && current.permissionsOf(sa)) ?? NO_PERMISSIONS;
      const account = sa && current.accountOf?.(sa);
      live.remember({
        serverId: found.serverId,
        cid: found.cid,
        namespace: who.namespace,
        serviceAccount: who.serviceAccount,
        uid: sa?.uid ?? "",
        permissions,
        ...(account !== undefined ? { account } : {}),
        expiresAt: now() / 1000 + ADOPTED_LIFETIME_S,
      });
      count++;
    }
    logger.info("connections_adopted", { count });
  } catch (err) {
    logger.warn("connections_adopt_failed", { error: err });
  }
}

/**
 * Wrap the login decision so every approval is remembered for revocation: the server and cid of
 * the request, the ServiceAccount, Pod and key of its token, and the permissions granted.
 *
 * @example
 * ```ts ignore
 * const authorizer = rememberApprovals(createAuthorizer(...), revocation);
 * ```
 */
export function rememberApprovals(
  authorizer: Authorizer,
  registry: { remember(connection: ApprovedConnection): void },
): Authorizer {
  return async (request) => {
    const result = await authorizer(request);
    if (!result.ok || request.clientInfo.id === undefined) return result;
    const token = extractToken(request.connectOpts);
    const facts = token === undefined ? undefined : tokenFacts(token);
    if (facts) {
      registry.remember({
        ...facts,
        serverId: request.serverId,
        cid: request.clientInfo.id,
        permissions: result.user.permissions,
        ...(result.user.account !== undefined ? { account: result.user.account } : {}),
        expiresAt: result.user.expiresAt,
      });
    }
    return result;
  };
}
