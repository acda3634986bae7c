/**
 * An account that is removed and then wanted again, against real parts (3-server operator-mode
 * cluster with a full resolver, the real kube-apiserver). Found by trying to break issue 20:
 * - re-pushed after a removal with `iat` = the Namespace's creation, the JWT was byte-identical
 *   to the one the servers remembered (expired) from before the delete; nats-server took it as
 *   the same claims and left the account expired, so the namespace could never log in again
 *   (`account_not_settled`, `account_unavailable`) — after a policy edit reverted, or a label rule
 *   that stopped and started matching;
 * - an account deleted behind the service's back (an operator-signed `CLAIMS.DELETE`, as
 *   `nsc push --prune` sends) was never pushed again: logins were granted into an account no
 *   server had until a replica restarted.
 */
import assert from "node:assert/strict";
import { jetstreamManager } from "@nats-io/jetstream";
import { tolerateClientResets } from "../support/nats_server.ts";
import { ProvisioningStack } from "../support/provisioning_stack.ts";
import { waitFor } from "../support/wait.ts";
import { deleteRequest } from "../../lib/accounts/claims.ts";
import { nkeySignerFromSeed } from "../../lib/callout/nkey_jwt.ts";

const POLICY = `
namespaces:
  - labels: { tier: gold }
    jetstream: { api: true }
    namespaceAccount: { jetstream: { memory: 16MiB, disk: 64MiB, streams: 5, consumers: 10 } }
  - glob: "team-*"
    jetstream: { api: true }
    namespaceAccount:
      jetstream: { memory: 16MiB, disk: 64MiB, streams: 5, consumers: 10 }
`;

/** The same, with a rule above the glob that forgets namespaceAccount for team-b. */
const WITHOUT_TEAM_B = `
namespaces:
  - names: [team-b]
    connectionTypes: [STANDARD]
${POLICY.trim().split("\n").slice(1).join("\n")}
`;

Deno.test("accounts: an account removed and wanted again is pushed as new; one deleted behind the service's back is pushed again", async (t) => {
  using _resets = tolerateClientResets();
  await using stack = await ProvisioningStack.start({ policy: POLICY, jetstream: true });
  const uids: Record<string, string> = {};
  for (const ns of ["team-a", "team-b"]) uids[ns] = await stack.createNamespace(ns);
  uids["gold"] = await stack.createNamespace("gold", { tier: "gold" });
  for (const ns of Object.keys(uids)) await stack.kube.createServiceAccount(ns, "app");
  const logs = () => stack.replicas[0]!.logs;
  const logsOf = (event: string, namespace: string) =>
    logs().filter((l) => l.event === event && l.namespace === namespace);
  /** Log in (retrying while the account is not in place), and use JetStream in the account. */
  const loginAndUse = async (ns: string, server: number, timeoutMs = 20_000) => {
    const token = await stack.token(ns, "app");
    const nc = await waitFor(() => stack.connect(token, server).catch(() => undefined), {
      timeoutMs,
      what: `${ns}/app logs in on server ${server}`,
    });
    const jsm = await jetstreamManager(nc);
    const name = `S${crypto.randomUUID().slice(0, 8)}`;
    await jsm.streams.add({ name, subjects: [`${ns}.${name}.>`] });
    await nc.close();
  };
  const removed = async (ns: string) => {
    const account = stack.accountOf(uids[ns]!);
    await waitFor(() => logsOf("account_deleted", ns).length > 0, {
      timeoutMs: 20_000,
      what: `${ns}'s account deleted`,
    });
    await waitFor(async () => (await stack.jwtsOnServers(account)).every((j) => j === ""), {
      what: `${ns}'s account gone from every server`,
    });
  };

  await t.step(
    "a policy edit that drops namespaceAccount, reverted: the namespace logs in again",
    async () => {
      await loginAndUse("team-b", 1);
      await stack.writePolicy(WITHOUT_TEAM_B);
      await removed("team-b");
      await stack.writePolicy(POLICY);
      // The policy is in force again once the account is pushed again (a login before that is
      // placed in the shared account, as the edited policy said).
      await waitFor(() => logsOf("account_provisioned", "team-b").length === 2, {
        timeoutMs: 20_000,
        what: "team-b's account pushed again",
      });
      await loginAndUse("team-b", 2);
    },
  );

  await t.step(
    "a label rule that stops and starts matching: the namespace logs in again",
    async () => {
      await loginAndUse("gold", 0);
      await stack.kube.request("PATCH", "/api/v1/namespaces/gold", {
        metadata: { labels: { tier: null } },
      }, "application/merge-patch+json");
      await removed("gold");
      await stack.kube.request("PATCH", "/api/v1/namespaces/gold", {
        metadata: { labels: { tier: "gold" } },
      }, "application/merge-patch+json");
      await waitFor(() => logsOf("account_provisioned", "gold").length === 2, {
        timeoutMs: 20_000,
        what: "gold's account pushed again",
      });
      await loginAndUse("gold", 1);
    },
  );

  await t.step("an account deleted behind the service's back is pushed again", async () => {
    const account = stack.accountOf(uids["team-a"]!);
    await loginAndUse("team-a", 0);
    // What `nsc push --prune` sends for an account nsc does not know: a delete signed by an
    // operator key the servers trust (here the service's own operator signing key).
    const seed = (await Deno.readTextFile(stack.env.NATS_OPERATOR_SIGNING_KEY_FILE!)).trim();
    const request = await deleteRequest(
      [account],
      nkeySignerFromSeed(seed),
      Math.floor(Date.now() / 1000),
    );
    const before = await stack.jwtsOnServers(account);
    const sys = await stack.system();
    await sys.request("$SYS.REQ.CLAIMS.DELETE", request, { timeout: 2000 });
    // Held again, as a new JWT (the old one is what the servers remember, expired).
    await waitFor(
      async () => {
        const now = await stack.jwtsOnServers(account);
        return now.every((j) => j !== "" && !before.includes(j));
      },
      { timeoutMs: 30_000, what: "team-a's account pushed again to every server" },
    );
    assert.ok(logsOf("account_missing_on_resolver", "team-a").length > 0);
    await loginAndUse("team-a", 2);
  });
});
