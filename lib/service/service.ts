/**
 * The whole service, wired from a {@linkcode Config}: key source, ServiceAccount source, token
 * verifier, login decision, callout protocol, NATS subscription and the HTTP handler. Nothing here
 * reads the environment or listens on a port; `main.ts` does that, tests call this directly.
 *
 * Start-up never blocks on a dependency that may come later (NATS, the apiserver, the JWKS
 * endpoint, issuer discovery): the HTTP handler is available at once, `/readyz` names what is still
 * missing, and each dependency is retried in the background until {@linkcode Service.close}.
 *
 * Start-up owns what it starts through one `AsyncDisposableStack`: each resource is registered on
 * it the moment it starts, a failure releases everything started so far in reverse order, and the
 * running service's `close` releases the stack it took over. The steps, in reading order:
 * lib/service/sources.ts (policy, apiserver access, keys, caches), lib/service/readiness.ts,
 * lib/service/logins.ts (issuers, login, revocation, NATS — in the background) and
 * lib/service/stop_together.ts (what stops in parallel).
 *
 * @module
 */
import { createExpiredStreak } from "../callout/clock_skew.ts";
import type { Config } from "../config/config.ts";
import type { Login } from "../decision/login.ts";
import { createExplainHandler } from "../operations/explain.ts";
import { createHttpHandler, type ReadinessCheck } from "../operations/http.ts";
import { watchReadiness } from "../operations/readiness_log.ts";
import { createResync, type Resync } from "../operations/resync.ts";
import type { Logger } from "../telemetry/log.ts";
import { registerProcessMetrics } from "../telemetry/process_metrics.ts";
import { createServiceMetrics, type ServiceMetrics } from "../telemetry/service_metrics.ts";
import { StartupError } from "./issuers.ts";
import { type LoginsProgress, startLogins } from "./logins.ts";
import { readinessChecks, stalenessMs } from "./readiness.ts";
import { type Sources, startSources } from "./sources.ts";
import { StopTogether } from "./stop_together.ts";

export { StartupError } from "./issuers.ts";
export { serviceAccountsCheck } from "./readiness.ts";

/** Options of {@linkcode startService}. */
export interface ServiceOptions {
  /** Validated configuration (see `loadConfig`). */
  config: Config;
  /** Where the service logs (JSON lines in `main.ts`). */
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
  /** The metrics the service records into (given, or created by {@linkcode startService}). */
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
 * background. Rejects only for problems no retry can fix (e.g. an unreadable JWKS file), after
 * releasing what had started.
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
  // Released in reverse order of registration: on a failure below, or by the service's close.
  await using stack = new AsyncDisposableStack();
  // Released last: the background start-up (below), which ends soon after `closing` aborts.
  let background: Promise<void> = Promise.resolve();
  stack.defer(() => background);
  const sources = await startSources(config, stack, {
    logger,
    metrics,
    now,
    jwksTimings: options.jwksTimings,
  });
  // Started in the background, stopped before the sources: subscribers first, then connections.
  const connections = stack.use(new StopTogether());
  const subscribers = stack.use(new StopTogether());
  // Released first: ends every wait and retry, and the readiness log says "stopping".
  const closing = new AbortController();
  stack.defer(() => closing.abort());

  const progress: LoginsProgress = {
    issuers: config.jwt.issuers,
    login: undefined,
    callout: undefined,
  };
  const nats = options.nats !== false;
  const expiredStreak = nats ? createExpiredStreak() : undefined;
  const checks = readinessChecks(sources, {
    ...(expiredStreak ? { expiredStreak } : {}),
    natsReady: () => !nats || progress.callout?.ready === true,
    issuersKnown: () => progress.issuers !== undefined,
    accounts: () =>
      !nats
        ? { ready: sources.namespaces?.synced === true, problem: "Namespaces not listed yet" }
        : progress.provisioner?.state ?? { ready: false, problem: "provisioning has not started" },
  }, config.cacheMaxStalenessMs);
  registerMetrics(metrics, sources, options.version, logger);
  const resync = createResync(
    () => ({ serviceAccounts: sources.serviceAccounts, keys: sources.keys }),
    { logger },
  );
  const handler = httpHandler({
    config,
    checks,
    metrics,
    resync,
    version: options.version,
    login: () => progress.login,
  });
  watchReadiness(checks, { logger, signal: closing.signal });

  const failed = Promise.withResolvers<Error>();
  const signal = closing.signal;
  background = startLogins(
    {
      config,
      sources,
      checks,
      logger,
      metrics,
      now,
      nats,
      signal,
      subscribers,
      connections,
      ...(expiredStreak ? { expiredStreak } : {}),
    },
    progress,
  ).catch((err) => {
    if (err instanceof StartupError) failed.resolve(err);
    else if (!signal.aborted) logger.error("startup_failed", { error: err });
  });

  const owned = stack.move();
  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => (closed ??= owned.disposeAsync());
  return {
    handler,
    metrics,
    resync,
    get login() {
      return progress.login;
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
 * What `/metrics` reports besides the service's own families: how stale the ServiceAccounts are,
 * and the process (CPU, memory, build info) as far as the permissions allow.
 */
function registerMetrics(
  metrics: ServiceMetrics,
  sources: Sources,
  version: string | undefined,
  logger: Logger,
): void {
  metrics.trackStaleness(() => stalenessMs(sources.serviceAccounts) / 1000);
  const processMetrics = registerProcessMetrics(metrics.registry, {
    version: version ?? "unknown",
  });
  if (processMetrics.unavailable.length > 0) {
    logger.debug("metrics_unavailable", {
      metrics: processMetrics.unavailable,
      why: "/proc/self is readable only with --allow-all under Deno",
    });
  }
}

/**
 * The service's HTTP handler: health, readiness, metrics and resync, and `/explain` when
 * `EXPLAIN_ENABLED` is set (it answers once the login exists).
 */
function httpHandler(parts: {
  config: Config;
  checks: readonly ReadinessCheck[];
  metrics: ServiceMetrics;
  resync: Resync;
  version: string | undefined;
  login: () => Login | undefined;
}): (req: Request) => Promise<Response> {
  const operations = createHttpHandler({
    checks: parts.checks,
    registry: parts.metrics.registry,
    resync: parts.resync,
    ...(parts.version ? { version: parts.version } : {}),
  });
  const explain = parts.config.explainEnabled ? createExplainHandler(parts.login) : undefined;
  return (req) =>
    explain && new URL(req.url).pathname === "/explain" ? explain(req) : operations(req);
}
