/**
 * The queue subscription that feeds callout requests (`$SYS.REQ.USER.AUTH`) to a
 * {@linkcode CalloutHandler}, on the connection of lib/nats/connection.ts.
 *
 * Reading order: {@linkcode serveCallout} hands each request to the handler on its own (the
 * request tracker), joins and leaves the queue group as `canDecide` says (the membership, DESIGN
 * D5), and drains on stop.
 *
 * @module
 */
import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import type { CalloutHandler } from "../callout/handler.ts";
import { delay } from "../core/abort.ts";
import type { Logger } from "../telemetry/log.ts";

/** The subject nats-server sends callout requests to. */
export const AUTH_CALLOUT_SUBJECT = "$SYS.REQ.USER.AUTH";

/** Header carrying the server's ephemeral xkey on sealed requests. */
export const SERVER_XKEY_HEADER = "Nats-Server-Xkey";

/** Options of {@linkcode serveCallout}. */
export interface ServeCalloutOptions {
  /** Subject to serve. @default {"$SYS.REQ.USER.AUTH"} */
  subject?: string;
  /** Queue group shared by all replicas, so exactly one answers each request. */
  queue: string;
  /** Receives `callout_joined`, `_left` and `_waiting` as membership changes, and failures. */
  logger: Logger;
  /**
   * Names of the conditions that keep this replica from deciding right now (ServiceAccounts not
   * synced, keys missing, …); empty when it can decide. The replica is a member of the queue
   * group exactly while this is empty (DESIGN D5). Must be cheap; a throw counts as `["error"]`.
   * @default {() => []}
   */
  canDecide?: () => readonly string[];
  /** How often {@linkcode ServeCalloutOptions.canDecide} is asked. @default {200} */
  checkIntervalMs?: number;
  /** Longest wait in {@linkcode CalloutService.stop} for the drain and the requests in flight. @default {500} */
  stopTimeoutMs?: number;
}

/** A running callout subscription. */
export interface CalloutService extends AsyncDisposable {
  /**
   * True while this replica is a member of the queue group: the connection is up and the server
   * has processed our subscription.
   */
  readonly ready: boolean;
  /** True while subscribed (or subscribing) to the queue group, whatever the connection state. */
  readonly member: boolean;
  /** Requests being handled right now. */
  readonly inFlight: number;
  /** Stop taking requests (drain the subscription) and wait for the ones in flight, boundedly. */
  stop(): Promise<void>;
}

/**
 * Serve callout requests from `nc` with `handler`, as a member of the queue group only while the
 * replica can decide. A replica that cannot decide (cache not synced, no keys) must not take its
 * share of the logins and refuse them: it stays out of the group, so nats-server gives every
 * request to a replica that can, and when none can the request goes unanswered (the client sees
 * `Authorization Violation` after the server's auth timeout and retries). `canDecide` is asked
 * every `checkIntervalMs`: the replica joins (`callout_joined`) when it returns no failing check
 * and leaves (`callout_left`, naming them) when it does; leaving drains the subscription, so
 * requests already delivered are still answered.
 *
 * Each request is handled on its own (a slow authorizer does not hold up the next login); an error
 * in one never stops the subscription. `ready` turns false on disconnect and true again once the
 * server has our subscription back.
 *
 * @example
 * ```ts ignore
 * import { serveCallout } from "./callout_subscription.ts";
 * await using service = serveCallout(nc, handler, {
 *   queue: "auth-callout",
 *   logger,
 *   canDecide: () => (cache.synced ? [] : ["serviceaccounts"]),
 * });
 * ```
 */
export function serveCallout(
  nc: NatsConnection,
  handler: CalloutHandler,
  options: ServeCalloutOptions,
): CalloutService {
  const {
    subject = AUTH_CALLOUT_SUBJECT,
    queue,
    logger,
    canDecide = () => [],
    checkIntervalMs = 200,
    stopTimeoutMs = 500,
  } = options;
  if (!queue) throw new TypeError("queue must name the queue group");
  const requests = createRequestTracker(handler, logger);
  const membership = createMembership(nc, {
    subject,
    queue,
    logger,
    onMessage: requests.onMessage,
  });
  let stopped = false;
  let waitingFor = "";

  // Join or leave the queue group as the replica's ability to decide changes.
  const tick = (): void => {
    if (stopped || membership.broken || membership.leaving || nc.isClosed()) return;
    const failing = failingChecks(canDecide);
    switch (membershipStep(failing, membership.member, waitingFor)) {
      case "join":
        membership.join();
        waitingFor = "";
        logger.info("callout_joined", { subject, queue });
        break;
      case "leave":
        logger.warn("callout_left", { subject, queue, failing: [...failing] });
        waitingFor = failing.join(",");
        void membership.leave();
        break;
      case "wait":
        waitingFor = failing.join(",");
        logger.info("callout_waiting", { subject, queue, failing: [...failing] });
        break;
      case "stay":
        break;
    }
  };
  tick();
  const timer = setInterval(tick, checkIntervalMs);
  membership.watchStatus();

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
    membership.stopWatching();
    // A drain needs the server; while disconnected it would wait for the reconnect. Shutdown must
    // not: after stopTimeoutMs the requests still in flight are abandoned (their clients retry).
    const done = (async () => {
      await membership.leaving;
      await membership.leave();
      await requests.settled();
    })();
    const timeout = new AbortController();
    await Promise.race([done, delay(stopTimeoutMs, timeout.signal)]);
    timeout.abort();
    membership.unsubscribe();
  };

  return {
    get ready() {
      return membership.member && membership.confirmed && !stopped && !membership.broken &&
        !nc.isClosed();
    },
    get member() {
      return membership.member;
    },
    get inFlight() {
      return requests.inFlight;
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/**
 * The names of the conditions that keep the replica from deciding now; a `canDecide` that throws
 * is itself such a condition.
 */
function failingChecks(canDecide: () => readonly string[]): readonly string[] {
  try {
    return canDecide();
  } catch {
    return ["error"];
  }
}

/**
 * What one tick does, given the failing checks, whether the replica is a member of the queue
 * group, and the checks it last said it waits for: join when nothing fails, leave when something
 * does, tell once more when the reason for waiting changed, else stay as it is. Pure.
 */
function membershipStep(
  failing: readonly string[],
  member: boolean,
  waitingFor: string,
): "join" | "leave" | "wait" | "stay" {
  if (failing.length === 0) return member ? "stay" : "join";
  if (member) return "leave";
  return failing.join(",") !== waitingFor ? "wait" : "stay";
}

/** The requests being handled: each on its own, so a slow one does not hold up the next. */
interface RequestTracker {
  /** The subscription's callback. */
  onMessage(err: Error | null, msg: Msg): void;
  /** Requests being handled now. */
  readonly inFlight: number;
  /** Resolves when every request handled now has been answered (or has failed). */
  settled(): Promise<void>;
}

/** The {@linkcode RequestTracker} of one subscription: errors are logged, never thrown. */
function createRequestTracker(handler: CalloutHandler, logger: Logger): RequestTracker {
  const inFlight = new Set<Promise<void>>();
  const handle = async (msg: Msg): Promise<void> => {
    try {
      const reply = await handler(msg.data, msg.headers?.get(SERVER_XKEY_HEADER) || undefined);
      if (reply && msg.reply) msg.respond(reply);
    } catch (err) {
      logger.error("callout_message_failed", { error: err });
    }
  };
  return {
    onMessage: (err, msg) => {
      if (err) {
        logger.error("callout_subscription_error", { error: err });
        return;
      }
      const p = handle(msg);
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    },
    get inFlight() {
      return inFlight.size;
    },
    settled: async () => {
      await Promise.allSettled([...inFlight]);
    },
  };
}

/**
 * The replica's place in the queue group: the subscription, and whether the server has processed
 * it (`confirmed`) — which a disconnect undoes and a reconnect proves again.
 */
interface QueueMembership {
  /** Subscribed (or subscribing), whatever the connection state. */
  readonly member: boolean;
  /** The server has processed our SUB since the last (re)connect. */
  readonly confirmed: boolean;
  /** The server refused the subscription; rejoining would fail the same way. */
  readonly broken: boolean;
  /** The drain of a leave still running. */
  readonly leaving: Promise<void> | undefined;
  /** Subscribe to the queue group. */
  join(): void;
  /** Leave the queue group: drain the subscription, so requests already delivered are answered. */
  leave(): Promise<void>;
  /** Follow the connection's status: unconfirm on disconnect, confirm again on reconnect. */
  watchStatus(): void;
  /** Stop following the status. */
  stopWatching(): void;
  /** Drop a subscription that is still open (after a drain that did not finish in time). */
  unsubscribe(): void;
}

/** The {@linkcode QueueMembership} of this replica in `queue` on `subject`; not yet a member. */
function createMembership(
  nc: NatsConnection,
  options: {
    subject: string;
    queue: string;
    logger: Logger;
    onMessage: (err: Error | null, msg: Msg) => void;
  },
): QueueMembership {
  const { subject, queue, logger, onMessage } = options;
  let sub: Subscription | undefined;
  let confirmed = false;
  let broken = false;
  let leaving: Promise<void> | undefined;
  let status: ReturnType<NatsConnection["status"]> | undefined;

  // A flush round trip proves the server has processed our SUB. `epoch` ignores a round trip that
  // straddles a disconnect or a leave.
  let epoch = 0;
  const confirm = (): void => {
    const mine = ++epoch;
    nc.flush().then(() => {
      if (mine === epoch && sub !== undefined && !nc.isClosed()) confirmed = true;
    }, () => {});
  };

  const join = (): void => {
    const s = nc.subscribe(subject, { queue, callback: onMessage });
    sub = s;
    void s.closed.then((err) => {
      if (!err) return;
      // The server refused the subscription (e.g. no permission): rejoining would fail the same way.
      broken = true;
      if (sub === s) sub = undefined;
      confirmed = false;
      logger.error("callout_subscription_closed", { subject, queue, error: err });
    });
    confirm();
  };

  const drain = async (s: Subscription): Promise<void> => {
    if (!s.isClosed() && !nc.isClosed()) {
      await s.drain().catch((err) => logger.warn("callout_drain_failed", { error: err }));
    }
  };

  const leave = (): Promise<void> => {
    const s = sub;
    if (s === undefined) return Promise.resolve();
    sub = undefined;
    confirmed = false;
    epoch++;
    leaving = drain(s).finally(() => (leaving = undefined));
    return leaving;
  };

  const watchStatus = (): void => {
    const events = nc.status();
    status = events;
    void (async () => {
      for await (const s of events) {
        if (s.type === "disconnect" || s.type === "close") {
          epoch++;
          confirmed = false;
        }
        if (s.type === "reconnect" && sub !== undefined) confirm();
      }
    })();
  };

  return {
    get member() {
      return sub !== undefined;
    },
    get confirmed() {
      return confirmed;
    },
    get broken() {
      return broken;
    },
    get leaving() {
      return leaving;
    },
    join,
    leave,
    watchStatus,
    stopWatching: () => {
      if (status && "stop" in status && typeof status.stop === "function") status.stop();
    },
    unsubscribe: () => {
      if (sub !== undefined && !sub.isClosed()) sub.unsubscribe();
    },
  };
}
