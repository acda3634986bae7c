/**
 * The retry timing of the key sets' cache (lib/tokens/key_cache.ts) on its own; the cache's
 * behaviour (cool-down, refresh on an unknown `kid`, keeping the last good set) is tested through
 * the key sets in tests/tokens/jwks_test.ts.
 *
 * @module
 */
import assert from "node:assert/strict";
import { nextLoadDelay } from "../../lib/tokens/key_cache.ts";

Deno.test("the next load: the refresh interval while loads succeed, else retryMs doubling to its cap", () => {
  const timings = { refreshIntervalMs: 3_600_000, retryMs: 1_000 };
  assert.equal(nextLoadDelay(0, true, timings), 3_600_000);
  assert.equal(nextLoadDelay(1, true, timings), 1_000);
  assert.equal(nextLoadDelay(4, true, timings), 8_000);
  assert.equal(nextLoadDelay(20, true, timings), 60_000);
  assert.equal(nextLoadDelay(20, false, timings), 2_000);
  assert.equal(nextLoadDelay(20, true, { refreshIntervalMs: 30_000, retryMs: 1_000 }), 30_000);
});
