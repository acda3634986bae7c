/**
 * AUTH's `allowed_accounts` against real parts (3-server operator-mode cluster, full resolver, the
 * real kube-apiserver). nats-server places a callout's user in another account only when AUTH's
 * JWT admits it, and the service places every namespace's logins in an account it made, so AUTH
 * must list exactly `["*"]`. With AUTH still listing APP alone (the first steps of
 * docs/operator-mode.md, before `--rm-allowed-account`) the replica reported ready while the
 * servers refused every namespace's login (`Authorization Violation`). Readiness now fails naming
 * AUTH, what it lists and the fix, and recovers once AUTH is pushed with `["*"]`, without a restart.
 */
import assert from "node:assert/strict";
import { unverifiedClaims } from "../../lib/core/jwt_shape.ts";
import { tolerateClientResets } from "../support/nats_server.ts";
import { ProvisioningStack } from "../support/provisioning_stack.ts";
import { waitFor } from "../support/wait.ts";

const POLICY = `
namespaces:
  - glob: "team-*"
    namespaceAccount: { limits: { connections: 5 } }
`;

Deno.test("accounts: AUTH that does not admit every account fails readiness naming it; pushing '*' recovers without a restart", async () => {
  using _resets = tolerateClientResets();
  await using stack = await ProvisioningStack.start({
    policy: POLICY,
    replicas: 0,
    authAllowedAccounts: ["APP"],
  });
  const uid = await stack.createNamespace("team-a");
  await stack.kube.createServiceAccount("team-a", "app");
  const { service, logs } = await stack.startReplica({ ready: false });

  const body = await waitFor(async () => {
    const res = await service.handler(new Request("http://x/readyz"));
    const text = await res.text();
    return res.status !== 200 && text.includes("allowed_accounts") ? text : undefined;
  }, { timeoutMs: 30_000, what: "/readyz names AUTH's allowed_accounts" });
  assert.match(body, /accounts/);
  assert.ok(body.includes(stack.keys.auth), `names AUTH's key: ${body}`);
  assert.ok(body.includes(stack.keys.app), `names what AUTH lists: ${body}`);
  assert.match(body, /--allowed-account '\*'/);
  assert.equal(service.ready, false);
  const metric = async () => await (await service.handler(new Request("http://x/metrics"))).text();
  assert.match(await metric(), /^nats_auth_accounts_auth_admits_all 0$/m);
  const refused = logs.filter((l) => l.event === "auth_account_not_admitting");
  assert.equal(refused.length, 1, "logged once, not every survey");
  assert.equal(refused[0]!.auth_account, stack.keys.auth);

  await stack.pushAuth(["*"]);
  await waitFor(() => service.ready, { timeoutMs: 30_000, what: "ready again after AUTH's push" });
  assert.ok(logs.some((l) => l.event === "auth_account_admitting"), "the recovery is logged");
  const token = await stack.token("team-a", "app");
  const nc = await waitFor(() => stack.connect(token).catch(() => undefined), {
    timeoutMs: 15_000,
    what: "team-a/app logs in",
  });
  assert.deepEqual(await stack.usersIn(stack.accountOf(uid)), [
    "system:serviceaccount:team-a:app",
  ]);
  await nc.flush();
  assert.match(await metric(), /^nats_auth_accounts_auth_admits_all 1$/m);
});

Deno.test("accounts: one server keeping an old AUTH (down during the push) fails readiness, naming the copies and the push that re-syncs it", async () => {
  using _resets = tolerateClientResets();
  await using stack = await ProvisioningStack.start({
    policy: POLICY,
    replicas: 0,
    authAllowedAccounts: ["APP"],
  });
  await stack.createNamespace("team-a");
  await stack.kube.createServiceAccount("team-a", "app");
  const allowed = async () =>
    (await stack.jwtsOnServers(stack.keys.auth)).map((jwt) =>
      JSON.stringify(unverifiedClaims(jwt)?.nats)
    );
  // n3 is down while AUTH is pushed with '*': it comes back with the old copy and refuses the
  // namespace logins that reach it, until its resolver syncs (its `interval`, 2 min here). A server
  // that starts sometimes syncs at once (when its routes are up in time), so the outage is tried
  // until one leaves n3 stale, with AUTH back on [APP] everywhere before each try.
  const everywhere = async (list: string) =>
    await waitFor(async () => (await allowed()).every((c) => c.includes(list)) || undefined, {
      what: `AUTH listing ${list} on every server`,
    });
  let copies: string[] = [];
  for (let attempt = 1; attempt <= 8; attempt++) {
    if (attempt > 1) {
      await stack.pushAuth(["APP"]);
      await everywhere(`"${stack.keys.app}"`);
    }
    const restarting = stack.cluster.servers[2]!.restart({ downMs: 2500 });
    await new Promise((r) => setTimeout(r, 800));
    await stack.pushAuth(["*"]);
    await restarting;
    // The push reached n1 and n2 (each stores it on its own: wait for both).
    copies = await waitFor(async () => {
      const now = await allowed();
      return now[0]!.includes('["*"]') && now[1]!.includes('["*"]') ? now : undefined;
    }, { what: "the new AUTH on n1 and n2" });
    if (!copies[2]!.includes('["*"]')) break;
  }
  assert.ok(!copies[2]!.includes('["*"]'), `n3 kept the old copy: ${copies.join(" ")}`);

  const { service, logs } = await stack.startReplica({ ready: false });
  const body = await waitFor(async () => {
    const res = await service.handler(new Request("http://x/readyz"));
    const text = await res.text();
    return res.status !== 200 && text.includes("differs between servers") ? text : undefined;
  }, { timeoutMs: 30_000, what: "/readyz names the servers' different copies of AUTH" });
  assert.match(body, /Fix: nsc push --account AUTH \(/);
  assert.deepEqual(
    logs.filter((l) => l.event === "auth_account_not_admitting").map((l) => l.reason),
    ["servers_disagree"],
  );

  await stack.pushAuth(["*"]);
  await waitFor(() => service.ready, { timeoutMs: 30_000, what: "ready once every copy is '*'" });
  const token = await stack.token("team-a", "app");
  const nc = await waitFor(() => stack.connect(token, 2).catch(() => undefined), {
    timeoutMs: 15_000,
    what: "team-a/app logs in through the server that had the old copy",
  });
  await nc.close();
});
