/**
 * An operator signing key the servers' operator does not list, against real parts (3-server
 * operator-mode cluster, full resolver, the real kube-apiserver). Found by trying to break issue
 * 20: nats-server 2.15.1 stores an account JWT signed by such a key (`jwt updated`) and never loads
 * it; the replica reported ready and refused every namespace's login (`account_unavailable`) for
 * good. Readiness now fails, naming the likely cause.
 */
import assert from "node:assert/strict";
import { tolerateClientResets } from "../support/nats_server.ts";
import { ProvisioningStack } from "../support/provisioning_stack.ts";
import { waitFor } from "../support/wait.ts";

const POLICY = `
namespaces:
  - glob: "team-*"
    namespaceAccount: { limits: { connections: 5 } }
`;

Deno.test("accounts: a pushed account that no server loads (untrusted operator signing key) fails readiness with the cause", async () => {
  using _resets = tolerateClientResets();
  await using stack = await ProvisioningStack.start({
    policy: POLICY,
    replicas: 0,
    trustOperatorSigningKey: false,
  });
  await stack.createNamespace("team-a");
  await stack.kube.createServiceAccount("team-a", "app");
  const { service, logs } = await stack.startReplica({ ready: false });
  await waitFor(() => logs.some((l) => l.event === "account_provisioned"), {
    timeoutMs: 30_000,
    what: "team-a's account pushed (the servers store it)",
  });
  const body = await waitFor(async () => {
    const res = await service.handler(new Request("http://x/readyz"));
    const text = await res.text();
    return res.status !== 200 && text.includes("do not load it") ? text : undefined;
  }, { timeoutMs: 30_000, what: "/readyz names the accounts that do not load" });
  assert.match(body, new RegExp(stack.operatorSigningKey));
  assert.equal(service.ready, false);
});
