/**
 * examples/go (nats.go) against the real service, nats-server and kube-apiserver: the three client
 * rules of docs/client-usage.md (tests/clients/three_rules.ts). The program is built once and cached
 * outside the repository by tests/clients/build_client.sh, which .ci/run calls first.
 */
import { tolerateClientResets } from "../support/nats_server.ts";
import { buildClient } from "./build_client.ts";
import { proveThreeRules } from "./three_rules.ts";

tolerateClientResets();

Deno.test("nats.go example: keeps working across user-JWT expiries, token rotation and a refused reconnect, replies through its private inbox", async () => {
  await proveThreeRules({ command: await buildClient("go"), args: [] });
});
