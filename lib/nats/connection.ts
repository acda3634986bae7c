/**
 * The service's own NATS connection: credentials, TLS, reconnecting forever, and the status the
 * rest of the service reads. The callout subscription on top of it is
 * lib/nats/callout_subscription.ts.
 *
 * The connection never gives up (the Go reference stops after 60 attempts and then serves nothing
 * while looking healthy): it reconnects forever with jittered backoff, and `ready` / the
 * `nats_connected` gauge say at every moment whether requests can reach us.
 *
 * Reading order: {@linkcode connectNats} turns the options into nats.js's (credentials, TLS, the
 * {@linkcode ReconnectBackoff}), dials until the first connection, then watches the status for
 * the connection's lifetime.
 *
 * @module
 */
import {
  connect,
  credsAuthenticator,
  errors,
  type NatsConnection,
  type NodeConnectionOptions,
  type Status,
} from "@nats-io/transport-node";
import { abortable, delay } from "../core/abort.ts";
import { type Logger, redactUrl } from "../telemetry/log.ts";
import type { ServiceMetrics } from "../telemetry/service_metrics.ts";
import { AUTH_ERROR_EVENTS } from "./server_refusals.ts";
import { createServerIdentity, type ServerIdentity } from "./tls_identity.ts";

/** TLS files for the service's connection. */
export interface NatsTlsOptions {
  /** CA bundle to verify the server with. */
  caFile?: string;
  /** Client certificate (mutual TLS). */
  certFile?: string;
  /** Client key (mutual TLS). */
  keyFile?: string;
}

/**
 * Reconnect backoff: `initialMs` doubling with each failed dial up to `maxMs`, each delay
 * randomised by ±`jitter` (see {@linkcode ReconnectBackoff}). While the callout is away every login
 * fails, so the defaults are short: a server restart is seen within about as long again as it
 * took, and a server that stays down is dialled every ~2 s — what nats.js does by default
 * (`reconnectTimeWait` 2 s) — by each of a handful of replicas, which is no load.
 */
export interface BackoffOptions {
  /** First delay. @default {100} */
  initialMs?: number;
  /** Largest delay. @default {2000} */
  maxMs?: number;
  /** Fraction of each delay that is random (0–1). @default {0.2} */
  jitter?: number;
}

/** Options of {@linkcode connectNats}. */
export interface NatsConnectOptions {
  /**
   * Server URLs. Credentials in a URL (`nats://user:pass@host:4222`, or `nats://token@host` for a
   * token) are used for the connection — nats.js itself ignores them — and never logged.
   * Precedence when several are given: `credsFile`, `token`, `user`/`pass`, URL token, URL
   * user/password.
   */
  servers: readonly string[];
  /** A `.creds` file (user JWT + seed), re-read on every (re)connect so rotation needs no restart. */
  credsFile?: string;
  /** Token authentication. */
  token?: string;
  /** User and password authentication (after `credsFile` and `token`, before URL credentials). */
  user?: string;
  /** Password for `user`. */
  pass?: string;
  /** TLS files; giving any enables TLS. */
  tls?: NatsTlsOptions;
  /** Connection name shown in the server's connz. */
  name: string;
  /** Receives the connection's lines (`nats_connected`, `nats_disconnected`, …), URLs masked. */
  logger: Logger;
  /** Its `nats_connected` gauge is kept here: 1 while the connection is up, 0 otherwise. */
  metrics: ServiceMetrics;
  /** Reconnect backoff. @default {{ initialMs: 100, maxMs: 2000, jitter: 0.2 }} */
  backoff?: BackoffOptions;
  /** Source of randomness for jitter, in [0, 1). @default {Math.random} */
  random?: () => number;
  /** Stops retrying the first connection (the promise rejects with the signal's reason). */
  signal?: AbortSignal;
  /** Give up one dial (TCP, TLS and the NATS handshake) after this long. @default {5000} */
  dialTimeoutMs?: number;
}

/** Credentials in a server URL's userinfo, percent-decoded: a token, or a user and password. */
export interface UrlCredentials {
  /** From `nats://user:pass@host`. */
  user?: string;
  /** From `nats://user:pass@host`; may be empty. */
  pass?: string;
  /** From `nats://token@host` (userinfo without a colon). */
  token?: string;
}

/**
 * Split credentials out of server URLs: nats.js connects to `host:port` and drops the userinfo.
 * All URLs that carry credentials must carry the same ones (one connection has one identity).
 */
export function liftUrlCredentials(
  servers: readonly string[],
): { servers: string[]; credentials: UrlCredentials } {
  let found: UrlCredentials | undefined;
  let foundKey: string | undefined;
  const out: string[] = [];
  for (const server of servers) {
    const match = /^([a-z][a-z0-9+.-]*:\/\/)([^@/]*)@(.*)$/i.exec(server.trim());
    if (!match) {
      out.push(server.trim());
      continue;
    }
    const [, scheme, userinfo, rest] = match as unknown as [string, string, string, string];
    out.push(`${scheme}${rest}`);
    const colon = userinfo.indexOf(":");
    const creds: UrlCredentials = colon < 0 ? { token: decodeURIComponent(userinfo) } : {
      user: decodeURIComponent(userinfo.slice(0, colon)),
      pass: decodeURIComponent(userinfo.slice(colon + 1)),
    };
    const key = JSON.stringify(creds);
    if (foundKey !== undefined && key !== foundKey) {
      throw new TypeError("servers carry different credentials in their URLs");
    }
    found = creds;
    foundKey = key;
  }
  return { servers: out, credentials: found ?? {} };
}

/** Options of {@linkcode createReconnectBackoff}. */
export interface ReconnectBackoffOptions extends BackoffOptions {
  /** Source of randomness for jitter, in [0, 1). @default {Math.random} */
  random?: () => number;
}

/**
 * Reconnect backoff, counted in dials rather than in calls.
 *
 * nats.js asks `reconnectDelayHandler` for a delay on every turn of its dial loop, and a turn
 * that finds the delay not yet elapsed since the server's last dial only sleeps and asks again.
 * A handler that grows its delay per call therefore reaches `maxMs` after a single failed dial
 * (5.7 s to come back from a 0.13 s server restart). This one grows only when a dial starts
 * ({@linkcode ReconnectBackoff.dialed}, wired to nats.js's `reconnectToServer`, which runs once
 * before each dial), and its jitter is drawn once per dial, so the value nats.js compares with
 * the time since the last dial is stable while it waits. With several servers nats.js measures
 * the delay per server and rotates between them; the count here is over all of them.
 */
export interface ReconnectBackoff {
  /**
   * Least time between the start of the previous dial and the next one: `initialMs` while no
   * dial has failed since the last connection (so a connection that lived longer than that is
   * redialled at once, and one that drops right after connecting is not hammered), then
   * `initialMs · 2^(failures − 1)` capped at `maxMs`, each randomised by ±`jitter`. Stable
   * between calls until {@linkcode dialed} or {@linkcode reset}.
   */
  delay(): number;
  /** A dial is starting: the next delay is the next step up. */
  dialed(): void;
  /** Connected: the next outage starts again from `initialMs`. */
  reset(): void;
  /** Dials started since the last {@linkcode reset}. */
  readonly dials: number;
}

/**
 * Create the {@linkcode ReconnectBackoff} that {@linkcode connectNats} gives nats.js. Exported so
 * the delay sequence can be checked without a server or a clock.
 *
 * @example
 * ```ts
 * import { createReconnectBackoff } from "./connection.ts";
 * const b = createReconnectBackoff({ initialMs: 100, maxMs: 400, jitter: 0 });
 * const seen = [];
 * for (let i = 0; i < 5; i++) { seen.push(b.delay()); b.dialed(); }
 * console.assert(seen.join() === "100,100,200,400,400");
 * ```
 */
export function createReconnectBackoff(options: ReconnectBackoffOptions = {}): ReconnectBackoff {
  const { initialMs = 100, maxMs = 2000, jitter = 0.2, random = Math.random } = options;
  if (!(initialMs > 0) || !(maxMs >= initialMs)) {
    throw new RangeError("backoff needs 0 < initialMs <= maxMs");
  }
  if (!(jitter >= 0 && jitter <= 1)) throw new RangeError("backoff jitter must be within 0..1");
  let dials = 0;
  let current: number | undefined;
  return {
    delay: (): number => {
      if (current === undefined) {
        const base = Math.min(maxMs, initialMs * 2 ** Math.min(Math.max(dials - 1, 0), 30));
        current = Math.round(base * (1 - jitter + 2 * jitter * random()));
      }
      return current;
    },
    dialed: () => {
      dials++;
      current = undefined;
    },
    reset: () => {
      dials = 0;
      current = undefined;
    },
    get dials() {
      return dials;
    },
  };
}

/**
 * nats.js's TLS options: the files, and the server name check of lib/nats/tls_identity.ts (the
 * certificate must name the server dialled: an address by its IP SANs). nats.js hands every field
 * on to `tls.connect`, though its type lists only the files.
 */
function tlsOptions(
  tls: NatsTlsOptions | undefined,
  identity: ServerIdentity,
): NonNullable<NodeConnectionOptions["tls"]> {
  const options = {
    ...(tls?.caFile ? { caFile: tls.caFile } : {}),
    ...(tls?.certFile ? { certFile: tls.certFile } : {}),
    ...(tls?.keyFile ? { keyFile: tls.keyFile } : {}),
    checkServerIdentity: identity.check,
  };
  return options;
}

/**
 * Why the service's NATS connection cannot be made: `authentication_refused` (the server said
 * `Authorization Violation`: wrong credentials), `unreachable` (refused, timed out, no such host),
 * `tls` (a TLS setting or certificate does not match the server's), `protocol` (anything else the
 * server or client objected to).
 */
export type NatsConnectCause = "authentication_refused" | "unreachable" | "tls" | "protocol";

const TLS_PROBLEM = /\btls\b|ssl|certificate|self[- ]signed|cert_|eproto|handshake|altnames/i;

function errorText(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e !== undefined && e !== null && depth < 4; depth++) {
    if (e instanceof Error) {
      parts.push(e.name, e.message);
      if ("code" in e) parts.push(String(e.code));
      e = e.cause;
    } else {
      parts.push(String(e));
      break;
    }
  }
  return parts.join(" ");
}

/**
 * Name the cause of a failed connection attempt from the error nats.js gives (see
 * {@linkcode NatsConnectCause}). Exported for tests; the connection logs it.
 *
 * @example
 * ```ts
 * import { classifyConnectError } from "./connection.ts";
 * const refused = new Error("connection refused", { cause: Object.assign(new Error("x"), { code: "ECONNREFUSED" }) });
 * console.assert(classifyConnectError(refused) === "unreachable");
 * ```
 */
export function classifyConnectError(err: unknown): NatsConnectCause {
  if (
    err instanceof errors.AuthorizationError || err instanceof errors.UserAuthenticationExpiredError
  ) return "authentication_refused";
  const text = errorText(err);
  if (/authorization violation|authentication/i.test(text)) return "authentication_refused";
  if (TLS_PROBLEM.test(text)) return "tls";
  if (
    err instanceof errors.TimeoutError ||
    /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|ECONNRESET|connection refused|timeout|closed/i
      .test(text)
  ) return "unreachable";
  return "protocol";
}

/**
 * Whether a TCP connection to `hostport` opens within `timeoutMs`: after a failed reconnect dial
 * with no error from the server, this tells an unreachable server from a TLS/handshake failure.
 */
async function tcpReachable(hostport: string, timeoutMs: number): Promise<boolean> {
  let url: URL;
  try {
    url = new URL(/^[a-z]+:\/\//i.test(hostport) ? hostport : `nats://${hostport}`);
  } catch {
    return false;
  }
  const hostname = url.hostname.replace(/^\[|\]$/g, "");
  const port = Number(url.port || 4222);
  const timeout = AbortSignal.timeout(timeoutMs);
  try {
    const conn = await abortable(Deno.connect({ hostname, port }), timeout);
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/**
 * Connect the service to NATS and keep it connected: retries the first connection until it
 * succeeds or `signal` aborts (then rejects with the signal's reason at once, whatever the dial is
 * doing), then lets nats.js reconnect forever — also after authentication errors, which an
 * operator may be fixing right now. Why it cannot connect is logged once per change of cause
 * (`nats_connect_failed` with `cause` and `attempts`: warn when unreachable, error when the
 * credentials or TLS are refused), first connection and reconnects alike. Status changes are
 * logged (URLs redacted) and mirrored in `metrics.natsConnected`.
 *
 * @example
 * ```ts ignore
 * import { connectNats } from "./connection.ts";
 * import { createLogger } from "../telemetry/log.ts";
 * import { createServiceMetrics } from "../telemetry/service_metrics.ts";
 * const nc = await connectNats({
 *   servers: ["nats://auth:secret@127.0.0.1:4222"],
 *   name: "nats-k8s-oidc-callout",
 *   logger: createLogger(),
 *   metrics: createServiceMetrics(),
 * });
 * await nc.drain();
 * ```
 */
export async function connectNats(options: NatsConnectOptions): Promise<NatsConnection> {
  const { logger, metrics, backoff = {}, random = Math.random, signal } = options;
  if (options.servers.length === 0) throw new TypeError("servers must not be empty");
  const { servers, credentials } = liftUrlCredentials(options.servers);
  const tlsRequired = requiresTls(servers, options.tls);
  const backoffState = createReconnectBackoff({ ...backoff, random });
  const shown = options.servers.map(redactUrl);
  const failures = createFailureLog(logger, backoffState, shown, tlsRequired);
  const dialOptions = dialOptionsOf(options, { servers, credentials, tlsRequired }, backoffState);

  metrics.natsConnected.set(0);
  logger.info("nats_connecting", { servers: shown });
  const nc = await dialUntilConnected(dialOptions, { signal, failures, backoff: backoffState });
  metrics.natsConnected.set(1);
  logger.info("nats_connected", {
    server: redactUrl(nc.getServer()),
    servers: shown,
    attempts: backoffState.dials,
  });
  backoffState.reset();
  failures.reset();

  void watchStatus(nc, { logger, metrics, backoff: backoffState, failures, tlsRequired });
  void nc.closed().then((err) => {
    metrics.natsConnected.set(0);
    if (err) logger.error("nats_closed", { error: err });
    else logger.info("nats_closed");
  });
  return nc;
}

/**
 * Whether the connection must use TLS: when TLS files are given, or a URL says `tls://` — as
 * nats-server's own clients read it, required even without CA/cert files, so a server that does
 * not offer TLS is refused before the password is sent.
 */
function requiresTls(servers: readonly string[], tls: NatsTlsOptions | undefined): boolean {
  return tls !== undefined || servers.some((s) => /^tls:\/\//i.test(s));
}

/**
 * The credentials to present, one kind only, in the documented precedence: `credsFile` (re-read on
 * every dial, so rotation needs no restart), `token`, `user`/`pass`, a URL token, URL user/password.
 */
function authOf(
  options: Pick<NatsConnectOptions, "credsFile" | "token" | "user" | "pass">,
  credentials: UrlCredentials,
): Pick<NodeConnectionOptions, "authenticator" | "token" | "user" | "pass"> {
  const { credsFile, token, user, pass } = options;
  return credsFile
    ? { authenticator: credsAuthenticator(() => Deno.readFileSync(credsFile)) }
    : token
    ? { token }
    : user !== undefined
    ? { user, pass: pass ?? "" }
    : credentials.token
    ? { token: credentials.token }
    : credentials.user !== undefined
    ? { user: credentials.user, pass: credentials.pass ?? "" }
    : {};
}

/**
 * What nats.js is given: the servers without their credentials, the credentials, TLS when
 * required (with the server name check of lib/nats/tls_identity.ts) and never else, and
 * reconnecting for ever on our {@linkcode ReconnectBackoff}. The first connection is
 * retried by {@linkcode dialUntilConnected} (each failure names its cause); nats.js reconnects
 * after that, also after authentication errors.
 */
function dialOptionsOf(
  options: NatsConnectOptions,
  target: { servers: string[]; credentials: UrlCredentials; tlsRequired: boolean },
  backoff: ReconnectBackoff,
): NodeConnectionOptions {
  const { tls, name, dialTimeoutMs = 5000 } = options;
  const identity = createServerIdentity();
  return {
    servers: target.servers,
    name,
    ...authOf(options, target.credentials),
    // Without TLS asked for, `null`: nats.js would otherwise upgrade on its own, without our name
    // check (nats-io/nats.js#303), when the server requires or offers TLS. With `null` it speaks
    // plaintext to a server that offers TLS, and fails a server that requires it (named by
    // createFailureLog, with the hint to use tls://).
    tls: target.tlsRequired ? tlsOptions(tls, identity) : null,
    timeout: dialTimeoutMs,
    maxReconnectAttempts: -1,
    waitOnFirstConnect: false,
    ignoreAuthErrorAbort: true,
    reconnectDelayHandler: backoff.delay,
    // Called once right before each dial (initial connect and reconnects), with the server it
    // dials first; null keeps nats.js's own choice. It counts the dial for the backoff and tells
    // the TLS name check which server's certificate comes next.
    reconnectToServer: (pool) => {
      backoff.dialed();
      if (pool[0]) identity.dialing(pool[0]);
      return null;
    },
  };
}

/**
 * What an operator checks when the server refuses one of the service's own users. The usual cause
 * is not the password: a config-mode user missing from `auth_callout.auth_users` logs in through
 * the callout, which refuses it (`not_in_auth_users`, naming the user and this connection).
 */
/**
 * What an operator does when a `nats://` URL (no TLS files) meets a server that requires TLS. The
 * service refuses to let nats.js upgrade such a connection on its own: nats.js would check the
 * certificate against the wrong name (nats-io/nats.js#303; `lib/nats/tls_identity.ts`).
 */
const TLS_NOT_ASKED_HINT = "the server requires TLS but NATS_URL says nats:// and no NATS_TLS_* " +
  "file is set: use tls://<host>:<port> (with NATS_TLS_CA_FILE for a private CA), so the " +
  "server's certificate is checked against the host dialled";

const AUTHENTICATION_HINT = "check the credentials; in config mode the user must also be listed " +
  "in auth_callout.auth_users, else its login goes to the callout and is refused there " +
  "(login_denied reason not_in_auth_users)";

/** Logs why the connection cannot be made: one line per change of cause, not one per dial. */
interface FailureLog {
  /**
   * A dial failed with `cause` (`server`: the one dialled, when known): logged with the dials made
   * so far — at warn when unreachable, at error when credentials or TLS are refused — unless it is
   * the cause logged last.
   */
  failed(cause: NatsConnectCause, err: unknown, server?: string): void;
  /** Connected: the next failure is logged whatever its cause. */
  reset(): void;
}

/** The {@linkcode FailureLog} of one connection; its dial count comes from `backoff`. */
function createFailureLog(
  logger: Logger,
  backoff: ReconnectBackoff,
  servers: readonly string[],
  tlsRequired: boolean,
): FailureLog {
  let last: NatsConnectCause | undefined;
  return {
    failed: (cause, err, server) => {
      if (cause === last) return;
      last = cause;
      const fields = {
        cause,
        attempts: backoff.dials,
        servers,
        ...(server !== undefined ? { server: redactUrl(server) } : {}),
        ...(err !== undefined ? { error: err } : {}),
        ...(cause === "authentication_refused" ? { hint: AUTHENTICATION_HINT } : {}),
        // Without TLS asked for, nats.js reaches TLS only when the server requires it.
        ...(cause === "tls" && !tlsRequired ? { hint: TLS_NOT_ASKED_HINT } : {}),
      };
      if (cause === "unreachable") logger.warn("nats_connect_failed", fields);
      else logger.error("nats_connect_failed", fields);
    },
    reset: () => {
      last = undefined;
    },
  };
}

/**
 * Dial until the first connection is made, waiting the backoff between failures. An abort of
 * `signal` rejects at once with its reason, whatever the dial is doing; a dial that succeeds after
 * that is closed instead of leaked.
 */
async function dialUntilConnected(
  dialOptions: NodeConnectionOptions,
  context: { signal: AbortSignal | undefined; failures: FailureLog; backoff: ReconnectBackoff },
): Promise<NatsConnection> {
  const { signal, failures, backoff } = context;
  for (;;) {
    signal?.throwIfAborted();
    const attempt = connect(dialOptions);
    try {
      return await abortable(attempt, signal);
    } catch (err) {
      if (signal?.aborted) {
        attempt.then((late) => late.close(), () => {});
        throw signal.reason;
      }
      failures.failed(classifyConnectError(err), err);
      await delay(backoff.delay(), signal);
    }
  }
}

/**
 * Follow the connection's status for its lifetime: mirror it in `metrics.natsConnected`, log each
 * change (URLs redacted), and name why reconnecting fails. While reconnecting, nats.js reports a
 * server's refusal as an `error` status but swallows transport failures; a `reconnecting` status
 * that follows one without such an error means the previous dial failed below the NATS protocol,
 * and a TCP probe tells unreachable from TLS.
 */
async function watchStatus(
  nc: NatsConnection,
  context: {
    logger: Logger;
    metrics: ServiceMetrics;
    backoff: ReconnectBackoff;
    failures: FailureLog;
    tlsRequired: boolean;
  },
): Promise<void> {
  const { logger, metrics, backoff, failures, tlsRequired } = context;
  let dialing = false;
  let serverRefused = false;
  let connections = 1;
  for await (const status of nc.status()) {
    switch (status.type) {
      case "disconnect":
        metrics.natsConnected.set(0);
        dialing = false;
        logger.warn("nats_disconnected", { server: redactUrl(status.server) });
        break;
      case "reconnecting": {
        if (dialing && !serverRefused) {
          const server = nc.getServer();
          const outage = connections;
          void tcpReachable(server, 1000).then((reachable) => {
            if (outage !== connections) return; // connected meanwhile
            if (!reachable) failures.failed("unreachable", undefined, server);
            else failures.failed(tlsRequired ? "tls" : "protocol", undefined, server);
          });
        }
        dialing = true;
        serverRefused = false;
        logger.debug("nats_reconnecting", { attempts: backoff.dials });
        break;
      }
      case "reconnect":
        metrics.natsConnected.set(1);
        logger.info("nats_reconnected", {
          server: redactUrl(status.server),
          attempts: backoff.dials,
        });
        backoff.reset();
        failures.reset();
        dialing = false;
        connections++;
        break;
      case "error": {
        const cause = classifyConnectError(status.error);
        if (cause === "authentication_refused") {
          serverRefused = true;
          failures.failed(cause, status.error);
        } else if (optionalSubscriptionRefused(status.error)) {
          // Said once, at warn, by server_refusals_unobserved; logins are not affected.
          logger.debug("nats_error", { error: status.error });
        } else {
          logger.error("nats_error", { error: status.error });
        }
        break;
      }
      default:
        logStatus(status, logger);
    }
  }
}

function logStatus(status: Status, logger: Logger): void {
  switch (status.type) {
    case "ldm":
      logger.warn("nats_lame_duck", { server: redactUrl(status.server) });
      break;
    case "staleConnection":
      logger.warn("nats_stale_connection");
      break;
    case "slowConsumer":
      logger.warn("nats_slow_consumer", { pending: status.pending });
      break;
    case "update":
      logger.debug("nats_servers_changed", {
        added: (status.added ?? []).map(redactUrl),
        deleted: (status.deleted ?? []).map(redactUrl),
      });
      break;
    default:
      break;
  }
}

/** Socket errors that nats.js recovers from by itself (it sees the close and reconnects). */
const RECOVERABLE_SOCKET_ERRORS = new Set(["ECONNRESET", "EPIPE"]);

/**
 * Keep a late socket reset from crashing the process. Under Deno's Node compatibility, nats.js's
 * Node transport can surface an `ECONNRESET` as an uncaught error after it has already seen the
 * socket close (and started reconnecting), so the error carries no information the client lacks.
 * Only those socket codes are absorbed and logged; every other uncaught error still ends the
 * process, as it should. Returns a disposable that removes the guard.
 *
 * @example
 * ```ts
 * import { guardSocketResets } from "./connection.ts";
 * import { silentLogger } from "../telemetry/log.ts";
 * using _guard = guardSocketResets(silentLogger());
 * ```
 */
export function guardSocketResets(logger: Logger): Disposable {
  const onError = (event: ErrorEvent): void => {
    const err: unknown = event.error;
    if (err instanceof Error && "code" in err && RECOVERABLE_SOCKET_ERRORS.has(String(err.code))) {
      event.preventDefault();
      // Debug only: the connection itself names the cause of a failure (nats_connect_failed).
      logger.debug("socket_error_absorbed", { error: err });
    }
  };
  globalThis.addEventListener("error", onError);
  return { [Symbol.dispose]: () => globalThis.removeEventListener("error", onError) };
}

/**
 * A permission violation on a subscription the service can do without (the server's auth error
 * events, lib/nats/server_refusals.ts, which reports it itself as `server_refusals_unobserved`).
 */
function optionalSubscriptionRefused(err: unknown): boolean {
  return err instanceof errors.PermissionViolationError && err.subject === AUTH_ERROR_EVENTS;
}
