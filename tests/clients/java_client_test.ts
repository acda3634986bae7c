/**
 * examples/java (jnats from Maven Central) against the real service, nats-server and kube-apiserver:
 * the three client rules of docs/client-usage.md (tests/clients/three_rules.ts). Built once and
 * cached outside the repository by tests/clients/build_client.sh, which .ci/run calls first.
 */
import { tolerateClientResets } from "../support/nats_server.ts";
import { buildClient } from "./build_client.ts";
import { proveThreeRules } from "./three_rules.ts";

tolerateClientResets();

Deno.test("jnats example: keeps working across user-JWT expiries, token rotation and a refused reconnect, replies through its private inbox", async () => {
  // The JVM answers SIGTERM by running its shutdown hooks, then exits with 143 (128 + 15).
  await proveThreeRules({ command: await buildClient("java"), args: [], exitCodes: [143] });
});
