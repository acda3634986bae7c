/**
 * Logins the service allowed that nats-server then refused. The callout's answer is not the last
 * word: the server still registers the user in its account, and refuses it there when the
 * account's connection limit is reached ("maximum account active connections exceeded"), when
 * the user JWT does not validate on its side, or when the answer came after its auth timeout. The
 * service logged `login_allowed`; the client got an error all the same.
 *
 * nats-server reports every failed callout login as an auth error event on
 * `$SYS.ACCOUNT.CLIENT.AUTH.ERR` in the callout's own account (auth.go, `sendAccountAuthErrorEvent`)
 * — the account the service's user is in, so no system-account user is needed. Each replica
 * remembers its approvals of the last few seconds by `(server_id, client_info.id)`; an auth error
 * event for one of them is such a refusal: `login_refused_by_server` (warn, with the server's own
 * words, e.g. "Could not register auth callout user: maximum account active connections
 * exceeded") and `nats_auth_logins_refused_by_server_total{reason}` ({@linkcode RefusalKind}).
 *
 * @module
 */
import { errors, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import type { CalloutRequest, UserGrant } from "../callout/handler.ts";
import type { LogFields, Logger } from "../telemetry/log.ts";
import type { ServiceMetrics } from "../telemetry/service_metrics.ts";

/** Where nats-server reports failed callout logins, in the callout's account. */
export const AUTH_ERROR_EVENTS = "$SYS.ACCOUNT.CLIENT.AUTH.ERR";

/**
 * How long an approval is remembered for matching, in milliseconds. The server refuses right
 * after it reads our answer (milliseconds, also across a cluster's routes); the margin covers a
 * busy server and event delivery.
 */
export const APPROVAL_MEMORY_MS = 10_000;

/** Approvals remembered at most; past this the oldest are forgotten first. */
const MAX_APPROVALS = 100_000;

/** What is kept of one approval until the server has had its say. */
interface Approval {
  readonly at: number;
  readonly fields: LogFields;
}

/** What an auth error event says about the refused client. */
export interface AuthErrorEvent {
  /** `server.id`: the server that refused, as the callout request named it. */
  readonly serverId: string;
  /** `server.name`, for the log line; may be empty. */
  readonly serverName: string;
  /** `client.id`: the refused connection's id on that server, the request's `client_info.id`. */
  readonly cid: number;
  /**
   * The server's reason, e.g. "Could not register auth callout user: maximum account active
   * connections exceeded" (empty when it gave none, e.g. after its auth timeout).
   */
  readonly reason: string;
}

/** The `reason` label of `nats_auth_logins_refused_by_server_total`: a bounded set. */
export type RefusalKind =
  | "account_connections_exceeded"
  | "user_jwt_invalid"
  | "response_rejected"
  | "other";

/**
 * Which {@linkcode RefusalKind} the server's reason is: the account's connection limit, a user JWT
 * the server would not accept (e.g. expired by its clock), our response refused (signer, audience,
 * user), or anything else (the server's log says more).
 *
 * @example
 * ```ts
 * import { refusalKind } from "./server_refusals.ts";
 * const reason = "Could not register auth callout user: maximum account active connections exceeded";
 * console.assert(refusalKind(reason) === "account_connections_exceeded");
 * ```
 */
export function refusalKind(reason: string): RefusalKind {
  if (/maximum account active connections exceeded/i.test(reason)) {
    return "account_connections_exceeded";
  }
  if (/user jwt|claim is expired|not yet valid/i.test(reason)) return "user_jwt_invalid";
  if (/auth callout|response|signing key|issuer|expected authorized user/i.test(reason)) {
    return "response_rejected";
  }
  return "other";
}

/**
 * The parts of an auth error event that identify the refused login, or `undefined` for a message
 * that is not one (the subject is the server's, but a publisher in the account could send
 * anything there: it is only ever matched against our own approvals).
 *
 * @example
 * ```ts
 * import { parseAuthErrorEvent } from "./server_refusals.ts";
 * const event = parseAuthErrorEvent(new TextEncoder().encode(JSON.stringify({
 *   server: { id: "NABC", name: "n1" }, client: { id: 12 }, reason: "Authentication Failure",
 * })));
 * console.assert(event?.cid === 12 && event.serverId === "NABC");
 * ```
 */
export function parseAuthErrorEvent(data: Uint8Array): AuthErrorEvent | undefined {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder().decode(data));
  } catch {
    return undefined;
  }
  const record = (v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? v as Record<string, unknown>
      : undefined;
  const event = record(body);
  const server = record(event?.server);
  const client = record(event?.client);
  const serverId = server?.id;
  const cid = client?.id;
  if (typeof serverId !== "string" || typeof cid !== "number" || !Number.isInteger(cid)) {
    return undefined;
  }
  return {
    serverId,
    serverName: typeof server?.name === "string" ? server.name : "",
    cid,
    reason: typeof event?.reason === "string" ? event.reason.slice(0, 200) : "",
  };
}

/** Options of {@linkcode createServerRefusals}. */
export interface ServerRefusalsOptions {
  /** Where `login_refused_by_server` goes. */
  readonly logger: Logger;
  /** Holds `nats_auth_logins_refused_by_server_total`. */
  readonly metrics: ServiceMetrics;
  /** Clock in milliseconds. @default {() => Date.now()} */
  readonly now?: () => number;
  /** How long an approval is remembered. @default {APPROVAL_MEMORY_MS} */
  readonly memoryMs?: number;
}

/** The approvals of one replica, matched against the server's auth error events. */
export interface ServerRefusals {
  /** Remember an approval (the callout handler's `onAllowed`). */
  readonly allowed: (request: CalloutRequest, grant: UserGrant, fields: LogFields) => void;
  /**
   * One auth error event: when it names an approval of ours, log and count it. Returns whether
   * it did.
   */
  readonly refused: (event: AuthErrorEvent) => boolean;
  /** Approvals remembered now. */
  readonly size: number;
}

/**
 * Create the approval memory. Approvals without a cid (a request with no `client_info.id`) cannot
 * be matched and are not kept; each is forgotten after `memoryMs`, or when its refusal is matched.
 *
 * @example
 * ```ts
 * import { createServerRefusals } from "./server_refusals.ts";
 * import { silentLogger } from "../telemetry/log.ts";
 * import { createServiceMetrics } from "../telemetry/service_metrics.ts";
 * const refusals = createServerRefusals({ logger: silentLogger(), metrics: createServiceMetrics() });
 * console.assert(!refusals.refused({ serverId: "N", serverName: "", cid: 1, reason: "" }));
 * ```
 */
export function createServerRefusals(options: ServerRefusalsOptions): ServerRefusals {
  const { logger, metrics, now = () => Date.now(), memoryMs = APPROVAL_MEMORY_MS } = options;
  // Insertion order is time order: the oldest approvals are at the front.
  const approvals = new Map<string, Approval>();
  const forgetOld = (at: number) => {
    for (const [key, approval] of approvals) {
      if (approval.at > at - memoryMs && approvals.size <= MAX_APPROVALS) break;
      approvals.delete(key);
    }
  };
  return {
    allowed(request, grant, fields) {
      const cid = request.clientInfo.id;
      if (cid === undefined) return;
      const at = now();
      const key = `${request.serverId} ${cid}`;
      approvals.delete(key);
      approvals.set(key, { at, fields: { ...fields, user: grant.name } });
      forgetOld(at);
    },
    refused(event) {
      const at = now();
      forgetOld(at);
      const key = `${event.serverId} ${event.cid}`;
      const approval = approvals.get(key);
      if (!approval) return false;
      approvals.delete(key);
      const reason = refusalKind(event.reason);
      metrics.refusedByServer.inc({ reason });
      logger.warn("login_refused_by_server", {
        ...approval.fields,
        reason,
        server_reason: event.reason,
        after_ms: at - approval.at,
        message: `nats-server ${event.serverName || event.serverId} refused a login this ` +
          `service allowed (${event.reason || "no reason given"}): the client is not connected`,
      });
      return true;
    },
    get size() {
      return approvals.size;
    },
  };
}

/**
 * Subscribe `nc` (the service's own connection, in the callout's account) to the server's auth
 * error events and hand each to `refusals`. A user that may not subscribe there is told once
 * (`server_refusals_unobserved`, warn) and logins go on; the subscription ends with `stop()`.
 */
export function watchServerRefusals(
  nc: NatsConnection,
  refusals: ServerRefusals,
  logger: Logger,
): { stop(): Promise<void> } {
  let sub: Subscription;
  try {
    sub = nc.subscribe(AUTH_ERROR_EVENTS);
  } catch (err) {
    logUnobserved(logger, err);
    return { stop: () => Promise.resolve() };
  }
  const done = (async () => {
    try {
      for await (const m of sub) {
        const event = parseAuthErrorEvent(m.data);
        if (event) refusals.refused(event);
      }
    } catch (err) {
      logUnobserved(logger, err);
    }
  })();
  return {
    async stop() {
      if (!sub.isClosed()) sub.unsubscribe();
      await done;
    },
  };
}

function logUnobserved(logger: Logger, err: unknown): void {
  const denied = err instanceof errors.PermissionViolationError;
  logger.warn("server_refusals_unobserved", {
    subject: AUTH_ERROR_EVENTS,
    error: err,
    message: denied
      ? `the service's NATS user may not subscribe to ${AUTH_ERROR_EVENTS}: logins the server ` +
        "refuses after the service allowed them are not counted (allow that subscription)"
      : "the auth error events stopped; logins the server refuses are no longer counted",
  });
}
