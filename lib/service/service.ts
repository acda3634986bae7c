/**
 * The whole service, wired from a {@linkcode Config}: key source, ServiceAccount source, token
 * verifier, login decision, callout protocol, NATS subscription and the HTTP handler. Nothing here
 * reads the environment or listens on a port; `main.ts` does that, tests call this directly.
 *
 * Start-up never blocks on a dependency that may come later (NATS, the apiserver, the JWKS
 * endpoint, issuer discovery): the HTTP handler is available at once, `/readyz` names what is still
 * missing, and each dependency is retried in the background until {@linkcode Service.close}.
 *
 * @module
 */
import { delay } from "../core/abort.ts";
import { formatDuration } from "../core/duration.ts";
import { createCalloutHandler } from "../callout/handler.ts";
import { apiAudienceRisk, type Config } from "../config/config.ts";
import { FailureReporter } from "../kubernetes/apiserver_errors.ts";
import { createHttpHandler, type ReadinessCheck } from "../operations/http.ts";
import { discoverIssuer, fileKeySource, type KeySource, remoteKeySource } from "../tokens/jwks.ts";
import { type Logger, redactUrl } from "../telemetry/log.ts";
import { createExplainHandler } from "../operations/explain.ts";
import { createLogin, type Login } from "../decision/login.ts";
import { PolicyFileError, type PolicySource, startPolicyFile } from "../decision/policy_file.ts";
import { usesLabels } from "../decision/policy.ts";
import { type NamespaceSource, startNamespaceCache } from "../cache/namespaces.ts";
import type { ServiceAccountSource } from "../core/model.ts";
import { connectNats, serveCallout } from "../nats/connection.ts";
import { rememberApprovals, type Revocation, startRevocation } from "../nats/revocation.ts";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  type ApiAccess,
  inClusterAccess,
  isApiServerUrl,
  kubeconfigAccess,
  kubeconfigPaths,
} from "../kubernetes/access.ts";
import { type PodSource, startPodCache } from "../cache/pods.ts";
import { startServiceAccountCache } from "../cache/serviceaccounts.ts";
import { startServiceAccountsFile } from "../cache/serviceaccounts_file.ts";
import { createServiceMetrics, type ServiceMetrics } from "../telemetry/service_metrics.ts";
import { registerProcessMetrics } from "../telemetry/process_metrics.ts";
import { watchReadiness } from "../operations/readiness_log.ts";
import { createResync, type Resync } from "../operations/resync.ts";
import { createTokenVerifier } from "../tokens/verifier.ts";

/** Options of {@linkcode startService}. */
export interface ServiceOptions {
  /** Validated configuration (see `loadConfig`). */
  config: Config;
  logger: Logger;
  /** Metrics to record into. @default {a new set} */
  metrics?: ServiceMetrics;
  /** Clock in milliseconds, for token and request expiry. @default {() => Date.now()} */
  now?: () => number;
  /** Version reported on the HTTP endpoints. */
  version?: string;
  /**
   * Connect to NATS and answer callouts. `false` builds everything else (for `deno task explain`):
   * readiness then does not wait for NATS. @default {true}
   */
  nats?: boolean;
  /**
   * Key source timings (cool-down, refresh interval, first retry), for tests and benchmarks that
   * need a JWKS fault to play out in seconds. @default {the key source's defaults}
   */
  jwksTimings?: { cooldownMs?: number; refreshIntervalMs?: number; retryMs?: number };
}

/** A running service. */
export interface Service extends AsyncDisposable {
  /** The HTTP handler for /healthz, /readyz, /metrics. */
  readonly handler: (req: Request) => Promise<Response>;
  /** True when every readiness check passes. */
  readonly ready: boolean;
  readonly metrics: ServiceMetrics;
  /** Relist ServiceAccounts and refetch keys now (SIGHUP, `POST /resync`); rate-limited. */
  readonly resync: Resync;
  /** The login decision and its explanation, once keys and issuer are loaded. */
  readonly login: Login | undefined;
  /**
   * Resolves when start-up found a problem no retry can fix after the service was built (a
   * discovered issuer or API audience that equals `JWT_AUDIENCE`); `main.ts` exits 2 on it.
   */
  readonly failed: Promise<Error>;
  /** Stop taking requests, drain NATS, stop watches and timers. Idempotent. */
  close(): Promise<void>;
}

/**
 * Start the service. Resolves once the local parts are built; remote dependencies connect in the
 * background. Rejects only for problems no retry can fix (e.g. an unreadable JWKS file).
 *
 * @example
 * ```ts ignore
 * await using service = await startService({ config, logger });
 * Deno.serve({ port: config.port }, service.handler);
 * ```
 */
export async function startService(options: ServiceOptions): Promise<Service> {
  const { config, logger } = options;
  const metrics = options.metrics ?? createServiceMetrics();
  const now = options.now ?? (() => Date.now());
  const closing = new AbortController();
  const tasks: Promise<unknown>[] = [];

  // First: a bad policy file stops the start (PolicyFileError names every problem).
  const policySource: PolicySource | undefined = config.policyFile
    ? startPolicyFile({ path: config.policyFile, defaultAccount: config.account, logger, metrics })
    : undefined;
  // Rules by labels need the Namespaces' labels, which only the apiserver has.
  const policyUsesLabels = policySource !== undefined && usesLabels(policySource.current.policy);
  if (policyUsesLabels && config.serviceAccountsFile) {
    await policySource?.close();
    throw new PolicyFileError([
      `${config.policyFile}: namespace rules with labels need the Namespace objects from the ` +
      "Kubernetes API, but SERVICEACCOUNTS_FILE is set (no apiserver watch); match by names or glob",
    ]);
  }

  const useApiServer = config.k8s.inCluster || config.serviceAccountsFile === undefined ||
    (config.jwt.jwksUrl === undefined && config.jwt.jwksPath === undefined) ||
    config.jwt.issuers === undefined;
  // One access for every request to the apiserver: list, watch, JWKS and discovery alike.
  const access: ApiAccess | undefined = !useApiServer
    ? undefined
    : config.k8s.inCluster
    ? inClusterAccess({
      server: config.k8s.apiServerUrl,
      caFile: config.k8s.caFile,
      tokenFile: config.k8s.tokenFile,
    })
    : await kubeconfigAccess(kubeconfigPaths(config.k8s.kubeconfig, config.k8s.home)).catch(
      async (err) => {
        await policySource?.close();
        throw err;
      },
    );

  if (access) {
    logger.info("apiserver_access", { server: redactUrl(access.server), via: access.via });
  }

  let keys: KeySource;
  try {
    if (config.jwt.jwksPath) {
      keys = await fileKeySource(config.jwt.jwksPath, { logger, metrics, ...options.jwksTimings });
    } else {
      const url = config.jwt.jwksUrl ?? `${access?.server}/openid/v1/jwks`;
      keys = await remoteKeySource(url, {
        logger,
        metrics,
        now,
        ...options.jwksTimings,
        ...(access && isApiServerUrl(url, access, config.k8s.inCluster) ? { access } : {}),
      });
    }
  } catch (err) {
    access?.[Symbol.dispose]();
    await policySource?.close();
    throw err;
  }

  let serviceAccounts: ServiceAccountSource;
  // Tokens bound to a Pod are refused once it is gone (K8S_WATCH_PODS); no Pods in file mode.
  let pods: PodSource | undefined;
  // The Namespaces' labels, when the policy at start has rules by labels.
  let namespaces: NamespaceSource | undefined;
  try {
    if (config.serviceAccountsFile) {
      serviceAccounts = startServiceAccountsFile({
        path: config.serviceAccountsFile,
        annotationPrefix: config.annotationPrefix,
        logger,
        metrics,
      });
    } else {
      serviceAccounts = startServiceAccountCache({
        access: access!,
        ...(config.k8s.namespace ? { namespace: config.k8s.namespace } : {}),
        annotationPrefix: config.annotationPrefix,
        relistIntervalMs: config.relistIntervalMs,
        logger,
        metrics,
      });
      if (config.k8s.watchPods) {
        pods = startPodCache({
          access: access!,
          ...(config.k8s.namespace ? { namespace: config.k8s.namespace } : {}),
          relistIntervalMs: config.relistIntervalMs,
          logger,
          metrics,
        });
      }
      if (policyUsesLabels) {
        namespaces = startNamespaceCache({
          access: access!,
          relistIntervalMs: config.relistIntervalMs,
          logger,
          metrics,
        });
      }
    }
  } catch (err) {
    await pods?.close();
    // Nothing else has started yet; release the key source's timers before giving up.
    await keys.close();
    await policySource?.close();
    access?.[Symbol.dispose]();
    throw err;
  }

  const failed = Promise.withResolvers<Error>();
  let issuers = config.jwt.issuers;
  let callout: ReturnType<typeof serveCallout> | undefined;
  let login: Login | undefined;
  let nc: Awaited<ReturnType<typeof connectNats>> | undefined;
  let revocation: Revocation | undefined;
  let systemNc: NatsConnection | undefined;

  const checks: ReadinessCheck[] = [
    { name: "nats", ready: () => options.nats === false || callout?.ready === true },
    serviceAccountsCheck(serviceAccounts, config.cacheMaxStalenessMs),
    ...(pods ? [{ name: "pods", ready: () => pods?.synced === true }] : []),
    ...(namespaces ? [{ name: "namespaces", ready: () => namespaces?.synced === true }] : []),
    { name: "keys", ready: () => keys.ready && issuers !== undefined },
  ];
  metrics.trackStaleness(() => stalenessMs(serviceAccounts) / 1000);
  const resync = createResync(() => ({ serviceAccounts, keys }), { logger });
  const httpHandler = createHttpHandler({
    checks,
    registry: metrics.registry,
    resync,
    ...(options.version ? { version: options.version } : {}),
  });
  const processMetrics = registerProcessMetrics(metrics.registry, {
    version: options.version ?? "unknown",
  });
  if (processMetrics.unavailable.length > 0) {
    logger.debug("metrics_unavailable", {
      metrics: processMetrics.unavailable,
      why: "/proc/self is readable only with --allow-all under Deno",
    });
  }
  watchReadiness(checks, { logger, signal: closing.signal });
  const explainHandler = config.explainEnabled ? createExplainHandler(() => login) : undefined;
  const handler = (req: Request): Promise<Response> =>
    explainHandler && new URL(req.url).pathname === "/explain"
      ? explainHandler(req)
      : httpHandler(req);

  tasks.push(
    (async () => {
      if (access) {
        const risk = await apiAudienceRiskOf(access, config, issuers ?? []);
        if (risk) throw new StartupError(risk);
      }
      if (issuers === undefined) {
        const discover = new FailureReporter({ logger, request: "issuer discovery" });
        const found = await retry(
          () => discoverIssuer(access!.server, { access: access! }),
          { what: discover, signal: closing.signal },
        );
        if (found === undefined) return;
        logger.info("issuer_discovered", { issuer: found });
        if (!config.jwt.allowApiAudience && config.jwt.audience === found) {
          throw new StartupError(apiAudienceRisk(found, [found]) ?? "");
        }
        issuers = [found];
      }
      const verifyToken = createTokenVerifier({
        keys,
        issuer: issuers,
        audience: config.jwt.audience,
        metrics,
        now,
      });
      login = createLogin({
        verifyToken,
        lookup: serviceAccounts.lookup,
        ...(pods ? { pods: pods.lookup } : {}),
        isSynced: () =>
          serviceAccounts.synced && (pods?.synced ?? true) && (namespaces?.synced ?? true),
        policy: { annotationPrefix: config.annotationPrefix },
        ...(policySource ? { clusterPolicy: () => policySource.current.policy } : {}),
        ...(namespaces ? { namespaceLabels: namespaces.labelsOf } : {}),
        ...(config.userJwtTtlMs !== undefined ? { userJwtTtlMs: config.userJwtTtlMs } : {}),
        defaultAccount: config.account,
        logger,
        metrics,
        now,
      });
      if (options.nats === false) return;
      // Live revocation (DESIGN D6), when a system-account user is configured.
      if (config.nats.system !== undefined) {
        const grantOf = login.grantOf;
        revocation = startRevocation({
          system: connectSystem(config, logger, metrics, closing.signal, (c) => (systemNc = c)),
          lookups: () => ({
            serviceAccount: serviceAccounts.lookup,
            permissionsOf: (sa) => grantOf(sa).permissions,
            ...(policySource ? { accountOf: (sa) => grantOf(sa).account } : {}),
            ...(pods ? { pod: pods.lookup } : {}),
          }),
          canDecide: () => failingChecks(checks.filter((c) => c.name !== "nats")).length === 0,
          keys,
          logger,
          metrics,
          now,
        });
      }
      const authorizer = revocation
        ? rememberApprovals(login.authorize, revocation)
        : login.authorize;
      const calloutHandler = await createCalloutHandler({
        accountSeed: config.signingKeySeed,
        account: config.account,
        ...(config.xkeySeed ? { xkeySeed: config.xkeySeed } : {}),
        ...(policySource ? { accountSeeds: () => policySource.current.accountSeeds } : {}),
        authorizer,
        logger,
        metrics,
        now,
      });
      if (closing.signal.aborted) return;
      nc = await connectNats({
        servers: config.nats.servers,
        ...(config.nats.credsFile ? { credsFile: config.nats.credsFile } : {}),
        ...(config.nats.token ? { token: config.nats.token } : {}),
        ...(config.nats.tls ? { tls: config.nats.tls } : {}),
        name: "nats-k8s-oidc-callout",
        logger,
        metrics,
        signal: closing.signal,
      });
      if (closing.signal.aborted) {
        await nc.close();
        return;
      }
      // Member of the queue group only while every other readiness check passes (DESIGN D5).
      callout = serveCallout(nc, calloutHandler, {
        queue: config.nats.queueGroup,
        logger,
        canDecide: () => failingChecks(checks.filter((c) => c.name !== "nats")),
      });
    })().catch((err) => {
      if (err instanceof StartupError) failed.resolve(err);
      else if (!closing.signal.aborted) logger.error("startup_failed", { error: err });
    }),
  );

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      closing.abort();
      // In parallel, each bounded: the whole shutdown stays under a second even when the servers
      // are gone (a drain would wait for them).
      await Promise.all([
        callout?.stop().catch((err) => logger.warn("callout_stop_failed", { error: err })),
        revocation?.close(),
      ]);
      await Promise.all([systemNc && drainBriefly(systemNc), nc && drainBriefly(nc)]);
      await serviceAccounts.close();
      await pods?.close();
      await namespaces?.close();
      access?.[Symbol.dispose]();
      await keys.close();
      await policySource?.close();
      await Promise.allSettled(tasks);
    })();
    return closed;
  };

  return {
    handler,
    metrics,
    resync,
    get login() {
      return login;
    },
    failed: failed.promise,
    get ready() {
      return checks.every((c) => c.ready());
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/**
 * Connect live revocation's system-account user: the same servers and TLS as the main connection,
 * its own credentials. Retries in the background like the main connection (`onConnected` gets the
 * connection for shutdown); a rejected promise only means shutdown came first.
 */
function connectSystem(
  config: Config,
  logger: Logger,
  metrics: ServiceMetrics,
  signal: AbortSignal,
  onConnected: (nc: NatsConnection) => void,
): Promise<NatsConnection> {
  const system = config.nats.system ?? {};
  const connecting = connectNats({
    servers: config.nats.servers,
    ...(system.credsFile !== undefined ? { credsFile: system.credsFile } : {}),
    ...(system.token !== undefined ? { token: system.token } : {}),
    ...(system.user !== undefined ? { user: system.user, pass: system.password ?? "" } : {}),
    ...(config.nats.tls ? { tls: config.nats.tls } : {}),
    name: "nats-k8s-oidc-callout-revocation",
    logger: logger.child({ connection: "system" }),
    // Its own gauge: the main connection's nats_connected must not be overwritten.
    metrics: { ...metrics, natsConnected: metrics.natsSystemConnected },
    signal,
  });
  void connecting.then(onConnected, () => {});
  return connecting;
}

/**
 * Drain `nc`, but close it instead when the drain has not finished after `ms` (a drain waits for
 * the server, which may be gone): shutdown must not wait for a reconnect.
 */
async function drainBriefly(nc: NatsConnection, ms = 300): Promise<void> {
  const timeout = new AbortController();
  await Promise.race([nc.drain().catch(() => {}), delay(ms, timeout.signal)]);
  timeout.abort();
  if (!nc.isClosed()) await nc.close().catch(() => {});
}

/** Names of the checks that do not pass now; a throw counts as not passing. */
function failingChecks(checks: readonly ReadinessCheck[]): string[] {
  return checks.filter((c) => {
    try {
      return c.ready() !== true;
    } catch {
      return true;
    }
  }).map((c) => c.name);
}

/** A configuration problem found during start-up that no retry can fix. */
export class StartupError extends Error {
  /** Create the error. */
  constructor(message: string) {
    super(message);
    this.name = "StartupError";
  }
}

/**
 * Check `JWT_AUDIENCE` against the audiences the apiserver itself accepts, as far as they can be
 * known without extra RBAC: the `aud` of the service's own API token (the kubelet requests it with
 * the apiserver's `--api-audiences`). Undefined when safe or when the token is not a JWT.
 */
async function apiAudienceRiskOf(
  access: ApiAccess,
  config: Config,
  issuers: readonly string[],
): Promise<string | undefined> {
  if (config.jwt.allowApiAudience) return undefined;
  let audiences: readonly string[] = [];
  try {
    const bearer = (await access.headers()).get("authorization") ?? "";
    const payload = bearer.startsWith("Bearer ") ? bearer.slice(7).split(".")[1] : undefined;
    if (payload) {
      const aud = JSON.parse(new TextDecoder().decode(decodeBase64Url(payload))).aud;
      audiences = typeof aud === "string" ? [aud] : Array.isArray(aud) ? aud : [];
    }
  } catch {
    // Not a JWT, or unreadable now: the requests that need it will say why.
  }
  if (!audiences.includes(config.jwt.audience)) {
    return apiAudienceRisk(config.jwt.audience, issuers);
  }
  return `JWT_AUDIENCE: ${JSON.stringify(config.jwt.audience)} is one of the apiserver's own API ` +
    "audiences (found in the service's own token): every pod's default ServiceAccount token would " +
    'log in to NATS. Use a dedicated audience such as "nats", or set ' +
    "JWT_AUDIENCE_ALLOW_API_AUDIENCE=true to accept that risk";
}

function decodeBase64Url(text: string): Uint8Array {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(b64 + "=".repeat((4 - b64.length % 4) % 4)), (c) => c.charCodeAt(0));
}

/** How long ago the source last heard from its origin; 0 for sources that are always current. */
function stalenessMs(source: ServiceAccountSource): number {
  return source.freshAt === undefined ? 0 : Math.max(0, Date.now() - source.freshAt);
}

/**
 * The "serviceaccounts" readiness check: synced, and — when `maxStalenessMs` is set
 * (`CACHE_MAX_STALENESS`) — not staler than that. Its details always say how stale the cache is,
 * and why it fails when it does (issue 10, defects 6 and 7).
 */
export function serviceAccountsCheck(
  source: ServiceAccountSource,
  maxStalenessMs: number | undefined,
): ReadinessCheck {
  const tooStale = () => maxStalenessMs !== undefined && stalenessMs(source) > maxStalenessMs;
  return {
    name: "serviceaccounts",
    ready: () => source.synced && !tooStale(),
    details: () => {
      const staleness = Math.round(stalenessMs(source) / 100) / 10;
      const reason = !source.synced
        ? "the first list of ServiceAccounts has not completed"
        : tooStale()
        ? `no answer from the apiserver for ${staleness}s, more than CACHE_MAX_STALENESS (${
          formatDuration(maxStalenessMs!)
        }); decisions would use a stale ServiceAccount cache`
        : undefined;
      return {
        synced: source.synced,
        staleness_seconds: staleness,
        ...(maxStalenessMs !== undefined ? { max_staleness_seconds: maxStalenessMs / 1000 } : {}),
        ...(reason !== undefined ? { reason } : {}),
      };
    },
  };
}

/**
 * Retry `fn` with capped exponential backoff until it succeeds or `signal` aborts (→ undefined);
 * failures are reported (warn once per change of cause) by `what`.
 */
async function retry<T>(
  fn: () => Promise<T>,
  options: { what: FailureReporter; signal: AbortSignal },
): Promise<T | undefined> {
  let backoff = 500;
  while (!options.signal.aborted) {
    try {
      const value = await fn();
      options.what.succeeded();
      return value;
    } catch (err) {
      options.what.failed(err);
      await delay(backoff * (0.8 + Math.random() * 0.4), options.signal);
      // Only ever before the service can work: a short cap (issue 10, defect 6).
      backoff = Math.min(backoff * 2, 2_000);
    }
  }
  return undefined;
}
