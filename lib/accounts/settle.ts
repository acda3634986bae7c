/**
 * An account is in place on a server only once that server has loaded it, and nats-server loads
 * an account lazily (on its first reference) and not atomically. The resolver holding the JWT
 * (lib/accounts/resolver.ts) is therefore not enough for a login: before the first user of an
 * account is admitted, the service loads the account on every server and confirms that each holds
 * what the JWT promises ({@linkcode createAccountSettler}).
 *
 * What goes wrong otherwise (nats-server v2.15.1, seen under load in a 3-server cluster): a server
 * that hears of the account first through a route (`RS+` for a subject of its first client)
 * registers an empty, expired placeholder (`processRemoteSub`, `server/route.go:1636-1671`). The
 * next reference loads it: `lookupOrFetchAccount` (`server/server.go:2107-2133`) sees it expired
 * and runs `updateAccountClaimsWithRefresh` (`server/accounts.go:3479`), which clears the expiry
 * first (`checkExpiration`, line 3487) and enables JetStream last (`configJetStream`, line 3932).
 * A second reference while that runs — a JetStream API request and the stream assignment the meta
 * leader just committed, on different goroutines — gets the account without JetStream:
 * `processStreamAssignment` (`server/jetstream_cluster.go:6533`) → `processClusterCreateStream`
 * fails with `JetStream not enabled for account` (10039), and the member rejects the assignment,
 * so the client's `$JS.API.STREAM.CREATE` fails although its login succeeded. A little later in the
 * same load, `EnableJetStream` (`server/jetstream.go:1262-1298`) has already published the
 * account's JetStream but still removes the store directory it probed, so a stream created in
 * that moment fails with `error creating store for stream` (10049). Both are the same fault: the
 * account is used on a server while that server is still loading it.
 *
 * The remedy works from the system account alone: `$SYS.REQ.ACCOUNT.<key>.CONNZ` makes every
 * server look the account up with a fetch (`Connz`, `server/monitor.go:289`), which loads it, and
 * answers after; `$SYS.REQ.ACCOUNT.<key>.INFO` reports, per server and without loading anything
 * (`accountInfo`, `server/monitor.go:2860`), whether it is loaded, `expired`, `complete` (its
 * imports resolved) and `jetstream_enabled`. Imports are reported, not waited for: a server that
 * loaded an importer before any server held an exporter's JWT keeps the import unresolved until
 * that exporter is loaded there (`server/accounts.go:3706-3712, 4063-4090`), and concurrent
 * refreshes can leave it `duplicate service import` for good (seen here), so waiting on `complete`
 * could refuse a namespace's logins forever; the provisioner instead pushes an account's exporters
 * before loading it. An account that is loaded stays loaded, and later
 * updates keep its JetStream on, so a settled account needs no further work until a server
 * restarts (a new server id, which the inventory notices).
 *
 * @module
 */
import { delay } from "../core/abort.ts";
import type { ApiAnswer, SystemRequester } from "./resolver.ts";

/** What a server still lacks of an account; a log field, not a metric label. */
export type AccountGap = "not_loaded" | "loading" | "jetstream_not_enabled" | "no_answer";

/** One server's answer about one account. */
export interface ServerAccountState {
  /** The server's name. */
  readonly server: string;
  /** What is missing there; `undefined` when the account is in place. */
  readonly gap: AccountGap | undefined;
  /** The server reports an import it could not resolve (`complete: false`). */
  readonly importsIncomplete: boolean;
}

/** The servers an account must be in place on. */
export interface ServerInventory {
  /** Every server reachable over the system account, by name. */
  readonly names: readonly string[];
  /** Changes when a server joins, leaves or restarts (the servers' ids). */
  readonly key: string;
}

/** The outcome of settling one account. */
export type SettleResult =
  | {
    readonly ok: true;
    readonly servers: number;
    readonly rounds: number;
    /** Servers that hold the account but report an unresolved import (logged, not waited for). */
    readonly importsIncompleteOn: readonly string[];
  }
  | {
    readonly ok: false;
    /** Per server, what was still missing at the deadline. */
    readonly missing: readonly ServerAccountState[];
    readonly message: string;
  };

/** Loads accounts on every server and confirms them. */
export interface AccountSettler {
  /** The servers now (cached for `inventoryTtlMs`). */
  inventory(): Promise<ServerInventory>;
  /**
   * Load `account` on every server of `inventory` and wait until each holds it complete, with
   * JetStream enabled on each JetStream server when `jetstream` (the JWT grants it).
   */
  settle(account: string, options: SettleOptions): Promise<SettleResult>;
}

/** What one account must be, and where. */
export interface SettleOptions {
  /** The JWT grants JetStream: every JetStream server must have it enabled for the account. */
  readonly jetstream: boolean;
  /** The servers (from {@linkcode AccountSettler.inventory}). */
  readonly inventory: ServerInventory;
}

/** Options of {@linkcode createAccountSettler}. */
export interface AccountSettlerOptions {
  /** Give up on an account after this long (a login waits for it). @default {1500} */
  timeoutMs?: number;
  /** Pause between two rounds of load-and-check. @default {20} */
  intervalMs?: number;
  /** Reuse the server inventory this long. @default {10000} */
  inventoryTtlMs?: number;
  /** Collect the servers' answers until none came for this long (inventory). @default {100} */
  stallMs?: number;
  /** Clock in milliseconds. @default {() => performance.now()} */
  now?: () => number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface InfoData {
  readonly expired?: boolean;
  readonly complete?: boolean;
  readonly jetstream_enabled?: boolean;
}

/** The envelope of a system request's answer: which server answered, and whether it runs JetStream. */
export interface ServerEnvelope {
  /** The answering server (nats-server `ServerInfo`). */
  readonly server?: { readonly name?: string; readonly id?: string; readonly jetstream?: boolean };
}

function parse(reply: Uint8Array): (ApiAnswer & ServerEnvelope) | undefined {
  try {
    const value: unknown = JSON.parse(decoder.decode(reply));
    return value !== null && typeof value === "object" && !Array.isArray(value)
      ? value as ApiAnswer & ServerEnvelope
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * What one server's answer to `$SYS.REQ.ACCOUNT.<key>.INFO` says is missing. An error answer
 * means the server has not loaded the account; `expired` is the placeholder a route reference
 * leaves, or a load in progress; JetStream counts only on a server that runs it.
 *
 * @example
 * ```ts
 * import { accountStateOnServer } from "./settle.ts";
 * const answer = {
 *   server: { name: "n2", jetstream: true },
 *   data: { expired: false, complete: true, jetstream_enabled: false },
 * };
 * console.assert(accountStateOnServer(answer, true).gap === "jetstream_not_enabled");
 * console.assert(accountStateOnServer(answer, false).gap === undefined);
 * ```
 */
export function accountStateOnServer(
  answer: ApiAnswer & ServerEnvelope,
  jetstream: boolean,
): ServerAccountState {
  const server = answer.server?.name || answer.server?.id || "unknown";
  const data = answer.data as InfoData | undefined;
  const gap: AccountGap | undefined = answer.error || !data
    ? "not_loaded"
    : data.expired !== false
    ? "loading"
    : jetstream && answer.server?.jetstream === true && data.jetstream_enabled !== true
    ? "jetstream_not_enabled"
    : undefined;
  return { server, gap, importsIncomplete: data?.complete === false };
}

/**
 * The servers from their answers to `$SYS.REQ.SERVER.PING.STATSZ`: each answering server, and
 * each server its routes name (so one that answered late is still expected).
 *
 * @example
 * ```ts
 * import { inventoryFrom } from "./settle.ts";
 * const inv = inventoryFrom([
 *   { server: { name: "n1", id: "NA" }, statsz: { routes: [{ name: "n2" }, { name: "n3" }] } },
 * ]);
 * console.assert(inv.names.join() === "n1,n2,n3");
 * ```
 */
export function inventoryFrom(answers: readonly unknown[]): ServerInventory {
  const names = new Set<string>();
  const ids: string[] = [];
  for (const a of answers) {
    const msg = a as ServerEnvelope & { statsz?: { routes?: { name?: string }[] } };
    const name = msg.server?.name || msg.server?.id;
    if (!name) continue;
    names.add(name);
    if (msg.server?.id) ids.push(msg.server.id);
    for (const r of msg.statsz?.routes ?? []) if (r.name) names.add(r.name);
  }
  return { names: [...names].sort(), key: ids.sort().join(",") };
}

/**
 * Settle accounts over `requester` (the system-account connection).
 *
 * @example
 * ```ts ignore
 * const settler = createAccountSettler(systemRequests(nc));
 * const inventory = await settler.inventory();
 * await settler.settle("A…", { jetstream: true, inventory }); // { ok: true, servers: 3, rounds: 1 }
 * ```
 */
export function createAccountSettler(
  requester: SystemRequester,
  options: AccountSettlerOptions = {},
): AccountSettler {
  const {
    timeoutMs = 1500,
    intervalMs = 20,
    inventoryTtlMs = 10_000,
    stallMs = 100,
    now = () => performance.now(),
  } = options;
  let cached: { at: number; inventory: Promise<ServerInventory> } | undefined;

  const inventory = (): Promise<ServerInventory> => {
    if (cached && now() - cached.at < inventoryTtlMs) return cached.inventory;
    const at = now();
    const next = requester.request("$SYS.REQ.SERVER.PING.STATSZ", new Uint8Array(), {
      timeoutMs,
      stallMs,
    }).then((replies) => inventoryFrom(replies.map(parse).filter((a) => a !== undefined)));
    cached = { at, inventory: next };
    next.catch(() => {
      if (cached?.inventory === next) cached = undefined;
    });
    return next;
  };

  /** Ask every server; resolves to the parsed answers (one per server that answered in time). */
  const ask = async (subject: string, count: number, remaining: number) =>
    (await requester.request(subject, encoder.encode("{}"), {
      timeoutMs: Math.max(1, remaining),
      maxReplies: count,
    })).map(parse).filter((a) => a !== undefined);

  const settle: AccountSettler["settle"] = async (account, options) => {
    const { jetstream, inventory } = options;
    const deadline = now() + timeoutMs;
    const expected = inventory.names;
    if (expected.length === 0) {
      return { ok: false, missing: [], message: "no server answered $SYS.REQ.SERVER.PING.STATSZ" };
    }
    let states: ServerAccountState[] = [];
    for (let round = 1;; round++) {
      // CONNZ loads the account where it is not loaded yet (and answers after); INFO then reports.
      await ask(`$SYS.REQ.ACCOUNT.${account}.CONNZ`, expected.length, deadline - now());
      const answers = await ask(
        `$SYS.REQ.ACCOUNT.${account}.INFO`,
        expected.length,
        deadline - now(),
      );
      const byServer = new Map(
        answers.map((a) => accountStateOnServer(a, jetstream)).map((s) => [s.server, s]),
      );
      states = expected.map((server) =>
        byServer.get(server) ?? { server, gap: "no_answer", importsIncomplete: false }
      );
      if (states.every((s) => s.gap === undefined)) {
        const importsIncompleteOn = states.filter((s) => s.importsIncomplete).map((s) => s.server);
        return { ok: true, servers: expected.length, rounds: round, importsIncompleteOn };
      }
      if (now() + intervalMs >= deadline) break;
      await delay(intervalMs);
    }
    const missing = states.filter((s) => s.gap !== undefined);
    return {
      ok: false,
      missing,
      message: `not in place on ${missing.map((s) => `${s.server} (${s.gap})`).join(", ")} ` +
        `after ${timeoutMs} ms`,
    };
  };

  return { inventory, settle };
}
