/**
 * Two replicas with different `NATS_ACCOUNTS_SEED_FILE`s split a namespace: each places its
 * logins in the account its own seed derives. Neither may remove the other's account (neither can
 * tell a second writer from what a seed change left behind), but each says so: a warning once per
 * account and `nats_auth_accounts_from_other_seed`.
 */
import assert from "node:assert/strict";
import { createAccount } from "@nats-io/nkeys";
import { deriveAccountKeys, rootSecret } from "../../lib/accounts/keys.ts";
import { tolerateClientResets } from "../support/nats_server.ts";
import { seedOf } from "../support/nkeys.ts";
import { ProvisioningStack } from "../support/provisioning_stack.ts";
import { waitFor } from "../support/wait.ts";

const POLICY = `
namespaces:
  - glob: "seed-*"
    namespaceAccount:
      limits: { connections: 10 }
`;

Deno.test("replicas with different account seeds: both accounts stay, each replica warns once about the other's and counts it", async () => {
  using _resets = tolerateClientResets();
  await using stack = await ProvisioningStack.start({ policy: POLICY, replicas: 1 });
  const uid = await stack.createNamespace("seed-a");
  const first = stack.accountOf(uid);
  await waitFor(async () => (await stack.jwtsOnServers(first)).every((j) => j !== ""), {
    what: "the first replica's account on every server",
  });

  const otherSeed = seedOf(createAccount());
  const second = deriveAccountKeys(rootSecret(otherSeed), uid).account;
  assert.notEqual(second, first);
  await stack.startReplica({ accountsSeed: otherSeed });
  await waitFor(async () => (await stack.jwtsOnServers(second)).every((j) => j !== ""), {
    what: "the second replica's account for the same Namespace on every server",
  });

  const gauge = async (i: number) => {
    const text = await (await stack.replicas[i]!.service.handler(
      new Request("http://x/metrics"),
    )).text();
    return Number(/^nats_auth_accounts_from_other_seed (\d+)$/m.exec(text)?.[1]);
  };
  // Each sees the other's account at its next look at the resolver's list (every 5 s).
  await waitFor(async () => (await gauge(0)) === 1 && (await gauge(1)) === 1, {
    timeoutMs: 20_000,
    what: "both replicas counting the other's account",
  });
  const warnings = (i: number) =>
    stack.replicas[i]!.logs.filter((l) => l.event === "account_from_another_seed");
  for (const [i, other] of [[0, second], [1, first]] as const) {
    assert.deepEqual(
      warnings(i).map((l) => [l.account, l.namespace, l.namespace_uid]),
      [[other, "seed-a", uid]],
      `replica ${i} names the other seed's account once`,
    );
    assert.match(String(warnings(i)[0]!.problem), /NATS_ACCOUNTS_SEED_FILE/);
  }

  // Another full look at the list later: still both accounts, still one warning each.
  await new Promise((r) => setTimeout(r, 6_000));
  assert.ok((await stack.jwtsOnServers(first)).every((j) => j !== ""), "the first stays");
  assert.ok((await stack.jwtsOnServers(second)).every((j) => j !== ""), "the second stays");
  assert.deepEqual([warnings(0).length, warnings(1).length], [1, 1]);
});
