/**
 * The approved connections one replica remembers for live revocation (DESIGN D6), indexed so that
 * the work of a check follows the changes, not the number of connections (issue 18): by
 * ServiceAccount, by bound Pod, by the `kid` that signed the token, by namespace, and by the
 * second their user JWT expires. What changed since the last check is marked here — a
 * ServiceAccount, a Pod, a Namespace, a key, "everything", a connection just remembered, a kick to
 * retry — and {@linkcode ApprovedConnections.takeCandidates} hands over exactly the connections
 * those marks touch. An idle replica with 100,000 connections therefore does no per-connection
 * work at all between changes.
 *
 * @module
 */
import type { ServiceMetrics } from "../telemetry/service_metrics.ts";
import type { ApprovedConnection } from "./revocation.ts";

/** The remembered connections, their indexes, and what changed since the last check. */
export interface ApprovedConnections {
  /** Remember (or replace) one connection; it is a candidate of the next check. */
  remember(connection: ApprovedConnection): void;
  /** Forget one connection: it is gone, or has been kicked. */
  forget(serverId: string, cid: number): void;
  /** Forget every connection whose user JWT has expired by `seconds`: the server closed it. */
  forgetExpired(seconds: number): void;
  /** Whether the connection is remembered. */
  has(serverId: string, cid: number): boolean;
  /** The remembered connections, in the order they were first remembered. */
  values(): IterableIterator<ApprovedConnection>;
  /** How many are remembered. */
  readonly size: number;
  /** The distinct `kid`s of the remembered tokens, with their `alg`. */
  kids(): Map<string, string>;
  /**
   * True the first time a kick of this connection fails since it was remembered, so that failure
   * is logged once at warn however often the kick is retried.
   */
  firstKickFailure(serverId: string, cid: number): boolean;

  /** The ServiceAccount `namespace/name` changed: its connections are candidates. */
  serviceAccountChanged(namespace: string, name: string): void;
  /** The Pod `namespace/name` changed: the connections of tokens bound to it are candidates. */
  podChanged(namespace: string, name: string): void;
  /** The Namespace changed (its labels): every connection in it is a candidate. */
  namespaceChanged(namespace: string): void;
  /** The key `kid` is gone or replaced: the connections of tokens it signed are candidates. */
  keyChanged(kid: string): void;
  /** Anything may have changed (a relist, a policy reload): every connection is a candidate. */
  everythingChanged(): void;
  /** A kick of this connection failed: it is a candidate again. */
  retry(connection: ApprovedConnection): void;
  /**
   * The candidates marked since the last call, and clear the marks: everything when
   * `everythingChanged` was called, else the union of the marked groups, each connection once.
   */
  takeCandidates(): ApprovedConnection[];
  /** Whether any change is marked (so a check has anything to do). */
  readonly pending: boolean;
}

function connectionKey(serverId: string, cid: number): string {
  return `${serverId}${SEP}${cid}`;
}

function nameKey(namespace: string, name: string): string {
  return `${namespace}${SEP}${name}`;
}

const SEP = "\u0000";

/** `map[key]`'s set, created on first use. */
function bucket<K, V>(map: Map<K, Set<V>>, key: K): Set<V> {
  let set = map.get(key);
  if (!set) {
    set = new Set();
    map.set(key, set);
  }
  return set;
}

/** Remove `value` from `map[key]`, dropping the set once empty. */
function unbucket<K, V>(map: Map<K, Set<V>>, key: K, value: V): void {
  const set = map.get(key);
  if (set?.delete(value) && set.size === 0) map.delete(key);
}

/**
 * An empty {@linkcode ApprovedConnections}; each change of the set updates the `liveConnections`
 * gauge.
 *
 * @example
 * ```ts
 * import { createApprovedConnections } from "./approved_connections.ts";
 * import { createServiceMetrics } from "../telemetry/service_metrics.ts";
 * const live = createApprovedConnections(createServiceMetrics());
 * const permissions = { pub: { allow: [] }, sub: { allow: [] }, resp: { max: 0, ttlNs: 0 } };
 * live.remember({ serverId: "N1", cid: 7, namespace: "a", serviceAccount: "s", uid: "u",
 *   permissions, expiresAt: 2e9 });
 * console.assert(live.takeCandidates().length === 1); // new: checked once
 * console.assert(live.takeCandidates().length === 0); // then only after a change
 * live.serviceAccountChanged("a", "s");
 * console.assert(live.takeCandidates().length === 1);
 * ```
 */
export function createApprovedConnections(metrics: ServiceMetrics): ApprovedConnections {
  const live = new Map<string, ApprovedConnection>();
  const byServiceAccount = new Map<string, Set<ApprovedConnection>>();
  const byPod = new Map<string, Set<ApprovedConnection>>();
  const byKid = new Map<string, Set<ApprovedConnection>>();
  /** ServiceAccount keys with connections, per namespace (for Namespace changes). */
  const byNamespace = new Map<string, Set<string>>();
  /** Connections by the whole second their user JWT expires. */
  const byExpiry = new Map<number, Set<ApprovedConnection>>();
  /** Up to which second expiry has been applied. */
  let expiredUpTo: number | undefined;
  const failedBefore = new Set<string>();

  let allChanged = false;
  const changedServiceAccounts = new Set<string>();
  const changedPods = new Set<string>();
  const changedKids = new Set<string>();
  const marked = new Set<ApprovedConnection>();

  const gauge = () => metrics.liveConnections.set(live.size);

  const index = (c: ApprovedConnection): void => {
    const sa = nameKey(c.namespace, c.serviceAccount);
    bucket(byServiceAccount, sa).add(c);
    bucket(byNamespace, c.namespace).add(sa);
    if (c.podName !== undefined) bucket(byPod, nameKey(c.namespace, c.podName)).add(c);
    if (c.kid !== undefined) bucket(byKid, c.kid).add(c);
    bucket(byExpiry, Math.floor(c.expiresAt)).add(c);
  };
  const unindex = (c: ApprovedConnection): void => {
    const sa = nameKey(c.namespace, c.serviceAccount);
    unbucket(byServiceAccount, sa, c);
    if (!byServiceAccount.has(sa)) unbucket(byNamespace, c.namespace, sa);
    if (c.podName !== undefined) unbucket(byPod, nameKey(c.namespace, c.podName), c);
    if (c.kid !== undefined) unbucket(byKid, c.kid, c);
    unbucket(byExpiry, Math.floor(c.expiresAt), c);
    marked.delete(c);
  };

  const forget = (serverId: string, cid: number): void => {
    const key = connectionKey(serverId, cid);
    failedBefore.delete(key);
    const c = live.get(key);
    if (!c) return;
    live.delete(key);
    unindex(c);
    gauge();
  };

  return {
    remember: (c) => {
      const key = connectionKey(c.serverId, c.cid);
      const before = live.get(key);
      if (before) unindex(before);
      live.set(key, c);
      index(c);
      // Checked once against the state of the next check: a change that raced with this login
      // (the ServiceAccount deleted while it was decided) is caught then.
      marked.add(c);
      gauge();
    },
    forget,
    forgetExpired: (seconds) => {
      const upTo = Math.floor(seconds);
      // Only the seconds that passed since the last call; the first call, a clock that jumped
      // back or a long pause walks the (fewer) buckets instead.
      if (expiredUpTo === undefined || expiredUpTo > upTo || upTo - expiredUpTo > byExpiry.size) {
        for (const [second, set] of [...byExpiry]) {
          if (second <= upTo) { for (const c of [...set]) forget(c.serverId, c.cid); }
        }
      } else {
        for (let second = expiredUpTo + 1; second <= upTo; second++) {
          const set = byExpiry.get(second);
          if (set) { for (const c of [...set]) forget(c.serverId, c.cid); }
        }
      }
      expiredUpTo = upTo;
      gauge();
    },
    has: (serverId, cid) => live.has(connectionKey(serverId, cid)),
    values: () => live.values(),
    get size() {
      return live.size;
    },
    kids: () => {
      const kids = new Map<string, string>();
      for (const [kid, set] of byKid) {
        for (const c of set) {
          if (c.alg !== undefined) {
            kids.set(kid, c.alg);
            break;
          }
        }
      }
      return kids;
    },
    firstKickFailure: (serverId, cid) => {
      const key = connectionKey(serverId, cid);
      if (failedBefore.has(key)) return false;
      failedBefore.add(key);
      return true;
    },

    serviceAccountChanged: (namespace, name) => {
      const key = nameKey(namespace, name);
      if (byServiceAccount.has(key)) changedServiceAccounts.add(key);
    },
    podChanged: (namespace, name) => {
      const key = nameKey(namespace, name);
      if (byPod.has(key)) changedPods.add(key);
    },
    namespaceChanged: (namespace) => {
      for (const key of byNamespace.get(namespace) ?? []) changedServiceAccounts.add(key);
    },
    keyChanged: (kid) => {
      if (byKid.has(kid)) changedKids.add(kid);
    },
    everythingChanged: () => {
      allChanged = true;
    },
    retry: (c) => {
      if (live.get(connectionKey(c.serverId, c.cid)) === c) marked.add(c);
    },
    takeCandidates: () => {
      let candidates: ApprovedConnection[];
      if (allChanged) {
        candidates = [...live.values()];
      } else {
        const union = new Set(marked);
        for (const key of changedServiceAccounts) {
          for (const c of byServiceAccount.get(key) ?? []) union.add(c);
        }
        for (const key of changedPods) for (const c of byPod.get(key) ?? []) union.add(c);
        for (const kid of changedKids) for (const c of byKid.get(kid) ?? []) union.add(c);
        candidates = [...union];
      }
      allChanged = false;
      changedServiceAccounts.clear();
      changedPods.clear();
      changedKids.clear();
      marked.clear();
      return candidates;
    },
    get pending() {
      return allChanged || marked.size > 0 || changedServiceAccounts.size > 0 ||
        changedPods.size > 0 || changedKids.size > 0;
    },
  };
}
