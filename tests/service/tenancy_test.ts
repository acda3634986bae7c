/**
 * The cluster policy end to end: a real nats-server with several accounts (config mode, and
 * operator mode with an account of its own per team), the service started with `POLICY_FILE`, real
 * tokens and real NATS clients (TCP and WebSocket). Each test is one policy field a platform team
 * relies on.
 */
import assert from "node:assert/strict";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { wsconnect } from "@nats-io/nats-core";
import { freePort } from "../support/http_probe.ts";
import { tolerateClientResets } from "../support/nats_server.ts";
import { OperatorStack } from "../support/operator_stack.ts";
import { errorsOf, publishRefused } from "../support/permissions.ts";
import { Stack } from "../support/stack.ts";
import { waitFor } from "../support/wait.ts";

tolerateClientResets();

const POLICY = `
accounts:
  TEAM_A: {}
defaults:
  annotations:
    allow:
      pub: ["{namespace}.>", "shared.>"]
      sub: ["{namespace}.>", "shared.>"]
    deny: ["$SYS.>", "shared.admin.>"]
  deny:
    pub: ["{namespace}.secret.>"]
  maxTokenLifetime: 2h
namespaces:
  - names: [team-a]
    account: TEAM_A
  - glob: "ws-*"
    connectionTypes: [WEBSOCKET]
  - names: [team-r]
    response: { max: 2, ttl: 5s }
`;

async function usersIn(stack: Stack, account: string): Promise<string[]> {
  const nc = await connect({
    servers: stack.nats.url,
    user: stack.systemUser.user,
    pass: stack.systemUser.password,
    reconnect: false,
  });
  try {
    const reply = await nc.request(`$SYS.REQ.ACCOUNT.${account}.CONNZ`, '{"auth":true}', {
      timeout: 2000,
    });
    const { data } = reply.json<{ data?: { connections?: { authorized_user?: string }[] } }>();
    return (data?.connections ?? []).map((c) => c.authorized_user ?? "");
  } finally {
    await nc.close();
  }
}

async function refusedWith(stack: Stack, token: string, reason: string): Promise<void> {
  await assert.rejects(stack.connect(token), /authorization violation/i);
  const line = stack.logs.find((l) => l.event === "login_denied" && l.reason === reason);
  assert.ok(line, `a login_denied line with reason ${reason}`);
  assert.equal(stack.service.metrics.requests.value({ result: "denied", reason }), 1);
}

function startStack(extra: Parameters<typeof Stack.start>[0] = {}): Promise<Stack> {
  return Stack.start({
    accounts: { APP: {}, TEAM_A: {} },
    policy: POLICY,
    ...extra,
  });
}

Deno.test("policy account: a namespace is placed in its own account; others stay in NATS_ACCOUNT", async () => {
  await using stack = await startStack();
  stack.addServiceAccount("team-a", "api", { "nats.io/allowed-pub-subjects": "shared.hello" });
  stack.addServiceAccount("team-b", "api", {
    "nats.io/allowed-pub-subjects": "shared.hello",
    "nats.io/allowed-sub-subjects": "shared.hello",
  });
  const a = await stack.connect(await stack.token("team-a", "api"));
  const b = await stack.connect(await stack.token("team-b", "api"));
  assert.deepEqual(await usersIn(stack, "TEAM_A"), ["system:serviceaccount:team-a:api"]);
  assert.deepEqual(await usersIn(stack, "APP"), ["system:serviceaccount:team-b:api"]);
  // Accounts are separate subject spaces: team-b cannot hear team-a even on a shared subject.
  let heard = 0;
  b.subscribe("shared.hello", {
    callback: () => {
      heard++;
    },
  });
  await b.flush();
  a.publish("shared.hello", "from team-a");
  b.publish("shared.hello", "from team-b");
  // Each flush is a round trip behind the publishes: whatever was delivered has arrived.
  await a.flush();
  await b.flush();
  assert.equal(heard, 1, "team-b hears only itself");
  const line = stack.logs.find((l) => l.event === "login_allowed" && l.namespace === "team-a");
  assert.equal(line?.account, "TEAM_A");
  // The debug line of the same login names the same account (it said NATS_ACCOUNT before).
  const granted = stack.logs.find((l) => l.event === "login_granted" && l.namespace === "team-a");
  assert.equal(granted?.account, "TEAM_A");
});

Deno.test("policy annotations bound: entries outside the allowed patterns or denied are dropped, counted and logged", async () => {
  await using stack = await startStack();
  stack.addServiceAccount("team-b", "greedy", {
    "nats.io/allowed-pub-subjects":
      ">, shared.events, team-c.orders, $SYS.REQ.SERVER.PING, shared.admin.reset",
  });
  const nc = await stack.connect(await stack.token("team-b", "greedy"));
  const errors = errorsOf(nc);
  nc.publish("shared.events", "ok");
  await nc.flush();
  assert.match(await publishRefused(nc, "team-c.orders"), /Publish to "team-c.orders"/);
  assert.match(await publishRefused(nc, "shared.admin.reset"), /Publish to "shared.admin.reset"/);
  assert.ok(!errors.some((e) => e.message.includes('"shared.events"')));
  assert.equal(stack.service.metrics.policyDroppedSubjects.value(), 4);
  const line = stack.logs.find((l) => l.event === "annotation_subjects_ignored");
  assert.deepEqual(line?.outside_policy, [
    "pub >: overlaps the denied pattern $SYS.>",
    "pub team-c.orders: not within the allowed patterns team-b.>, shared.>",
    "pub $SYS.REQ.SERVER.PING: overlaps the denied pattern $SYS.>",
    "pub shared.admin.reset: overlaps the denied pattern shared.admin.>",
  ]);
});

Deno.test("policy deny: a deny list wins over the namespace's own default grant", async () => {
  await using stack = await startStack();
  stack.addServiceAccount("team-b", "api");
  const nc = await stack.connect(await stack.token("team-b", "api"));
  assert.match(await publishRefused(nc, "team-b.secret.keys"), /Publish to "team-b.secret.keys"/);
  const errors = errorsOf(nc);
  nc.publish("team-b.public", "ok");
  await nc.flush();
  assert.equal(errors.length, 0);
});

Deno.test("policy maxTokenLifetime: a token minted for a year is refused, a 1h token is not", async () => {
  await using stack = await startStack();
  stack.addServiceAccount("team-b", "api");
  await (await stack.connect(await stack.token("team-b", "api", { lifetimeSec: 3600 }))).close();
  await refusedWith(
    stack,
    await stack.token("team-b", "api", { lifetimeSec: 8760 * 3600 }),
    "token_lifetime_too_long",
  );
});

Deno.test("policy connectionTypes: a WebSocket-only namespace is refused over TCP and let in over WebSocket", async () => {
  const wsPort = freePort();
  await using stack = await startStack({
    serverConfig: { websocket: { host: "127.0.0.1", port: wsPort, no_tls: true } },
  });
  stack.addServiceAccount("ws-ui", "web");
  stack.addServiceAccount("team-b", "api");
  const token = await stack.token("ws-ui", "web");
  await refusedWith(stack, token, "connection_type_not_allowed");
  const ws = await wsconnect({ servers: `ws://127.0.0.1:${wsPort}`, token, reconnect: false });
  try {
    await ws.flush();
    assert.deepEqual(await usersIn(stack, "APP"), ["system:serviceaccount:ws-ui:web"]);
  } finally {
    await ws.close();
  }
  // Namespaces the rule does not match keep every connection type.
  const tcp = await stack.connect(await stack.token("team-b", "api"));
  await tcp.flush();
});

async function replies(stack: Stack, namespace: string): Promise<number> {
  stack.addServiceAccount(namespace, "svc");
  const responder = await stack.connect(await stack.token(namespace, "svc"));
  responder.subscribe(`${namespace}.ask`, {
    callback: (_err, msg) => {
      msg.respond("one");
      msg.respond("two");
    },
  });
  await responder.flush();
  const asker = await stack.connect(await stack.token(namespace, "svc"));
  const inbox = `_INBOX.${namespace}.answers`;
  let count = 0;
  asker.subscribe(inbox, {
    callback: () => {
      count++;
    },
  });
  asker.publish(`${namespace}.ask`, "?", { reply: inbox });
  await asker.flush();
  await waitFor(() => count >= 1, { what: "first answer" });
  // Round trips behind both answers: a second answer, if the server let it through, has arrived.
  await responder.flush();
  await asker.flush();
  return count;
}

Deno.test("policy response: max 2 lets a responder answer twice; the default lets it answer once", async () => {
  await using stack = await startStack();
  assert.equal(await replies(stack, "team-r"), 2);
  assert.equal(await replies(stack, "team-b"), 1);
});

Deno.test("policy reload: an edit applies to the next login, a bad edit keeps the last good policy", async () => {
  await using stack = await startStack();
  stack.addServiceAccount("team-b", "api");
  await (await stack.connect(await stack.token("team-b", "api"))).close();
  await stack.writePolicy(`${POLICY}  - names: [team-b]\n    connectionTypes: [MQTT]\n`);
  await waitFor(() => stack.service.metrics.policyReloads.value({ result: "ok" }) === 1, {
    what: "policy reload",
  });
  await refusedWith(stack, await stack.token("team-b", "api"), "connection_type_not_allowed");
  await stack.writePolicy("namespaces: [oops");
  const bad = await waitFor(() => stack.logs.find((l) => l.event === "policy_file_invalid"), {
    what: "policy_file_invalid",
  });
  assert.match(String((bad.problems as string[])[0]), /policy\.yaml:1:\d+: /);
  await assert.rejects(stack.connect(await stack.token("team-b", "api")), /authorization/i);
});

Deno.test("policy file at start: an unknown account stops the service with the file and line", async () => {
  await assert.rejects(
    Stack.start({ policy: "namespaces:\n  - names: [a]\n    account: NOWHERE\n" }),
    /policy\.yaml:3:14: namespaces\[0\]\.account: unknown account "NOWHERE"/,
  );
});

Deno.test("operator mode: a namespace is placed in its own account, signed by that account's signing key", async () => {
  await using stack = await OperatorStack.start({
    xkey: true,
    teamAccount: "signing_key",
    policy: ({ key, seedFile }) =>
      `accounts:\n  ${key}: { signingKeyFile: ${seedFile} }\nnamespaces:\n  - names: [team-a]\n    account: ${key}\n`,
  });
  stack.addServiceAccount("team-a", "api");
  stack.addServiceAccount("team-b", "api");
  const a: NatsConnection = await stack.connect(await stack.token("team-a", "api"));
  const b = await stack.connect(await stack.token("team-b", "api"));
  await a.flush();
  await b.flush();
  assert.deepEqual(await stack.usersIn(stack.teamAccount!), ["system:serviceaccount:team-a:api"]);
  assert.deepEqual(await stack.usersIn(stack.targetAccount), ["system:serviceaccount:team-b:api"]);
});

Deno.test("operator mode: an account without a signing key file stops the start", async () => {
  await assert.rejects(
    OperatorStack.start({
      teamAccount: "account",
      policy: ({ key }) => `accounts:\n  ${key}: {}\n`,
    }),
    /signingKeyFile is required in operator mode/,
  );
});
