/**
 * Settling an account on every server (lib/accounts/settle.ts): how one server's account INFO
 * answer is read, how the servers are found, and the load-and-check loop over a scripted
 * requester. The real servers' answers are proven in first_login_jetstream_test.ts.
 */
import assert from "node:assert/strict";
import type { RequestOptions, SystemRequester } from "../../lib/accounts/resolver.ts";
import {
  accountStateOnServer,
  createAccountSettler,
  inventoryFrom,
} from "../../lib/accounts/settle.ts";

const encoder = new TextEncoder();

function info(name: string, data: Record<string, unknown> | null, jetstream = true) {
  return {
    server: { name, id: `N${name}`, jetstream },
    ...(data
      ? { data }
      : { data: null, error: { code: 500, description: `Account A does not exist` } }),
  };
}

Deno.test("accountStateOnServer: what a server's INFO answer says is missing", () => {
  const loaded = { expired: false, complete: true, jetstream_enabled: true };
  assert.equal(accountStateOnServer(info("n1", null), true).gap, "not_loaded");
  assert.equal(accountStateOnServer(info("n1", { ...loaded, expired: true }), true).gap, "loading");
  assert.equal(
    accountStateOnServer(info("n1", { ...loaded, jetstream_enabled: false }), true).gap,
    "jetstream_not_enabled",
  );
  // JetStream is asked only of a server that runs it, and only when the JWT grants it.
  assert.equal(
    accountStateOnServer(info("n1", { ...loaded, jetstream_enabled: false }, false), true).gap,
    undefined,
  );
  assert.equal(
    accountStateOnServer(info("n1", { ...loaded, jetstream_enabled: false }), false).gap,
    undefined,
  );
  // Unresolved imports are reported, not waited for.
  const partial = accountStateOnServer(info("n1", { ...loaded, complete: false }), true);
  assert.deepEqual(partial, { server: "n1", gap: undefined, importsIncomplete: true });
});

Deno.test("inventoryFrom: answering servers and the servers their routes name", () => {
  const inv = inventoryFrom([
    { server: { name: "n2", id: "NB" }, statsz: { routes: [{ name: "n1" }, { name: "n3" }] } },
    { server: { name: "n1", id: "NA" }, statsz: { routes: [{ name: "n2" }, { name: "n2" }] } },
  ]);
  assert.deepEqual(inv.names, ["n1", "n2", "n3"]);
  assert.equal(inv.key, "NA,NB");
});

/** A requester that answers CONNZ by "loading" the account on each server, after `loadRounds`. */
function scripted(servers: string[], loadRounds: number) {
  const asked: string[] = [];
  let connz = 0;
  const requester: SystemRequester = {
    connected: true,
    request(subject: string, _data: Uint8Array, _options: RequestOptions) {
      asked.push(subject.split(".").at(-1)!);
      if (subject.endsWith(".CONNZ")) {
        connz++;
        return Promise.resolve(servers.map((n) => encoder.encode(JSON.stringify(info(n, {})))));
      }
      const ready = connz >= loadRounds;
      return Promise.resolve(servers.map((n) =>
        encoder.encode(JSON.stringify(info(n, {
          expired: false,
          complete: true,
          // n3 enables JetStream last: what nats-server's non-atomic load looks like from outside.
          jetstream_enabled: n !== "n3" || ready,
        })))
      ));
    },
  };
  return { requester, asked };
}

Deno.test("settle: loads and checks until every server has JetStream for the account", async () => {
  const { requester, asked } = scripted(["n1", "n2", "n3"], 3);
  const settler = createAccountSettler(requester, { intervalMs: 1 });
  const inventory = { names: ["n1", "n2", "n3"], key: "k" };
  const r = await settler.settle("A", { jetstream: true, inventory });
  assert.deepEqual(r, { ok: true, servers: 3, rounds: 3, importsIncompleteOn: [] });
  assert.deepEqual(asked, ["CONNZ", "INFO", "CONNZ", "INFO", "CONNZ", "INFO"]);
});

Deno.test("settle: a server that never answers is named at the deadline", async () => {
  const { requester } = scripted(["n1", "n2"], 1);
  const settler = createAccountSettler(requester, { intervalMs: 1, timeoutMs: 30 });
  const inventory = { names: ["n1", "n2", "n3"], key: "k" };
  const r = await settler.settle("A", { jetstream: true, inventory });
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.deepEqual(r.missing, [{ server: "n3", gap: "no_answer", importsIncomplete: false }]);
    assert.match(r.message, /n3 \(no_answer\)/);
  }
});
