/**
 * The fault suite of issue 10: each scenario runs under a steady login load with bad-token
 * canaries and asserts that no canary is let in and no valid login is lost, then that the service
 * is ready again. The real kube-apiserver produces the faults it can (an outage: stopped and
 * restarted on the same ports and data); the in-process double produces the rest on demand (watch
 * drops, 410 storms, 500s, a JWKS outage or a broken JWKS).
 *
 * Scenarios needing a second replica (SIGKILL/SIGTERM of one, a frozen one) belong with the
 * queue-group work of issue 9 and are not here.
 */
import assert from "node:assert/strict";
import { delay } from "../lib/abort.ts";
import { loadConfig } from "../lib/config.ts";
import { createLogger } from "../lib/log.ts";
import { startService } from "../lib/service.ts";
import { NatsServer, tolerateClientResets } from "./support/nats_server.ts";
import { generateSigningKey, mintServiceAccountToken, publicJwks } from "./support/sa_tokens.ts";
import { ISSUER, Stack } from "./support/stack.ts";
import { KubeStack } from "./support/kube_stack.ts";
import { waitFor } from "./support/wait.ts";

tolerateClientResets();

/** A steady stream of logins: valid ones that must all succeed, canaries that must all fail. */
interface LoginLoad {
  readonly valid: { ok: number; lost: number; errors: string[] };
  readonly canaries: { refused: number; accepted: number };
  /** Stop the load and wait for the logins in flight. */
  stop(): Promise<void>;
}

function startLoad(
  connect: (token: string) => Promise<{ close(): Promise<void> }>,
  validTokens: readonly string[],
  canaryTokens: readonly string[],
  options: { workers?: number; paceMs?: number } = {},
): LoginLoad {
  const paceMs = options.paceMs ?? 20;
  const valid = { ok: 0, lost: 0, errors: [] as string[] };
  const canaries = { refused: 0, accepted: 0 };
  let running = true;
  const worker = async (w: number) => {
    for (let i = w; running; i++) {
      const token = validTokens[i % validTokens.length]!;
      try {
        await (await connect(token)).close();
        valid.ok++;
      } catch (err) {
        valid.lost++;
        valid.errors.push(String(err).slice(0, 200));
      }
      // A steady rate, not a CPU-bound spin: the suite shares the machine with parallel tests.
      await delay(paceMs);
      if (i % 3 === 0) {
        const canary = canaryTokens[i % canaryTokens.length]!;
        try {
          await (await connect(canary)).close();
          canaries.accepted++;
        } catch {
          canaries.refused++;
        }
      }
    }
  };
  const workers = Array.from({ length: options.workers ?? 2 }, (_, w) => worker(w));
  return {
    valid,
    canaries,
    async stop() {
      running = false;
      await Promise.all(workers);
    },
  };
}

/** Hold a fault for `ms` under load; the load must keep making progress throughout. */
async function during(load: LoginLoad, ms: number, fault: () => void | Promise<void>) {
  const start = load.valid.ok;
  const until = Date.now() + ms;
  while (Date.now() < until) {
    await fault();
    const seen = load.valid.ok;
    await waitFor(() => load.valid.ok > seen, { timeoutMs: 10_000, what: "logins continue" });
  }
  assert.ok(load.valid.ok > start, "logins went on during the fault");
}

function assertNoLoss(load: LoginLoad, scenario: string) {
  assert.equal(load.canaries.accepted, 0, `${scenario}: canaries accepted`);
  assert.equal(load.valid.lost, 0, `${scenario}: valid logins lost: ${load.valid.errors[0]}`);
  assert.ok(load.valid.ok >= 10, `${scenario}: only ${load.valid.ok} valid logins ran`);
  assert.ok(load.canaries.refused >= 3, `${scenario}: only ${load.canaries.refused} canaries ran`);
}

/** A stack on the double with three ServiceAccounts, their tokens and the canaries. */
async function doubleStack(options: Parameters<typeof Stack.start>[0] = {}) {
  const stack = await Stack.start({ captureLogs: true, ...options });
  const valid: string[] = [];
  for (const name of ["orders", "billing", "audit"]) {
    stack.addServiceAccount("team-a", name);
    valid.push(await stack.token("team-a", name));
  }
  stack.addServiceAccount("team-a", "gone");
  const gone = await stack.token("team-a", "gone");
  stack.api.deleteServiceAccount("team-a", "gone");
  const stranger = await generateSigningKey("RS256");
  const base = { issuer: ISSUER, namespace: "team-a", serviceAccount: "orders" };
  const canaries = [
    gone,
    await mintServiceAccountToken({ ...base, key: stranger, uid: crypto.randomUUID() }),
    await stack.token("team-a", "orders", {
      iat: Math.floor(Date.now() / 1000) - 7200,
      lifetimeSec: 3600,
    }),
    valid[0]! + "\n",
    await stack.token("team-a", "orders", { audience: "vault" }),
  ];
  return { stack, valid, canaries };
}

function internalErrors(metrics: Stack["service"]["metrics"]): number {
  return metrics.requests.value({ result: "denied", reason: "internal_error" }) +
    metrics.requests.value({ result: "error", reason: "internal_error" });
}

Deno.test("fault: watch streams dropped again and again", async () => {
  const { stack, valid, canaries } = await doubleStack();
  await using _ = stack;
  const load = startLoad((t) => stack.connect(t), valid, canaries);
  try {
    await during(load, 3000, () => stack.api.dropWatches());
  } finally {
    await load.stop();
  }
  assertNoLoss(load, "watch drop");
  assert.ok(stack.service.metrics.watchRestarts.value({ reason: "error" }) >= 2);
  await waitFor(() => stack.service.ready, { what: "ready after the drops" });
  assert.equal(internalErrors(stack.service.metrics), 0);
});

Deno.test("fault: a 410 storm (history compacted under every watch)", async () => {
  const { stack, valid, canaries } = await doubleStack();
  await using _ = stack;
  const load = startLoad((t) => stack.connect(t), valid, canaries);
  let n = 0;
  try {
    await during(load, 3000, () => {
      stack.api.upsertServiceAccount("team-z", `churn-${n++}`);
      stack.api.compactHistory();
      stack.api.dropWatches();
    });
  } finally {
    await load.stop();
  }
  assertNoLoss(load, "410 storm");
  assert.ok(stack.service.metrics.relists.value({ trigger: "gone" }) >= 1);
  await waitFor(() => stack.service.ready, { what: "ready after the storm" });
  // Changes made during the storm are all there once it ends.
  stack.addServiceAccount("team-z", "after");
  const token = await stack.token("team-z", "after");
  await waitFor(() => stack.connect(token).then((nc) => nc.close().then(() => true), () => false), {
    what: "a ServiceAccount made after the storm logs in",
  });
  assert.equal(internalErrors(stack.service.metrics), 0);
});

Deno.test("fault: the apiserver answers 500 to everything for a while", async () => {
  const { stack, valid, canaries } = await doubleStack();
  await using _ = stack;
  const load = startLoad((t) => stack.connect(t), valid, canaries);
  try {
    await during(load, 3000, () => {
      stack.api.setFault({ status: 500 });
      stack.api.dropWatches();
    });
  } finally {
    stack.api.setFault(undefined);
    await load.stop();
  }
  assertNoLoss(load, "apiserver 500s");
  await waitFor(() => stack.service.ready, { what: "ready after the 500s" });
  const body = await (await stack.service.handler(new Request("http://x/readyz"))).json();
  assert.equal(typeof body.checks.serviceaccounts.staleness_seconds, "number");
  assert.equal(internalErrors(stack.service.metrics), 0);
});

Deno.test("fault: the JWKS endpoint is down, then serves a broken key set", async () => {
  // Refreshes every 300 ms, and on an unknown kid after 100 ms: the faults are met many times.
  const { stack, valid, canaries } = await doubleStack({
    jwksTimings: { cooldownMs: 100, refreshIntervalMs: 300, retryMs: 100 },
  });
  await using _ = stack;
  // Canaries with unknown kids force refreshes (cool-down permitting) while the endpoint is bad.
  const load = startLoad((t) => stack.connect(t), valid, canaries);
  try {
    await during(load, 2000, () => stack.api.setFault({ status: 503, on: "oidc" }));
    stack.api.setFault(undefined);
    stack.api.setJwks({ keys: [{ kty: "RSA", kid: "new", n: "AQAB", e: "AQAB" }] });
    await during(load, 2000, () => {});
  } finally {
    stack.api.setFault(undefined);
    stack.api.setJwks(publicJwks([stack.signingKey]));
    await load.stop();
  }
  assertNoLoss(load, "JWKS outage");
  const m = stack.service.metrics;
  assert.ok(m.jwksRefreshes.value({ result: "error" }) >= 2, "the outage was met");
  assert.ok(m.jwksRefreshes.value({ result: "rejected" }) >= 2, "the broken set was met");
  assert.ok(stack.logs.some((l) => l.event === "jwks_rejected"));
  assert.equal(internalErrors(stack.service.metrics), 0);
  assert.ok(stack.service.ready);
});

// ---------------------------------------------------------------- the real apiserver

async function failingChecks(service: { handler: (r: Request) => Promise<Response> }) {
  const body = await (await service.handler(new Request("http://x/readyz"))).json();
  return (body.failing ?? []) as string[];
}

Deno.test("fault (real apiserver): an outage under load loses no valid login; a bounded replica says it is stale; a replica started during it can decide within seconds of the return", async () => {
  // In-cluster, as the chart deploys it (its RBAC, the service's own token and the cluster CA).
  // No staleness bound on the serving replica: it keeps answering from its cache.
  await using stack = await KubeStack.start();
  const valid: string[] = [];
  for (const name of ["orders", "billing"]) {
    await stack.addServiceAccount("team-a", name);
    valid.push(await stack.token("team-a", name));
  }
  await stack.addServiceAccount("team-a", "gone");
  const gone = await stack.token("team-a", "gone");
  await stack.kube.deleteServiceAccount("team-a", "gone");
  const canaries = [gone, valid[0]! + " ", `${valid[0]!.slice(0, -2)}AA`];
  await waitFor(
    () => stack.connect(valid[1]!).then((nc) => nc.close().then(() => true), () => false),
    { what: "ServiceAccounts seen" },
  );

  // Two more replicas on a NATS server of their own (they take none of the logins): one with
  // CACHE_MAX_STALENESS (defect 7), one started during the outage (defect 6). Taking logins
  // only while ready is the queue-group membership of issue 9, tested there.
  await using idle = await NatsServer.start();
  const quiet = createLogger({ level: "error", write: () => {} });
  const bounded = await startService({
    config: loadConfig({ ...stack.env, NATS_URL: idle.url, CACHE_MAX_STALENESS: "10s" }),
    logger: quiet,
  });
  let second: Awaited<ReturnType<typeof startService>> | undefined;
  let readyAfterReturnMs: number;
  let bootMs: number;
  let staleAfterMs: number;
  const load = startLoad((t) => stack.connect(t), valid, canaries);
  try {
    await waitFor(() => bounded.ready, { timeoutMs: 20_000, what: "bounded replica ready" });
    // A quiet watch hears nothing for up to ~2 min (bookmarks), more than this test's 10 s bound:
    // make a change, so the bounded replica is fresh when the outage starts.
    await stack.addServiceAccount("team-a", "tick");
    await waitFor(async () => {
      const b = await (await bounded.handler(new Request("http://x/readyz"))).json();
      return b.status === "ready" && b.checks.serviceaccounts.staleness_seconds < 2;
    }, { what: "bounded replica fresh" });
    // The outage starts when the apiserver is told to stop (its graceful shutdown takes seconds).
    const outageStarted = Date.now();
    await stack.kube.stop();
    second = await startService({
      config: loadConfig({ ...stack.env, NATS_URL: idle.url }),
      logger: quiet,
    });
    // Past CACHE_MAX_STALENESS the bounded replica's readiness fails and says why.
    await waitFor(() => !bounded.ready, { timeoutMs: 30_000, what: "stale → not ready" });
    staleAfterMs = Date.now() - outageStarted;
    assert.ok(
      staleAfterMs >= 7_000,
      `not ready ${staleAfterMs} ms into the outage: ${
        JSON.stringify(await (await bounded.handler(new Request("http://x/readyz"))).json())
      }`,
    );
    const res = await bounded.handler(new Request("http://x/readyz"));
    assert.equal(res.status, 503);
    const body = await res.json();
    // (Having left the queue group, its "nats" check may fail too: issue 9's membership.)
    assert.ok(body.failing.includes("serviceaccounts"), JSON.stringify(body.failing));
    assert.match(body.checks.serviceaccounts.reason, /CACHE_MAX_STALENESS \(10s\)/);
    assert.ok(body.checks.serviceaccounts.staleness_seconds >= 10);
    // The unbounded replica keeps serving from its cache, and says how stale it is.
    assert.ok(stack.service.ready);
    const own = await (await stack.service.handler(new Request("http://x/readyz"))).json();
    assert.ok(own.checks.serviceaccounts.staleness_seconds >= 10);
    const seen = load.valid.ok;
    await waitFor(() => load.valid.ok > seen + 5, { what: "logins continue during the outage" });
    // Down for ~20 s in all, as in the issue.
    await waitFor(() => Date.now() - outageStarted > 20_000, {
      timeoutMs: 30_000,
      what: "20 s of outage",
    });
    assert.deepEqual(await failingChecks(second), ["nats", "serviceaccounts", "pods", "keys"]);
    const restarting = Date.now();
    await stack.kube.restart();
    const returned = Date.now();
    bootMs = returned - restarting;
    await waitFor(async () => (await failingChecks(second!)).length === 0, {
      timeoutMs: 30_000,
      what: "second replica able to decide",
    });
    readyAfterReturnMs = Date.now() - returned;
    await waitFor(() => bounded.ready, { timeoutMs: 30_000, what: "bounded replica ready again" });
  } finally {
    await load.stop();
    await second?.close();
    await bounded.close();
  }
  assertNoLoss(load, "apiserver outage");
  // deno-lint-ignore no-console -- the scenario's figures, for the report (not an assertion)
  console.log(
    `apiserver outage: ${load.valid.ok} valid logins, 0 lost; ${load.canaries.refused} canaries ` +
      `refused; bounded replica not ready ${staleAfterMs} ms into the outage; apiserver boot ` +
      `${bootMs} ms, second replica able to decide ${readyAfterReturnMs} ms after the ` +
      `apiserver's /readyz answered`,
  );
  // Retries before the first sync are at most 2 s apart (they were up to 30 s: 27 s in the issue).
  assert.ok(readyAfterReturnMs < 8_000, `ready ${readyAfterReturnMs} ms after the return`);
  assert.equal(internalErrors(stack.service.metrics), 0);
});
