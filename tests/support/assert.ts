/**
 * The two assertion helpers several test modules need beyond `node:assert/strict`.
 *
 * @module
 */
import assert from "node:assert/strict";

/** `assert.deepStrictEqual` that narrows `actual` (works with either shape of node's typings). */
export function assertEquals<T>(
  actual: unknown,
  expected: T,
  message?: string,
): asserts actual is T {
  if (message === undefined) assert.deepStrictEqual(actual, expected);
  else assert.deepStrictEqual(actual, expected, message);
}

/** The rejection of `promise`; fails when it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  assert.fail("expected a rejection");
}
