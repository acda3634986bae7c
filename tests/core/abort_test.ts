import assert from "node:assert/strict";
import { abortable, delay } from "../../lib/core/abort.ts";

Deno.test("delay ends early when the signal aborts and leaves no timer behind", async () => {
  const stop = new AbortController();
  const waiting = delay(60_000, stop.signal);
  stop.abort();
  await waiting; // the test sanitizer fails if the 60 s timer were still pending
  await delay(60_000, stop.signal); // already aborted: immediate
  await delay(1);
});

Deno.test("abortable rejects with the abort reason, otherwise settles like the promise", async () => {
  const stop = new AbortController();
  const never = new Promise<void>(() => {});
  const waiting = abortable(never, stop.signal);
  stop.abort(new Error("shutting down"));
  await assert.rejects(waiting, /shutting down/);
  await assert.rejects(abortable(Promise.resolve(1), stop.signal), /shutting down/);
  assert.equal(await abortable(Promise.resolve(2), new AbortController().signal), 2);
  await assert.rejects(
    abortable(Promise.reject(new Error("own")), new AbortController().signal),
    /own/,
  );
  assert.equal(await abortable(Promise.resolve(3)), 3);
});
