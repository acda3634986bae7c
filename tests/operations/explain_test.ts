/**
 * Explain, against the running stack (real nats-server, the service with a policy file): the
 * `/explain` endpoint (off unless enabled, never echoing the token), the `explain` command (the lib
 * function and the real `main.ts explain` process), and explain agreeing with real logins.
 */
import assert from "node:assert/strict";
import type { Explanation } from "../../lib/decision/login.ts";
import { runExplainCli } from "../../lib/service/explain_cli.ts";
import { tolerateClientResets } from "../support/nats_server.ts";
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
    deny: ["$SYS.>"]
  maxTokenLifetime: 2h
namespaces:
  - names: [team-a]
    account: TEAM_A
  - glob: "ws-*"
    connectionTypes: [WEBSOCKET]
`;

function startStack(env: Record<string, string> = { EXPLAIN_ENABLED: "true" }): Promise<Stack> {
  return Stack.start({ accounts: { APP: {}, TEAM_A: {} }, policy: POLICY, env });
}

/** Add a ServiceAccount and wait until the service's watch has seen it. */
async function addSynced(
  stack: Stack,
  namespace: string,
  name: string,
  annotations?: Record<string, string>,
): Promise<void> {
  stack.addServiceAccount(namespace, name, annotations);
  await waitFor(async () => {
    const e = await stack.service.login?.explain({ namespace, name });
    return e !== undefined && e.reason !== "serviceaccount_not_found";
  }, { what: `${namespace}/${name} in the cache` });
}

async function explain(stack: Stack, req: Request): Promise<[number, string]> {
  const res = await stack.service.handler(req);
  return [res.status, await res.text()];
}

Deno.test("explain endpoint: by ServiceAccount name, the account, lists, limits and the dropped entries with their reasons", async () => {
  await using stack = await startStack();
  await addSynced(stack, "team-b", "greedy", {
    "nats.io/allowed-pub-subjects": "shared.events, team-c.x, $SYS.REQ.x, bad..x",
  });
  const [status, body] = await explain(
    stack,
    new Request("http://svc/explain?serviceaccount=team-b/greedy"),
  );
  assert.equal(status, 200);
  const e = JSON.parse(body) as Explanation;
  assert.equal(e.allowed, true);
  assert.equal(e.token_checked, false);
  assert.equal(e.account, "APP");
  assert.equal(e.user, "system:serviceaccount:team-b:greedy");
  assert.deepEqual(e.permissions?.pub, {
    allow: ["team-b", "team-b.>", "shared.events"],
    deny: [],
  });
  assert.deepEqual(e.permissions?.resp, { max: 1, ttl_ms: 0 });
  assert.deepEqual(e.dropped?.map((d) => [d.entry, d.reason, d.detail]), [
    ["team-c.x", "outside_policy", "not within the allowed patterns team-b.>, shared.>"],
    ["$SYS.REQ.x", "outside_policy", "overlaps the denied pattern $SYS.>"],
    ["bad..x", "invalid", "subject has an empty token"],
  ]);
  assert.deepEqual(e.policy, { matched: ["defaults"] });
  assert.ok(Date.parse(e.expires_at!) > Date.now());
  // Explaining records nothing: no login was attempted.
  assert.equal(stack.service.metrics.invalidSubjects.value(), 0);
  assert.equal(stack.service.metrics.cacheHits.value(), 0);
});

Deno.test("explain endpoint: a token is explained like a login and never echoed back", async () => {
  await using stack = await startStack();
  await addSynced(stack, "team-a", "api");
  const token = await stack.token("team-a", "api");
  const [status, body] = await explain(
    stack,
    new Request("http://svc/explain", { method: "POST", body: token }),
  );
  assert.equal(status, 200);
  assert.ok(
    !body.includes(token) && !body.includes(token.split(".")[2]!),
    "no token in the answer",
  );
  const e = JSON.parse(body) as Explanation;
  assert.equal(e.allowed, true, body);
  assert.equal(e.token_checked, true);
  assert.equal(e.account, "TEAM_A");
  assert.match(String(e.policy?.matched[1]), /policy\.yaml:\d+ \(team-a\)/);

  const long = await stack.token("team-a", "api", { lifetimeSec: 8760 * 3600 });
  const [, refusedBody] = await explain(
    stack,
    new Request("http://svc/explain", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: long }),
    }),
  );
  const refused = JSON.parse(refusedBody) as Explanation;
  assert.equal(refused.allowed, false);
  assert.equal(refused.reason, "token_lifetime_too_long");
  assert.match(refused.message!, /exceeds the policy maximum of 7200s/);
});

Deno.test("explain agrees with real logins: allowed, refused and the refusal's reason", async () => {
  await using stack = await startStack();
  await addSynced(stack, "team-b", "api");
  await addSynced(stack, "ws-ui", "web");
  const cases = [
    await stack.token("team-b", "api"),
    await stack.token("team-b", "api", { lifetimeSec: 8760 * 3600 }),
    await stack.token("ws-ui", "web"),
    await stack.token("team-b", "ghost"),
    await stack.token("team-b", "api", { audience: "not-nats" }),
  ];
  for (const token of cases) {
    const res = await stack.service.handler(
      new Request("http://svc/explain", { method: "POST", body: token }),
    );
    const e = JSON.parse(await res.text()) as Explanation;
    const before = stack.logs.length;
    let connected = true;
    try {
      await (await stack.connect(token)).close();
    } catch {
      connected = false;
    }
    assert.equal(e.allowed, connected, `explain said ${e.allowed} (${e.reason})`);
    if (!connected) {
      const denied = stack.logs.slice(before).find((l) => l.event === "login_denied");
      assert.equal(denied?.reason, e.reason);
    }
  }
});

Deno.test("explain endpoint: connection types, bad requests, and off unless enabled", async () => {
  await using stack = await startStack();
  await addSynced(stack, "ws-ui", "web");
  const get = async (query: string) => {
    const [status, body] = await explain(stack, new Request(`http://svc/explain?${query}`));
    return [status, JSON.parse(body)] as const;
  };
  const [, tcp] = await get("serviceaccount=ws-ui/web");
  assert.equal(tcp.reason, "connection_type_not_allowed");
  const [, ws] = await get("serviceaccount=ws-ui/web&connection_type=websocket");
  assert.equal(ws.allowed, true);
  assert.equal((await get("serviceaccount=nope"))[0], 400);
  assert.equal((await get("serviceaccount=a/b&connection_type=PIGEON"))[0], 400);
  const [, ghost] = await get("serviceaccount=ws-ui/ghost");
  assert.equal(ghost.reason, "serviceaccount_not_found");
  assert.equal(
    (await explain(stack, new Request("http://svc/explain", { method: "POST", body: " " })))[0],
    400,
  );
  assert.equal(
    (await explain(stack, new Request("http://svc/explain", { method: "PUT", body: "x" })))[0],
    405,
  );

  await using off = await startStack({});
  const [status] = await explain(off, new Request("http://svc/explain?serviceaccount=a/b"));
  assert.equal(status, 404);
});

Deno.test("explain command: by name and by token file, exit status 0/1/2, the token never printed", async () => {
  await using stack = await startStack({});
  stack.addServiceAccount("team-a", "api");
  const out: string[] = [];
  const err: string[] = [];
  const files: Record<string, string> = {};
  const io = {
    readTextFile: (p: string) =>
      files[p] !== undefined ? Promise.resolve(files[p]!) : Promise.reject(new Error("no file")),
    stdout: (t: string) => void out.push(t),
    stderr: (t: string) => void err.push(t),
  };
  const env = { ...stack.env };

  assert.equal(await runExplainCli(["team-a/api"], env, { io }), 0);
  const byName = JSON.parse(out.join("")) as Explanation;
  assert.equal(byName.account, "TEAM_A");

  out.length = 0;
  files["/t"] = await stack.token("team-a", "api", { lifetimeSec: 8760 * 3600 });
  assert.equal(await runExplainCli(["--token-file", "/t"], env, { io }), 1);
  const byToken = JSON.parse(out.join("")) as Explanation;
  assert.equal(byToken.reason, "token_lifetime_too_long");
  assert.ok(!out.join("").includes(files["/t"]!) && !err.join("").includes(files["/t"]!));

  assert.equal(await runExplainCli([], env, { io }), 2);
  assert.equal(await runExplainCli(["team-a"], env, { io }), 2);
  assert.equal(await runExplainCli(["a/b", "--connection-type", "PIGEON"], env, { io }), 2);
  assert.equal(await runExplainCli(["a/b"], { ...env, NATS_ACCOUNT: "" }, { io }), 2);
  assert.match(err.join(""), /NATS_ACCOUNT: required/);
});

Deno.test("explain command: main.ts explain dispatches to it (real process)", async () => {
  await using stack = await startStack({});
  stack.addServiceAccount("team-b", "api");
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../../main.ts", import.meta.url).pathname,
      "explain",
      "team-b/api",
    ],
    env: stack.env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.equal((JSON.parse(text) as Explanation).account, "APP");
});
