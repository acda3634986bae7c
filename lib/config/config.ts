/**
 * Configuration from environment variables, read once into a frozen, fully typed object. The
 * variable names and defaults are the Go reference's, so this is a drop-in replacement; unlike the
 * reference, a malformed value stops the start with one error that lists every problem at once,
 * instead of silently becoming the default. Seeds are read and checked here, at the boundary,
 * and never appear in an error message or in {@linkcode describeConfig}.
 *
 * @module
 */
import * as nkeys from "@nats-io/nkeys";
import { formatDuration, parseDuration } from "../core/duration.ts";
import { type LogLevel, redactUrl } from "../telemetry/log.ts";
import { subjectProblem } from "../core/subjects.ts";

/** The service's configuration. Frozen; seeds are secrets and are left out of describeConfig. */
export interface Config {
  /** HTTP port for /healthz, /readyz, /metrics (`PORT`). @default {8080} */
  readonly port: number;
  /** Lowest log level written (`LOG_LEVEL`, "warning" accepted for warn). @default {"info"} */
  readonly logLevel: LogLevel;
  /** The service's own NATS connection. */
  readonly nats: {
    /** `NATS_URL`, comma-separated; may embed `user:pass@`. @default {["nats://nats:4222"]} */
    readonly servers: readonly string[];
    /** `NATS_USER_CREDS_FILE` (alias `NATS_CREDS_FILE`): user JWT + seed for the connection. */
    readonly credsFile?: string;
    /** `NATS_TOKEN`: token for the connection (exclusive with credsFile). */
    readonly token?: string;
    /** `NATS_TLS_CA_FILE`, `NATS_TLS_CERT_FILE`, `NATS_TLS_KEY_FILE` (cert and key together). */
    readonly tls?: {
      readonly caFile?: string;
      readonly certFile?: string;
      readonly keyFile?: string;
    };
    /** `NATS_QUEUE_GROUP`: the reference's queue group ("q", NATS micro's default). @default {"q"} */
    readonly queueGroup: string;
    /**
     * Live revocation's system-account connection (same servers and TLS as the main one): one of
     * `NATS_SYSTEM_CREDS_FILE`, `NATS_SYSTEM_TOKEN`, or `NATS_SYSTEM_USER` + `NATS_SYSTEM_PASSWORD`.
     * Unset: live revocation is off.
     */
    readonly system?: {
      readonly credsFile?: string;
      readonly token?: string;
      readonly user?: string;
      readonly password?: string;
    };
  };
  /**
   * `NATS_ACCOUNT` (required): the account logged-in clients are placed in — its name in config
   * mode, its public `A…` key in operator mode.
   */
  readonly account: string;
  /** `NATS_SIGNING_KEY_FILE` (required): path of the account seed file. */
  readonly signingKeyFile: string;
  /** The `SA…` account seed read from signingKeyFile (plain, or the seed block of a creds file). */
  readonly signingKeySeed: string;
  /** `NATS_XKEY_SEED_FILE`: path of the `SX…` curve seed, when the callout is encrypted. */
  readonly xkeySeedFile?: string;
  /** The `SX…` curve seed read from xkeySeedFile. */
  readonly xkeySeed?: string;
  /**
   * `NATS_USER_JWT_TTL`: optional cap on the life of an issued user JWT (10s–24h). Unset, a user JWT
   * lives as long as the token it was issued for. @default {undefined}
   */
  readonly userJwtTtlMs?: number;
  /** ServiceAccount token verification. */
  readonly jwt: {
    /** `JWKS_URL`; undefined (with no jwksPath) means the apiserver's `/openid/v1/jwks`. */
    readonly jwksUrl?: string;
    /** `JWKS_PATH`: a JWKS file instead of a URL (exclusive with JWKS_URL). */
    readonly jwksPath?: string;
    /**
     * `JWT_ISSUER`: the accepted issuers, comma-separated (several while a cluster migrates its
     * `--service-account-issuer`); undefined means discover the issuer from the apiserver.
     */
    readonly issuers?: readonly string[];
    /** `JWT_AUDIENCE`. @default {"nats"} */
    readonly audience: string;
    /**
     * `JWT_AUDIENCE_ALLOW_API_AUDIENCE`: allow an audience the apiserver itself accepts (which makes
     * every pod's default API token a NATS login). @default {false}
     */
    readonly allowApiAudience: boolean;
  };
  /** Kubernetes access. */
  readonly k8s: {
    /** `K8S_IN_CLUSTER` (Go ParseBool spellings). @default {true} */
    readonly inCluster: boolean;
    /** `K8S_NAMESPACE`: watch one namespace; undefined watches all. */
    readonly namespace?: string;
    /** `KUBECONFIG`: used out of cluster (a `:`-separated list, as kubectl reads it). */
    readonly kubeconfig?: string;
    /** `HOME`, for the default kubeconfig `~/.kube/config` when KUBECONFIG is unset. */
    readonly home?: string;
    /**
     * The apiserver in-cluster: `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT` (set by
     * the kubelet in every pod), else the service DNS name. @default {"https://kubernetes.default.svc"}
     */
    readonly apiServerUrl: string;
    /** `K8S_CA_FILE`: the cluster CA (in-cluster). @default {the pod's ServiceAccount ca.crt} */
    readonly caFile: string;
    /** `K8S_TOKEN_FILE`: the ServiceAccount token (in-cluster), re-read per request. @default {the pod's ServiceAccount token} */
    readonly tokenFile: string;
    /**
     * `K8S_WATCH_PODS`: watch Pods' metadata and refuse tokens bound to a Pod that is gone or was
     * recreated (needs list/watch on pods). Not used with SERVICEACCOUNTS_FILE. @default {true}
     */
    readonly watchPods: boolean;
  };
  /** `SA_ANNOTATION_PREFIX`. @default {"nats.io/"} */
  readonly annotationPrefix: string;
  /** `CACHE_CLEANUP_INTERVAL`: full relist interval of the cache (≥ 10s). @default {900000} */
  readonly relistIntervalMs: number;
  /**
   * `CACHE_MAX_STALENESS`: once the ServiceAccount cache has not heard from the apiserver (list,
   * watch event or bookmark) for longer than this, the "serviceaccounts" readiness check fails and
   * says why. Undefined (unset or `0`) turns the bound off. Use at least 3m on a real cluster (a
   * quiet watch hears a bookmark only every 1–2 minutes). @default {undefined (off)}
   */
  readonly cacheMaxStalenessMs?: number;
  /** `SERVICEACCOUNTS_FILE`: take ServiceAccounts from this manifest instead of the apiserver. */
  readonly serviceAccountsFile?: string;
  /** `POLICY_FILE`: the cluster policy (YAML, lib/decision/policy_file.ts); without it, today's behaviour. */
  readonly policyFile?: string;
  /** `EXPLAIN_ENABLED`: serve `/explain` on the HTTP port (lib/operations/explain.ts). @default {false} */
  readonly explainEnabled: boolean;
}

/** The in-cluster apiserver address. */
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

/** Every environment variable {@linkcode loadConfig} reads, for a scoped `--allow-env`. */
export const CONFIG_ENV_VARS: readonly string[] = Object.freeze([
  "PORT",
  "LOG_LEVEL",
  "NATS_URL",
  "NATS_USER_CREDS_FILE",
  "NATS_CREDS_FILE",
  "NATS_TOKEN",
  "NATS_TLS_CA_FILE",
  "NATS_TLS_CERT_FILE",
  "NATS_TLS_KEY_FILE",
  "NATS_QUEUE_GROUP",
  "NATS_SYSTEM_CREDS_FILE",
  "NATS_SYSTEM_TOKEN",
  "NATS_SYSTEM_USER",
  "NATS_SYSTEM_PASSWORD",
  "NATS_ACCOUNT",
  "NATS_SIGNING_KEY_FILE",
  "NATS_XKEY_SEED_FILE",
  "NATS_USER_JWT_TTL",
  "JWKS_URL",
  "JWKS_PATH",
  "JWT_ISSUER",
  "JWT_AUDIENCE",
  "JWT_AUDIENCE_ALLOW_API_AUDIENCE",
  "K8S_IN_CLUSTER",
  "K8S_NAMESPACE",
  "KUBECONFIG",
  "HOME",
  "K8S_CA_FILE",
  "K8S_TOKEN_FILE",
  "K8S_WATCH_PODS",
  "KUBERNETES_SERVICE_HOST",
  "KUBERNETES_SERVICE_PORT",
  "SA_ANNOTATION_PREFIX",
  "CACHE_CLEANUP_INTERVAL",
  "CACHE_MAX_STALENESS",
  "SERVICEACCOUNTS_FILE",
  "POLICY_FILE",
  "EXPLAIN_ENABLED",
]);

/**
 * The configuration cannot be used. `problems` has one entry per problem, each naming the
 * variable and what is wrong; the message lists them all, one per line, so one failed start shows
 * everything to fix. No problem text contains a seed or a token.
 */
export class ConfigError extends Error {
  /** One line per problem, `VARIABLE: what is wrong`. */
  readonly problems: readonly string[];

  /** Create the error from the collected problems. */
  constructor(problems: readonly string[]) {
    const n = problems.length;
    super(
      `Invalid configuration (${n} problem${n === 1 ? "" : "s"}):\n` +
        problems.map((p) => `  - ${p}`).join("\n"),
    );
    this.name = "ConfigError";
    this.problems = Object.freeze([...problems]);
  }
}

/** Options of {@linkcode loadConfig}. */
export interface LoadConfigOptions {
  /** Reads the seed files. @default {Deno.readTextFileSync} */
  readTextFile?: (path: string) => string;
}

const GO_TRUE = new Set(["1", "t", "T", "TRUE", "true", "True"]);
const GO_FALSE = new Set(["0", "f", "F", "FALSE", "false", "False"]);
const LOG_LEVELS: Readonly<Record<string, LogLevel>> = {
  debug: "debug",
  info: "info",
  warn: "warn",
  warning: "warn",
  error: "error",
  // zap's levels above error, so a reference configuration keeps working.
  dpanic: "error",
  panic: "error",
  fatal: "error",
};
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const KEY_KINDS: Readonly<Record<string, string>> = {
  A: "account",
  U: "user",
  O: "operator",
  N: "server",
  C: "cluster",
  X: "curve (xkey)",
};

const SECOND = 1000;
const HOUR = 3_600_000;

/** Quote a user-supplied (non-secret) value for a problem line, shortened if long. */
function show(value: string): string {
  return JSON.stringify(value.length > 80 ? value.slice(0, 77) + "..." : value);
}

/**
 * Build the {@linkcode Config} from environment variables. Every problem is collected and thrown
 * together as a {@linkcode ConfigError}. Empty values count as unset, like the reference. Seed
 * files are read with `readTextFile` and checked: an `SA…` account seed for the signing key, an
 * `SX…` curve seed for the xkey, each as a plain seed or the seed block of a creds file.
 *
 * @example
 * ```ts ignore
 * import { loadConfig } from "./config.ts";
 * const config = loadConfig(Deno.env.toObject());
 * ```
 */
export function loadConfig(
  env: Readonly<Record<string, string | undefined>>,
  options: LoadConfigOptions = {},
): Config {
  const { readTextFile = (path: string) => Deno.readTextFileSync(path) } = options;
  const problems: string[] = [];
  const problem = (text: string): void => {
    problems.push(text);
  };
  // A seed pasted where a public value belongs must not pass, nor be echoed by a later problem
  // line or the start-up log: such a variable reads as unset from here on, and its own problems
  // are dropped in favour of the one line saying a seed was found.
  const seedIn = new Set(seedProblems(env, problem));
  const get = (name: string): string | undefined => {
    if (seedIn.has(name)) return undefined;
    const value = env[name]?.trim();
    return value === undefined || value === "" ? undefined : value;
  };

  // HTTP and logging.
  let port = 8080;
  const portRaw = get("PORT");
  if (portRaw !== undefined) {
    const n = /^\d+$/.test(portRaw) ? Number(portRaw) : NaN;
    if (Number.isInteger(n) && n >= 1 && n <= 65535) port = n;
    else problem(`PORT: ${show(portRaw)} is not a port number (1-65535)`);
  }

  let logLevel: LogLevel = "info";
  const levelRaw = get("LOG_LEVEL");
  if (levelRaw !== undefined) {
    const level = LOG_LEVELS[levelRaw.toLowerCase()];
    if (level) logLevel = level;
    else problem(`LOG_LEVEL: ${show(levelRaw)} is not one of debug, info, warn, error`);
  }

  // The service's NATS connection.
  const servers: string[] = [];
  const urlRaw = get("NATS_URL") ?? "nats://nats:4222";
  const entries = urlRaw.split(",").map((s) => s.trim());
  for (const entry of entries) {
    const bad = serverProblem(entry);
    if (bad) problem(`NATS_URL: ${show(maskServerEntry(entry))} ${bad}`);
    else servers.push(entry.includes("://") ? entry : `nats://${entry}`);
  }

  const credsPrimary = get("NATS_USER_CREDS_FILE");
  const credsAlias = get("NATS_CREDS_FILE");
  if (credsPrimary !== undefined && credsAlias !== undefined && credsPrimary !== credsAlias) {
    problem(
      "NATS_USER_CREDS_FILE and NATS_CREDS_FILE: both are set to different files; " +
        "set only NATS_USER_CREDS_FILE (NATS_CREDS_FILE is its old name)",
    );
  }
  const credsFile = credsPrimary ?? credsAlias;
  const token = get("NATS_TOKEN");
  if (credsFile !== undefined && token !== undefined) {
    problem(
      `${credsPrimary !== undefined ? "NATS_USER_CREDS_FILE" : "NATS_CREDS_FILE"} and ` +
        "NATS_TOKEN: they are mutually exclusive; set at most one",
    );
  }

  const caFile = get("NATS_TLS_CA_FILE");
  const certFile = get("NATS_TLS_CERT_FILE");
  const keyFile = get("NATS_TLS_KEY_FILE");
  if (certFile !== undefined && keyFile === undefined) {
    problem("NATS_TLS_KEY_FILE: required when NATS_TLS_CERT_FILE is set (client certificate)");
  }
  if (keyFile !== undefined && certFile === undefined) {
    problem("NATS_TLS_CERT_FILE: required when NATS_TLS_KEY_FILE is set (client certificate)");
  }
  const tls = caFile === undefined && certFile === undefined && keyFile === undefined
    ? undefined
    : {
      ...(caFile !== undefined ? { caFile } : {}),
      ...(certFile !== undefined ? { certFile } : {}),
      ...(keyFile !== undefined ? { keyFile } : {}),
    };

  const queueGroup = get("NATS_QUEUE_GROUP") ?? DEFAULT_QUEUE_GROUP;
  const queueBad = subjectProblem(queueGroup) ??
    (/[*>]/.test(queueGroup) ? "contains a wildcard" : undefined);
  if (queueBad) problem(`NATS_QUEUE_GROUP: ${show(queueGroup)} ${queueBad}`);

  // Live revocation's system-account connection.
  const systemCreds = get("NATS_SYSTEM_CREDS_FILE");
  const systemToken = get("NATS_SYSTEM_TOKEN");
  const systemUser = get("NATS_SYSTEM_USER");
  const systemPassword = get("NATS_SYSTEM_PASSWORD");
  const systemKinds = [systemCreds, systemToken, systemUser].filter((v) => v !== undefined).length;
  if (systemKinds > 1) {
    problem(
      "NATS_SYSTEM_CREDS_FILE, NATS_SYSTEM_TOKEN and NATS_SYSTEM_USER: set only one way for the " +
        "system-account connection to authenticate",
    );
  }
  if (systemPassword !== undefined && systemUser === undefined) {
    problem("NATS_SYSTEM_USER: required when NATS_SYSTEM_PASSWORD is set");
  }
  const system = systemKinds === 0 ? undefined : {
    ...(systemCreds !== undefined ? { credsFile: systemCreds } : {}),
    ...(systemToken !== undefined ? { token: systemToken } : {}),
    ...(systemUser !== undefined ? { user: systemUser } : {}),
    ...(systemUser !== undefined && systemPassword !== undefined
      ? { password: systemPassword }
      : {}),
  };

  const account = get("NATS_ACCOUNT") ?? "";
  if (account === "") {
    problem('NATS_ACCOUNT: required (the account clients are placed in, e.g. "APP")');
  } else if (/\s/.test(account)) {
    problem(`NATS_ACCOUNT: ${show(account)} contains whitespace`);
  } else if (/^A[A-Z2-7]{55}$/.test(account) && !isPublicAccountKey(account)) {
    // A mistyped key would pass as an account name and fail only at the server, on every login.
    problem(
      `NATS_ACCOUNT: ${show(account)} looks like an account public key (operator mode) but is ` +
        "not a valid one (checksum); copy it again, e.g. from `nsc describe account <name>`",
    );
  }

  // Keys.
  const signingKeyFile = get("NATS_SIGNING_KEY_FILE") ?? "";
  let signingKeySeed = "";
  if (signingKeyFile === "") {
    problem("NATS_SIGNING_KEY_FILE: required (file holding the account signing seed, SA...)");
  } else {
    signingKeySeed =
      readSeed("NATS_SIGNING_KEY_FILE", signingKeyFile, "A", readTextFile, problem) ?? "";
  }
  const xkeySeedFile = get("NATS_XKEY_SEED_FILE");
  const xkeySeed = xkeySeedFile === undefined
    ? undefined
    : readSeed("NATS_XKEY_SEED_FILE", xkeySeedFile, "X", readTextFile, problem);

  const userJwtTtlMs = get("NATS_USER_JWT_TTL") === undefined
    ? undefined
    : durationVar(get, problem, "NATS_USER_JWT_TTL", 0, { min: 10 * SECOND, max: 24 * HOUR });

  // Kubernetes.
  let inCluster = true;
  const inClusterRaw = get("K8S_IN_CLUSTER");
  if (inClusterRaw !== undefined) {
    if (GO_TRUE.has(inClusterRaw)) inCluster = true;
    else if (GO_FALSE.has(inClusterRaw)) inCluster = false;
    else problem(`K8S_IN_CLUSTER: ${show(inClusterRaw)} is not a boolean (true or false)`);
  }
  const namespace = get("K8S_NAMESPACE");
  if (namespace !== undefined && !DNS_LABEL.test(namespace)) {
    problem(`K8S_NAMESPACE: ${show(namespace)} is not a valid namespace name (RFC 1123 label)`);
  }
  const kubeconfig = get("KUBECONFIG");
  let watchPods = true;
  const watchPodsRaw = get("K8S_WATCH_PODS");
  if (watchPodsRaw !== undefined) {
    if (GO_TRUE.has(watchPodsRaw)) watchPods = true;
    else if (GO_FALSE.has(watchPodsRaw)) watchPods = false;
    else problem(`K8S_WATCH_PODS: ${show(watchPodsRaw)} is not a boolean (true or false)`);
  }
  const home = get("HOME");
  const k8sCaFile = get("K8S_CA_FILE") ?? IN_CLUSTER_CA_FILE;
  const k8sTokenFile = get("K8S_TOKEN_FILE") ?? IN_CLUSTER_TOKEN_FILE;
  const serviceHost = get("KUBERNETES_SERVICE_HOST");
  const servicePort = get("KUBERNETES_SERVICE_PORT") ?? "443";
  if (!/^\d+$/.test(servicePort) || Number(servicePort) < 1 || Number(servicePort) > 65535) {
    problem(`KUBERNETES_SERVICE_PORT: ${show(servicePort)} is not a port number (1-65535)`);
  }
  const apiServerUrl = serviceHost === undefined
    ? IN_CLUSTER_API_SERVER_URL
    : `https://${serviceHost.includes(":") ? `[${serviceHost}]` : serviceHost}:${servicePort}`;

  // Token verification.
  const jwksUrlRaw = get("JWKS_URL");
  const jwksPath = get("JWKS_PATH");
  if (jwksUrlRaw !== undefined && jwksPath !== undefined) {
    problem("JWKS_URL and JWKS_PATH: they are mutually exclusive; set only one");
  }
  if (jwksUrlRaw !== undefined) {
    const bad = httpUrlProblem(jwksUrlRaw);
    if (bad) problem(`JWKS_URL: ${show(maskServerEntry(jwksUrlRaw))} ${bad}`);
  }
  const jwksUrl = jwksUrlRaw;
  const serviceAccountsFile = get("SERVICEACCOUNTS_FILE");
  // Off unless set; "0" is off too. A quiet, healthy watch on kube-apiserver v1.37 hears its first
  // bookmark after ~120 s, then one every ~60 s: values under 3m flap on a real cluster (the 10 s
  // minimum is for tests).
  const maxStalenessRaw = get("CACHE_MAX_STALENESS");
  const cacheMaxStalenessMs = maxStalenessRaw === undefined || /^0+[a-z]*$/i.test(maxStalenessRaw)
    ? undefined
    : durationVar(get, problem, "CACHE_MAX_STALENESS", 0, { min: 10 * SECOND });
  const issuerRaw = get("JWT_ISSUER");
  const issuers = issuerRaw === undefined ? undefined : parseIssuers(issuerRaw, problem);
  // Without an apiserver to ask (dev mode: ServiceAccounts from a file, out of cluster), the keys
  // and the issuer must be given; otherwise they default to the apiserver's own
  // (`<apiserver>/openid/v1/jwks`, `/.well-known/openid-configuration`).
  if (!inCluster && serviceAccountsFile !== undefined) {
    if (jwksUrl === undefined && jwksPath === undefined) {
      problem("JWKS_URL or JWKS_PATH: one is required with SERVICEACCOUNTS_FILE out of cluster");
    }
    if (issuers === undefined) {
      problem("JWT_ISSUER: required with SERVICEACCOUNTS_FILE out of cluster");
    }
  }
  const audience = get("JWT_AUDIENCE") ?? "nats";
  const allowApiAudience = boolVar(get, problem, "JWT_AUDIENCE_ALLOW_API_AUDIENCE", false);
  if (audience === "" || /[\s,]/.test(audience)) {
    problem(`JWT_AUDIENCE: ${show(audience)} must be one audience, without whitespace or commas`);
  } else if (!allowApiAudience) {
    const risky = apiAudienceRisk(audience, issuers ?? []);
    if (risky) problem(`JWT_AUDIENCE: ${risky}`);
  }

  // ServiceAccounts.
  const annotationPrefix = get("SA_ANNOTATION_PREFIX") ?? "nats.io/";
  if (/\s/.test(annotationPrefix) || (annotationPrefix.match(/\//g)?.length ?? 0) > 1) {
    problem(
      `SA_ANNOTATION_PREFIX: ${show(annotationPrefix)} cannot start an annotation key ` +
        '(no whitespace, at most one "/", e.g. "nats.io/")',
    );
  }
  const relistIntervalMs = durationVar(get, problem, "CACHE_CLEANUP_INTERVAL", 15 * 60 * SECOND, {
    min: 10 * SECOND,
  });
  const policyFile = get("POLICY_FILE");
  let explainEnabled = false;
  const explainRaw = get("EXPLAIN_ENABLED");
  if (explainRaw !== undefined) {
    if (GO_TRUE.has(explainRaw)) explainEnabled = true;
    else if (!GO_FALSE.has(explainRaw)) {
      problem(`EXPLAIN_ENABLED: ${show(explainRaw)} is not a boolean (true or false)`);
    }
  }

  if (problems.length > 0) {
    throw new ConfigError(
      problems.filter((p) =>
        ![...seedIn].some((name) => p.startsWith(`${name}:`) && !p.includes(SEED_PROBLEM))
      ),
    );
  }

  const config: Config = {
    port,
    logLevel,
    nats: {
      servers,
      ...(credsFile !== undefined ? { credsFile } : {}),
      ...(token !== undefined ? { token } : {}),
      ...(tls !== undefined ? { tls } : {}),
      queueGroup,
      ...(system !== undefined ? { system } : {}),
    },
    account,
    signingKeyFile,
    signingKeySeed,
    ...(xkeySeedFile !== undefined ? { xkeySeedFile } : {}),
    ...(xkeySeed !== undefined ? { xkeySeed } : {}),
    ...(userJwtTtlMs !== undefined ? { userJwtTtlMs } : {}),
    jwt: {
      ...(jwksUrl !== undefined ? { jwksUrl } : {}),
      ...(jwksPath !== undefined ? { jwksPath } : {}),
      ...(issuers !== undefined ? { issuers } : {}),
      audience,
      allowApiAudience,
    },
    k8s: {
      inCluster,
      ...(namespace !== undefined ? { namespace } : {}),
      ...(kubeconfig !== undefined ? { kubeconfig } : {}),
      ...(home !== undefined ? { home } : {}),
      apiServerUrl,
      caFile: k8sCaFile,
      tokenFile: k8sTokenFile,
      watchPods,
    },
    annotationPrefix,
    relistIntervalMs,
    ...(cacheMaxStalenessMs !== undefined ? { cacheMaxStalenessMs } : {}),
    ...(serviceAccountsFile !== undefined ? { serviceAccountsFile } : {}),
    ...(policyFile !== undefined ? { policyFile } : {}),
    explainEnabled,
  };
  return deepFreeze(config);
}

/**
 * A summary of `config` that is safe for the startup log line: no seed, no token, URL passwords
 * masked; public keys are shown instead of seeds so an operator can check them against the
 * nats-server configuration. Keys avoid the names the logger redacts (`creds`, `token`, `seed`).
 *
 * @example
 * ```ts ignore
 * import { describeConfig, loadConfig } from "./config.ts";
 * const config = loadConfig(Deno.env.toObject());
 * console.log(JSON.stringify(describeConfig(config)));
 * ```
 */
export function describeConfig(config: Config): Record<string, unknown> {
  const { nats, jwt, k8s } = config;
  return {
    port: config.port,
    log_level: config.logLevel,
    nats_servers: nats.servers.map(redactUrl),
    nats_auth: nats.credsFile !== undefined
      ? "user_credentials_file"
      : nats.token !== undefined
      ? "token"
      : nats.servers.some((s) => /:\/\/[^/]*@/.test(s))
      ? "url_userinfo"
      : "none",
    ...(nats.credsFile !== undefined ? { nats_user_file: nats.credsFile } : {}),
    ...(nats.tls !== undefined
      ? {
        nats_tls: {
          ...(nats.tls.caFile !== undefined ? { ca_file: nats.tls.caFile } : {}),
          ...(nats.tls.certFile !== undefined ? { cert_file: nats.tls.certFile } : {}),
          ...(nats.tls.keyFile !== undefined ? { key_file: nats.tls.keyFile } : {}),
        },
      }
      : {}),
    nats_queue_group: nats.queueGroup,
    live_revocation: nats.system === undefined
      ? "off (no NATS_SYSTEM_* credentials)"
      : nats.system.credsFile !== undefined
      ? `system user credentials file ${nats.system.credsFile}`
      : nats.system.user !== undefined
      ? `system user ${nats.system.user} with password`
      : "system user by shared secret",
    account: config.account,
    signing_key_file: config.signingKeyFile,
    signing_key_public: publicKeyOf(config.signingKeySeed),
    ...(config.xkeySeedFile !== undefined ? { xkey_file: config.xkeySeedFile } : {}),
    ...(config.xkeySeed !== undefined ? { xkey_public: publicKeyOf(config.xkeySeed) } : {}),
    user_jwt_ttl: config.userJwtTtlMs !== undefined
      ? formatDuration(config.userJwtTtlMs)
      : "(token lifetime)",
    ...(jwt.jwksPath !== undefined ? { jwks_path: jwt.jwksPath } : {
      jwks_url: jwt.jwksUrl !== undefined ? redactUrl(jwt.jwksUrl) : "(apiserver /openid/v1/jwks)",
    }),
    jwt_issuer: jwt.issuers?.join(",") ?? "(discover from apiserver)",
    jwt_audience: jwt.audience,
    ...(jwt.allowApiAudience ? { jwt_audience_allow_api_audience: true } : {}),
    k8s_in_cluster: k8s.inCluster,
    k8s_namespace: k8s.namespace ?? "(all)",
    ...(k8s.kubeconfig !== undefined ? { kubeconfig: k8s.kubeconfig } : {}),
    ...(k8s.inCluster
      ? {
        k8s_api_server_url: k8s.apiServerUrl,
        k8s_ca_file: k8s.caFile,
        k8s_token_file: k8s.tokenFile,
      }
      : {}),
    k8s_watch_pods: config.serviceAccountsFile === undefined && k8s.watchPods,
    annotation_prefix: config.annotationPrefix,
    relist_interval: formatDuration(config.relistIntervalMs),
    cache_max_staleness: config.cacheMaxStalenessMs === undefined
      ? "off"
      : formatDuration(config.cacheMaxStalenessMs),
    ...(config.serviceAccountsFile !== undefined
      ? { serviceaccounts_file: config.serviceAccountsFile }
      : {}),
    ...(config.policyFile !== undefined ? { policy_file: config.policyFile } : {}),
    ...(config.explainEnabled ? { explain_endpoint: true } : {}),
  };
}

/** Variables that hold secrets by design: a seed-shaped value there is not a misplaced seed. */
const SECRET_VARS = new Set(["NATS_TOKEN"]);
/** An nkey seed: `S`, its role letter and 56 more base32 characters (58 in all). */
const SEED_SHAPE = /S[A-Z2-7]{57}/;
const SEED_PROBLEM = "holds an nkey seed";

/**
 * Report every variable whose value contains an nkey seed (`SA…`, `SU…`, `SO…`, `SX…`, …) where a
 * public value, a name or a path is expected, and return their names. The userinfo of NATS_URL is
 * a secret position (a token or password) and is not checked. The problem line never shows the
 * value: a seed is a private key.
 */
function seedProblems(
  env: Readonly<Record<string, string | undefined>>,
  problem: (text: string) => void,
): string[] {
  const found: string[] = [];
  for (const name of CONFIG_ENV_VARS) {
    if (SECRET_VARS.has(name)) continue;
    let value = env[name];
    if (value === undefined) continue;
    if (name === "NATS_URL") {
      value = value.split(",").map((e) => e.slice(e.lastIndexOf("@") + 1)).join(",");
    }
    if (!SEED_SHAPE.test(value)) continue;
    found.push(name);
    problem(
      `${name}: ${SEED_PROBLEM} (S..., a private key; value not shown); a seed belongs only in ` +
        "a file (NATS_SIGNING_KEY_FILE, NATS_XKEY_SEED_FILE, NATS_USER_CREDS_FILE) — " +
        (name === "NATS_ACCOUNT"
          ? "NATS_ACCOUNT takes the account name (config mode) or its public A... key"
          : "this variable takes a public value") +
        "; if the seed was shared, rotate it",
    );
  }
  return found;
}

function isPublicAccountKey(key: string): boolean {
  try {
    return nkeys.fromPublic(key).getPublicKey().startsWith("A");
  } catch {
    return false;
  }
}

function publicKeyOf(seed: string): string {
  try {
    return nkeys.fromSeed(new TextEncoder().encode(seed)).getPublicKey();
  } catch {
    return "(invalid)";
  }
}

/**
 * A NATS_URL entry for a problem line: a malformed entry may hold a token anywhere before its last
 * `@` (with or without a scheme, with whitespace), so all of that is masked, not only what
 * `redactUrl` recognizes as a URL's userinfo.
 */
function maskServerEntry(entry: string): string {
  const at = entry.lastIndexOf("@");
  if (at < 0) return entry;
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(entry)?.[0] ?? "";
  return `${scheme}***@${entry.slice(at + 1)}`;
}

/** Why one NATS_URL entry cannot be used, or undefined. Never echoes the entry. */
function serverProblem(entry: string): string | undefined {
  if (entry === "") return "has an empty server entry";
  if (/\s/.test(entry)) return "is not a URL (contains whitespace)";
  const text = entry.includes("://") ? entry : `nats://${entry}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return "is not a URL (expected nats://host:port or tls://host:port)";
  }
  if (url.protocol !== "nats:" && url.protocol !== "tls:") {
    return `has unsupported scheme "${url.protocol.slice(0, -1)}" (use nats:// or tls://)`;
  }
  if (url.hostname === "") return "has no host";
  return undefined;
}

/** Why `text` is not an http(s) URL, or undefined. */
function httpUrlProblem(text: string): string | undefined {
  if (/\s/.test(text)) return "is not a URL (contains whitespace)";
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return "is not a URL";
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return "is not an http(s) URL";
  return undefined;
}

function durationVar(
  get: (name: string) => string | undefined,
  problem: (text: string) => void,
  name: string,
  fallback: number,
  bounds: { min: number; max?: number },
): number {
  const raw = get(name);
  if (raw === undefined) return fallback;
  let ms: number;
  try {
    ms = parseDuration(raw);
  } catch {
    problem(`${name}: ${show(raw)} is not a duration (e.g. "90s", "15m", "1h30m")`);
    return fallback;
  }
  if (ms < bounds.min) {
    problem(`${name}: ${show(raw)} is below the minimum of ${formatDuration(bounds.min)}`);
  } else if (bounds.max !== undefined && ms > bounds.max) {
    problem(`${name}: ${show(raw)} is above the maximum of ${formatDuration(bounds.max)}`);
  }
  return ms;
}

/**
 * Read an nkey seed of kind `kind` ("A" account, "X" curve) from `path`: the whole file, or the
 * `BEGIN … NKEY SEED` block of a creds file. Problems name the variable and path, never the seed.
 */
function readSeed(
  variable: string,
  path: string,
  kind: "A" | "X",
  readTextFile: (path: string) => string,
  problem: (text: string) => void,
): string | undefined {
  const want = kind === "A" ? "an account seed (SA...)" : "a curve seed (SX...)";
  let text: string;
  try {
    text = readTextFile(path);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    problem(`${variable}: cannot read ${show(path)}: ${reason}`);
    return undefined;
  }
  const seed = extractSeed(text);
  if (seed === undefined) {
    problem(`${variable}: ${show(path)} has a BEGIN line but no NKEY SEED block with a seed`);
    return undefined;
  }
  if (seed === "" || /\s/.test(seed)) {
    problem(`${variable}: ${show(path)} must hold one seed, ${want}`);
    return undefined;
  }
  if (!seed.startsWith(`S${kind}`)) {
    const other = KEY_KINDS[seed[1] ?? ""];
    const got = seed.startsWith("S") && other !== undefined
      ? `a seed of another kind (S${seed[1]}..., ${other})`
      : KEY_KINDS[seed[0] ?? ""] !== undefined && seed.length === 56
      ? "a public key, not a seed"
      : "something that is not an nkey seed";
    problem(`${variable}: ${show(path)} holds ${got}; expected ${want}`);
    return undefined;
  }
  try {
    nkeys.fromSeed(new TextEncoder().encode(seed));
  } catch {
    problem(
      `${variable}: ${
        show(path)
      } holds a malformed seed (bad encoding or checksum); expected ${want}`,
    );
    return undefined;
  }
  return seed;
}

/**
 * The seed in a file: the trimmed content, or, when the file has a BEGIN line (creds format), the
 * last non-empty line inside the first `BEGIN … NKEY SEED` block; undefined if there is none.
 */
export function extractSeed(text: string): string | undefined {
  if (!text.includes("BEGIN")) return text.trim();
  let inside = false;
  let seed: string | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (/BEGIN [A-Z ]*NKEY SEED/.test(line)) {
      inside = true;
      continue;
    }
    if (!inside) continue;
    if (/END [A-Z ]*NKEY SEED/.test(line)) break;
    if (line !== "") seed = line;
  }
  return seed;
}

/**
 * The audiences a kube-apiserver accepts for its own API by default: its issuer(s) (the default of
 * `--api-audiences`) and the in-cluster service names. A NATS audience equal to one of them turns
 * every pod's default API token into a NATS login.
 */
const KUBERNETES_API_AUDIENCES = [
  "https://kubernetes.default.svc",
  "https://kubernetes.default.svc.cluster.local",
  "kubernetes.default.svc",
  "kubernetes",
];

/**
 * Why `audience` is unsafe as the NATS audience (the apiserver's own API audience), or undefined.
 * `issuers` are the configured ones; discovered issuers and API audiences are checked again at
 * start-up by the service (lib/service/service.ts).
 */
export function apiAudienceRisk(audience: string, issuers: readonly string[]): string | undefined {
  if (!KUBERNETES_API_AUDIENCES.includes(audience) && !issuers.includes(audience)) return undefined;
  return `${show(audience)} is an audience the Kubernetes apiserver accepts for its own API ` +
    "(its issuer, or the kubernetes.default.svc service): every pod's default ServiceAccount " +
    'token would log in to NATS. Use a dedicated audience such as "nats" in the pods\' projected ' +
    "token, or set JWT_AUDIENCE_ALLOW_API_AUDIENCE=true to accept that risk";
}

/**
 * Parse `JWT_ISSUER`: comma-separated, trimmed, no empties or duplicates; each an issuer the
 * kube-apiserver would accept for `--service-account-issuer` (a string with a `:` must be a URL —
 * k8s.io/kubernetes pkg/kubeapiserver/options/authentication.go) and, when a URL, an http(s) URL
 * without query, fragment or credentials (OpenID Connect Discovery 1.0 §3).
 */
function parseIssuers(raw: string, problem: (text: string) => void): string[] | undefined {
  const issuers: string[] = [];
  const entries = raw.split(",").map((e) => e.trim());
  let ok = true;
  const reported = new Set<string>();
  for (const entry of entries) {
    const bad = issuerProblem(entry);
    if (bad) {
      if (!reported.has(entry)) problem(`JWT_ISSUER: ${show(redactUrl(entry))} ${bad}`);
      reported.add(entry);
      ok = false;
    } else if (issuers.includes(entry)) {
      problem(`JWT_ISSUER: ${show(entry)} is listed twice`);
      ok = false;
    } else issuers.push(entry);
  }
  return ok ? issuers : undefined;
}

function issuerProblem(entry: string): string | undefined {
  if (entry === "") return "is empty (a comma too many?)";
  if (/\s/.test(entry)) return "contains whitespace";
  if (!entry.includes(":")) return undefined;
  let url: URL;
  try {
    url = new URL(entry);
  } catch {
    return "contains a ':' but is not a URL";
  }
  if (url.username || url.password) return "must not carry credentials";
  // Kubernetes takes any URL (spiffe://…, urn:…); an http(s) one is also an OpenID issuer, which
  // has no query or fragment (OpenID Connect Discovery 1.0 §3).
  if (
    (url.protocol === "https:" || url.protocol === "http:") &&
    (url.search || url.hash || entry.includes("?") || entry.includes("#"))
  ) {
    return "must not have a query or fragment";
  }
  return undefined;
}

function boolVar(
  get: (name: string) => string | undefined,
  problem: (text: string) => void,
  name: string,
  fallback: boolean,
): boolean {
  const raw = get(name);
  if (raw === undefined) return fallback;
  if (GO_TRUE.has(raw)) return true;
  if (GO_FALSE.has(raw)) return false;
  problem(`${name}: ${show(raw)} is not a boolean (true or false)`);
  return fallback;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
