/**
 * Accounts that follow namespaces, end to end against a 3-server operator-mode cluster with a full
 * resolver and the real kube-apiserver: a new Namespace's first login lands in a fresh account on
 * every server; namespaces are isolated from each other (subjects and JetStream); an exported
 * service answers its importer and nobody else; a deleted Namespace loses its connections, its
 * account and its logins.
 */
import assert from "node:assert/strict";
import { jetstreamManager } from "@nats-io/jetstream";
import { tolerateClientResets } from "../support/nats_server.ts";
import { ProvisioningStack } from "../support/provisioning_stack.ts";
import { waitFor } from "../support/wait.ts";

const POLICY = `
namespaces:
  - glob: "team-*"
    jetstream: { api: true }
    namespaceAccount:
      jetstream: { memory: 16MiB, disk: 64MiB, streams: 5, consumers: 10 }
      exports:
        - service: "{namespace}.api.>"
          to: [team-b]
`;

function claims(jwt: string): Record<string, unknown> {
  return JSON.parse(new TextDecoder().decode(
    Uint8Array.fromBase64(jwt.split(".")[1]!, { alphabet: "base64url" }),
  ));
}

Deno.test("namespace accounts: first login in a fresh account, isolation, exports, deletion", async (t) => {
  using _resets = tolerateClientResets();
  await using stack = await ProvisioningStack.start({ policy: POLICY, jetstream: true });
  const uids: Record<string, string> = {};
  for (const ns of ["team-a", "team-b", "team-c"]) {
    uids[ns] = await stack.createNamespace(ns);
    await stack.kube.createServiceAccount(ns, "app", {
      "nats.io/allowed-pub-subjects": "shared.news, team-a.api.>",
      "nats.io/allowed-sub-subjects": "shared.news",
    });
  }
  const login = async (ns: string, server = 0) => {
    const token = await stack.token(ns, "app");
    return await waitFor(() => stack.connect(token, server).catch(() => undefined), {
      timeoutMs: 15_000,
      what: `${ns}/app logs in`,
    });
  };

  await t.step(
    "a new Namespace's first login lands in a fresh account, held by every server",
    async () => {
      const account = stack.accountOf(uids["team-a"]!);
      const nc = await login("team-a", 1);
      assert.deepEqual(await stack.usersIn(account), ["system:serviceaccount:team-a:app"]);
      const jwts = await stack.jwtsOnServers(account);
      assert.equal(jwts.length, 3);
      assert.ok(jwts.every((j) => j === jwts[0] && j !== ""), "one identical JWT on n1, n2, n3");
      const c = claims(jwts[0]!);
      assert.equal(c.iss, stack.operatorSigningKey);
      assert.equal(c.name, "team-a");
      await nc.flush();
    },
  );

  await t.step("two namespaces cannot see each other's subjects or JetStream", async () => {
    const a = await login("team-a");
    const b = await login("team-b", 2);
    let heard = 0;
    b.subscribe("shared.news", { callback: () => void heard++ });
    await b.flush();
    const own = await login("team-a", 2);
    let ownHeard = 0;
    own.subscribe("shared.news", { callback: () => void ownHeard++ });
    await own.flush();
    // Interest crosses the routes a moment after the subscription: publish until it arrives.
    await waitFor(async () => {
      a.publish("shared.news", "hello");
      await a.flush();
      return ownHeard > 0;
    }, { intervalMs: 50, what: "team-a hears its own shared.news across servers" });
    await b.flush();
    assert.equal(heard, 0, "team-b's shared.news is another account's subject");

    const jsa = await jetstreamManager(a);
    await jsa.streams.add({ name: "ORDERS", subjects: ["team-a.orders.>"] });
    const jsb = await jetstreamManager(b);
    const names: string[] = [];
    for await (const s of jsb.streams.names()) names.push(s);
    assert.deepEqual(names, [], "team-b sees none of team-a's streams");
    await jsb.streams.add({ name: "ORDERS", subjects: ["team-b.orders.>"] });
  });

  await t.step("an exported service answers the importing namespace and no one else", async () => {
    const a = await login("team-a");
    a.subscribe("team-a.api.echo", { callback: (_e, m) => void m.respond(`echo:${m.string()}`) });
    await a.flush();
    const b = await login("team-b", 1);
    const reply = await waitFor(
      () => b.request("team-a.api.echo", "hi", { timeout: 1000 }).catch(() => undefined),
      { what: "team-b's request is answered across accounts" },
    );
    assert.equal(reply.string(), "echo:hi");
    const c = await login("team-c", 2);
    await assert.rejects(
      () => c.request("team-a.api.echo", "hi", { timeout: 1000 }),
      "team-c may publish the subject (its annotation), but its account imports nothing",
    );
  });

  await t.step(
    "Namespace deleted: connections closed, account gone, token refused",
    async () => {
      const account = stack.accountOf(uids["team-c"]!);
      const nc = await login("team-c", 1);
      const token = await stack.token("team-c", "app");
      let closed = false;
      void nc.closed().then(() => closed = true);
      await stack.deleteNamespace("team-c");
      // How fast is measured in `deno task bench` (accounts section), not asserted here.
      await waitFor(() => closed, { timeoutMs: 30_000, what: "team-c's connection closed" });
      await waitFor(async () => (await stack.jwtsOnServers(account)).every((j) => j === ""), {
        what: "the account is gone from every server",
      });
      await assert.rejects(() => stack.connect(token), /Authorization Violation/);
      const denied = stack.replicas[0]!.logs.find((l) =>
        l.event === "login_denied" && l.namespace === "team-c"
      );
      assert.equal(denied?.reason, "namespace_not_found");
    },
  );
});
