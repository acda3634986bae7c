/**
 * The reconnect storm: N clients connected through the callout, the nats-server killed and started
 * again on the same port, and every client logging in again at about the same moment — what a
 * cluster sees after a NATS upgrade or a node failure. Measures the time until every client is back
 * and the logins that failed or timed out on the way (the server's auth timeout is 2 s).
 *
 * Clients are nats.js with its default reconnect timing (2 s wait, 100 ms jitter), reconnecting
 * forever and past authorization errors: without `ignoreAuthErrorAbort`, a client refused twice in
 * a row gives up for good, which is counted here as `clientsThatWouldGiveUp`.
 *
 * Three ways to run it (issue 18): returning clients (the service keeps its verified tokens, so
 * every reconnect is a cache hit); with the service restarted first (`restartServiceFirst`: every
 * reconnect presents a token the new process has never seen, a full RS256 verification each); and
 * against a server with plain token auth instead of the callout (no `service`), the baseline.
 *
 * @module
 */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { percentile } from "./login_client.ts";
import type { NatsServer } from "../tests/support/nats_server.ts";
import type { ServiceProcess } from "./service_process.ts";

/** What a storm runs against: a server, tokens for its clients, and the service if there is one. */
export interface StormTarget {
  /** The server the clients connect to; it is restarted. */
  readonly nats: NatsServer;
  /** `n` tokens for `n` clients. */
  freshTokens(n: number): Promise<string[]>;
  /** The callout service; none for the plain-token baseline. */
  readonly service?: ServiceProcess;
  /** Stop the service process and start a new one (an empty verified-token cache). */
  restartService?(): Promise<void>;
}

/** Options of {@linkcode runStorm}. */
export interface StormOptions {
  /** Clients to connect (each with its own token). @default {1000} */
  clients?: number;
  /** Give up waiting for the clients to come back after this long. @default {60000} */
  timeoutMs?: number;
  /** Progress messages. @default {ignore} */
  progress?: (message: string) => void;
  /**
   * Restart the service (new process, empty token cache) after the clients connected and before
   * the server restart, so every token of the storm is first-seen. @default {false}
   */
  restartServiceFirst?: boolean;
  /** Clients connecting at a time at first. @default {64} */
  connectConcurrency?: number;
}

/** What one storm measured. */
export interface StormResult {
  readonly clients: number;
  /** Seconds to connect all clients at first (first-seen tokens, 64 at a time). */
  readonly initialConnectSeconds: number;
  /** Seconds from the kill until the server accepted connections again. */
  readonly serverRestartSeconds: number;
  /** Seconds from the kill until the service was subscribed again (`/readyz` 200). */
  readonly serviceBackSeconds: number;
  /** Seconds from the kill until every client had reconnected (or the timeout, if not all did). */
  readonly allBackSeconds: number;
  /** Per-client seconds from the kill to its reconnect. */
  readonly backSecondsP50: number;
  readonly backSecondsP90: number;
  readonly backSecondsP99: number;
  /** Clients still not back at the end. */
  readonly clientsNotBack: number;
  /**
   * Errors the clients reported during the storm (`status()` errors: connection refused or reset
   * while the server was down or overloaded, stale connections, authorization errors).
   */
  readonly failedLogins: number;
  /**
   * Of those, `Authorization Violation`: the callout refused, or nobody answered within the
   * server's `authorization.timeout`.
   */
  readonly authFailures: number;
  /** The clients' errors by message (`Authentication Timeout`: the server did not get to the
   * client's CONNECT within its `authorization.timeout`, whatever the auth). */
  readonly errorKinds: Readonly<Record<string, number>>;
  /** Of those, how many the service itself refused; the rest timed out or found no responder. */
  readonly deniedByService: number;
  /** Clients refused twice in a row, which nats.js would abandon without `ignoreAuthErrorAbort`. */
  readonly clientsThatWouldGiveUp: number;
  /** Logins the service allowed during the storm. */
  readonly allowedByService: number;
  /** CPU seconds the service spent from the kill until everyone was back. */
  readonly serviceCpuSeconds: number;
  /** The service's peak RSS so far, MiB. */
  readonly servicePeakRssMiB: number;
}

/**
 * Run the storm against a running {@linkcode BenchFixture}. Mints one token per client first
 * (not timed), connects them all, restarts the server and waits for everyone.
 */
export async function runStorm(
  fixture: StormTarget,
  options: StormOptions = {},
): Promise<StormResult> {
  const {
    clients: n = 1000,
    timeoutMs = 60_000,
    progress = () => {},
    connectConcurrency = 64,
  } = options;
  const tokens = await fixture.freshTokens(n);
  const clients: NatsConnection[] = [];
  const backAt: (number | undefined)[] = new Array(n).fill(undefined);
  const failures: number[] = new Array(n).fill(0);
  let failedLogins = 0;
  let authFailures = 0;
  const errorKinds: Record<string, number> = {};
  let wouldGiveUp = 0;
  let killedAt = Number.POSITIVE_INFINITY;
  const watchers: Promise<void>[] = [];

  try {
    progress(`storm: connecting ${n} clients`);
    const connectStarted = performance.now();
    let next = 0;
    await Promise.all(Array.from({ length: Math.min(connectConcurrency, n) }, async () => {
      while (next < n) {
        const i = next++;
        const nc = await connect({
          servers: fixture.nats.url,
          token: tokens[i]!,
          name: `storm-${i}`,
          maxReconnectAttempts: -1,
          ignoreAuthErrorAbort: true,
          timeout: 10_000,
        });
        clients[i] = nc;
        watchers.push((async () => {
          let consecutive = 0;
          let counted = false;
          for await (const s of nc.status()) {
            if (s.type === "error" && performance.now() >= killedAt) {
              failedLogins++;
              const message = (s.error instanceof Error ? s.error.message : String(s.error))
                .slice(0, 60);
              errorKinds[message] = (errorKinds[message] ?? 0) + 1;
              if (/authorization violation/i.test(message)) authFailures++;
              failures[i] = (failures[i] ?? 0) + 1;
              if (++consecutive === 2 && !counted) {
                counted = true;
                wouldGiveUp++;
              }
            }
            if (s.type === "reconnect" && performance.now() >= killedAt) {
              consecutive = 0;
              backAt[i] ??= performance.now();
            }
          }
        })());
      }
    }));
    const initialConnectSeconds = (performance.now() - connectStarted) / 1000;
    // Let the first logins settle, so the storm starts from quiet.
    await new Promise((r) => setTimeout(r, 500));

    if (options.restartServiceFirst) {
      if (!fixture.restartService) throw new Error("this storm target cannot restart its service");
      progress("storm: restarting the service first (every token first-seen)");
      await fixture.restartService();
      await new Promise((r) => setTimeout(r, 1000));
    }
    const service = fixture.service;
    const metric = (result: string) =>
      service ? service.metric("nats_auth_requests_total", { result }) : Promise.resolve(NaN);
    const allowedBefore = await metric("allowed");
    const deniedBefore = await metric("denied");
    const cpuBefore = service ? (await service.stats()).cpuSeconds : NaN;
    progress(`storm: ${n} clients connected in ${initialConnectSeconds.toFixed(1)} s; restarting`);
    killedAt = performance.now();
    await fixture.nats.restart();
    const serverRestartSeconds = (performance.now() - killedAt) / 1000;
    const serviceBack = (async () => {
      if (!service) return NaN;
      await service.waitReady(timeoutMs);
      return (performance.now() - killedAt) / 1000;
    })();

    const deadline = killedAt + timeoutMs;
    while (performance.now() < deadline && backAt.some((t) => t === undefined)) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const doneAt = performance.now();
    const serviceBackSeconds = await serviceBack.catch(() => Number.NaN);
    const stats = service ? await service.stats() : undefined;
    const back = backAt.filter((t): t is number => t !== undefined)
      .map((t) => (t - killedAt) / 1000).sort((a, b) => a - b);
    const allowedAfter = await metric("allowed");
    const deniedAfter = await metric("denied");
    return {
      clients: n,
      initialConnectSeconds,
      serverRestartSeconds,
      serviceBackSeconds,
      allBackSeconds: (doneAt - killedAt) / 1000,
      backSecondsP50: percentile(back, 50),
      backSecondsP90: percentile(back, 90),
      backSecondsP99: percentile(back, 99),
      clientsNotBack: n - back.length,
      failedLogins,
      authFailures,
      errorKinds,
      deniedByService: deniedAfter - deniedBefore,
      clientsThatWouldGiveUp: wouldGiveUp,
      allowedByService: allowedAfter - allowedBefore,
      serviceCpuSeconds: stats ? stats.cpuSeconds - cpuBefore : NaN,
      servicePeakRssMiB: stats?.peakRssMiB ?? NaN,
    };
  } finally {
    await Promise.all(clients.map((nc) => nc?.close().catch(() => {})));
    await Promise.all(watchers);
  }
}
