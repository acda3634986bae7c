/**
 * Operator mode end to end: nats-server trusts an operator, the callout is configured in the AUTH
 * account's JWT (`authorization { auth_users, allowed_accounts, xkey }`), pods connect with the
 * AUTH account's deny-all bearer sentinel in `jwt` and their ServiceAccount token in `auth_token`,
 * and the service places them in the target account named by its public key (`NATS_ACCOUNT=A…`).
 * Each test names a setup a platform team would run and what they would see.
 */
import assert from "node:assert/strict";
import type { NatsConnection } from "@nats-io/transport-node";
import { ConfigError, loadConfig } from "../../lib/config/config.ts";
import { accountKey } from "../support/nkeys.ts";
import { tolerateClientResets } from "../support/nats_server.ts";
import { OperatorStack } from "../support/operator_stack.ts";
import { publishRefused } from "../support/permissions.ts";
import { waitFor } from "../support/wait.ts";

// Refused clients get their socket reset by the server; see tolerateClientResets. Not `using`:
// a top-level `using` would be disposed as soon as the module finished loading.
tolerateClientResets();

const WORKER = "system:serviceaccount:team-a:worker";

/** Whether a message published on `subject` comes back to our own subscription. */
async function roundTrip(nc: NatsConnection, subject: string): Promise<boolean> {
  const sub = nc.subscribe(subject, { max: 1 });
  nc.publish(subject, "ping");
  for await (const m of sub) return m.string() === "ping";
  return false;
}

async function expectRefused(stack: OperatorStack, token: string): Promise<void> {
  await assert.rejects(stack.connect(token), /authorization violation/i);
}

/** A pod logs in, is placed in the target account, and gets its namespace's subjects only. */
async function assertWorkerLogsIn(stack: OperatorStack): Promise<void> {
  stack.addServiceAccount("team-a", "worker");
  const nc = await stack.connect(await stack.token("team-a", "worker"));
  assert.equal(await roundTrip(nc, "team-a.orders"), true);
  assert.match(await publishRefused(nc, "team-b.orders"), /Publish to "team-b.orders"/);
  assert.ok((await stack.usersIn(stack.targetAccount)).includes(WORKER), "placed in the target");
}

Deno.test("operator mode: pods with the sentinel and a token land in APP, in their namespace only; bad tokens are refused", async (t) => {
  // The recommended setup: AUTH has an xkey (`nsc edit authcallout --curve`), the service signs
  // with APP's own key.
  await using stack = await OperatorStack.start({ xkey: true, defaultSentinel: true });

  await t.step(
    "a valid token connects in APP, publishes in team-a and is refused outside",
    () => assertWorkerLogsIn(stack),
  );
  await t.step("APP holds the pod, AUTH only the callout's own user", async () => {
    assert.deepEqual(await stack.usersIn(stack.targetAccount), [WORKER]);
    const inAuth = await stack.usersIn(stack.authAccount);
    assert.equal(inAuth.length, 1, "only the callout's own connection");
    assert.ok(!inAuth.includes(WORKER));
  });
  await t.step("with the server's default_sentinel, a plain token client logs in too", async () => {
    const nc = await stack.connect(await stack.token("team-a", "worker"), { sentinel: false });
    assert.equal(await roundTrip(nc, "team-a.plain"), true);
  });
  await t.step("the callout request was sealed", () => {
    const line = stack.logs.find((l) => l.event === "login_allowed");
    assert.equal(line?.encrypted, true);
  });
  await t.step("a malformed token is refused with Authorization Violation", async () => {
    await expectRefused(stack, "not-a-jwt");
    const line = stack.logs.find((l) => l.event === "login_denied");
    assert.equal(line?.reason, "token_malformed");
  });
  await t.step("the sentinel alone (no token) is refused", async () => {
    await expectRefused(stack, "");
    assert.ok(stack.logs.some((l) => l.event === "login_denied" && l.reason === "token_missing"));
  });
});

Deno.test("operator mode: a signing key of APP signs users with issuer_account = APP", async () => {
  await using stack = await OperatorStack.start({ xkey: true, signer: "signing_key" });
  await assertWorkerLogsIn(stack);
});

Deno.test("operator mode without xkey: a signing key shared by APP and AUTH signs users and answers", async () => {
  await using stack = await OperatorStack.start({ signer: "shared_signing_key" });
  await assertWorkerLogsIn(stack);
  assert.equal(stack.logs.find((l) => l.event === "login_allowed")?.encrypted, false);
});

Deno.test("operator mode without xkey: clients placed in AUTH itself need only AUTH's key", async () => {
  await using stack = await OperatorStack.start({ target: "auth" });
  assert.equal(stack.targetAccount, stack.authAccount);
  await assertWorkerLogsIn(stack);
});

Deno.test("operator mode without xkey: an answer signed by APP's key alone is refused by the server", async () => {
  // The unsupported layout the docs warn about: AUTH ≠ APP, no xkey, and a key AUTH does not list.
  await using stack = await OperatorStack.start();
  stack.addServiceAccount("team-a", "worker");
  await expectRefused(stack, await stack.token("team-a", "worker"));
  // The service approved; the server refused our answer because AUTH does not know its signer.
  assert.ok(stack.logs.some((l) => l.event === "login_allowed"));
  await waitFor(() => /signing key is unknown/i.test(stack.nats.log), {
    what: "the server's reason in its log",
  });
});

Deno.test("operator mode: a scoped signing key is refused by the server, which says why", async () => {
  await using stack = await OperatorStack.start({ xkey: true, signer: "scoped_signing_key" });
  stack.addServiceAccount("team-a", "worker");
  await expectRefused(stack, await stack.token("team-a", "worker"));
  await waitFor(() => /scoped users require no permissions/i.test(stack.nats.log), {
    what: "the server's reason in its log",
  });
});

Deno.test("operator mode: a mistyped account key in NATS_ACCOUNT is refused at start", () => {
  const key = accountKey();
  const env = {
    NATS_SIGNING_KEY_FILE: "/keys/signing.nk",
    K8S_IN_CLUSTER: "false",
    JWKS_PATH: "/keys/jwks.json",
    JWT_ISSUER: "https://kubernetes.default.svc",
  };
  const readTextFile = () => key.seed;
  const good = loadConfig({ ...env, NATS_ACCOUNT: key.publicKey }, { readTextFile });
  assert.equal(good.account, key.publicKey);

  const typo = key.publicKey.slice(0, 20) + (key.publicKey[20] === "Q" ? "R" : "Q") +
    key.publicKey.slice(21);
  assert.throws(
    () => loadConfig({ ...env, NATS_ACCOUNT: typo }, { readTextFile }),
    (err: unknown) =>
      err instanceof ConfigError && err.problems.length === 1 &&
      /^NATS_ACCOUNT: .* not a valid one \(checksum\)/.test(err.problems[0]!),
  );
});
