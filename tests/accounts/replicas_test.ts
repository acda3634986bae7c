/**
 * Several replicas provision the same accounts without fighting, and a replica that starts after
 * changes reconciles them: accounts of Namespaces created meanwhile are pushed, accounts of
 * Namespaces deleted while no replica ran are removed (the sweep). Also the resolver without
 * `allow_delete`: a deleted Namespace's account is revoked instead, so nothing can log in to it.
 */
import assert from "node:assert/strict";
import { tolerateClientResets } from "../support/nats_server.ts";
import { ProvisioningStack } from "../support/provisioning_stack.ts";
import { waitFor } from "../support/wait.ts";

const POLICY = `
namespaces:
  - glob: "rep-*"
    namespaceAccount:
      limits: { connections: 10 }
`;

function counter(text: string, name: string): number {
  let total = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, "gm"))) {
    total += Number(m[1]);
  }
  return total;
}

Deno.test("two replicas provisioning at once: one account, no flapping; a restarted replica reconciles", async (t) => {
  using _resets = tolerateClientResets();
  await using stack = await ProvisioningStack.start({ policy: POLICY, replicas: 2 });
  const metrics = async (i: number) =>
    await (await stack.replicas[i]!.service.handler(new Request("http://x/metrics"))).text();

  await t.step("both replicas push one identical account JWT, then stop pushing", async () => {
    const uid = await stack.createNamespace("rep-a");
    const account = stack.accountOf(uid);
    await waitFor(async () => (await stack.jwtsOnServers(account)).every((j) => j !== ""), {
      what: "the account on every server",
    });
    await stack.kube.createServiceAccount("rep-a", "app");
    const token = await stack.token("rep-a", "app");
    const nc = await waitFor(() => stack.connect(token).catch(() => undefined), { what: "login" });
    const before = await Promise.all([0, 1].map(async (i) => {
      const m = await metrics(i);
      return counter(m, "nats_auth_accounts_provisioned_total") +
        counter(m, "nats_auth_accounts_updated_total");
    }));
    assert.ok(before[0]! + before[1]! >= 1, "someone pushed it");
    const jwts = await stack.jwtsOnServers(account);
    await new Promise((r) => setTimeout(r, 3000));
    const after = await Promise.all([0, 1].map(async (i) => {
      const m = await metrics(i);
      return counter(m, "nats_auth_accounts_provisioned_total") +
        counter(m, "nats_auth_accounts_updated_total");
    }));
    assert.deepEqual(after, before, "no push after convergence (6 ticks of each replica)");
    assert.deepEqual(await stack.jwtsOnServers(account), jwts, "the same JWT, byte for byte");
    assert.ok(!nc.isClosed(), "the client was never cut");
    const failures = [0, 1].map((i) =>
      stack.replicas[i]!.logs.filter((l) => l.event === "account_push_failed")
    );
    assert.deepEqual(failures, [[], []]);
  });

  await t.step("a replica restart reconciles what changed while none ran", async () => {
    const keep = stack.accountOf(
      (await stack.kube.request("GET", "/api/v1/namespaces/rep-a")).metadata.uid!,
    );
    const goneUid = await stack.createNamespace("rep-gone");
    const gone = stack.accountOf(goneUid);
    await waitFor(async () => (await stack.jwtsOnServers(gone)).every((j) => j !== ""), {
      what: "rep-gone's account pushed",
    });
    await stack.stopReplica(0);
    await stack.stopReplica(1);
    await stack.deleteNamespace("rep-gone", { finalize: true });
    const newUid = await stack.createNamespace("rep-new");
    const fresh = stack.accountOf(newUid);
    assert.ok((await stack.jwtsOnServers(gone)).every((j) => j !== ""), "nobody removed it yet");
    assert.ok((await stack.jwtsOnServers(fresh)).every((j) => j === ""), "nobody pushed it yet");
    const replica = await stack.startReplica();
    await waitFor(async () => (await stack.jwtsOnServers(fresh)).every((j) => j !== ""), {
      what: "the new Namespace's account pushed after the restart",
    });
    await waitFor(async () => (await stack.jwtsOnServers(gone)).every((j) => j === ""), {
      what: "the vanished Namespace's account swept",
    });
    assert.ok((await stack.jwtsOnServers(keep)).every((j) => j !== ""), "rep-a's account stays");
    assert.ok(replica.logs.some((l) => l.event === "account_deleted" && l.account === gone));
    assert.ok(
      !replica.logs.some((l) => l.event === "account_updated" && l.account === keep),
      "an unchanged account is looked up, not pushed again",
    );
  });
});

Deno.test("a resolver without allow_delete: the deleted Namespace's account is revoked, nobody logs in", async () => {
  using _resets = tolerateClientResets();
  await using stack = await ProvisioningStack.start({ policy: POLICY, allowDelete: false });
  const uid = await stack.createNamespace("rep-b");
  await stack.kube.createServiceAccount("rep-b", "app");
  const token = await stack.token("rep-b", "app");
  const nc = await waitFor(() => stack.connect(token).catch(() => undefined), { what: "login" });
  const closed = nc.closed();
  await stack.deleteNamespace("rep-b");
  await closed;
  const account = stack.accountOf(uid);
  await waitFor(async () => {
    const [jwt] = await stack.jwtsOnServers(account);
    return jwt !== undefined && jwt.includes(".") &&
      JSON.stringify(JSON.parse(new TextDecoder().decode(
        Uint8Array.fromBase64(jwt.split(".")[1]!, { alphabet: "base64url" }),
      ))).includes("revoked:namespace-deleted");
  }, { what: "a revoked JWT in place of the account" });
  const logs = stack.replicas[0]!.logs;
  assert.ok(logs.some((l) => l.event === "account_delete_not_allowed"));
  assert.ok(logs.some((l) => l.event === "account_revoked" && l.account === account));
  await assert.rejects(() => stack.connect(token));
});
