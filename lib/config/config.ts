/**
 * Configuration from environment variables, read once into a frozen, fully typed object. The
 * variable names and defaults are the Go reference's, so this is a drop-in replacement; unlike the
 * reference, a malformed value stops the start with one error that lists every problem at once,
 * instead of silently becoming the default. Seeds are read and checked here, at the boundary,
 * and never appear in an error message or in {@linkcode describeConfig}.
 *
 * Read it with its neighbours: lib/config/variables.ts is the schema (every variable, its default,
 * what it sets), lib/config/parse.ts the generic value checks, lib/config/seeds.ts the seed files
 * and misplaced seeds. {@linkcode loadConfig} is a list of steps, one per part of the `Config`.
 *
 * @module
 */
import { formatDuration } from "../core/duration.ts";
import { type LogLevel, redactUrl } from "../telemetry/log.ts";
import { subjectProblem } from "../core/subjects.ts";
import {
  boolVar,
  deepFreeze,
  durationVar,
  type EnvReader,
  httpUrlProblem,
  isDnsLabel,
  isPortNumber,
  maskServerEntry,
  serverProblem,
  show,
  splitList,
} from "./parse.ts";
import {
  credsAccount,
  isPublicAccountKey,
  misplacedSeeds,
  publicKeyOf,
  readSeed,
  withoutSeedEchoes,
} from "./seeds.ts";
import { defaultOf, IN_CLUSTER_API_SERVER_URL } from "./variables.ts";

/** Every environment variable {@linkcode loadConfig} reads (lib/config/variables.ts). */
export { CONFIG_ENV_VARS } from "./variables.ts";
/** The seed in a seed or creds file's text (lib/config/seeds.ts); the policy file reads seeds too. */
export { extractSeed } from "./seeds.ts";

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
   * Accounts that follow namespaces (operator mode, lib/accounts/): both files set, or neither
   * (then a policy's `namespaceAccount` is refused). Needs `NATS_ACCOUNT` as an `A…` key and the
   * `NATS_SYSTEM_*` connection (pushes go to `$SYS.REQ.CLAIMS.UPDATE`).
   */
  readonly provisioning?: {
    /** `NATS_OPERATOR_SIGNING_KEY_FILE`: an operator signing key (`SO…`) that signs account JWTs. */
    readonly operatorSigningKeyFile: string;
    /** The `SO…` seed read from it. */
    readonly operatorSigningKeySeed: string;
    /** `NATS_ACCOUNTS_SEED_FILE`: the secret (`SA…` seed) account keys are derived from. */
    readonly accountsSeedFile: string;
    /** The `SA…` seed read from it. */
    readonly accountsSeed: string;
    /**
     * AUTH, the callout's own account: the account of the `NATS_USER_CREDS_FILE` user (its JWT's
     * `issuer_account` or `iss`). Its JWT must admit every account (`allowed_accounts: ["*"]`).
     */
    readonly authAccount: string;
  };
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

/**
 * Build the {@linkcode Config} from environment variables. Every problem is collected and thrown
 * together as a {@linkcode ConfigError}. Empty values count as unset, like the reference. Seed
 * files are read with `readTextFile` and checked: an `SA…` account seed for the signing key, an
 * `SX…` curve seed for the xkey, each as a plain seed or the seed block of a creds file.
 *
 * Each step below reads a few variables (lib/config/variables.ts has them all, with their
 * defaults) and reports what is wrong with them; the steps run in the order the problem lines are
 * listed in.
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
  const seedIn = new Set(misplacedSeeds(env, problem));
  const vars = envReader(env, seedIn, problem);

  const http = readHttpAndLogging(vars);
  const nats = readNatsConnection(vars);
  const account = readAccount(vars);
  const keys = readKeys(vars, readTextFile);
  const k8s = readKubernetesAccess(vars);
  const keySource = readKeySource(vars);
  const source = readServiceAccountSource(vars);
  const jwt = readTokenVerification(vars, keySource, {
    needsKeysAndIssuer: !k8s.inCluster && source.serviceAccountsFile !== undefined,
  });
  const cache = readServiceAccountCache(vars);
  const features = readFeatures(vars);
  const provisioning = readProvisioning(vars, readTextFile, {
    operatorMode: isPublicAccountKey(account),
    systemConnection: nats.system !== undefined,
    credsFile: nats.credsFile,
  });

  if (problems.length > 0) throw new ConfigError(withoutSeedEchoes(problems, seedIn));
  return deepFreeze<Config>({
    ...http,
    nats,
    account,
    ...keys,
    jwt,
    k8s,
    ...cache,
    ...source,
    ...features,
    ...(provisioning ? { provisioning } : {}),
  });
}

/**
 * Accounts that follow namespaces: `NATS_OPERATOR_SIGNING_KEY_FILE` (an `SO…` seed) and
 * `NATS_ACCOUNTS_SEED_FILE` (an `SA…` seed), both or neither; only in operator mode and with the
 * system-account connection that pushes go over.
 */
function readProvisioning(
  vars: EnvReader,
  readTextFile: (path: string) => string,
  context: { operatorMode: boolean; systemConnection: boolean; credsFile: string | undefined },
): Config["provisioning"] {
  const operatorSigningKeyFile = vars.get("NATS_OPERATOR_SIGNING_KEY_FILE");
  const accountsSeedFile = vars.get("NATS_ACCOUNTS_SEED_FILE");
  if (operatorSigningKeyFile === undefined && accountsSeedFile === undefined) return undefined;
  let ok = true;
  if (operatorSigningKeyFile === undefined || accountsSeedFile === undefined) {
    vars.problem(
      `${
        operatorSigningKeyFile === undefined
          ? "NATS_OPERATOR_SIGNING_KEY_FILE"
          : "NATS_ACCOUNTS_SEED_FILE"
      }: ` +
        "required when the other is set (accounts that follow namespaces need both)",
    );
    ok = false;
  }
  if (!context.operatorMode) {
    vars.problem(
      "NATS_OPERATOR_SIGNING_KEY_FILE: accounts that follow namespaces are for operator mode; " +
        "NATS_ACCOUNT must then be an account public key (A...)",
    );
    ok = false;
  }
  if (!context.systemConnection) {
    vars.problem(
      "NATS_SYSTEM_CREDS_FILE: required with NATS_OPERATOR_SIGNING_KEY_FILE (account JWTs are " +
        "pushed to the resolver over a system-account connection)",
    );
    ok = false;
  }
  const operatorSigningKeySeed = operatorSigningKeyFile === undefined ? undefined : readSeed(
    "NATS_OPERATOR_SIGNING_KEY_FILE",
    operatorSigningKeyFile,
    "O",
    readTextFile,
    vars.problem,
  );
  const accountsSeed = accountsSeedFile === undefined
    ? undefined
    : readSeed("NATS_ACCOUNTS_SEED_FILE", accountsSeedFile, "A", readTextFile, vars.problem);
  const authAccount = readAuthAccount(vars, readTextFile, context.credsFile);
  if (
    !ok || operatorSigningKeySeed === undefined || accountsSeed === undefined ||
    authAccount === undefined
  ) return undefined;
  return {
    operatorSigningKeyFile: operatorSigningKeyFile!,
    operatorSigningKeySeed,
    accountsSeedFile: accountsSeedFile!,
    accountsSeed,
    authAccount,
  };
}

/**
 * AUTH's public key, from the service's own user (`NATS_USER_CREDS_FILE`): provisioning checks
 * that AUTH's JWT admits the accounts it makes (lib/accounts/auth_check.ts).
 */
function readAuthAccount(
  vars: EnvReader,
  readTextFile: (path: string) => string,
  credsFile: string | undefined,
): string | undefined {
  const why = "(the service checks that AUTH, its user's account, admits the provisioned " +
    'accounts: allowed_accounts ["*"])';
  if (credsFile === undefined) {
    vars.problem(`NATS_USER_CREDS_FILE: required with NATS_OPERATOR_SIGNING_KEY_FILE ${why}`);
    return undefined;
  }
  // Named as the user set it (NATS_CREDS_FILE is the old name).
  const name = vars.get("NATS_USER_CREDS_FILE") === undefined
    ? "NATS_CREDS_FILE"
    : "NATS_USER_CREDS_FILE";
  let text: string;
  try {
    text = readTextFile(credsFile);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    vars.problem(`${name}: cannot read ${show(credsFile)}: ${reason}`);
    return undefined;
  }
  const account = credsAccount(text);
  if (account === undefined) {
    vars.problem(`${name}: ${show(credsFile)} holds no user JWT issued for an account ${why}`);
  }
  return account;
}

/** The environment, trimmed, empty as unset, the variables in `unset` (seeds) as unset. */
function envReader(
  env: Readonly<Record<string, string | undefined>>,
  unset: ReadonlySet<string>,
  problem: (text: string) => void,
): EnvReader {
  const get = (name: string): string | undefined => {
    if (unset.has(name)) return undefined;
    const value = env[name]?.trim();
    return value === undefined || value === "" ? undefined : value;
  };
  const getOrDefault = (name: string): string => {
    const value = get(name) ?? defaultOf(name);
    if (value === undefined) {
      throw new TypeError(`Cannot read ${name}: it is unset and has no default`);
    }
    return value;
  };
  return { get, getOrDefault, defaultOf, problem };
}

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

/** `PORT` and `LOG_LEVEL`. */
function readHttpAndLogging(vars: EnvReader): Pick<Config, "port" | "logLevel"> {
  const portRaw = vars.getOrDefault("PORT");
  if (!isPortNumber(portRaw)) vars.problem(`PORT: ${show(portRaw)} is not a port number (1-65535)`);
  const levelRaw = vars.getOrDefault("LOG_LEVEL");
  const logLevel = LOG_LEVELS[levelRaw.toLowerCase()];
  if (!logLevel) {
    vars.problem(`LOG_LEVEL: ${show(levelRaw)} is not one of debug, info, warn, error`);
  }
  return { port: Number(portRaw), logLevel: logLevel ?? "info" };
}

/**
 * The service's own NATS connection: servers, how it authenticates, TLS, the queue group, and the
 * system-account connection of live revocation.
 */
function readNatsConnection(vars: EnvReader): Config["nats"] {
  const servers: string[] = [];
  for (const entry of splitList(vars.getOrDefault("NATS_URL"))) {
    const bad = serverProblem(entry);
    if (bad) vars.problem(`NATS_URL: ${show(maskServerEntry(entry))} ${bad}`);
    else servers.push(entry.includes("://") ? entry : `nats://${entry}`);
  }
  const { credsFile, token } = readNatsAuth(vars);
  const tls = readNatsTls(vars);
  const queueGroup = vars.getOrDefault("NATS_QUEUE_GROUP");
  const queueBad = subjectProblem(queueGroup) ??
    (/[*>]/.test(queueGroup) ? "contains a wildcard" : undefined);
  if (queueBad) vars.problem(`NATS_QUEUE_GROUP: ${show(queueGroup)} ${queueBad}`);
  const system = readSystemConnection(vars);
  return {
    servers,
    ...(credsFile !== undefined ? { credsFile } : {}),
    ...(token !== undefined ? { token } : {}),
    ...(tls !== undefined ? { tls } : {}),
    queueGroup,
    ...(system !== undefined ? { system } : {}),
  };
}

/** A creds file (`NATS_USER_CREDS_FILE` or its old name `NATS_CREDS_FILE`) or a token, not both. */
function readNatsAuth(vars: EnvReader): { credsFile?: string; token?: string } {
  const credsPrimary = vars.get("NATS_USER_CREDS_FILE");
  const credsAlias = vars.get("NATS_CREDS_FILE");
  if (credsPrimary !== undefined && credsAlias !== undefined && credsPrimary !== credsAlias) {
    vars.problem(
      "NATS_USER_CREDS_FILE and NATS_CREDS_FILE: both are set to different files; " +
        "set only NATS_USER_CREDS_FILE (NATS_CREDS_FILE is its old name)",
    );
  }
  const credsFile = credsPrimary ?? credsAlias;
  const token = vars.get("NATS_TOKEN");
  if (credsFile !== undefined && token !== undefined) {
    vars.problem(
      `${credsPrimary !== undefined ? "NATS_USER_CREDS_FILE" : "NATS_CREDS_FILE"} and ` +
        "NATS_TOKEN: they are mutually exclusive; set at most one",
    );
  }
  return {
    ...(credsFile !== undefined ? { credsFile } : {}),
    ...(token !== undefined ? { token } : {}),
  };
}

/** The TLS files of the NATS connection; a client certificate needs both its cert and its key. */
function readNatsTls(vars: EnvReader): Config["nats"]["tls"] {
  const caFile = vars.get("NATS_TLS_CA_FILE");
  const certFile = vars.get("NATS_TLS_CERT_FILE");
  const keyFile = vars.get("NATS_TLS_KEY_FILE");
  if (certFile !== undefined && keyFile === undefined) {
    vars.problem("NATS_TLS_KEY_FILE: required when NATS_TLS_CERT_FILE is set (client certificate)");
  }
  if (keyFile !== undefined && certFile === undefined) {
    vars.problem("NATS_TLS_CERT_FILE: required when NATS_TLS_KEY_FILE is set (client certificate)");
  }
  if (caFile === undefined && certFile === undefined && keyFile === undefined) return undefined;
  return {
    ...(caFile !== undefined ? { caFile } : {}),
    ...(certFile !== undefined ? { certFile } : {}),
    ...(keyFile !== undefined ? { keyFile } : {}),
  };
}

/** Live revocation's system-account connection: one way to authenticate, or none (off). */
function readSystemConnection(vars: EnvReader): Config["nats"]["system"] {
  const credsFile = vars.get("NATS_SYSTEM_CREDS_FILE");
  const token = vars.get("NATS_SYSTEM_TOKEN");
  const user = vars.get("NATS_SYSTEM_USER");
  const password = vars.get("NATS_SYSTEM_PASSWORD");
  const kinds = [credsFile, token, user].filter((v) => v !== undefined).length;
  if (kinds > 1) {
    vars.problem(
      "NATS_SYSTEM_CREDS_FILE, NATS_SYSTEM_TOKEN and NATS_SYSTEM_USER: set only one way for the " +
        "system-account connection to authenticate",
    );
  }
  if (password !== undefined && user === undefined) {
    vars.problem("NATS_SYSTEM_USER: required when NATS_SYSTEM_PASSWORD is set");
  }
  if (kinds === 0) return undefined;
  return {
    ...(credsFile !== undefined ? { credsFile } : {}),
    ...(token !== undefined ? { token } : {}),
    ...(user !== undefined ? { user } : {}),
    ...(user !== undefined && password !== undefined ? { password } : {}),
  };
}

/** `NATS_ACCOUNT` (required): an account name, or a public account key that must be a valid one. */
function readAccount(vars: EnvReader): string {
  const account = vars.get("NATS_ACCOUNT") ?? "";
  if (account === "") {
    vars.problem('NATS_ACCOUNT: required (the account clients are placed in, e.g. "APP")');
  } else if (/\s/.test(account)) {
    vars.problem(`NATS_ACCOUNT: ${show(account)} contains whitespace`);
  } else if (/^A[A-Z2-7]{55}$/.test(account) && !isPublicAccountKey(account)) {
    // A mistyped key would pass as an account name and fail only at the server, on every login.
    vars.problem(
      `NATS_ACCOUNT: ${show(account)} looks like an account public key (operator mode) but is ` +
        "not a valid one (checksum); copy it again, e.g. from `nsc describe account <name>`",
    );
  }
  return account;
}

const SECOND = 1000;
const HOUR = 3_600_000;

/** The signing seed (required), the xkey seed, and the cap on an issued user JWT's life. */
function readKeys(
  vars: EnvReader,
  readTextFile: (path: string) => string,
): Pick<
  Config,
  "signingKeyFile" | "signingKeySeed" | "xkeySeedFile" | "xkeySeed" | "userJwtTtlMs"
> {
  const signingKeyFile = vars.get("NATS_SIGNING_KEY_FILE") ?? "";
  let signingKeySeed = "";
  if (signingKeyFile === "") {
    vars.problem("NATS_SIGNING_KEY_FILE: required (file holding the account signing seed, SA...)");
  } else {
    signingKeySeed =
      readSeed("NATS_SIGNING_KEY_FILE", signingKeyFile, "A", readTextFile, vars.problem) ?? "";
  }
  const xkeySeedFile = vars.get("NATS_XKEY_SEED_FILE");
  const xkeySeed = xkeySeedFile === undefined
    ? undefined
    : readSeed("NATS_XKEY_SEED_FILE", xkeySeedFile, "X", readTextFile, vars.problem);
  const userJwtTtlMs = vars.get("NATS_USER_JWT_TTL") === undefined
    ? undefined
    : durationVar(vars, "NATS_USER_JWT_TTL", { min: 10 * SECOND, max: 24 * HOUR });
  return {
    signingKeyFile,
    signingKeySeed,
    ...(xkeySeedFile !== undefined ? { xkeySeedFile } : {}),
    ...(xkeySeed !== undefined ? { xkeySeed } : {}),
    ...(userJwtTtlMs !== undefined ? { userJwtTtlMs } : {}),
  };
}

/**
 * How the service reaches the apiserver: in cluster (the kubelet's `KUBERNETES_SERVICE_*`, the
 * pod's CA and token) or through a kubeconfig; which namespace it watches; whether it watches Pods.
 */
function readKubernetesAccess(vars: EnvReader): Config["k8s"] {
  const inCluster = boolVar(vars, "K8S_IN_CLUSTER");
  const namespace = vars.get("K8S_NAMESPACE");
  if (namespace !== undefined && !isDnsLabel(namespace)) {
    vars.problem(
      `K8S_NAMESPACE: ${show(namespace)} is not a valid namespace name (RFC 1123 label)`,
    );
  }
  const kubeconfig = vars.get("KUBECONFIG");
  const watchPods = boolVar(vars, "K8S_WATCH_PODS");
  const home = vars.get("HOME");
  const serviceHost = vars.get("KUBERNETES_SERVICE_HOST");
  const servicePort = vars.getOrDefault("KUBERNETES_SERVICE_PORT");
  if (!isPortNumber(servicePort)) {
    vars.problem(`KUBERNETES_SERVICE_PORT: ${show(servicePort)} is not a port number (1-65535)`);
  }
  const apiServerUrl = serviceHost === undefined
    ? IN_CLUSTER_API_SERVER_URL
    : `https://${serviceHost.includes(":") ? `[${serviceHost}]` : serviceHost}:${servicePort}`;
  return {
    inCluster,
    ...(namespace !== undefined ? { namespace } : {}),
    ...(kubeconfig !== undefined ? { kubeconfig } : {}),
    ...(home !== undefined ? { home } : {}),
    apiServerUrl,
    caFile: vars.getOrDefault("K8S_CA_FILE"),
    tokenFile: vars.getOrDefault("K8S_TOKEN_FILE"),
    watchPods,
  };
}

/** Where the token keys come from: `JWKS_URL` or `JWKS_PATH`, or neither (the apiserver's). */
function readKeySource(vars: EnvReader): Pick<Config["jwt"], "jwksUrl" | "jwksPath"> {
  const jwksUrl = vars.get("JWKS_URL");
  const jwksPath = vars.get("JWKS_PATH");
  if (jwksUrl !== undefined && jwksPath !== undefined) {
    vars.problem("JWKS_URL and JWKS_PATH: they are mutually exclusive; set only one");
  }
  if (jwksUrl !== undefined) {
    const bad = httpUrlProblem(jwksUrl);
    if (bad) vars.problem(`JWKS_URL: ${show(maskServerEntry(jwksUrl))} ${bad}`);
  }
  return {
    ...(jwksUrl !== undefined ? { jwksUrl } : {}),
    ...(jwksPath !== undefined ? { jwksPath } : {}),
  };
}

/**
 * Where ServiceAccounts come from (`SERVICEACCOUNTS_FILE`, else the apiserver) and how stale the
 * apiserver's may grow before readiness fails (`CACHE_MAX_STALENESS`).
 */
function readServiceAccountSource(
  vars: EnvReader,
): Pick<Config, "cacheMaxStalenessMs" | "serviceAccountsFile"> {
  const serviceAccountsFile = vars.get("SERVICEACCOUNTS_FILE");
  // Off unless set; "0" is off too. A quiet, healthy watch on kube-apiserver v1.37 hears its first
  // bookmark after ~120 s, then one every ~60 s: values under 3m flap on a real cluster (the 10 s
  // minimum is for tests).
  const maxStalenessRaw = vars.get("CACHE_MAX_STALENESS");
  const cacheMaxStalenessMs = maxStalenessRaw === undefined || /^0+[a-z]*$/i.test(maxStalenessRaw)
    ? undefined
    : durationVar(vars, "CACHE_MAX_STALENESS", { min: 10 * SECOND });
  return {
    ...(cacheMaxStalenessMs !== undefined ? { cacheMaxStalenessMs } : {}),
    ...(serviceAccountsFile !== undefined ? { serviceAccountsFile } : {}),
  };
}

/**
 * What a token must say: its issuers and its audience. Without an apiserver to ask (dev mode:
 * ServiceAccounts from a file, out of cluster — `needsKeysAndIssuer`), the keys and the issuer
 * must be given; otherwise they default to the apiserver's own (`<apiserver>/openid/v1/jwks`,
 * `/.well-known/openid-configuration`).
 */
function readTokenVerification(
  vars: EnvReader,
  keySource: Pick<Config["jwt"], "jwksUrl" | "jwksPath">,
  { needsKeysAndIssuer }: { needsKeysAndIssuer: boolean },
): Config["jwt"] {
  const issuerRaw = vars.get("JWT_ISSUER");
  const issuers = issuerRaw === undefined ? undefined : parseIssuers(issuerRaw, vars.problem);
  if (needsKeysAndIssuer) {
    if (keySource.jwksUrl === undefined && keySource.jwksPath === undefined) {
      vars.problem(
        "JWKS_URL or JWKS_PATH: one is required with SERVICEACCOUNTS_FILE out of cluster",
      );
    }
    if (issuers === undefined) {
      vars.problem("JWT_ISSUER: required with SERVICEACCOUNTS_FILE out of cluster");
    }
  }
  const audience = vars.getOrDefault("JWT_AUDIENCE");
  const allowApiAudience = boolVar(vars, "JWT_AUDIENCE_ALLOW_API_AUDIENCE");
  if (audience === "" || /[\s,]/.test(audience)) {
    vars.problem(
      `JWT_AUDIENCE: ${show(audience)} must be one audience, without whitespace or commas`,
    );
  } else if (!allowApiAudience) {
    const risky = apiAudienceRisk(audience, issuers ?? []);
    if (risky) vars.problem(`JWT_AUDIENCE: ${risky}`);
  }
  return {
    ...keySource,
    ...(issuers !== undefined ? { issuers } : {}),
    audience,
    allowApiAudience,
  };
}

/** How the ServiceAccount cache reads its objects: the annotation prefix and the relist interval. */
function readServiceAccountCache(
  vars: EnvReader,
): Pick<Config, "annotationPrefix" | "relistIntervalMs"> {
  const annotationPrefix = vars.getOrDefault("SA_ANNOTATION_PREFIX");
  if (/\s/.test(annotationPrefix) || (annotationPrefix.match(/\//g)?.length ?? 0) > 1) {
    vars.problem(
      `SA_ANNOTATION_PREFIX: ${show(annotationPrefix)} cannot start an annotation key ` +
        '(no whitespace, at most one "/", e.g. "nats.io/")',
    );
  }
  const relistIntervalMs = durationVar(vars, "CACHE_CLEANUP_INTERVAL", { min: 10 * SECOND });
  return { annotationPrefix, relistIntervalMs };
}

/** The optional features: the cluster policy file and the `/explain` endpoint. */
function readFeatures(vars: EnvReader): Pick<Config, "policyFile" | "explainEnabled"> {
  const policyFile = vars.get("POLICY_FILE");
  const explainEnabled = boolVar(vars, "EXPLAIN_ENABLED");
  return { ...(policyFile !== undefined ? { policyFile } : {}), explainEnabled };
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
    ...(config.provisioning
      ? {
        namespace_accounts: {
          operator_signing_key_file: config.provisioning.operatorSigningKeyFile,
          operator_signing_key_public: publicKeyOf(config.provisioning.operatorSigningKeySeed),
          accounts_seed_file: config.provisioning.accountsSeedFile,
          auth_account: config.provisioning.authAccount,
        },
      }
      : {}),
  };
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
