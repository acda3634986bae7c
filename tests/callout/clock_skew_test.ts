/**
 * lib/callout/clock_skew.ts: the expired streak behind the "clock" readiness check (issue 17, F3),
 * on an injected monotonic clock. tests/service/clock_skew_test.ts shows it against nats-server.
 */
import assert from "node:assert/strict";
import { createExpiredStreak } from "../../lib/callout/clock_skew.ts";

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
