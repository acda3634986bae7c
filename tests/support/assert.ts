/**
 * The assertion helpers several test modules need beyond `node:assert/strict`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { AuthError } from "../../lib/core/errors.ts";

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

/** The {@linkcode AuthError} `promise` rejects with; fails on a resolve or any other error. */
export async function authError(promise: Promise<unknown>): Promise<AuthError> {
  const err = await rejection(promise);
  assert.ok(err instanceof AuthError, `expected an AuthError, got ${String(err)}`);
  return err;
}
