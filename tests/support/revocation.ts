/**
 * What the live-revocation tests start with: a real nats-server with an application account and a
 * system account (revocation kicks over `$SYS`), and a key set whose keys can be dropped.
 *
 * @module
 */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { KeyPresence } from "../../lib/nats/revocation.ts";
import { NatsServer } from "./nats_server.ts";

/** A running server, the system connection revocation uses, and a way to add APP clients. */
export interface RevocationServer extends AsyncDisposable {
  readonly ns: NatsServer;
  /** Connected as the system account's user. */
  readonly sys: NatsConnection;
  /** A new client in APP that does not reconnect (a kick closes it for good). */
  client(): Promise<NatsConnection>;
}

/** Start a nats-server with accounts APP (user `app`) and SYS (the system account). */
export async function revocationServer(): Promise<RevocationServer> {
  const sysUser = { user: "sys", password: crypto.randomUUID() };
  const ns = await NatsServer.start({
    config: {
      accounts: { APP: { users: [{ user: "app", password: "app" }] }, SYS: { users: [sysUser] } },
      system_account: "SYS",
    },
  });
  const sys = await connect({ servers: ns.url, user: sysUser.user, pass: sysUser.password });
  return {
    ns,
    sys,
    client: () => connect({ servers: ns.url, user: "app", pass: "app", reconnect: false }),
    [Symbol.asyncDispose]: async () => {
      await sys.close().catch(() => {});
      await ns.stop();
    },
  };
}

/** A key set holding `kids`; {@linkcode droppable}`.drop` removes one and bumps the generation. */
export function droppable(kids: readonly string[]): { keys: KeyPresence; drop(kid: string): void } {
  let generation = 1;
  const present = new Set(kids);
  return {
    keys: {
      get generation() {
        return generation;
      },
      getKey: ({ kid }) =>
        present.has(kid) ? Promise.resolve({}) : Promise.reject(new Error("no key")),
    },
    drop(kid) {
      present.delete(kid);
      generation++;
    },
  };
}
