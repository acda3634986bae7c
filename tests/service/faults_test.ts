/**
 * The fault suite of issue 10: each scenario runs under a steady login load with bad-token
 * canaries and asserts that no canary is let in and no valid login is lost, then that the service
 * is ready again. The real kube-apiserver produces the faults it can (an outage: stopped and
 * restarted on the same ports and data); the in-process double produces the rest on demand (watch
 * drops, 410 storms, 500s, a JWKS outage or a broken JWKS).
 *
 * The scenarios with two replicas run them as real processes (main.ts with the start task's
 * flags) against the real apiserver, and kill, stop or continue them with real signals; nats-server
 * itself is killed with SIGKILL and restarted on the same port. Their clients retry once, as a
 * reconnecting nats.js client would; see {@linkcode startClients} for what "lost" means there.
 * A replica's SIGKILL or SIGTERM loses no valid login; a nats-server restart and a frozen replica
 * do lose some, so those assert a documented bound in time and print what they measured (the
 * figures are in docs/operations.md, "Fault suite").
 */
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { delay } from "../../lib/core/abort.ts";
import { loadConfig } from "../../lib/config/config.ts";
import { createLogger } from "../../lib/telemetry/log.ts";
import { startService } from "../../lib/service/service.ts";
import { type NatsConfig, NatsServer, tolerateClientResets } from "../support/nats_server.ts";
import { generateSigningKey, mintServiceAccountToken, publicJwks } from "../support/sa_tokens.ts";
import { ISSUER, Stack } from "../support/stack.ts";
import { KubeStack } from "../support/kube_stack.ts";
import { ReplicaProcess } from "../support/replica_process.ts";
import { waitFor } from "../support/wait.ts";

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

// ---------------------------------------------------------------- two replicas as processes

/** nats-server's `authorization.timeout` in these scenarios: an unanswered login fails after it. */
const AUTH_TIMEOUT_S = 2;
/** A valid client's retry budget: one retry, as a reconnecting nats.js client would make. */
const RETRIES = 1;
/** Pause before the retry. */
const RETRY_PAUSE_MS = 250;

/** One valid login: its first attempt's start, its end, the attempts it took, and the outcome. */
interface ValidLogin {
  readonly startedAt: number;
  readonly endedAt: number;
  readonly attempts: number;
  readonly ok: boolean;
  readonly errors: readonly string[];
}

/** Clients logging in through nats-server, valid ones (with a retry budget) and canaries. */
interface Clients {
  /** Every valid login that has ended, in order of its end. */
  readonly logins: ValidLogin[];
  readonly canaries: { refused: number; accepted: number };
  /** Valid logins that succeeded. */
  ok(): number;
  /** Milliseconds the oldest attempt still in flight has waited (0 when none is). */
  oldestPendingMs(): number;
  stop(): Promise<void>;
}

/**
 * Steady login load on nats-server at `url` (`performance.now()` is the clock). A valid login is
 * *lost* when it cannot log in within its retry budget: its first attempt and {@linkcode RETRIES}
 * retry, {@linkcode RETRY_PAUSE_MS} apart, all failed. A first attempt may fail without loss: a
 * request delivered to a replica that is killed or frozen is never answered, and nats-server closes
 * the client with `Authorization Violation` after its `authorization.timeout`. Canaries are tried
 * once each; any that gets in is counted as accepted.
 */
function startClients(
  url: string,
  validTokens: readonly string[],
  canaryTokens: readonly string[],
  options: { workers?: number; paceMs?: number } = {},
): Clients {
  const { workers = 4, paceMs = 20 } = options;
  const logins: ValidLogin[] = [];
  const canaries = { refused: 0, accepted: 0 };
  const pending = new Set<{ since: number }>();
  let running = true;
  const attempt = async (token: string): Promise<string | undefined> => {
    const entry = { since: performance.now() };
    pending.add(entry);
    try {
      const nc = await connect({ servers: url, token, timeout: 5000, reconnect: false });
      await nc.close();
      return undefined;
    } catch (err) {
      return (err instanceof Error ? err.message : String(err)).slice(0, 200);
    } finally {
      pending.delete(entry);
    }
  };
  const worker = async (w: number) => {
    for (let i = w; running; i++) {
      const token = validTokens[i % validTokens.length]!;
      const startedAt = performance.now();
      const errors: string[] = [];
      let ok = false;
      for (let a = 0; a <= RETRIES && !ok; a++) {
        if (a > 0) await delay(RETRY_PAUSE_MS);
        const error = await attempt(token);
        if (error === undefined) ok = true;
        else errors.push(error);
      }
      logins.push({
        startedAt,
        endedAt: performance.now(),
        attempts: errors.length + 1,
        ok,
        errors,
      });
      await delay(paceMs);
      if (i % 3 === 0) {
        const error = await attempt(canaryTokens[i % canaryTokens.length]!);
        if (error === undefined) canaries.accepted++;
        else canaries.refused++;
      }
    }
  };
  const loops = Array.from({ length: workers }, (_, w) => worker(w));
  return {
    logins,
    canaries,
    ok: () => logins.filter((l) => l.ok).length,
    oldestPendingMs: () => {
      const now = performance.now();
      let oldest = 0;
      for (const p of pending) oldest = Math.max(oldest, now - p.since);
      return oldest;
    },
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** What a scenario measured: lost logins, logins whose first attempt failed, and the total. */
function tally(clients: Clients) {
  const lost = clients.logins.filter((l) => !l.ok);
  const retried = clients.logins.filter((l) => l.ok && l.attempts > 1);
  return { total: clients.logins.length, lost, retried };
}

/** Wait until `n` more valid logins have succeeded. */
async function moreLogins(clients: Clients, n: number, what: string): Promise<void> {
  const seen = clients.ok();
  await waitFor(() => clients.ok() >= seen + n, { timeoutMs: 30_000, what });
}

/**
 * The real apiserver and nats-server (auth timeout {@linkcode AUTH_TIMEOUT_S}), two replica
 * processes started in-cluster as the chart deploys them, both ready, and the tokens: two valid
 * ServiceAccounts and canaries (a deleted ServiceAccount's token, a respelled token, a token for
 * another audience).
 */
async function twoReplicas(natsExtra?: NatsConfig) {
  const stack = await KubeStack.start({
    authTimeoutSeconds: AUTH_TIMEOUT_S,
    waitReady: false,
    ...(natsExtra ? { natsExtra } : {}),
  });
  try {
    await stack.service.close(); // only the two processes answer
    const valid: string[] = [];
    for (const name of ["orders", "billing"]) {
      await stack.addServiceAccount("team-a", name);
      valid.push(await stack.token("team-a", name));
    }
    await stack.addServiceAccount("team-a", "gone");
    const gone = await stack.token("team-a", "gone");
    await stack.kube.deleteServiceAccount("team-a", "gone");
    const otherAudience = await stack.kube.token("team-a", "orders", { audiences: ["vault"] });
    const canaries = [gone, valid[0]! + " ", otherAudience];
    const env = { ...stack.env, LOG_LEVEL: "info" };
    const replicas = [await ReplicaProcess.spawn(env), await ReplicaProcess.spawn(env)] as const;
    try {
      await Promise.all(replicas.map((r) => r.waitReady()));
    } catch (err) {
      for (const r of replicas) await r[Symbol.asyncDispose]();
      throw err;
    }
    return { stack, valid, canaries, replicas };
  } catch (err) {
    await stack[Symbol.asyncDispose]();
    throw err;
  }
}

/** Wait until both replicas have allowed logins of the load: each takes its share. */
async function bothServing(a: ReplicaProcess, b: ReplicaProcess): Promise<void> {
  await waitFor(async () => (await a.allowed()) > 0 && (await b.allowed()) > 0, {
    timeoutMs: 20_000,
    what: "both replicas serving logins",
  });
}

function assertNoneLost(clients: Clients, scenario: string) {
  const { total, lost } = tally(clients);
  assert.equal(clients.canaries.accepted, 0, `${scenario}: canaries accepted`);
  assert.equal(lost.length, 0, `${scenario}: valid logins lost: ${JSON.stringify(lost[0])}`);
  assert.ok(total >= 20, `${scenario}: only ${total} valid logins ran`);
  assert.ok(
    clients.canaries.refused >= 3,
    `${scenario}: only ${clients.canaries.refused} canaries`,
  );
}

function report(line: string): void {
  // deno-lint-ignore no-console -- the scenario's figures, for the report (not an assertion)
  console.log(line);
}

Deno.test("fault (two replica processes): SIGKILL of a replica under load loses no valid login; logins in flight on it are retried on the survivor", async () => {
  const { stack, valid, canaries, replicas: [a, b] } = await twoReplicas();
  await using _stack = stack;
  await using _a = a;
  await using _b = b;
  const clients = startClients(stack.nats.url, valid, canaries);
  let killedAt: number;
  try {
    await bothServing(a, b);
    // A kill between two logins meets nothing in flight; to be sure it meets some, the replica
    // is stopped until a login has waited on it, then killed.
    a.kill("SIGSTOP");
    await waitFor(() => clients.oldestPendingMs() > 300, { what: "a login waiting on A" });
    a.kill("SIGKILL");
    killedAt = performance.now();
    assert.equal((await a.status).signal, "SIGKILL");
    await moreLogins(clients, 30, "logins on the survivor");
  } finally {
    await clients.stop();
  }
  assertNoneLost(clients, "replica SIGKILL");
  const { total, retried } = tally(clients);
  assert.ok(retried.length >= 1, "a login in flight on the killed replica was retried");
  // Only logins under way at the kill needed their retry.
  for (const l of retried) {
    assert.ok(l.startedAt < killedAt, `retried login started ${l.startedAt - killedAt} ms after`);
  }
  assert.ok(await b.allowed() > 0);
  report(
    `replica SIGKILL: ${total} valid logins, 0 lost, ${retried.length} needed their retry; ` +
      `${clients.canaries.refused} canaries refused, 0 accepted`,
  );
});

Deno.test("fault (two replica processes): SIGTERM of a replica under load loses no valid login, not even a first attempt: it answers the logins it has, drains and exits 0", async () => {
  const { stack, valid, canaries, replicas: [a, b] } = await twoReplicas();
  await using _stack = stack;
  await using _a = a;
  await using _b = b;
  const clients = startClients(stack.nats.url, valid, canaries);
  let stoppedMs: number;
  try {
    await bothServing(a, b);
    // As for SIGKILL, the signal must meet logins in flight: stopped until one waits on it, the
    // replica gets SIGTERM and runs on; it must answer what it has before it leaves.
    a.kill("SIGSTOP");
    await waitFor(() => clients.oldestPendingMs() > 300, { what: "a login waiting on A" });
    const before = performance.now();
    a.kill("SIGTERM");
    a.kill("SIGCONT");
    const status = await a.status;
    stoppedMs = performance.now() - before;
    assert.equal(status.code, 0, a.output.slice(-2000));
    await moreLogins(clients, 30, "logins on the survivor");
  } finally {
    await clients.stop();
  }
  assertNoneLost(clients, "replica SIGTERM");
  assert.match(a.output, /"event":"shutting_down","signal":"SIGTERM"/);
  assert.match(a.output, /"event":"stopped"/);
  const { total, retried } = tally(clients);
  assert.deepEqual(retried, [], "a login waiting on the replica at SIGTERM was not answered");
  report(
    `replica SIGTERM: ${total} valid logins, 0 lost, ${retried.length} needed their retry; ` +
      `exit 0 after ${Math.round(stoppedMs)} ms; ${clients.canaries.refused} canaries refused`,
  );
});

/**
 * The documented bound for a nats-server restart: both replicas are back in the queue group within
 * this long after nats-server accepts connections again (their reconnect backoff starts at 100 ms
 * and doubles to at most 2 s ± 20 %, then the subscription is confirmed by a round trip).
 */
const NATS_RECOVERY_BOUND_MS = 5_000;

Deno.test("fault (two replica processes): nats-server killed with SIGKILL and restarted on the same port: logins fail only until the replicas are back, within the bound", async () => {
  const { stack, valid, canaries, replicas: [a, b] } = await twoReplicas();
  await using _stack = stack;
  await using _a = a;
  await using _b = b;
  const clients = startClients(stack.nats.url, valid, canaries);
  let killedAt: number, backAt: number, rejoinedAt: number;
  try {
    await bothServing(a, b);
    killedAt = performance.now();
    await stack.nats.restart({ downMs: 1000 });
    backAt = performance.now();
    await waitFor(async () => (await a.readyz()) === 200 && (await b.readyz()) === 200, {
      timeoutMs: 20_000,
      what: "both replicas back in the queue group",
    });
    rejoinedAt = performance.now();
    await moreLogins(clients, 30, "logins after the restart");
  } finally {
    await clients.stop();
  }
  assert.equal(clients.canaries.accepted, 0, "canaries accepted");
  const { total, lost, retried } = tally(clients);
  const recoveryMs = rejoinedAt - backAt;
  assert.ok(
    recoveryMs <= NATS_RECOVERY_BOUND_MS,
    `replicas back ${
      Math.round(recoveryMs)
    } ms after nats-server (bound ${NATS_RECOVERY_BOUND_MS})`,
  );
  // Once both replicas are back, no login fails, not even a first attempt.
  const late = [...lost, ...retried].filter((l) => l.startedAt > rejoinedAt);
  assert.deepEqual(late, [], "a login started after the recovery failed");
  for (const r of [a, b]) {
    assert.match(r.output, /"event":"nats_disconnected"/);
    assert.match(r.output, /"event":"nats_reconnected"/);
  }
  const firstOk = clients.logins.filter((l) => l.ok && l.startedAt >= backAt)
    .reduce((m, l) => Math.min(m, l.endedAt), Infinity);
  report(
    `nats-server SIGKILL, down ${Math.round(backAt - killedAt)} ms: ${total} valid logins, ` +
      `${lost.length} lost (all started before the replicas were back), ${retried.length} needed ` +
      `their retry; both replicas back in the group ${Math.round(recoveryMs)} ms after ` +
      `nats-server, first login ${Math.round(firstOk - backAt)} ms after; ` +
      `${clients.canaries.refused} canaries refused, 0 accepted`,
  );
});

/** How long the frozen replica stays stopped. */
const FREEZE_MS = 4_000;
/** The documented bound: a frozen replica answers logins again within this long of SIGCONT. */
const THAW_BOUND_MS = 3_000;

Deno.test("fault (two replica processes): a replica frozen (SIGSTOP) for seconds: logins fail only during the freeze, and it serves again within the bound after SIGCONT", async () => {
  const { stack, valid, canaries, replicas: [a, b] } = await twoReplicas();
  await using _stack = stack;
  await using _a = a;
  await using _b = b;
  const clients = startClients(stack.nats.url, valid, canaries);
  let stoppedAt: number, contAt: number, resumedAt: number;
  try {
    await bothServing(a, b);
    b.kill("SIGSTOP");
    stoppedAt = performance.now();
    await delay(FREEZE_MS); // the fault's duration, not a wait for a condition
    b.kill("SIGCONT");
    contAt = performance.now();
    const before = await b.allowed();
    await waitFor(async () => (await b.allowed()) > before, {
      timeoutMs: 20_000,
      what: "the thawed replica allows logins again",
    });
    resumedAt = performance.now();
    await moreLogins(clients, 30, "logins after the freeze");
  } finally {
    await clients.stop();
  }
  assert.equal(clients.canaries.accepted, 0, "canaries accepted");
  const { total, lost, retried } = tally(clients);
  const thawMs = resumedAt - contAt;
  assert.ok(thawMs <= THAW_BOUND_MS, `served again ${Math.round(thawMs)} ms after SIGCONT`);
  // Only logins under way while the replica was frozen fail: none started after SIGCONT.
  const late = lost.filter((l) => l.startedAt > contAt);
  assert.deepEqual(late, [], "a login started after the freeze was lost");
  const during = clients.logins.filter((l) =>
    l.startedAt >= stoppedAt - AUTH_TIMEOUT_S * 1000 && l.startedAt <= contAt
  );
  assert.ok(lost.length <= during.length);
  // What it received while frozen is within the clock tolerance (60 s past exp, issue 17 §1):
  // answered on waking, too late to matter; only a freeze past the tolerance leaves drops.
  const expired = b.logs.filter((l) =>
    l.event === "request_dropped" && l.reason === "request_expired"
  );
  report(
    `frozen replica, ${FREEZE_MS} ms: ${total} valid logins, ${lost.length} lost of ` +
      `${during.length} under way during the freeze, ${retried.length} needed their retry ` +
      `(${retried.filter((l) => l.startedAt > contAt).length} started after SIGCONT); serving ` +
      `again ${Math.round(thawMs)} ms after SIGCONT; ${expired.length} requests found expired on ` +
      `waking; ${clients.canaries.refused} canaries refused, 0 accepted`,
  );
});

Deno.test("fault (two replica processes): with ping_interval 1s and ping_max 2, nats-server drops a frozen replica within seconds; later logins all land on the other one", async () => {
  const { stack, valid, canaries, replicas: [a, b] } = await twoReplicas({
    ping_interval: "1s",
    ping_max: 2,
  });
  await using _stack = stack;
  await using _a = a;
  await using _b = b;
  // Dropped after ping_max unanswered PINGs, one per ping_interval: ~3 s; 5 s leaves a margin.
  const dropBoundMs = 5_000;
  const clients = startClients(stack.nats.url, valid, canaries);
  let stoppedAt: number, contAt: number, rejoinedMs: number;
  try {
    await bothServing(a, b);
    b.kill("SIGSTOP");
    stoppedAt = performance.now();
    await delay(dropBoundMs + 3_000); // the fault's duration, not a wait for a condition
    b.kill("SIGCONT");
    contAt = performance.now();
    const before = await b.allowed();
    await waitFor(async () => (await b.allowed()) > before, {
      timeoutMs: 20_000,
      what: "the thawed replica reconnects and allows logins again",
    });
    rejoinedMs = performance.now() - contAt;
    await moreLogins(clients, 20, "logins after the freeze");
  } finally {
    await clients.stop();
  }
  assert.equal(clients.canaries.accepted, 0, "canaries accepted");
  const { total, lost, retried } = tally(clients);
  // Once nats-server has dropped the frozen replica, no attempt waits on it: not even a first one fails.
  const late = [...lost, ...retried].filter((l) => l.startedAt > stoppedAt + dropBoundMs);
  assert.deepEqual(late, [], "a login started after the drop bound failed");
  assert.match(b.output, /"event":"nats_reconnected"/);
  report(
    `frozen replica, ping_interval 1s × ping_max 2, ${Math.round(contAt - stoppedAt)} ms: ` +
      `${total} valid logins, ${lost.length} lost, ${retried.length} needed their retry, none ` +
      `started more than ${dropBoundMs} ms into the freeze; back in the group ` +
      `${Math.round(rejoinedMs)} ms after SIGCONT; ${clients.canaries.refused} canaries refused`,
  );
});
