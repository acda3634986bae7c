/**
 * The limits a policy's `namespaceAccount` sets are enforced by nats-server itself: each kind is
 * refused at its bound by a real server (connections, subscriptions per connection, payload, leaf
 * nodes, JetStream memory, disk, streams and consumers), and a policy edit raises a bound on the
 * live account (the JWT is pushed again; no restart, no reconnect of what is already in).
 */
import assert from "node:assert/strict";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { NatsServer, tolerateClientResets } from "../support/nats_server.ts";
import { ProvisioningStack } from "../support/provisioning_stack.ts";
import { waitFor } from "../support/wait.ts";

function policy(connections: number, leafNodes: number, streams: number): string {
  return `
namespaces:
  - glob: "lim-*"
    jetstream: { api: true }
    namespaceAccount:
      limits: { connections: ${connections}, subscriptions: 3, payload: 1KiB, leafNodes: ${leafNodes} }
      jetstream: { memory: 1MiB, disk: 2MiB, streams: ${streams}, consumers: 1 }
`;
}

/** The next asynchronous error the server sends this connection (`-ERR …`). */
async function nextServerError(nc: NatsConnection): Promise<string> {
  for await (const s of nc.status()) {
    if (s.type === "error") return String(s.error);
  }
  return "closed";
}

Deno.test("namespace account limits: each kind refused by nats-server at its bound; a policy edit raises one live", async (t) => {
  using _resets = tolerateClientResets();
  await using stack = await ProvisioningStack.start({
    policy: policy(2, 0, 1),
    jetstream: true,
    leafnodes: true,
  });
  await stack.createNamespace("lim-a");
  await stack.kube.createServiceAccount("lim-a", "app");
  const token = await stack.token("lim-a", "app");
  const first = await waitFor(() => stack.connect(token).catch(() => undefined), {
    what: "the first login",
  });

  await t.step(
    "connections: the third is refused, until a policy edit raises the bound to 3",
    async () => {
      // One server: the count across a cluster follows the servers' account events, a moment later.
      const second = await stack.connect(token);
      // The server says why and closes; the client sees the error or only the reset.
      await assert.rejects(() => stack.connect(token));
      assert.match(stack.cluster.servers[0]!.log, /maximum account active connections exceeded/i);
      await stack.writePolicy(policy(3, 0, 1));
      const third = await waitFor(() => stack.connect(token).catch(() => undefined), {
        what: "a third connection once the bound is 3",
      });
      assert.ok(!first.isClosed() && !second.isClosed(), "no connection was cut by the update");
      await second.close();
      await third.close();
    },
  );

  await t.step("subscriptions: the fourth on one connection is refused", async () => {
    // nats.js's request inbox is not made until the first request, so these are the only ones.
    const errors = nextServerError(first);
    for (const s of ["lim-a.s1", "lim-a.s2", "lim-a.s3", "lim-a.s4"]) first.subscribe(s);
    await first.flush().catch(() => {});
    assert.match(await errors, /maximum subscriptions exceeded/i);
  });

  await t.step("payload: the server announces 1 KiB and a larger message is refused", async () => {
    const nc = await stack.connect(token);
    assert.equal(nc.info?.max_payload, 1024);
    assert.throws(() => nc.publish("lim-a.big", new Uint8Array(2048)), /payload|max/i);
    await nc.close();
  });

  await t.step(
    "JetStream: memory, disk, streams and consumers refused at their bounds",
    async () => {
      const nc = await stack.connect(token);
      const jsm = await jetstreamManager(nc);
      await assert.rejects(
        () =>
          jsm.streams.add({
            name: "MEM",
            subjects: ["lim-a.mem"],
            storage: "memory",
            max_bytes: 4 * 2 ** 20,
          }),
        /insufficient|resources|exceed/i,
        "a memory stream over the 1 MiB quota",
      );
      await assert.rejects(
        () => jsm.streams.add({ name: "BIG", subjects: ["lim-a.big.>"], max_bytes: 8 * 2 ** 20 }),
        /insufficient|resources|exceed/i,
        "a file stream over the 2 MiB disk quota",
      );
      await jsm.streams.add({ name: "S1", subjects: ["lim-a.s1.>"], max_bytes: 2 ** 20 });
      await assert.rejects(
        () => jsm.streams.add({ name: "S2", subjects: ["lim-a.s2.>"], max_bytes: 2 ** 20 }),
        /maximum number of streams/i,
      );
      await jsm.consumers.add("S1", { durable_name: "c1", ack_policy: "explicit" });
      await assert.rejects(
        () => jsm.consumers.add("S1", { durable_name: "c2", ack_policy: "explicit" }),
        /maximum consumers/i,
      );
      await nc.close();
    },
  );

  await t.step("leaf nodes: refused at 0, connected once a policy edit allows 1", async () => {
    const creds = await stack.sentinelCreds();
    await using leaf = await NatsServer.start({
      config: {
        leafnodes: {
          reconnect: 1,
          remotes: [{ url: `nats://${token}@127.0.0.1:${stack.leafPorts[0]}`, credentials: creds }],
        },
      },
    });
    const sys = await stack.system();
    const account = (await stack.kube.request("GET", "/api/v1/namespaces/lim-a")).metadata.uid!;
    const leafs = async () => {
      const r = await sys.request(`$SYS.REQ.ACCOUNT.${stack.accountOf(account)}.LEAFZ`, "", {
        timeout: 1000,
      });
      const { data } = r.json<{ data?: { leafs?: unknown[] } }>();
      return data?.leafs?.length ?? 0;
    };
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(await leafs(), 0, "no leaf node while the bound is 0");
    assert.match(stack.cluster.servers[0]!.log, /maximum leafnode|leafnode connections/i);
    await stack.writePolicy(policy(3, 1, 1));
    await waitFor(async () => (await leafs()) === 1, {
      timeoutMs: 15_000,
      what: "the leaf node connects once allowed",
    });
    assert.ok(leaf.running);
  });
});
