/**
 * End to end, as a user sees it: a real nats-server with auth callout, the service started from
 * environment variables, the real Kubernetes client against the test apiserver, real tokens and
 * real NATS clients. Each test names the behaviour a platform engineer would notice.
 */
import assert from "node:assert/strict";
import type { NatsConnection } from "@nats-io/transport-node";
import { loadConfig } from "../../lib/config/config.ts";
import type { DenyReason } from "../../lib/core/errors.ts";
import { silentLogger } from "../../lib/telemetry/log.ts";
import { startService } from "../../lib/service/service.ts";
import { tolerateClientResets } from "../support/nats_server.ts";
import {
  generateSigningKey,
  mintHmacConfusionToken,
  mintImpostorToken,
  mintServiceAccountToken,
  mintUnsecuredToken,
} from "../support/sa_tokens.ts";
import { ISSUER, Stack } from "../support/stack.ts";
import { errorsOf, publishRefused } from "../support/permissions.ts";
import { respellings } from "../support/respell.ts";
import { waitFor } from "../support/wait.ts";

// Refused clients get their socket reset by the server; see tolerateClientResets. Not `using`:
// a top-level `using` would be disposed as soon as the module finished loading.
tolerateClientResets();

async function canPublish(nc: NatsConnection, subject: string): Promise<boolean> {
  const errors = errorsOf(nc);
  const sub = nc.subscribe(subject, { max: 1 });
  // A subscription outside the grant is closed with an error; publish needs pub permission.
  nc.publish(subject, "ping");
  await nc.flush();
  const got = await Promise.race([
    (async () => {
      for await (const _ of sub) return true;
      return false;
    })(),
    waitFor(() => errors.find((e) => e.name === "PermissionViolationError"), { timeoutMs: 2000 })
      .then(() => false),
  ]);
  sub.unsubscribe();
  return got;
}

async function expectRefused(stack: Stack, token: string | undefined): Promise<string> {
  try {
    const nc = await stack.connect(token);
    await nc.close();
  } catch (err) {
    assert.ok(err instanceof Error);
    // The server waits 10 s for us and the client gives up after 3 s, so only our own error
    // answer can produce "Authorization Violation" here (not a timeout).
    assert.match(err.message, /authorization violation/i, String(err));
    return err.message;
  }
  assert.fail("the client was let in");
}

function denied(stack: Stack, reason: DenyReason): number {
  return stack.service.metrics.requests.value({ result: "denied", reason });
}

Deno.test("a valid token connects, publishes in its namespace and is refused outside it", async () => {
  await using stack = await Stack.start();
  stack.addServiceAccount("team-a", "orders");
  const nc = await stack.connect(await stack.token("team-a", "orders"));

  assert.equal(await canPublish(nc, "team-a.orders.created"), true);
  assert.match(await publishRefused(nc, "team-b.orders"), /Publish to "team-b.orders"/);
  const outside = nc.subscribe("team-b.>");
  const closed = await outside.closed;
  assert.ok(closed instanceof Error);
  assert.match(closed.message, /Subscription to "team-b.>"/);

  const line = stack.logs.find((l) => l.event === "login_allowed");
  assert.equal(line?.namespace, "team-a");
  assert.equal(line?.serviceaccount, "orders");
  assert.equal(stack.service.metrics.requests.value({ result: "allowed", reason: "" }), 1);
});

Deno.test("annotations grant extra subjects; invalid and internal entries are refused, the rest stands", async () => {
  await using stack = await Stack.start();
  stack.addServiceAccount("team-a", "reporter", {
    "nats.io/allowed-pub-subjects": "shared.reports.>, bad..subject, _INBOX.steal",
    "nats.io/allowed-sub-subjects": "shared.reports.>",
  });
  const nc = await stack.connect(await stack.token("team-a", "reporter"));
  assert.equal(await canPublish(nc, "shared.reports.daily"), true);
  assert.match(await publishRefused(nc, "shared.other"), /Publish to "shared.other"/);
  assert.equal(stack.service.metrics.invalidSubjects.value(), 1);
  assert.equal(stack.service.metrics.filteredInternalSubjects.value(), 1);
  assert.ok(stack.logs.some((l) => l.event === "annotation_subjects_ignored"));
});

Deno.test("request/reply works over _INBOX.> and over the private inbox prefix", async () => {
  await using stack = await Stack.start();
  stack.addServiceAccount("team-a", "api");
  stack.addServiceAccount("team-a", "web.frontend");
  const server = await stack.connect(await stack.token("team-a", "api"));
  server.subscribe("team-a.echo", {
    callback: (_err, msg) => {
      msg.respond(`echo: ${msg.string()}`);
    },
  });
  await server.flush();

  const plain = await stack.connect(await stack.token("team-a", "api"));
  assert.equal(
    (await plain.request("team-a.echo", "one", { timeout: 2000 })).string(),
    "echo: one",
  );

  // SA names may contain dots; its private inbox has them replaced by "_".
  const privateInbox = await stack.connect(await stack.token("team-a", "web.frontend"), {
    inboxPrefix: "_INBOX_team-a_web_frontend",
  });
  const reply = await privateInbox.request("team-a.echo", "two", { timeout: 2000 });
  assert.equal(reply.string(), "echo: two");
});

Deno.test("bad tokens are each refused at once with Authorization Violation and a reason", async (t) => {
  await using stack = await Stack.start();
  const uid = stack.addServiceAccount("team-a", "orders");
  const base = {
    key: stack.signingKey,
    issuer: ISSUER,
    namespace: "team-a",
    serviceAccount: "orders",
    uid,
  };
  const nowSec = Math.floor(Date.now() / 1000);
  const otherKey = await generateSigningKey("RS256");

  const cases: [string, DenyReason, () => Promise<string | undefined>][] = [
    ["no token", "token_missing", () => Promise.resolve(undefined)],
    ["garbage", "token_malformed", () => Promise.resolve("not-a-jwt")],
    [
      "expired",
      "token_expired",
      () => mintServiceAccountToken({ ...base, iat: nowSec - 7200, lifetimeSec: 3600 }),
    ],
    [
      // Issue 9 §2: once inside the verifier's leeway, then internal_error "grant expires in the past".
      "expired 10 s ago",
      "token_expired",
      () => mintServiceAccountToken({ ...base, iat: nowSec - 3610, lifetimeSec: 3600 }),
    ],
    [
      "not yet valid",
      "token_not_yet_valid",
      () => mintServiceAccountToken({ ...base, nbf: nowSec + 600 }),
    ],
    [
      "wrong audience",
      "audience_mismatch",
      () => mintServiceAccountToken({ ...base, audience: "vault" }),
    ],
    [
      "wrong issuer",
      "issuer_mismatch",
      () => mintServiceAccountToken({ ...base, issuer: "https://evil.example" }),
    ],
    ["bad signature", "signature_invalid", () => mintImpostorToken(stack.signingKey, base)],
    ["unknown key", "unknown_key", () => mintServiceAccountToken({ ...base, key: otherKey })],
    ["alg none", "algorithm_not_allowed", () => Promise.resolve(mintUnsecuredToken(base))],
    [
      "HMAC with the public key",
      "algorithm_not_allowed",
      () => mintHmacConfusionToken(stack.signingKey, base),
    ],
    [
      "unknown ServiceAccount",
      "serviceaccount_not_found",
      () => mintServiceAccountToken({ ...base, serviceAccount: "ghost" }),
    ],
    [
      "ServiceAccount uid mismatch",
      "serviceaccount_uid_mismatch",
      () => mintServiceAccountToken({ ...base, uid: crypto.randomUUID() }),
    ],
  ];
  for (const [name, reason, mint] of cases) {
    await t.step(name, async () => {
      const before = denied(stack, reason);
      await expectRefused(stack, await mint());
      assert.equal(denied(stack, reason), before + 1, `denied with reason ${reason}`);
    });
  }
  const text = JSON.stringify(stack.logs);
  const good = await stack.token("team-a", "orders");
  assert.ok(!text.includes(good.split(".")[2]!), "no token signature in the logs");
  const line = stack.logs.find((l) =>
    l.event === "login_denied" && l.reason === "serviceaccount_uid_mismatch"
  );
  assert.equal(line?.level, "warn");
  assert.equal(line?.namespace, "team-a");
});

Deno.test("ServiceAccount changes reach the next login within 2 s, also after the watch was dropped", async () => {
  await using stack = await Stack.start();
  const loginWorks = async (ns: string, sa: string): Promise<boolean> => {
    try {
      const nc = await stack.connect(await stack.token(ns, sa));
      await nc.close();
      return true;
    } catch {
      return false;
    }
  };
  const within2s = { timeoutMs: 2000, intervalMs: 50 };

  // Created while running.
  stack.addServiceAccount("team-c", "late");
  await waitFor(() => loginWorks("team-c", "late"), { ...within2s, what: "created SA logs in" });

  // Annotated while running.
  stack.addServiceAccount("team-c", "late", {
    "nats.io/allowed-pub-subjects": "audit.>",
    "nats.io/allowed-sub-subjects": "audit.>",
  });
  await waitFor(async () => {
    const nc = await stack.connect(await stack.token("team-c", "late"));
    const ok = await canPublish(nc, "audit.x");
    await nc.close();
    return ok;
  }, { ...within2s, what: "annotation grants audit.>" });

  // The watch stream is dropped mid-way; changes still arrive.
  stack.api.dropWatches();
  stack.addServiceAccount("team-c", "after-drop");
  await waitFor(() => loginWorks("team-c", "after-drop"), {
    ...within2s,
    what: "SA created after a dropped watch",
  });

  // Deleted while running.
  stack.api.deleteServiceAccount("team-c", "late");
  await waitFor(async () => !(await loginWorks("team-c", "late")), {
    ...within2s,
    what: "deleted SA refused",
  });
  assert.ok(denied(stack, "serviceaccount_not_found") >= 1);
});

Deno.test("xkey: sealed requests are answered; a service with the wrong xkey cannot answer", async (t) => {
  await t.step("matching xkey", async () => {
    await using stack = await Stack.start({ xkey: true });
    stack.addServiceAccount("team-a", "orders");
    const nc = await stack.connect(await stack.token("team-a", "orders"));
    assert.equal(await canPublish(nc, "team-a.x"), true);
    await expectRefused(stack, await stack.token("team-a", "ghost"));
  });
  await t.step("mismatched xkey", async () => {
    await using stack = await Stack.start({ wrongXkey: true, timeoutSeconds: 1 });
    stack.addServiceAccount("team-a", "orders");
    await assert.rejects(
      stack.connect(await stack.token("team-a", "orders")),
      /authorization violation/i,
    );
    await waitFor(
      () =>
        stack.service.metrics.requests.value({
          result: "dropped",
          reason: "request_decrypt_failed",
        }) >= 1,
      { what: "request dropped as undecryptable" },
    );
  });
});

Deno.test("two service instances in one queue group share the logins", async () => {
  await using stack = await Stack.start();
  await using second = await startService({
    config: loadConfig(stack.env),
    logger: silentLogger(),
  });
  await waitFor(() => second.ready, { timeoutMs: 10_000, what: "second instance ready" });
  stack.addServiceAccount("team-a", "orders");
  const token = await stack.token("team-a", "orders");
  for (let i = 0; i < 30; i++) await (await stack.connect(token)).close();
  const first = stack.service.metrics.requests.value({ result: "allowed", reason: "" });
  const other = second.metrics.requests.value({ result: "allowed", reason: "" });
  assert.equal(first + other, 30, "each login answered exactly once");
  assert.ok(first > 0 && other > 0, `both answered (${first} / ${other})`);
});

Deno.test("one token, one spelling: every respelling of a valid token is refused as token_malformed over the real login path (issue 10, defect 4)", async () => {
  await using stack = await Stack.start();
  stack.addServiceAccount("team-a", "orders");
  const token = await stack.token("team-a", "orders");
  await (await stack.connect(token)).close();
  const spellings = respellings(token);
  assert.ok(spellings.length >= 12);
  for (const [name, variant] of spellings) {
    const before = denied(stack, "token_malformed");
    await expectRefused(stack, variant);
    assert.equal(denied(stack, "token_malformed"), before + 1, name);
  }
  assert.equal(stack.service.metrics.requests.value({ result: "allowed", reason: "" }), 1);
  assert.equal(
    stack.service.metrics.requests.value({ result: "denied", reason: "internal_error" }),
    0,
  );
});
