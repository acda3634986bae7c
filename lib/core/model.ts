/**
 * Plain data shared by the login pipeline's steps. No behaviour lives here.
 *
 * @module
 */

/** Who a verified Kubernetes ServiceAccount token says the caller is. */
export interface TokenIdentity {
  /** Namespace of the ServiceAccount (claim `kubernetes.io.namespace`). */
  readonly namespace: string;
  /** ServiceAccount name (claim `kubernetes.io.serviceaccount.name`). */
  readonly serviceAccount: string;
  /** ServiceAccount UID at the time the token was issued. */
  readonly uid: string;
  /** Pod the token is bound to, when it is a bound token (claim `kubernetes.io.pod.name`). */
  readonly podName?: string;
  /** UID of that Pod (claim `kubernetes.io.pod.uid`). */
  readonly podUid?: string;
  /** Token expiry, seconds since the epoch. */
  readonly expiresAt: number;
  /** When the token was issued (claim `iat`), seconds since the epoch; the policy's lifetime bound. */
  readonly issuedAt?: number;
}

/** What the cache keeps of one ServiceAccount: only what decisions need. */
export interface ServiceAccountRecord {
  /** `metadata.namespace`, a DNS-1123 label (both sources refuse any other). */
  readonly namespace: string;
  /** `metadata.name`, a DNS-1123 subdomain (both sources refuse any other). */
  readonly name: string;
  /** `metadata.uid`; a token for another uid is refused (the ServiceAccount was recreated). */
  readonly uid: string;
  /** Only the annotations under the configured prefix (e.g. `nats.io/`), keyed by full name. */
  readonly annotations: Readonly<Record<string, string>>;
}

/** The NATS permissions granted to one login. */
export interface Permissions {
  /** `deny` (from a policy file) wins over `allow`, as in NATS itself. */
  readonly pub: { readonly allow: readonly string[]; readonly deny?: readonly string[] };
  /** Subscribe permissions, with `deny` winning over `allow` as for `pub`. */
  readonly sub: { readonly allow: readonly string[]; readonly deny?: readonly string[] };
  /** Reply permission: how many responses and for how long (nanoseconds, as NATS wants). */
  readonly resp: { readonly max: number; readonly ttlNs: number };
}

/** Look a ServiceAccount up by namespace and name; `undefined` when it does not exist. */
export type ServiceAccountLookup = (
  namespace: string,
  name: string,
) => ServiceAccountRecord | undefined;

/**
 * Where ServiceAccounts come from: the Kubernetes list/watch cache, or a manifest file in dev mode.
 * Both keep the whole set in memory and answer lookups synchronously.
 */
export interface ServiceAccountSource extends AsyncDisposable {
  /** Synchronous lookup in the current snapshot. */
  readonly lookup: ServiceAccountLookup;
  /** True once the first complete load has finished (readiness). */
  readonly synced: boolean;
  /** ServiceAccounts currently known. */
  readonly size: number;
  /**
   * When the source last heard from its origin (epoch ms): a completed list, an opened watch, a
   * watch event or bookmark. Absent for sources that are always current (a local file). The
   * service reports `now - freshAt` as the cache's staleness.
   */
  readonly freshAt?: number;
  /** Resolves after the first complete load; rejects if `signal` aborts first. */
  waitSynced(signal?: AbortSignal): Promise<void>;
  /**
   * Load the whole set again now (SIGHUP, `POST /resync`) instead of at the next interval. Returns
   * at once; the new snapshot replaces the old when complete, as an interval relist does.
   */
  resync(): void;
  /** Stop watching and release every timer, stream and file watcher. */
  close(): Promise<void>;
}

/** What the Pod cache keeps of one Pod (metadata only): enough to check a bound token. */
export interface PodRecord {
  /** The Pod's `metadata.namespace`. */
  readonly namespace: string;
  /** The Pod's `metadata.name`, as a bound token's `kubernetes.io.pod.name` names it. */
  readonly name: string;
  /** `metadata.uid`; a token bound to another uid is refused (the Pod was recreated). */
  readonly uid: string;
  /**
   * `metadata.deletionTimestamp` in ms since the epoch, when the Pod is being deleted (graceful
   * termination, finalizers). The apiserver refuses its bound tokens from 60 s after that moment.
   */
  readonly deletingSince?: number;
}

/** Look a Pod up by namespace and name; `undefined` when it does not exist. */
export type PodLookup = (namespace: string, name: string) => PodRecord | undefined;

/** The labels of a Namespace by name; `undefined` when the Namespace is not known. */
export type NamespaceLabelsLookup = (name: string) => Readonly<Record<string, string>> | undefined;
