/**
 * A real nats-server cluster for tests: `size` servers (3 by default) with the same configuration,
 * fully meshed by routes, started with {@linkcode NatsServer} and stopped together. Resolves once
 * every route is up (a message published on each server reaches a subscriber on every other one).
 *
 * @module
 */
import { connect, type ConnectionOptions, type NatsConnection } from "@nats-io/transport-node";
import { freePort } from "./http_probe.ts";
import type { ConfigUser, NatsConfig } from "./nats_server.ts";
import { NatsServer } from "./nats_server.ts";
import { waitFor } from "./wait.ts";

/** Options of {@linkcode NatsCluster.start}. */
export interface NatsClusterOptions {
  /** Configuration shared by every server (accounts, authorization…). */
  config: NatsConfig;
  /**
   * Who checks the routes: a config user that may connect to every server without the callout, or
   * (operator mode) the options of such a connection (e.g. a system-account creds authenticator).
   */
  probeUser: ConfigUser | { readonly connect: Partial<ConnectionOptions> };
  /** Number of servers. @default {3} */
  size?: number;
  /** Configuration of server `i` (0-based) merged over `config` (a resolver or JetStream dir). */
  perServer?: (i: number) => NatsConfig;
}

/** A running cluster; dispose to stop every server. */
export class NatsCluster implements AsyncDisposable {
  /** The servers, in start order; their `server_name` is `n1`, `n2`, … */
  readonly servers: readonly NatsServer[];

  private constructor(servers: NatsServer[]) {
    this.servers = servers;
  }

  /**
   * Start the cluster and wait for its routes.
   *
   * @example
   * ```ts ignore
   * await using cluster = await NatsCluster.start({ config, probeUser: system });
   * const [n1, n2] = cluster.servers;
   * ```
   */
  static async start(options: NatsClusterOptions): Promise<NatsCluster> {
    const size = options.size ?? 3;
    const routePorts = Array.from({ length: size }, () => freePort());
    const routes = routePorts.map((p) => `nats-route://127.0.0.1:${p}`);
    const servers: NatsServer[] = [];
    try {
      for (let i = 0; i < size; i++) {
        servers.push(
          await NatsServer.start({
            config: {
              ...options.config,
              ...options.perServer?.(i),
              server_name: `n${i + 1}`,
              cluster: {
                name: "test-cluster",
                listen: `127.0.0.1:${routePorts[i]}`,
                routes: routes.filter((_, j) => j !== i),
                no_advertise: true,
              },
            },
          }),
        );
      }
      const cluster = new NatsCluster(servers);
      await cluster.#waitForRoutes(options.probeUser);
      return cluster;
    } catch (err) {
      for (const s of servers) await s.stop();
      throw err;
    }
  }

  async #waitForRoutes(
    user: ConfigUser | { readonly connect: Partial<ConnectionOptions> },
  ): Promise<void> {
    const conns: NatsConnection[] = [];
    const options = "connect" in user ? user.connect : { user: user.user, pass: user.password };
    try {
      for (const s of this.servers) {
        conns.push(await connect({ ...options, servers: s.url }));
      }
      for (const [i, from] of conns.entries()) {
        for (const [j, to] of conns.entries()) {
          if (i === j) continue;
          const subject = `_cluster_probe.${i}.${j}`;
          let got = false;
          const sub = to.subscribe(subject, {
            callback: () => {
              got = true;
            },
          });
          await to.flush();
          await waitFor(async () => {
            from.publish(subject);
            await from.flush();
            return got;
          }, { timeoutMs: 15_000, intervalMs: 50, what: `route n${i + 1} → n${j + 1}` });
          sub.unsubscribe();
        }
      }
    } finally {
      for (const nc of conns) await nc.close();
    }
  }

  /** Stop every server. */
  async [Symbol.asyncDispose](): Promise<void> {
    for (const s of this.servers) await s.stop();
  }
}
