/**
 * Subjects as NATS and MQTT clients write them, against a real nats-server: a subscribe
 * annotation with a queue group (`subject queue`), and an MQTT client (npm `mqtt`, nats-server's
 * MQTT listener with JetStream) subscribing to `<ns>/#`, which needs the bare `<ns>` subject.
 */
import assert from "node:assert/strict";
import mqtt from "mqtt";
import { freePort } from "../support/http_probe.ts";
import { tolerateClientResets } from "../support/nats_server.ts";
import { errorsOf } from "../support/permissions.ts";
import { Stack } from "../support/stack.ts";
import { waitFor } from "../support/wait.ts";

tolerateClientResets();

Deno.test("a subscribe annotation with a queue group allows that queue only", async () => {
  await using stack = await Stack.start();
  stack.addServiceAccount("team-a", "worker", {
    "nats.io/allowed-sub-subjects": "shared.jobs workers",
  });
  const nc = await stack.connect(await stack.token("team-a", "worker"));
  const inQueue = nc.subscribe("shared.jobs", { queue: "workers" });
  const plain = nc.subscribe("shared.jobs");
  const otherQueue = nc.subscribe("shared.jobs", { queue: "thieves" });
  await nc.flush();
  const plainClosed = await plain.closed;
  assert.ok(plainClosed instanceof Error);
  assert.match(plainClosed.message, /Subscription to "shared.jobs"/);
  const otherClosed = await otherQueue.closed;
  assert.ok(otherClosed instanceof Error);
  assert.match(otherClosed.message, /using queue "thieves"/);
  assert.equal(inQueue.isClosed(), false);
  assert.equal(stack.service.metrics.invalidSubjects.value(), 0);
});

Deno.test("a publish annotation with a space is refused as invalid, the rest stands", async () => {
  await using stack = await Stack.start();
  stack.addServiceAccount("team-a", "api", {
    "nats.io/allowed-pub-subjects": "shared.jobs workers, shared.ok",
  });
  const nc = await stack.connect(await stack.token("team-a", "api"));
  const errors = errorsOf(nc);
  nc.publish("shared.ok", "fine");
  await nc.flush();
  assert.equal(errors.length, 0);
  assert.equal(stack.service.metrics.invalidSubjects.value(), 1);
  const line = stack.logs.find((l) => l.event === "annotation_subjects_ignored");
  assert.deepEqual(line?.invalid, ["shared.jobs workers"]);
});

type Mqtt = ReturnType<typeof mqtt.connect>;

async function mqttConnect(port: number, token: string): Promise<Mqtt> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
    clientId: `test-${crypto.randomUUID().slice(0, 8)}`,
    username: "serviceaccount",
    password: token,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 5000,
  });
  await new Promise<void>((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("error", reject);
  });
  return client;
}

Deno.test("MQTT: <ns>/# is granted (the bare <ns> subject is), another namespace's # is not", async () => {
  const storeDir = await Deno.makeTempDir({ prefix: "nats-mqtt-" });
  const mqttPort = freePort();
  try {
    await using stack = await Stack.start({
      accounts: { APP: { jetstream: "enabled" } },
      serverConfig: {
        server_name: "mqtt1",
        jetstream: { store_dir: storeDir, max_memory_store: 67108864, max_file_store: 268435456 },
        mqtt: { host: "127.0.0.1", port: mqttPort },
      },
    });
    stack.addServiceAccount("team-a", "sensor");
    const client = await mqttConnect(mqttPort, await stack.token("team-a", "sensor"));
    try {
      const granted = await client.subscribeAsync("team-a/#", { qos: 0 });
      assert.deepEqual(granted.map((g) => g.qos), [0], "granted, not 128 (failure)");
      // SUBACK 128 (failure): mqtt.js rejects the subscription.
      await assert.rejects(client.subscribeAsync("team-b/#", { qos: 0 }), /Subscribe error/);

      const topics: string[] = [];
      client.on("message", (topic) => topics.push(topic));
      const nc = await stack.connect(await stack.token("team-a", "sensor"));
      nc.publish("team-a", "bare");
      nc.publish("team-a.temp.kitchen", "21");
      await nc.flush();
      await waitFor(() => topics.length >= 2, { what: "both messages over MQTT" });
      assert.deepEqual(topics.sort(), ["team-a", "team-a/temp/kitchen"]);
      const line = stack.logs.find((l) => l.event === "login_allowed");
      assert.equal(line?.namespace, "team-a");
    } finally {
      await client.endAsync();
    }
  } finally {
    await Deno.remove(storeDir, { recursive: true }).catch(() => {});
  }
});
