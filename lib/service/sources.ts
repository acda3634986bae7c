/**
 * What the service reads the world through, started from a {@linkcode Config}: the policy file,
 * the apiserver access, the key source, and the ServiceAccount, Pod and Namespace sources. Each
 * is registered on the start-up stack the moment it starts, so a failure of a later one releases
 * the earlier ones (in reverse order), and the running service's close releases them all.
 *
 * Nothing here waits for a remote dependency: caches and remote key sets start and sync in the
 * background. What can fail here is what no retry can fix (an unreadable file, a policy that
 * needs the apiserver when there is none).
 *
 * @module
 */
import type { Config } from "../config/config.ts";
import { type ChangeFeed, createChangeFeed } from "../core/changes.ts";
import type { ServiceAccountSource } from "../core/model.ts";
import { type NamespaceSource, startNamespaceCache } from "../cache/namespaces.ts";
import { type PodSource, startPodCache } from "../cache/pods.ts";
import { startServiceAccountCache } from "../cache/serviceaccounts.ts";
import { startServiceAccountsFile } from "../cache/serviceaccounts_file.ts";
import { usesLabels } from "../decision/policy.ts";
import { PolicyFileError, type PolicySource, startPolicyFile } from "../decision/policy_file.ts";
import {
  type ApiAccess,
  inClusterAccess,
  isApiServerUrl,
  kubeconfigAccess,
  kubeconfigPaths,
} from "../kubernetes/access.ts";
import { type Logger, redactUrl } from "../telemetry/log.ts";
import type { ServiceMetrics } from "../telemetry/service_metrics.ts";
import { fileKeySource, type KeySource, remoteKeySource } from "../tokens/jwks.ts";
import { KeyRing, rootSecret } from "../accounts/keys.ts";
import { createPlanner, type Planner } from "../accounts/planner.ts";

/** What {@linkcode startSources} needs besides the configuration and the stack. */
export interface SourcesContext {
  /** Where the sources log. */
  logger: Logger;
  /** The service's metrics, which the sources record into. */
  metrics: ServiceMetrics;
  /** Clock in milliseconds, for the remote key source. */
  now: () => number;
  /** Key source timings for tests and benchmarks. @default {the key source's defaults} */
  jwksTimings?: { cooldownMs?: number; refreshIntervalMs?: number; retryMs?: number } | undefined;
}

/** The started sources; the optional ones exist only when the configuration asks for them. */
export interface Sources {
  /** The cluster policy file (`POLICY_FILE`), watched for changes. */
  readonly policy: PolicySource | undefined;
  /** One access for every request to the apiserver; none when files replace the apiserver. */
  readonly access: ApiAccess | undefined;
  /** The keys that verify ServiceAccount tokens. */
  readonly keys: KeySource;
  /** The ServiceAccounts, from the apiserver's watch or from `SERVICEACCOUNTS_FILE`. */
  readonly serviceAccounts: ServiceAccountSource;
  /** Pods, when tokens bound to a Pod are refused once it is gone (`K8S_WATCH_PODS`). */
  readonly pods: PodSource | undefined;
  /** The Namespaces, when the policy at start has rules by labels or accounts are provisioned. */
  readonly namespaces: NamespaceSource | undefined;
  /** Accounts that follow namespaces (`NATS_OPERATOR_SIGNING_KEY_FILE`): what each one gets. */
  readonly accounts: { readonly planner: Planner; readonly root: Uint8Array } | undefined;
  /**
   * What the apiserver caches announce as they change (live revocation follows them, issue 18);
   * none with `SERVICEACCOUNTS_FILE`.
   */
  readonly changes: CacheChanges | undefined;
}

/** The change feeds of the caches on the apiserver's watch. */
export interface CacheChanges {
  /** ServiceAccounts added, changed or deleted (`"all"` after a relist). */
  readonly serviceAccounts: ChangeFeed;
  /** With `K8S_WATCH_PODS`. */
  readonly pods: ChangeFeed | undefined;
  /** With a policy that has rules by labels, or accounts that follow namespaces. */
  readonly namespaces: ChangeFeed | undefined;
}

/**
 * Start every source `config` asks for, in dependency order — policy, apiserver access, keys,
 * then the ServiceAccount, Pod and Namespace sources — each registered on `stack` as it starts.
 * Rejects only for problems no retry can fix; `stack` then still holds what had started, for the
 * caller to release.
 */
export async function startSources(
  config: Config,
  stack: AsyncDisposableStack,
  context: SourcesContext,
): Promise<Sources> {
  const policy = stack.use(startPolicy(config, context));
  const policyUsesLabels = policy !== undefined && usesLabels(policy.current.policy);
  if (policyUsesLabels && config.serviceAccountsFile) throw labelsNeedApiServer(config);
  const access = stack.use(await startApiAccess(config));
  if (access) {
    context.logger.info("apiserver_access", { server: redactUrl(access.server), via: access.via });
  }
  const keys = stack.use(await startKeySource(config, access, context));
  if (config.serviceAccountsFile) {
    const serviceAccounts = stack.use(startServiceAccountsFile({
      path: config.serviceAccountsFile,
      annotationPrefix: config.annotationPrefix,
      logger: context.logger,
      metrics: context.metrics,
    }));
    return {
      policy,
      access,
      keys,
      serviceAccounts,
      pods: undefined,
      namespaces: undefined,
      accounts: undefined,
      changes: undefined,
    };
  }
  // Without a ServiceAccounts file the apiserver is always used (see needsApiServer).
  const { serviceAccounts, pods, namespaces, changes } = startClusterCaches(
    config,
    access!,
    stack,
    { ...context, policyUsesLabels },
  );
  return {
    policy,
    access,
    keys,
    serviceAccounts,
    pods,
    namespaces,
    changes,
    accounts: startPlanner(config, policy, namespaces),
  };
}

/**
 * The planner of accounts that follow namespaces, when `NATS_OPERATOR_SIGNING_KEY_FILE` is set:
 * the policy and the Namespace cache in, the accounts each Namespace gets out (lib/accounts/).
 */
function startPlanner(
  config: Config,
  policy: PolicySource | undefined,
  namespaces: NamespaceSource | undefined,
): Sources["accounts"] {
  if (!config.provisioning || !namespaces) return undefined;
  const root = rootSecret(config.provisioning.accountsSeed);
  const planner = createPlanner({
    policy: () => policy?.current.policy,
    namespaces,
    keys: new KeyRing(root),
  });
  return { planner, root };
}

/** The policy file, when `POLICY_FILE` is set; a bad file stops the start (`PolicyFileError`). */
function startPolicy(config: Config, context: SourcesContext): PolicySource | undefined {
  if (!config.policyFile) return undefined;
  return startPolicyFile({
    path: config.policyFile,
    defaultAccount: config.account,
    namespaceAccountsUnavailable: namespaceAccountsUnavailable(config),
    logger: context.logger,
    metrics: context.metrics,
  });
}

/** Why `namespaceAccount` cannot be used with `config`, or `undefined` when it can. */
function namespaceAccountsUnavailable(config: Config): string | undefined {
  if (!config.provisioning) {
    return "namespaceAccount needs NATS_OPERATOR_SIGNING_KEY_FILE and NATS_ACCOUNTS_SEED_FILE " +
      "(operator mode, with NATS_SYSTEM_* credentials): see docs/operator-mode.md";
  }
  if (config.serviceAccountsFile) {
    return "namespaceAccount needs the Namespace objects from the Kubernetes API, but " +
      "SERVICEACCOUNTS_FILE is set (no apiserver watch)";
  }
  return undefined;
}

/** Rules by labels need the Namespaces' labels, which only the apiserver has. */
function labelsNeedApiServer(config: Config): PolicyFileError {
  return new PolicyFileError([
    `${config.policyFile}: namespace rules with labels need the Namespace objects from the ` +
    "Kubernetes API, but SERVICEACCOUNTS_FILE is set (no apiserver watch); match by names or glob",
  ]);
}

/**
 * Whether anything needs the apiserver: in-cluster always; otherwise unless files supply the
 * ServiceAccounts, the keys and the issuer alike.
 */
function needsApiServer(config: Config): boolean {
  return config.k8s.inCluster || config.serviceAccountsFile === undefined ||
    (config.jwt.jwksUrl === undefined && config.jwt.jwksPath === undefined) ||
    config.jwt.issuers === undefined;
}

/**
 * One access for every request to the apiserver — list, watch, JWKS and discovery alike — from
 * the pod's own credentials in-cluster, else from the kubeconfig. Undefined when nothing needs
 * the apiserver.
 */
async function startApiAccess(config: Config): Promise<ApiAccess | undefined> {
  if (!needsApiServer(config)) return undefined;
  if (config.k8s.inCluster) {
    return inClusterAccess({
      server: config.k8s.apiServerUrl,
      caFile: config.k8s.caFile,
      tokenFile: config.k8s.tokenFile,
    });
  }
  return await kubeconfigAccess(kubeconfigPaths(config.k8s.kubeconfig, config.k8s.home));
}

/**
 * The key source: a JWKS file (`JWKS_PATH`), else a JWKS URL (`JWKS_URL`, by default the
 * apiserver's own), fetched with the apiserver access when the URL is the apiserver's.
 */
async function startKeySource(
  config: Config,
  access: ApiAccess | undefined,
  context: SourcesContext,
): Promise<KeySource> {
  const { logger, metrics, now, jwksTimings } = context;
  if (config.jwt.jwksPath) {
    return await fileKeySource(config.jwt.jwksPath, { logger, metrics, ...jwksTimings });
  }
  const url = config.jwt.jwksUrl ?? `${access?.server}/openid/v1/jwks`;
  return await remoteKeySource(url, {
    logger,
    metrics,
    now,
    ...jwksTimings,
    ...(access && isApiServerUrl(url, access, config.k8s.inCluster) ? { access } : {}),
  });
}

/** The caches on the apiserver's watch: ServiceAccounts always, Pods and Namespaces when asked. */
function startClusterCaches(
  config: Config,
  access: ApiAccess,
  stack: AsyncDisposableStack,
  context: SourcesContext & { policyUsesLabels: boolean },
): Pick<Sources, "serviceAccounts" | "pods" | "namespaces"> & { changes: CacheChanges } {
  const { logger, metrics } = context;
  const scope = config.k8s.namespace ? { namespace: config.k8s.namespace } : {};
  const changes = {
    serviceAccounts: createChangeFeed(),
    pods: config.k8s.watchPods ? createChangeFeed() : undefined,
    namespaces: context.policyUsesLabels || config.provisioning ? createChangeFeed() : undefined,
  };
  const serviceAccounts = stack.use(startServiceAccountCache({
    access,
    ...scope,
    annotationPrefix: config.annotationPrefix,
    relistIntervalMs: config.relistIntervalMs,
    onChange: changes.serviceAccounts.emit,
    logger,
    metrics,
  }));
  const pods = changes.pods
    ? stack.use(startPodCache({
      access,
      ...scope,
      relistIntervalMs: config.relistIntervalMs,
      onChange: changes.pods.emit,
      logger,
      metrics,
    }))
    : undefined;
  const namespaces = changes.namespaces
    ? stack.use(startNamespaceCache({
      access,
      relistIntervalMs: config.relistIntervalMs,
      onChange: changes.namespaces.emit,
      logger,
      metrics,
    }))
    : undefined;
  return { serviceAccounts, pods, namespaces, changes };
}
