/**
 * The part of start-up that waits on remote dependencies, run in the background once the local
 * parts stand: settle the token issuers, build the login decision, start live revocation, connect
 * to NATS and serve the callout, and watch for logins the server refuses after we allowed them. Each step may wait (discovery is retried, NATS is reconnected);
 * `/readyz` names what is still missing meanwhile. Everything started here is registered for
 * shutdown the moment it starts: the callout subscription and revocation stop together first,
 * then the NATS connections drain together (see lib/service/stop_together.ts).
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { delay } from "../core/abort.ts";
import type { ExpiredStreak } from "../callout/clock_skew.ts";
import { createCalloutHandler } from "../callout/handler.ts";
import type { Config } from "../config/config.ts";
import { createLogin, type Login } from "../decision/login.ts";
import { type CalloutService, serveCallout } from "../nats/callout_subscription.ts";
import { connectNats } from "../nats/connection.ts";
import { rememberApprovals, type Revocation, startRevocation } from "../nats/revocation.ts";
import { createServerRefusals, watchServerRefusals } from "../nats/server_refusals.ts";
import type { ReadinessCheck } from "../operations/http.ts";
import type { Logger } from "../telemetry/log.ts";
import type { ServiceMetrics } from "../telemetry/service_metrics.ts";
import { createTokenVerifier } from "../tokens/verifier.ts";
import { createResolverClient } from "../accounts/resolver.ts";
import { createAccountSettler } from "../accounts/settle.ts";
import { type Provisioner, startProvisioner } from "../accounts/provisioner.ts";
import { nkeySignerFromSeed } from "../callout/nkey_jwt.ts";
import type { NamespaceAccounts } from "../decision/namespace_account.ts";
import { systemRequests } from "../nats/system_requests.ts";
import { createAccountMetrics } from "../telemetry/account_metrics.ts";
import { resolveIssuers } from "./issuers.ts";
import { decidingChecks, failingChecks } from "./readiness.ts";
import type { Sources } from "./sources.ts";
import type { StopTogether } from "./stop_together.ts";

/** What {@linkcode startLogins} works with. */
export interface LoginsContext {
  /** The validated configuration. */
  readonly config: Config;
  /** The sources started before: keys, ServiceAccounts, Pods, Namespaces, policy, access. */
  readonly sources: Sources;
  /** The service's readiness checks: callout membership and revocation follow them. */
  readonly checks: readonly ReadinessCheck[];
  /** Where the login decisions and the NATS connections log. */
  readonly logger: Logger;
  /** The service's metrics. */
  readonly metrics: ServiceMetrics;
  /** Clock in milliseconds, for token and request expiry. */
  readonly now: () => number;
  /** Connect to NATS and answer callouts; `false` stops once the login is built (`explain`). */
  readonly nats: boolean;
  /** Aborts at shutdown: every wait and retry here ends with it. */
  readonly signal: AbortSignal;
  /** The requests dropped as expired in a row, behind the "clock" readiness check. */
  readonly expiredStreak?: ExpiredStreak;
  /** Stopped first at shutdown, together: the callout subscription and live revocation. */
  readonly subscribers: StopTogether;
  /** Drained after the subscribers, together: the NATS connections. */
  readonly connections: StopTogether;
}

/** How far the background start-up has come; the service reads it live. */
export interface LoginsProgress {
  /** The accepted token issuers; undefined until configured or discovered. */
  issuers: readonly string[] | undefined;
  /** The login decision, once the issuers are known. */
  login: Login | undefined;
  /** The callout subscription, once NATS is connected. */
  callout: CalloutService | undefined;
  /** Accounts that follow namespaces, once provisioning runs (`NATS_OPERATOR_SIGNING_KEY_FILE`). */
  provisioner?: Provisioner | undefined;
}

/**
 * Run the background start-up to its end, recording each stage in `progress`. Resolves early
 * when `context.signal` aborts; rejects with `StartupError` for a problem no retry can fix.
 */
export async function startLogins(context: LoginsContext, progress: LoginsProgress): Promise<void> {
  const { config, sources, logger, signal } = context;
  const { policy } = sources;
  progress.issuers = await resolveIssuers(config, sources.access, { logger, signal });
  if (progress.issuers === undefined) return;
  if (!context.nats) {
    // explain: the accounts are planned (what a namespace would get), never pushed.
    const planner = sources.accounts?.planner;
    const planned = planner &&
      {
        accountOf: planner.accountOf,
        ensure: (ns: string) => Promise.resolve(planner.accountOf(ns)),
      };
    progress.login = buildLogin(context, progress.issuers, planned);
    return;
  }
  const system = config.nats.system !== undefined ? connectSystem(context) : undefined;
  const provisioner = progress.provisioner = system && startAccounts(context, system);
  const login = progress.login = buildLogin(context, progress.issuers, provisioner);
  const revocation = system ? startLiveRevocation(context, login, system) : undefined;
  const planner = sources.accounts?.planner;
  // Logins allowed here that the server then refuses (an account connection limit…).
  const refusals = createServerRefusals({ logger, metrics: context.metrics, now: context.now });
  const calloutHandler = await createCalloutHandler({
    accountSeed: config.signingKeySeed,
    account: config.account,
    ...(config.xkeySeed ? { xkeySeed: config.xkeySeed } : {}),
    ...(policy ? { accountSeeds: () => policy.current.accountSeeds } : {}),
    ...(planner ? { provisionedSigner: (account: string) => planner.signerFor(account) } : {}),
    authorizer: revocation ? rememberApprovals(login.authorize, revocation) : login.authorize,
    logger,
    metrics: context.metrics,
    now: context.now,
    onAllowed: refusals.allowed,
    ...(context.expiredStreak ? { expiredStreak: context.expiredStreak } : {}),
  });
  if (signal.aborted) return;
  const nc = await connectMain(context);
  if (signal.aborted) {
    await nc.close();
    return;
  }
  context.connections.defer(() => drainBriefly(nc));
  const watching = watchServerRefusals(nc, refusals, logger);
  context.subscribers.defer(() => watching.stop());
  // Member of the queue group only while every other readiness check passes (DESIGN D5).
  const deciding = decidingChecks(context.checks);
  const callout = progress.callout = serveCallout(nc, calloutHandler, {
    queue: config.nats.queueGroup,
    logger,
    canDecide: () => failingChecks(deciding),
  });
  context.subscribers.defer(() =>
    callout.stop().catch((err) => logger.warn("callout_stop_failed", { error: err }))
  );
}

/**
 * Accounts that follow namespaces (lib/accounts/provisioner.ts) over the system-account
 * connection, when configured; stopped with the subscribers.
 */
function startAccounts(
  context: LoginsContext,
  system: Promise<NatsConnection>,
): Provisioner | undefined {
  const { config, sources, logger, metrics, now } = context;
  if (!config.provisioning || !sources.accounts) return undefined;
  const requests = systemRequests(system);
  return context.subscribers.use(startProvisioner({
    planner: sources.accounts.planner,
    root: sources.accounts.root,
    authAccount: config.provisioning.authAccount,
    resolver: createResolverClient(requests),
    settler: createAccountSettler(requests),
    operator: nkeySignerFromSeed(config.provisioning.operatorSigningKeySeed),
    logger: logger.child({ component: "accounts" }),
    metrics: createAccountMetrics(metrics.registry),
    now,
  }));
}

/** The login decision: token verification against `issuers`, the sources, the policy. */
function buildLogin(
  context: LoginsContext,
  issuers: readonly string[],
  namespaceAccounts: NamespaceAccounts | undefined,
): Login {
  const { config, logger, metrics, now } = context;
  const { keys, serviceAccounts, pods, namespaces, policy } = context.sources;
  const verifyToken = createTokenVerifier({
    keys,
    issuer: issuers,
    audience: config.jwt.audience,
    metrics,
    now,
  });
  return createLogin({
    verifyToken,
    lookup: serviceAccounts.lookup,
    ...(pods ? { pods: pods.lookup } : {}),
    isSynced: () =>
      serviceAccounts.synced && (pods?.synced ?? true) && (namespaces?.synced ?? true),
    policy: { annotationPrefix: config.annotationPrefix },
    ...(policy ? { clusterPolicy: () => policy.current.policy } : {}),
    ...(namespaces ? { namespaceLabels: namespaces.labelsOf } : {}),
    ...(config.userJwtTtlMs !== undefined ? { userJwtTtlMs: config.userJwtTtlMs } : {}),
    defaultAccount: config.account,
    ...(namespaceAccounts ? { namespaceAccounts } : {}),
    logger,
    metrics,
    now,
  });
}

/**
 * Live revocation (DESIGN D6), over the system-account user's own connection: closes approved
 * connections whose ServiceAccount, grant or Pod is gone. Registered with the subscribers.
 */
function startLiveRevocation(
  context: LoginsContext,
  login: Login,
  system: Promise<NatsConnection>,
): Revocation {
  const { sources, logger, metrics, now } = context;
  const { serviceAccounts, pods, policy, keys, changes } = sources;
  const grantOf = login.grantOf;
  const deciding = decidingChecks(context.checks);
  return context.subscribers.use(startRevocation({
    system,
    lookups: () => ({
      serviceAccount: serviceAccounts.lookup,
      permissionsOf: (sa) => grantOf(sa).permissions,
      ...(policy ? { accountOf: (sa) => grantOf(sa).account } : {}),
      ...(pods ? { pod: pods.lookup } : {}),
    }),
    canDecide: () => failingChecks(deciding).length === 0,
    keys,
    // Follow the caches' changes; the ServiceAccounts file has none, so it is checked every tick.
    ...(changes
      ? {
        changes: {
          serviceAccounts: changes.serviceAccounts,
          ...(changes.pods ? { pods: changes.pods } : {}),
          ...(changes.namespaces ? { namespaces: changes.namespaces } : {}),
          policyVersion: () => policy?.current,
          // An exporter Namespace's change changes its importers' grants (issue 18 breaker).
          namespacesAffectOthers: sources.accounts !== undefined,
        },
      }
      : {}),
    logger,
    metrics,
    now,
  }));
}

/** The service's own NATS connection, retried in the background until it connects or aborts. */
function connectMain(context: LoginsContext): Promise<NatsConnection> {
  const { config, logger, metrics, signal } = context;
  return connectNats({
    servers: config.nats.servers,
    ...(config.nats.credsFile ? { credsFile: config.nats.credsFile } : {}),
    ...(config.nats.token ? { token: config.nats.token } : {}),
    ...(config.nats.tls ? { tls: config.nats.tls } : {}),
    name: "nats-k8s-oidc-callout",
    backoff: RECONNECT_BACKOFF,
    logger,
    metrics,
    signal,
  });
}

/**
 * The service's reconnect backoff: capped at 500 ms, not nats.js's 2 s. After a nats-server
 * restart the clients come back after their own reconnect wait (2 s by default); a login that
 * reaches the server before the service has subscribed again waits out the server's
 * `authorization.timeout` and fails. Capped at 2 s, a restart that took 1.7 s left the service
 * away until 3–4 s after the kill and failed hundreds of a 300-client storm's logins (issue 18,
 * bench/storms.ts); at 500 ms it is back within half a second of the server. A handful of replicas
 * dialling twice a second while a server is down is no load.
 */
const RECONNECT_BACKOFF = { maxMs: 500 } as const;

/**
 * Connect live revocation's system-account user: the same servers and TLS as the main connection,
 * its own credentials. Retries in the background like the main connection; once connected it is
 * drained with the other connections at shutdown (at once, if shutdown has passed them). A
 * rejected promise only means shutdown came first.
 */
function connectSystem(context: LoginsContext): Promise<NatsConnection> {
  const { config, logger, metrics, signal, connections } = context;
  const system = config.nats.system ?? {};
  const connecting = connectNats({
    servers: config.nats.servers,
    ...(system.credsFile !== undefined ? { credsFile: system.credsFile } : {}),
    ...(system.token !== undefined ? { token: system.token } : {}),
    ...(system.user !== undefined ? { user: system.user, pass: system.password ?? "" } : {}),
    ...(config.nats.tls ? { tls: config.nats.tls } : {}),
    name: "nats-k8s-oidc-callout-revocation",
    backoff: RECONNECT_BACKOFF,
    logger: logger.child({ connection: "system" }),
    // Its own gauge: the main connection's nats_connected must not be overwritten.
    metrics: { ...metrics, natsConnected: metrics.natsSystemConnected },
    signal,
  });
  void connecting.then((nc) => {
    if (connections.disposed) void drainBriefly(nc);
    else connections.defer(() => drainBriefly(nc));
  }, () => {});
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
