/**
 * The image's entry against the real kube-apiserver. The container runs what `deno task compile`
 * builds: `main.ts` bundled into one minified file by the `bundle` task, with the compile task's V8
 * and permission flags. The other process tests run `main.ts` from source, so this is where a
 * bundling fault would show: module resolution, npm packages inlined into one file, minified names.
 * It runs in-cluster, as the chart deploys it, reading only the files it is given.
 */
import assert from "node:assert/strict";
import { dirname } from "node:path";
import { KubeStack } from "./support/kube_stack.ts";
import { tolerateClientResets } from "./support/nats_server.ts";
import { publishRefused } from "./support/permissions.ts";
import { ReplicaProcess } from "./support/replica_process.ts";
import { imageRunArgs } from "./support/start_task.ts";

tolerateClientResets();

Deno.test("image entry (bundle, compile task's flags), real apiserver in-cluster: a TokenRequest token logs in within its namespace, a forged one is refused with its reason", async () => {
  await using stack = await KubeStack.start({ waitReady: false });
  await stack.service.close(); // only the image's entry answers
  const files = Object.values(stack.env).filter((v) => v.startsWith("/"));
  const readable = [...new Set(files.map((f) => dirname(f)))];
  await using replica = await ReplicaProcess.spawn(
    { ...stack.env, LOG_LEVEL: "info" },
    await imageRunArgs(readable),
  );
  await replica.waitReady();
  assert.ok(replica.logs.some((l) => l.event === "issuer_discovered"));

  await stack.addServiceAccount("team-a", "orders");
  const token = await stack.token("team-a", "orders");
  const nc = await stack.connect(token);
  nc.publish("team-a.orders", "hi");
  await nc.flush();
  assert.match(await publishRefused(nc, "team-b.orders"), /Permissions Violation/);
  await nc.close();

  const [header, payload] = token.split(".");
  const forged = `${header}.${payload}.${"A".repeat(342)}`;
  await assert.rejects(stack.connect(forged), /Authorization Violation|AUTHORIZATION_VIOLATION/i);
  assert.ok(
    replica.logs.some((l) => l.event === "login_denied" && l.reason === "signature_invalid"),
    JSON.stringify(replica.logs.filter((l) => l.event === "login_denied")),
  );
  assert.equal(await replica.allowed(), 1);
});
