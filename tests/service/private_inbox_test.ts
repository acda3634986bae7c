/**
 * Issue 17 §4: the policy can withhold `_INBOX.>` so each workload reads only its own replies.
 * Real nats-server, real nats.js clients (one per "pod"), the service started with `POLICY_FILE`.
 *
 * Before: every ServiceAccount got `_INBOX.>` on subscribe (as the reference does), so pod B could
 * subscribe to `_INBOX.>` and read the reply meant for pod A, and nothing let a platform team
 * withdraw it.
 */
import assert from "node:assert/strict";
import type { NatsConnection } from "@nats-io/transport-node";
import { tolerateClientResets } from "../support/nats_server.ts";
import { Stack } from "../support/stack.ts";
import { waitFor } from "../support/wait.ts";

tolerateClientResets();

const PRIVATE_FOR_TEAM_A = `
namespaces:
  - names: [team-a]
    inbox: private
`;

/** A responder in team-a answering `team-a.echo` with `echo:<request>`. */
function echo(nc: NatsConnection): void {
  const sub = nc.subscribe("team-a.echo");
  void (async () => {
    for await (const m of sub) m.respond(`echo:${m.string()}`);
  })();
}

/** What `nc` reads on `subject` from now on, or the error that closed the subscription. */
function listen(
  nc: NatsConnection,
  subject: string,
  queue?: string,
): { seen: string[]; closed: Promise<unknown> } {
  const seen: string[] = [];
  const sub = nc.subscribe(subject, queue === undefined ? {} : { queue });
  // A refused subscription ends its iterator with the server's permissions violation.
  const closed = (async () => {
    for await (const m of sub) seen.push(m.string());
  })().then(() => sub.closed, (err: unknown) => err);
  return { seen, closed };
}

async function podsOf(stack: Stack, inboxes: "default" | "private") {
  for (const sa of ["api", "orders", "billing"]) stack.addServiceAccount("team-a", sa);
  const connectAs = async (sa: string) =>
    stack.connect(
      await stack.token("team-a", sa),
      inboxes === "private" ? { inboxPrefix: `_INBOX_team-a_${sa}` } : {},
    );
  const api = await connectAs("api");
  echo(api);
  await api.flush();
  return { a: await connectAs("orders"), b: await connectAs("billing") };
}

Deno.test("shared inbox (the default, as the reference): pod B reads the reply meant for pod A", async () => {
  await using stack = await Stack.start();
  const { a, b } = await podsOf(stack, "default");
  const snoop = listen(b, "_INBOX.>");
  await b.flush();
  const reply = await a.request("team-a.echo", "for A only", { timeout: 2000 });
  assert.equal(reply.string(), "echo:for A only");
  await waitFor(() => snoop.seen.includes("echo:for A only"), {
    timeoutMs: 2000,
    what: "B to read A's reply",
  });
});

Deno.test("policy inbox: private: pod B can no longer read pod A's replies, and A's and B's own request/reply keep working on their private inboxes", async () => {
  await using stack = await Stack.start({ policy: PRIVATE_FOR_TEAM_A });
  const { a, b } = await podsOf(stack, "private");

  // B tries to listen to every inbox, and to A's private one: both subscriptions are refused.
  const everyInbox = listen(b, "_INBOX.>");
  const aInbox = listen(b, "_INBOX_team-a_orders.>");
  const [everyClosed, aClosed] = await Promise.all([everyInbox.closed, aInbox.closed]);
  assert.match(String(everyClosed), /Permissions Violation for Subscription to "_INBOX\.>"/);
  assert.match(
    String(aClosed),
    /Permissions Violation for Subscription to "_INBOX_team-a_orders\.>"/,
  );

  // A's and B's own request/reply work, each on its own private inbox.
  const forA = await a.request("team-a.echo", "for A only", { timeout: 2000 });
  assert.equal(forA.string(), "echo:for A only");
  assert.match(forA.subject, /^_INBOX_team-a_orders\./);
  const forB = await b.request("team-a.echo", "for B", { timeout: 2000 });
  assert.equal(forB.string(), "echo:for B");
  assert.deepEqual([...everyInbox.seen, ...aInbox.seen], [], "B read nothing of A's");

  const granted = stack.logs.filter((l) => l.event === "login_granted");
  for (const line of granted) {
    assert.ok(!(line.sub as string[]).includes("_INBOX.>"), JSON.stringify(line.sub));
    assert.ok((line.sub as string[]).includes(`_INBOX_team-a_${line.serviceaccount}.>`));
  }
});

Deno.test("policy inbox: private: a client that keeps the default _INBOX prefix gets no reply (what clients must set), and explain shows the prefix", async () => {
  await using stack = await Stack.start({ policy: PRIVATE_FOR_TEAM_A });
  stack.addServiceAccount("team-a", "orders");
  stack.addServiceAccount("team-b", "orders");
  const token = await stack.token("team-a", "orders");
  const plain = await stack.connect(token);
  await assert.rejects(
    plain.request("team-a.echo", "x", { timeout: 1000 }),
    /Permissions Violation for Subscription to "_INBOX\./,
  );

  const login = stack.service.login!;
  const explained = await login.explain({ namespace: "team-a", name: "orders" });
  assert.deepEqual(explained.inbox, { prefix: "_INBOX_team-a_orders", shared: false });
  assert.deepEqual(explained.permissions?.sub.allow, [
    "_INBOX_team-a_orders.>",
    "team-a",
    "team-a.>",
  ]);
  // Another namespace keeps the default: the shared inbox too.
  const other = await login.explain({ namespace: "team-b", name: "orders" });
  assert.deepEqual(other.inbox, { prefix: "_INBOX_team-b_orders", shared: true });
});

Deno.test("policy inbox: private: an annotation led by a wildcard (*.>, > with a queue group, a lone * that nats-server lets subscribe to >) cannot read another workload's private inbox", async () => {
  // The breaker's input (issue 17, finding F1): before, `*.>` was granted and B read A's replies.
  await using stack = await Stack.start({ policy: "defaults:\n  inbox: private\n" });
  const { a, snoop } = await snoopingOn(stack, "*.>,_INBOX.>,_INBOX_team-a_orders.>,> q,*");

  const explained = await stack.service.login!.explain({ namespace: "team-b", name: "snoop" });
  assert.deepEqual(explained.permissions?.sub.allow, [
    "_INBOX_team-b_snoop.>",
    "team-b",
    "team-b.>",
  ]);
  assert.deepEqual(explained.dropped?.map((d) => [d.entry, d.reason]), [
    ["*.>", "internal"],
    ["_INBOX.>", "internal"],
    ["_INBOX_team-a_orders.>", "internal"],
    ["> q", "internal"],
    ["*", "internal"],
  ]);

  const attempts = [
    listen(snoop, "*.>"),
    listen(snoop, ">", "q"),
    listen(snoop, ">"),
    listen(snoop, "_INBOX_team-a_orders.>"),
  ];
  const closed = await Promise.all(attempts.map((x) => x.closed));
  assert.match(String(closed[0]), /Permissions Violation for Subscription to "\*\.>"/);
  assert.match(String(closed[1]), /Permissions Violation for Subscription to ">" using queue "q"/);
  assert.match(String(closed[2]), /Permissions Violation for Subscription to ">"/);
  assert.match(
    String(closed[3]),
    /Permissions Violation for Subscription to "_INBOX_team-a_orders/,
  );

  // A's request/reply on its private inbox still works, and nothing reached B.
  const reply = await a.request("team-a.echo", "for A only", { timeout: 2000 });
  assert.equal(reply.string(), "echo:for A only");
  assert.match(reply.subject, /^_INBOX_team-a_orders\./);
  assert.deepEqual(attempts.flatMap((x) => x.seen), []);
});

Deno.test("shared inbox: an annotation * lets a workload subscribe to > (nats-server matches the SUB literally against the allow list) and read another workload's private inbox, as client-usage.md warns", async () => {
  await using stack = await Stack.start();
  const { a, snoop } = await snoopingOn(stack, "*");
  const all = listen(snoop, ">");
  await snoop.flush();
  const reply = await a.request("team-a.echo", "for A only", { timeout: 2000 });
  assert.match(reply.subject, /^_INBOX_team-a_orders\./);
  await waitFor(() => all.seen.includes("echo:for A only"), {
    timeoutMs: 2000,
    what: "B's > subscription (granted by *) to read A's private reply",
  });
});

/** team-a/api answering `team-a.echo`, team-a/orders asking, team-b/snoop annotated `sub`. */
async function snoopingOn(stack: Stack, sub: string) {
  stack.addServiceAccount("team-a", "api");
  stack.addServiceAccount("team-a", "orders");
  stack.addServiceAccount("team-b", "snoop", { "nats.io/allowed-sub-subjects": sub });
  const connectAs = async (ns: string, sa: string) =>
    stack.connect(await stack.token(ns, sa), { inboxPrefix: `_INBOX_${ns}_${sa}` });
  const api = await connectAs("team-a", "api");
  echo(api);
  await api.flush();
  return { a: await connectAs("team-a", "orders"), snoop: await connectAs("team-b", "snoop") };
}
