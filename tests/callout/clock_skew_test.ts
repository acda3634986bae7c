/**
 * lib/callout/clock_skew.ts: the expired streak behind the "clock" readiness check (issue 17, F3),
 * on an injected monotonic clock, and the skew watch (F2: the least reading of a window per
 * server, a warning only when a skew persists, re-armed, the gauge labelled by server). tests/service/clock_skew_test.ts shows it against nats-server.
 */
import assert from "node:assert/strict";
import { createClockSkewWatch, createExpiredStreak } from "../../lib/callout/clock_skew.ts";
import { createLogger } from "../../lib/telemetry/log.ts";
import { createServiceMetrics } from "../../lib/telemetry/service_metrics.ts";

Deno.test("expired streak: out after the limit in a row, a passing request ends it, a trial is due after retryMs and one more expiry sends the replica out again", () => {
  let t = 0;
  const streak = createExpiredStreak({ limit: 3, retryMs: 30_000, monotonicNow: () => t });
  streak.expired(90);
  streak.expired(90);
  assert.equal(streak.ready(), true, "two in a row are a backlog, not a clock");
  streak.passed();
  streak.expired(90);
  streak.expired(90);
  assert.equal(streak.ready(), true, "a passing request reset the streak");
  streak.expired(90.2);
  assert.equal(streak.ready(), false);
  assert.equal(streak.details().expired_in_a_row, 3);
  assert.equal(streak.details().skew_seconds, 90.2);
  assert.match(String(streak.details().reason), /latest 3 requests were all expired past the 60s/);
  assert.match(String(streak.details().reason), /trying again 30s from now/);

  t += 30_000; // the trial: back in the queue group
  assert.equal(streak.ready(), true);
  streak.expired(90);
  assert.equal(streak.ready(), false, "still ahead: out again after one more");
  t += 30_000;
  streak.passed(); // the clock was fixed: stays in
  assert.equal(streak.ready(), true);
  assert.deepEqual(streak.details(), { expired_in_a_row: 0 });
});

Deno.test("expired streak: a limit below 1 or a negative retry is a RangeError", () => {
  assert.throws(() => createExpiredStreak({ limit: 0 }), RangeError);
  assert.throws(() => createExpiredStreak({ retryMs: -1 }), RangeError);
});

/** A watch on recorded lines, and a reading maker: `skew` seconds read at `atMs` of our clock. */
function watchOf(options: { warnAboveSec?: number } = {}) {
  const metrics = createServiceMetrics();
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ level: "debug", write: (l) => lines.push(JSON.parse(l)) });
  const watch = createClockSkewWatch({ logger, metrics, ...options });
  const read = (atMs: number, skew: number, serverName = "n1") =>
    // iat + 0.5 is the server's clock estimate: choose iat so that the reading is `skew`.
    watch({
      serverId: `N-${serverName}`,
      serverName,
      issuedAt: atMs / 1000 - skew - 0.5,
      checkedAt: atMs,
    });
  const warnings = () => lines.filter((l) => l.event === "server_clock_skew");
  return { metrics, read, warnings };
}

Deno.test("clock skew watch: a stalled replica's backlog (the breaker's 8 s SIGSTOP, read at +7.6 s in one burst) warns of nothing, the gauge keeps the least reading", () => {
  const { metrics, read, warnings } = watchOf();
  for (let t = 0; t <= 4_000; t += 500) read(t, 0.2);
  // Stopped 8 s; on waking the backlog is read within 50 ms, then fresh requests come.
  for (let t = 12_000; t < 12_050; t += 10) read(t, 7.6);
  assert.equal(metrics.serverClockSkew.value({ server: "n1" }), 0.2, "the window's least");
  read(12_100, 0.2);
  read(13_500, 0.2);
  assert.deepEqual(warnings(), []);
  // With nothing in the window before it, the burst alone still warns of nothing.
  const quiet = watchOf();
  for (let t = 100_000; t < 100_300; t += 10) quiet.read(t, 7.6);
  quiet.read(100_400, 0.1);
  quiet.read(102_000, 0.1);
  assert.deepEqual(quiet.warnings(), []);
});

Deno.test("clock skew watch: a real skew warns once it persists 1 s, once per run; it re-arms after falling below half the threshold, so a later skew is warned about", () => {
  const { metrics, read, warnings } = watchOf();
  read(0, 5);
  read(500, 5);
  assert.deepEqual(warnings(), [], "not yet 1 s apart");
  read(1_000, 5);
  read(3_000, 5);
  assert.equal(warnings().length, 1);
  assert.equal(warnings()[0]!.skew_seconds, 5);
  assert.match(String(warnings()[0]!.message), /5s ahead of nats-server n1's/);
  assert.match(String(warnings()[0]!.message), /behind by more than 60s, fresh tokens are refused/);
  // Fixed (NTP): the least reading falls to 0.3 at once, which re-arms the warning.
  read(4_000, 0.3);
  assert.equal(metrics.serverClockSkew.value({ server: "n1" }), 0.3);
  // Skewed again, the other way, later: warned about again once it persists.
  for (let t = 20_000; t <= 21_000; t += 500) read(t, -8);
  assert.equal(warnings().length, 2);
  assert.match(String(warnings()[1]!.message), /8s behind nats-server n1's/);
  // Between half the threshold and the threshold: no new run, no re-arm.
  read(40_000, 1.5);
  for (let t = 50_001; t <= 52_000; t += 500) read(t, 6);
  assert.equal(warnings().length, 2, "1.5 s did not re-arm the warning");
});

Deno.test("clock skew watch: the gauge is labelled by server name, one series per server", () => {
  const { metrics, read } = watchOf();
  read(0, 0.4, "n1");
  read(0, -3, "n2");
  assert.equal(metrics.serverClockSkew.value({ server: "n1" }), 0.4);
  assert.equal(metrics.serverClockSkew.value({ server: "n2" }), -3);
  assert.match(
    metrics.registry.render(),
    /^nats_auth_server_clock_skew_seconds\{server="n2"\} -3$/m,
  );
});
