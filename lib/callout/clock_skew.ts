/**
 * How far this host's clock is from each NATS server's, measured on every callout request: the
 * request's `iat` is the server's clock when it asked (DESIGN §2, "Clocks"). A callout 2.5 s ahead
 * once dropped every login as expired with nothing but a `request_dropped` line per login; the
 * measured skew is now a gauge per server (`nats_auth_server_clock_skew_seconds{server}`) and,
 * past {@linkcode CLOCK_SKEW_WARN_SEC} for a while, a `server_clock_skew` warning.
 *
 * @module
 */
import type { Logger } from "../telemetry/log.ts";
import type { ServiceMetrics } from "../telemetry/service_metrics.ts";

/**
 * How many seconds past its `exp`, by this host's clock, a request is still accepted: the skew
 * tolerated with this host's clock ahead of the server's (behind it, a request never looks
 * expired). The server enforces its own auth timeout whatever we do, and `user_nkey` binds the
 * answer to one login, so the check only keeps a long-stale request (a backlog after a stall)
 * from being answered; 60 s is the leeway the kube-apiserver and the token checks allow.
 */
export const REQUEST_CLOCK_TOLERANCE_SEC = 60;

/** The server's clock as one request shows it, and ours when the request was checked. */
export interface ServerClockReading {
  /** `server_id.id`: the server's `N…` key, new at each start. */
  readonly serverId: string;
  /** `server_id.name` (`server_name`), for the warning; may be empty. */
  readonly serverName: string;
  /** The request's `iat`, whole seconds (the server's clock, truncated). */
  readonly issuedAt: number | undefined;
  /** Our clock when the request was checked, in milliseconds. */
  readonly checkedAt: number;
}

/**
 * Skew past which the service warns, in seconds. Below it the measurement is
 * noise: `iat` is truncated to the second (±0.5 s) and the request spent some time in transit.
 */
export const CLOCK_SKEW_WARN_SEC = 2;

/**
 * Our clock minus the server's, in seconds, from one request: positive when this host runs ahead.
 * `iat` is whole seconds (the server truncates), so the server's clock was somewhere in
 * `[iat, iat + 1)` when it asked; the middle of that second is the estimate (±0.5 s, plus the
 * request's time in transit, which reads as our clock being ahead). `undefined` without `iat`.
 *
 * @example
 * ```ts
 * import { serverClockSkewSeconds } from "./clock_skew.ts";
 * const reading = { serverId: "N…", serverName: "n1", issuedAt: 100, checkedAt: 105_500 };
 * console.assert(serverClockSkewSeconds(reading) === 5);
 * ```
 */
export function serverClockSkewSeconds(reading: ServerClockReading): number | undefined {
  if (reading.issuedAt === undefined) return undefined;
  return Math.round((reading.checkedAt / 1000 - (reading.issuedAt + 0.5)) * 10) / 10;
}

/**
 * How long a server's readings count towards its skew, in milliseconds of our clock. The skew is
 * the smallest reading in it: a request's time in transit, or in a backlog while this replica was
 * stalled, only ever makes our clock look further ahead, so the least-delayed reading is the
 * truest.
 */
export const CLOCK_SKEW_WINDOW_MS = 10_000;

/**
 * How far apart on our clock two readings past the threshold must be before the service warns: a
 * stalled replica's backlog is read in one burst, a real skew persists.
 */
export const CLOCK_SKEW_PERSIST_MS = 1_000;

/** Options of {@linkcode createClockSkewWatch}. */
export interface ClockSkewWatchOptions {
  /** Where the `server_clock_skew` warning goes. */
  readonly logger: Logger;
  /** Holds `nats_auth_server_clock_skew_seconds{server}`. */
  readonly metrics: ServiceMetrics;
  /** Warn past this skew, either way, in seconds. @default {CLOCK_SKEW_WARN_SEC} */
  readonly warnAboveSec?: number;
  /** The request tolerance, for the warning's text. @default {REQUEST_CLOCK_TOLERANCE_SEC} */
  readonly toleranceSec?: number;
  /** Readings per server that make its skew. @default {CLOCK_SKEW_WINDOW_MS} */
  readonly windowMs?: number;
  /** A skew warned about must persist this long. @default {CLOCK_SKEW_PERSIST_MS} */
  readonly persistMs?: number;
}

/** Takes each request's clock reading: sets the gauge, warns when a skew persists. */
export type ClockSkewWatch = (reading: ServerClockReading) => void;

/** Servers remembered; past this many the memory starts over. */
const MAX_SERVERS = 1024;

/** What the watch keeps per server. */
interface ServerSkew {
  /** The window's readings, oldest first: our clock (ms) and the skew read (s). */
  readings: { at: number; skew: number }[];
  /** Our clock at the first reading of the current run past the threshold. */
  overSince: number | undefined;
  /** Warned about the current run; re-armed once the skew falls below half the threshold. */
  warned: boolean;
}

/**
 * Create the watch of one callout handler. Per server (by `server_name`, else its id; bounded by
 * the servers of one cluster) the skew is the smallest reading of the last `windowMs`, set on the
 * gauge labelled `server`. The `server_clock_skew` warning names the server, the skew, and what
 * is tolerated; it comes when that skew is past the threshold at two readings at least
 * `persistMs` apart (so a stalled replica's backlog, read in one burst and followed by fresh
 * readings, raises none), once per run: it is re-armed when the skew falls below half the
 * threshold.
 *
 * @example
 * ```ts
 * import { createClockSkewWatch } from "./clock_skew.ts";
 * import { silentLogger } from "../telemetry/log.ts";
 * import { createServiceMetrics } from "../telemetry/service_metrics.ts";
 * const watch = createClockSkewWatch({ logger: silentLogger(), metrics: createServiceMetrics() });
 * watch({ serverId: "N…", serverName: "n1", issuedAt: 100, checkedAt: 105_500 });
 * ```
 */
export function createClockSkewWatch(options: ClockSkewWatchOptions): ClockSkewWatch {
  const {
    logger,
    metrics,
    warnAboveSec = CLOCK_SKEW_WARN_SEC,
    toleranceSec = REQUEST_CLOCK_TOLERANCE_SEC,
    windowMs = CLOCK_SKEW_WINDOW_MS,
    persistMs = CLOCK_SKEW_PERSIST_MS,
  } = options;
  const servers = new Map<string, ServerSkew>();
  return (reading) => {
    const read = serverClockSkewSeconds(reading);
    if (read === undefined) return;
    const name = reading.serverName || reading.serverId;
    let state = servers.get(name);
    if (!state) {
      if (servers.size >= MAX_SERVERS) servers.clear();
      state = { readings: [], overSince: undefined, warned: false };
      servers.set(name, state);
    }
    const at = reading.checkedAt;
    state.readings = state.readings.filter((r) => r.at > at - windowMs && r.at <= at);
    state.readings.push({ at, skew: read });
    const skew = Math.min(...state.readings.map((r) => r.skew));
    metrics.serverClockSkew.set(skew, { server: name });

    if (Math.abs(skew) <= warnAboveSec) {
      state.overSince = undefined;
      if (Math.abs(skew) < warnAboveSec / 2) state.warned = false;
      return;
    }
    state.overSince ??= at;
    if (state.warned || at - state.overSince < persistMs) return;
    state.warned = true;
    logger.warn("server_clock_skew", {
      server: reading.serverName,
      server_id: reading.serverId,
      skew_seconds: skew,
      warn_above_seconds: warnAboveSec,
      tolerated_ahead_seconds: toleranceSec,
      message: `this host's clock is ${Math.abs(skew)}s ${skew > 0 ? "ahead of" : "behind"} ` +
        `nats-server ${name}'s (tolerated: up to ` +
        `${toleranceSec}s ahead; behind by more than ${toleranceSec}s, fresh tokens are refused ` +
        "as not yet valid); fix the clocks (NTP)",
    });
  };
}

/**
 * Requests in a row dropped as expired past the tolerance after which a replica stops taking
 * logins: one is a stall's backlog, several in a row from fresh traffic is this host's clock.
 */
export const EXPIRED_STREAK_LIMIT = 5;

/**
 * How long a replica out of the queue group for its clock stays out before it tries again: it
 * cannot see requests while out, so it rejoins on trial; one more expired request sends it out
 * again, one that passes ends the streak.
 */
export const EXPIRED_STREAK_RETRY_MS = 30_000;

/** Options of {@linkcode createExpiredStreak}. */
export interface ExpiredStreakOptions {
  /**
   * Monotonic clock in milliseconds, for the time out of the group: not the wall clock, which is
   * the one in question (an NTP step back must not postpone the trial).
   * @default {() => performance.now()}
   */
  readonly monotonicNow?: () => number;
  /** Requests in a row. @default {EXPIRED_STREAK_LIMIT} */
  readonly limit?: number;
  /** Out for this long before a trial. @default {EXPIRED_STREAK_RETRY_MS} */
  readonly retryMs?: number;
  /** The request tolerance, for the details. @default {REQUEST_CLOCK_TOLERANCE_SEC} */
  readonly toleranceSec?: number;
}

/**
 * Whether this replica's clock lets it answer logins, from the requests it sees: the "clock"
 * readiness check (issue 17, F3). With this host's clock more than the tolerance ahead of the
 * servers', every request is dropped as expired; such a replica used to stay ready and in the
 * queue group, taking its share of logins and failing every one.
 */
export interface ExpiredStreak {
  /** A request was dropped as expired past the tolerance, with the skew it showed. */
  expired(skewSec: number | undefined): void;
  /** A request passed the expiry check. */
  passed(): void;
  /** False while the latest requests were all expired (and no trial is due). */
  ready(): boolean;
  /** For `/readyz`: the streak, the skew last seen, and why it fails when it does. */
  details(): Readonly<Record<string, unknown>>;
}

/**
 * Create the streak of one replica (shared by its callout handler and its readiness checks).
 *
 * @example
 * ```ts
 * import { createExpiredStreak } from "./clock_skew.ts";
 * const streak = createExpiredStreak({ limit: 2 });
 * streak.expired(90);
 * streak.expired(90);
 * console.assert(!streak.ready());
 * streak.passed();
 * console.assert(streak.ready());
 * ```
 */
export function createExpiredStreak(options: ExpiredStreakOptions = {}): ExpiredStreak {
  const {
    monotonicNow: now = () => performance.now(),
    limit = EXPIRED_STREAK_LIMIT,
    retryMs = EXPIRED_STREAK_RETRY_MS,
    toleranceSec = REQUEST_CLOCK_TOLERANCE_SEC,
  } = options;
  if (!Number.isInteger(limit) || limit < 1) {
    throw new RangeError(`limit must be an integer >= 1, got ${limit}`);
  }
  if (!Number.isFinite(retryMs) || retryMs < 0) {
    throw new RangeError(`retryMs must be a finite number >= 0, got ${retryMs}`);
  }
  let streak = 0;
  let lastSkew: number | undefined;
  let outSince: number | undefined;
  const out = () => outSince !== undefined && now() - outSince < retryMs;
  return {
    expired(skewSec) {
      streak++;
      lastSkew = skewSec;
      if (streak >= limit) outSince = now();
    },
    passed() {
      streak = 0;
      outSince = undefined;
    },
    ready: () => !out(),
    details() {
      return {
        expired_in_a_row: streak,
        ...(lastSkew !== undefined && streak > 0 ? { skew_seconds: lastSkew } : {}),
        ...(out()
          ? {
            reason: `the latest ${streak} requests were all expired past the ${toleranceSec}s ` +
              "tolerance: this host's clock is ahead of nats-server's (fix NTP); out of the " +
              `queue group, trying again ${Math.ceil((outSince! + retryMs - now()) / 1000)}s ` +
              "from now",
          }
          : {}),
      };
    },
  };
}
