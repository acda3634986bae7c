/**
 * Requests on the system account that expect an answer from every server (the account resolver's
 * `$SYS.REQ.CLAIMS.*` subjects, lib/accounts/resolver.ts): publish with a reply inbox, collect what
 * comes back until enough replies came, none came for a while, or time is up. nats.js's
 * `request` keeps only the first reply and `requestMany`'s strategies cannot stop at "the first
 * non-empty one or quiet", so this is its own small loop over a subscription.
 *
 * @module
 */
import { createInbox, type NatsConnection } from "@nats-io/transport-node";

/** How long to collect (the shape lib/accounts/resolver.ts asks for). */
export interface CollectOptions {
  /** Collect replies for at most this many milliseconds. */
  readonly timeoutMs: number;
  /** Stop after this many replies. @default {no limit} */
  readonly maxReplies?: number;
  /** Stop this long after the last reply. @default {the whole timeoutMs} */
  readonly stallMs?: number;
  /** Stop at the first reply this accepts. @default {none} */
  readonly stopOn?: (reply: Uint8Array) => boolean;
}

/** Requests over one system-account connection (a `SystemRequester` of lib/accounts/resolver.ts). */
export interface SystemRequests {
  /** Publish `data` on `subject` and collect the replies (from every server that answers) until `options` says stop. */
  request(subject: string, data: Uint8Array, options: CollectOptions): Promise<Uint8Array[]>;
  /** Whether the system-account connection is up now. */
  readonly connected: boolean;
}

/**
 * Requests over `connection` once it is connected (the promise of live revocation's system
 * connection, lib/service/logins.ts). Before that, `connected` is false and a request rejects.
 *
 * @example
 * ```ts ignore
 * const requests = systemRequests(connectSystem(context));
 * const replies = await requests.request("$SYS.REQ.CLAIMS.LIST", new Uint8Array(), { timeoutMs: 2000, stallMs: 200 });
 * ```
 */
export function systemRequests(connection: Promise<NatsConnection>): SystemRequests {
  let nc: NatsConnection | undefined;
  let up = false;
  void connection.then(async (c) => {
    nc = c;
    up = true;
    for await (const s of c.status()) {
      if (s.type === "disconnect" || s.type === "close") up = false;
      if (s.type === "reconnect") up = true;
    }
    up = false;
  }, () => {});
  return {
    get connected() {
      return up && nc !== undefined && !nc.isClosed();
    },
    async request(subject, data, options) {
      const conn = nc;
      if (!conn || conn.isClosed()) throw new Error("the system-account connection is not up");
      return await collect(conn, subject, data, options);
    },
  };
}

async function collect(
  nc: NatsConnection,
  subject: string,
  data: Uint8Array,
  options: CollectOptions,
): Promise<Uint8Array[]> {
  const { timeoutMs, maxReplies = Infinity, stallMs, stopOn } = options;
  const inbox = createInbox();
  const replies: Uint8Array[] = [];
  const { promise, resolve } = Promise.withResolvers<void>();
  let stall: ReturnType<typeof setTimeout> | undefined;
  const deadline = setTimeout(resolve, timeoutMs);
  const sub = nc.subscribe(inbox, {
    callback: (_err, msg) => {
      replies.push(msg.data);
      if (replies.length >= maxReplies || stopOn?.(msg.data)) return resolve();
      if (stallMs !== undefined) {
        clearTimeout(stall);
        stall = setTimeout(resolve, stallMs);
      }
    },
  });
  try {
    nc.publish(subject, data, { reply: inbox });
    await promise;
  } finally {
    clearTimeout(deadline);
    clearTimeout(stall);
    sub.unsubscribe();
  }
  return replies;
}
