/**
 * The schema of the service's environment: one row per variable it reads — its name, the older
 * names still read in its place, its default, and the `Config` field it sets. The names
 * and defaults are the Go reference's, so this service is a drop-in replacement.
 *
 * Everything that lists the variables derives from this table: {@linkcode CONFIG_ENV_VARS} (the
 * `--help` text, the dev launcher), `loadConfig`'s defaults, and the scoped `--allow-env` of the
 * `start`, `explain` and `compile` tasks (lib/config/permissions.ts, written into deno.json by
 * `deno task permissions`). A new variable is one new row.
 *
 * @module
 */
/** The in-cluster apiserver address, used when the kubelet did not set `KUBERNETES_SERVICE_HOST`. */
export const IN_CLUSTER_API_SERVER_URL = "https://kubernetes.default.svc";
/** Where Kubernetes mounts the pod's ServiceAccount CA. */
export const IN_CLUSTER_CA_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
/** Where Kubernetes mounts the pod's ServiceAccount token. */
export const IN_CLUSTER_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/**
 * The reference answers through synadia-io/callout.go, a NATS micro service, whose queue group is
 * micro's default "q". Sharing it means a rolling upgrade from the Go service never has both
 * versions answering the same request.
 */
export const DEFAULT_QUEUE_GROUP = "q";

/** One environment variable the service reads. */
export interface ConfigVariable {
  /** The name an operator sets. */
  readonly name: string;
  /** Older names read when `name` is unset (setting both to different values is a problem). */
  readonly aliases?: readonly string[];
  /** The value used when the variable is unset or empty, spelled as it would be set. */
  readonly default?: string;
  /** The `Config` field the variable sets, as a dotted path. */
  readonly sets: string;
  /**
   * The value is a secret that may look like an nkey seed (a NATS token), so it is not checked for
   * a seed pasted where a public value belongs. @default {false}
   */
  readonly acceptsSeed?: boolean;
}

/**
 * Every variable the service reads, in the order `--help` lists them and start-up checks them for
 * a misplaced seed. `KUBERNETES_SERVICE_HOST`/`PORT` are set by the kubelet in every pod and `HOME`
 * by the shell; the service reads them like the others.
 */
export const CONFIG_VARIABLES: readonly ConfigVariable[] = Object.freeze([
  { name: "PORT", default: "8080", sets: "port" },
  { name: "LOG_LEVEL", default: "info", sets: "logLevel" },
  { name: "NATS_URL", default: "nats://nats:4222", sets: "nats.servers" },
  { name: "NATS_USER_CREDS_FILE", aliases: ["NATS_CREDS_FILE"], sets: "nats.credsFile" },
  { name: "NATS_TOKEN", sets: "nats.token", acceptsSeed: true },
  { name: "NATS_TLS_CA_FILE", sets: "nats.tls.caFile" },
  { name: "NATS_TLS_CERT_FILE", sets: "nats.tls.certFile" },
  { name: "NATS_TLS_KEY_FILE", sets: "nats.tls.keyFile" },
  { name: "NATS_QUEUE_GROUP", default: DEFAULT_QUEUE_GROUP, sets: "nats.queueGroup" },
  { name: "NATS_SYSTEM_CREDS_FILE", sets: "nats.system.credsFile" },
  { name: "NATS_SYSTEM_TOKEN", sets: "nats.system.token" },
  { name: "NATS_SYSTEM_USER", sets: "nats.system.user" },
  { name: "NATS_SYSTEM_PASSWORD", sets: "nats.system.password" },
  { name: "NATS_ACCOUNT", sets: "account" },
  { name: "NATS_SIGNING_KEY_FILE", sets: "signingKeyFile" },
  { name: "NATS_XKEY_SEED_FILE", sets: "xkeySeedFile" },
  { name: "NATS_OPERATOR_SIGNING_KEY_FILE", sets: "provisioning.operatorSigningKeyFile" },
  { name: "NATS_ACCOUNTS_SEED_FILE", sets: "provisioning.accountsSeedFile" },
  { name: "NATS_USER_JWT_TTL", sets: "userJwtTtlMs" },
  { name: "JWKS_URL", sets: "jwt.jwksUrl" },
  { name: "JWKS_PATH", sets: "jwt.jwksPath" },
  { name: "JWT_ISSUER", sets: "jwt.issuers" },
  { name: "JWT_AUDIENCE", default: "nats", sets: "jwt.audience" },
  { name: "JWT_AUDIENCE_ALLOW_API_AUDIENCE", default: "false", sets: "jwt.allowApiAudience" },
  { name: "K8S_IN_CLUSTER", default: "true", sets: "k8s.inCluster" },
  { name: "K8S_NAMESPACE", sets: "k8s.namespace" },
  { name: "KUBECONFIG", sets: "k8s.kubeconfig" },
  { name: "HOME", sets: "k8s.home" },
  { name: "K8S_CA_FILE", default: IN_CLUSTER_CA_FILE, sets: "k8s.caFile" },
  { name: "K8S_TOKEN_FILE", default: IN_CLUSTER_TOKEN_FILE, sets: "k8s.tokenFile" },
  { name: "K8S_WATCH_PODS", default: "true", sets: "k8s.watchPods" },
  { name: "KUBERNETES_SERVICE_HOST", sets: "k8s.apiServerUrl" },
  { name: "KUBERNETES_SERVICE_PORT", default: "443", sets: "k8s.apiServerUrl" },
  { name: "SA_ANNOTATION_PREFIX", default: "nats.io/", sets: "annotationPrefix" },
  { name: "CACHE_CLEANUP_INTERVAL", default: "15m", sets: "relistIntervalMs" },
  { name: "CACHE_MAX_STALENESS", sets: "cacheMaxStalenessMs" },
  { name: "SERVICEACCOUNTS_FILE", sets: "serviceAccountsFile" },
  { name: "POLICY_FILE", sets: "policyFile" },
  { name: "EXPLAIN_ENABLED", default: "false", sets: "explainEnabled" },
].map((row: ConfigVariable) => Object.freeze(row)));

/**
 * Every environment variable `loadConfig` reads (each name, then its aliases), for a scoped
 * `--allow-env` and for `--help`.
 */
export const CONFIG_ENV_VARS: readonly string[] = Object.freeze(
  CONFIG_VARIABLES.flatMap((v) => [v.name, ...(v.aliases ?? [])]),
);

const DEFAULTS: ReadonlyMap<string, string> = new Map(
  CONFIG_VARIABLES.flatMap((v) => v.default === undefined ? [] : [[v.name, v.default]]),
);

/**
 * The default of variable `name`, from {@linkcode CONFIG_VARIABLES}, so `loadConfig` and the table
 * cannot disagree; undefined for a variable without one (unset means off, or required).
 */
export function defaultOf(name: string): string | undefined {
  return DEFAULTS.get(name);
}
