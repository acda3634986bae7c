/**
 * JetStream and KV for a namespace's workloads, with the real JetStream client against a real
 * nats-server with JetStream: the `+WPI` then `+ACK` case that one response permission breaks,
 * the shared-account preset (streams and buckets named in the policy, nothing else), and a
 * namespace in an account of its own with the whole JetStream API.
 */
import assert from "node:assert/strict";
import {
  AckPolicy,
  jetstream,
  type JetStreamManager,
  jetstreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { tolerateClientResets } from "../support/nats_server.ts";
import { errorsOf } from "../support/permissions.ts";
import { Stack } from "../support/stack.ts";
import { waitFor } from "../support/wait.ts";

tolerateClientResets();

const POLICY = `
accounts:
  TEAM_A: {}
namespaces:
  - names: [team-a]
    account: TEAM_A
    jetstream: { api: true }
  - glob: "team-*"
    jetstream:
      streams: ["{namespace}"]
      kv: ["{namespace}-config"]
`;

/** A stack whose nats-server runs JetStream (APP and TEAM_A enabled) and a policy. */
async function jsStack(policy: string | undefined): Promise<Stack & AsyncDisposable> {
  const storeDir = await Deno.makeTempDir({ prefix: "nats-js-" });
  let stack: Stack;
  try {
    stack = await Stack.start({
      accounts: { APP: { jetstream: "enabled" }, TEAM_A: { jetstream: "enabled" } },
      serverConfig: {
        server_name: "js1",
        jetstream: { store_dir: storeDir, max_memory_store: 67108864, max_file_store: 268435456 },
      },
      ...(policy !== undefined ? { policy } : {}),
    });
  } catch (err) {
    await Deno.remove(storeDir, { recursive: true });
    throw err;
  }
  const dispose = stack[Symbol.asyncDispose].bind(stack);
  return Object.assign(stack, {
    [Symbol.asyncDispose]: async () => {
      await dispose();
      await Deno.remove(storeDir, { recursive: true }).catch(() => {});
    },
  });
}

/**
 * The platform team's admin (namespace `platform`, annotated with the JetStream API in the shared
 * account) creates a stream and a pull consumer for namespace `ns`.
 */
async function platformCreates(stack: Stack, ns: string): Promise<JetStreamManager> {
  stack.addServiceAccount("platform", "admin", {
    "nats.io/allowed-pub-subjects": "$JS.API.>, $KV.>",
  });
  const admin = await stack.connect(await stack.token("platform", "admin"));
  const jsm = await jetstreamManager(admin);
  await jsm.streams.add({ name: ns, subjects: [`${ns}.>`] });
  await jsm.consumers.add(ns, {
    durable_name: "worker",
    ack_policy: AckPolicy.Explicit,
    ack_wait: 2_000_000_000,
  });
  return jsm;
}

async function fetchOne(nc: NatsConnection, stream: string, expires = 2000): Promise<JsMsg> {
  const consumer = await jetstream(nc).consumers.get(stream, "worker");
  const msg = await consumer.next({ expires });
  assert.ok(msg, "a message was delivered");
  return msg;
}

Deno.test("jetstream without the preset: +WPI uses the one allowed response, the +ACK is refused and the message comes back", async () => {
  await using stack = await jsStack(undefined);
  const jsm = await platformCreates(stack, "team-b");
  // What an annotation-only setup gives: the JetStream API, but no $JS.ACK grant.
  stack.addServiceAccount("team-b", "worker", { "nats.io/allowed-pub-subjects": "$JS.API.>" });
  const nc = await stack.connect(await stack.token("team-b", "worker"));
  const errors = errorsOf(nc);
  await jetstream(nc).publish("team-b.orders", "order 1");
  const msg = await fetchOne(nc, "team-b");
  msg.working();
  msg.ack();
  await nc.flush();
  const violation = await waitFor(
    () =>
      errors.find((e) => e.name === "PermissionViolationError" && e.message.includes("$JS.ACK")),
    { what: "the ack's permissions violation" },
  );
  assert.match(violation.message, /Publish to "\$JS\.ACK\.team-b\.worker\./);
  // The ack never reached the server: after ack_wait the same message is delivered again.
  const again = await fetchOne(nc, "team-b", 10_000);
  assert.equal(again.seq, msg.seq);
  assert.equal(again.redelivered, true);
  assert.equal((await jsm.consumers.info("team-b", "worker")).num_ack_pending, 1);
});

Deno.test("jetstream shared-account preset: publish, pull with in-progress then ack, KV put/get; another namespace's stream refused", async () => {
  await using stack = await jsStack(POLICY);
  const jsm = await platformCreates(stack, "team-b");
  await jsm.streams.add({ name: "team-c", subjects: ["team-c.>"] });
  const kvm = new Kvm(jsm.jetstream());
  await kvm.create("team-b-config");
  await kvm.create("team-c-config");

  stack.addServiceAccount("team-b", "worker");
  const nc = await stack.connect(await stack.token("team-b", "worker"));
  const errors = errorsOf(nc);
  const js = jetstream(nc);
  const ack = await js.publish("team-b.orders", "order 1");
  assert.equal(ack.stream, "team-b");

  const msg = await fetchOne(nc, "team-b");
  assert.equal(msg.string(), "order 1");
  msg.working();
  msg.working();
  assert.equal(await msg.ackAck({ timeout: 2000 }), true, "the server confirmed the ack");
  const info = await jsm.consumers.info("team-b", "worker");
  assert.equal(info.num_ack_pending, 0);
  assert.equal(info.num_redelivered, 0);

  const kv = await new Kvm(js).open("team-b-config");
  await kv.put("colour", "blue");
  assert.equal((await kv.get("colour"))?.string(), "blue");

  assert.ok(!errors.some((e) => e.name === "PermissionViolationError"), String(errors));
  // Someone else's stream and bucket: the API requests are refused by the server.
  await assert.rejects(jetstream(nc).consumers.get("team-c", "worker"));
  const other = await new Kvm(js).open("team-c-config");
  await assert.rejects(other.put("colour", "red"));
  await assert.rejects(js.publish("team-c.orders", "sneaky", { timeout: 1000 }));
  const refused = errors.filter((e) => e.name === "PermissionViolationError").map((e) => e.message);
  assert.ok(
    refused.some((m) => m.includes('"$JS.API.CONSUMER.INFO.team-c.worker"')),
    String(refused),
  );
  assert.ok(
    refused.some((m) => m.includes('"$KV.team-c-config.colour"')),
    String(refused),
  );
  assert.ok(refused.some((m) => m.includes('"team-c.orders"')), String(refused));
  // And the stream API that could capture other namespaces' subjects is not in the preset.
  const own = await jetstreamManager(nc);
  await assert.rejects(own.streams.add({ name: "team-b-2", subjects: ["team-c.>"] }));
});

Deno.test("jetstream in an account of its own: the namespace has the whole API of its account", async () => {
  await using stack = await jsStack(POLICY);
  stack.addServiceAccount("team-a", "app");
  const nc = await stack.connect(await stack.token("team-a", "app"));
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "orders", subjects: ["team-a.orders.>"] });
  await jsm.consumers.add("orders", { durable_name: "worker", ack_policy: AckPolicy.Explicit });
  await jetstream(nc).publish("team-a.orders.1", "order 1");
  const msg = await fetchOne(nc, "orders");
  msg.working();
  assert.equal(await msg.ackAck({ timeout: 2000 }), true);
  const kv = await new Kvm(nc).create("settings");
  await kv.put("mode", "fast");
  assert.equal((await kv.get("mode"))?.string(), "fast");
  // The stream lives in TEAM_A: the shared account's JetStream does not see it.
  stack.addServiceAccount("platform", "admin", { "nats.io/allowed-pub-subjects": "$JS.API.>" });
  const admin = await stack.connect(await stack.token("platform", "admin"));
  assert.deepEqual(await (await jetstreamManager(admin)).streams.names().next(), []);
});
