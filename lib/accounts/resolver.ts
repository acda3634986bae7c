/**
 * The servers' account resolver, as the service talks to it over its system-account connection
 * (DESIGN §2; nats-server `server/accounts.go`, `DirAccResolver.Start`): push an account JWT
 * (`$SYS.REQ.CLAIMS.UPDATE`), look one up (`$SYS.REQ.ACCOUNT.<key>.CLAIMS.LOOKUP`), list them
 * (`$SYS.REQ.CLAIMS.LIST`) and delete them (`$SYS.REQ.CLAIMS.DELETE`). Every server of the
 * cluster subscribes to these (not as a queue), so one request reaches them all; the first answer
 * is taken for a push or a delete, every answer within a short window for a lookup or a list.
 *
 * The transport is injected ({@linkcode SystemRequester}), so this module knows subjects and
 * answers, not connections. Every answer is classified, so a refusal carries its reason:
 * - a full resolver answers a stored push with code 200 and `"jwt updated"`;
 * - a `cache` resolver answers code 200 too, but `"jwt update cache skipped"` or
 *   `"jwt updated cache"`: it does not keep accounts it has not loaded, so provisioning needs
 *   `resolver: { type: full }` and such an answer is a failure (`resolver_not_full`);
 * - a `MEMORY` resolver does not subscribe at all: no responders (`no_resolver`).
 *
 * @module
 */

/** Publish on the system account and collect replies (lib/nats/system_requests.ts). */
export interface SystemRequester {
  /**
   * Send `data` on `subject` and resolve to the replies received until `maxReplies` arrived or no
   * reply came for `stallMs` after the last one, within `timeoutMs`. Rejects with
   * {@linkcode ResolverError} `no_resolver` when nobody subscribes, `no_connection` when not
   * connected.
   */
  request(subject: string, data: Uint8Array, options: RequestOptions): Promise<Uint8Array[]>;
  /** True while the system-account connection is up. */
  readonly connected: boolean;
}

/** How long to wait for replies. */
export interface RequestOptions {
  /** Give up waiting for answers after this many milliseconds. */
  readonly timeoutMs: number;
  /** Stop after this many replies. @default {no limit} */
  readonly maxReplies?: number;
  /** Stop this long after the last reply. @default {the whole timeoutMs} */
  readonly stallMs?: number;
  /** Stop at the first reply this accepts. @default {none} */
  readonly stopOn?: (reply: Uint8Array) => boolean;
}

/** Why a resolver operation failed; a metric label and a log field. */
export type ResolverFailure =
  | "no_connection"
  | "no_resolver"
  | "no_response"
  | "resolver_not_full"
  | "delete_not_allowed"
  | "refused"
  | "malformed_answer";

/** A resolver operation that failed, with its stable reason and the server's words. */
export class ResolverError extends Error {
  /** Stable reason. */
  readonly reason: ResolverFailure;
  /** The server that answered, when one did. */
  readonly server: string | undefined;

  /** Create the error. */
  constructor(reason: ResolverFailure, message: string, server?: string) {
    super(message);
    this.name = "ResolverError";
    this.reason = reason;
    this.server = server;
  }
}

/** A successful push or delete: which server answered, and what it said. */
export interface ResolverAnswer {
  /** The answering server's name. */
  readonly server: string;
  /** What it said (`jwt updated`, `jwt deleted`…). */
  readonly message: string;
}

/** Options of {@linkcode createResolverClient}. */
export interface ResolverClientOptions {
  /** Wait this long for a push or delete answer. @default {2000} */
  timeoutMs?: number;
  /** Collect lookup and list answers until none came for this long. @default {50} */
  stallMs?: number;
}

/** The resolver operations provisioning uses. */
export interface ResolverClient {
  /** Store an account JWT on the full resolvers; rejects with {@linkcode ResolverError}. */
  push(accountJwt: string): Promise<ResolverAnswer>;
  /**
   * The JWT the servers hold for `account`: the first non-empty answer; `undefined` when servers
   * answered and none has it. Rejects with {@linkcode ResolverError} (`no_response`) when no server
   * answered: "nobody has it" and "nobody was asked" must not look alike.
   */
  lookup(account: string): Promise<string | undefined>;
  /**
   * Every server's copy of `account`'s JWT (the non-empty answers, one per server that holds it,
   * collected until none came for `stallMs`): nats-server judges with its own copy, and copies can
   * differ (a server that was down during a push keeps the old one until its resolver syncs).
   * Rejects like {@linkcode ResolverClient.lookup} when no server answered.
   */
  copies(account: string, options?: { stallMs?: number }): Promise<string[]>;
  /** Every account key the servers' resolvers hold (the union of their answers). */
  list(): Promise<string[]>;
  /** Delete accounts (a delete request JWT, lib/accounts/claims.ts); rejects with {@linkcode ResolverError}. */
  delete(requestJwt: string): Promise<ResolverAnswer>;
  /** True while the system-account connection is up. */
  readonly connected: boolean;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One server's answer to an update, delete or list request (nats-server `ServerAPIResponse`). */
export interface ApiAnswer {
  /** The answering server. */
  readonly server?: { readonly name?: string; readonly id?: string };
  /** What it did, on success (`{code, message}` for update and delete). */
  readonly data?: unknown;
  /** Why it refused. */
  readonly error?: { readonly code?: number; readonly description?: string };
}

function parseAnswer(reply: Uint8Array): ApiAnswer {
  try {
    const value: unknown = JSON.parse(decoder.decode(reply));
    if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      return value as ApiAnswer;
    }
  } catch { /* below */ }
  throw new ResolverError("malformed_answer", "the resolver's answer is not a JSON object");
}

function serverOf(answer: ApiAnswer): string {
  return answer.server?.name || answer.server?.id || "unknown";
}

/**
 * Classify one answer to a push: stored by a full resolver, or why not.
 *
 * @example
 * ```ts
 * import { classifyPushAnswer } from "./resolver.ts";
 * const ok = { server: { name: "n1" }, data: { code: 200, message: "jwt updated" } };
 * console.assert(classifyPushAnswer(ok).message === "jwt updated");
 * ```
 */
export function classifyPushAnswer(answer: ApiAnswer): ResolverAnswer {
  const server = serverOf(answer);
  if (answer.error) {
    throw new ResolverError(
      "refused",
      `server ${server} refused the account JWT: ${answer.error.description ?? "no reason given"}`,
      server,
    );
  }
  const data = answer.data as { code?: number; message?: string } | undefined;
  const message = data?.message ?? "";
  if (data?.code !== 200) {
    throw new ResolverError(
      "malformed_answer",
      `server ${server} answered without a status`,
      server,
    );
  }
  if (message !== "jwt updated") {
    throw new ResolverError(
      "resolver_not_full",
      `server ${server} answered "${message}": its resolver does not store pushed accounts ` +
        "(provisioning needs resolver: { type: full })",
      server,
    );
  }
  return { server, message };
}

/** Classify the answer to a delete request. */
export function classifyDeleteAnswer(answer: ApiAnswer): ResolverAnswer {
  const server = serverOf(answer);
  if (answer.error) {
    const why = answer.error.description ?? "no reason given";
    throw new ResolverError(
      /delete must be enabled/i.test(why) ? "delete_not_allowed" : "refused",
      `server ${server} refused to delete: ${why}`,
      server,
    );
  }
  const data = answer.data as { message?: string } | undefined;
  return { server, message: data?.message ?? "" };
}

/**
 * The resolver operations over `requester`.
 *
 * @example
 * ```ts ignore
 * const resolver = createResolverClient(systemRequester(nc));
 * await resolver.push(accountJwt); // { server: "n1", message: "jwt updated" }
 * ```
 */
export function createResolverClient(
  requester: SystemRequester,
  options: ResolverClientOptions = {},
): ResolverClient {
  const { timeoutMs = 2000, stallMs = 50 } = options;
  const first = async (subject: string, data: string): Promise<ApiAnswer> => {
    const replies = await requester.request(subject, encoder.encode(data), {
      timeoutMs,
      maxReplies: 1,
    });
    const reply = replies[0];
    if (reply === undefined) {
      throw new ResolverError(
        "no_response",
        `no server answered ${subject} within ${timeoutMs} ms`,
      );
    }
    return parseAnswer(reply);
  };
  return {
    push: async (jwt) => classifyPushAnswer(await first("$SYS.REQ.CLAIMS.UPDATE", jwt)),
    delete: async (jwt) => classifyDeleteAnswer(await first("$SYS.REQ.CLAIMS.DELETE", jwt)),
    copies: async (account, options) => {
      const subject = `$SYS.REQ.ACCOUNT.${account}.CLAIMS.LOOKUP`;
      const replies = await requester.request(subject, new Uint8Array(), {
        timeoutMs,
        stallMs: options?.stallMs ?? stallMs,
      });
      if (replies.length === 0) {
        throw new ResolverError("no_response", `no server answered ${subject}`);
      }
      return replies.filter((r) => r.length > 0).map((r) => decoder.decode(r));
    },
    lookup: async (account) => {
      const replies = await requester.request(
        `$SYS.REQ.ACCOUNT.${account}.CLAIMS.LOOKUP`,
        new Uint8Array(),
        // A server that holds it answers with the JWT; the others answer empty at once.
        { timeoutMs, stallMs, stopOn: (r) => r.length > 0 },
      );
      if (replies.length === 0) {
        throw new ResolverError(
          "no_response",
          `no server answered $SYS.REQ.ACCOUNT.${account}.CLAIMS.LOOKUP`,
        );
      }
      for (const r of replies) if (r.length > 0) return decoder.decode(r);
      return undefined;
    },
    list: async () => {
      const replies = await requester.request("$SYS.REQ.CLAIMS.LIST", new Uint8Array(), {
        timeoutMs,
        stallMs,
      });
      if (replies.length === 0) {
        throw new ResolverError("no_response", `no server answered $SYS.REQ.CLAIMS.LIST`);
      }
      const keys = new Set<string>();
      for (const r of replies) {
        const data = parseAnswer(r).data;
        if (Array.isArray(data)) { for (const k of data) if (typeof k === "string") keys.add(k); }
      }
      return [...keys];
    },
    get connected() {
      return requester.connected;
    },
  };
}
