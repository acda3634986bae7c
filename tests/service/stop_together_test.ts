/**
 * lib/service/stop_together.ts: members stop at the same time, all of them even when one fails,
 * and nothing joins a group that has stopped.
 */
import assert from "node:assert/strict";
import { StopTogether } from "../../lib/service/stop_together.ts";

Deno.test("members stop in parallel: the group takes as long as its slowest member", async () => {
  const group = new StopTogether();
  const started: string[] = [];
  const release = Promise.withResolvers<void>();
  for (const name of ["a", "b", "c"]) {
    group.defer(async () => {
      started.push(name);
      await release.promise;
    });
  }
  const stopping = group[Symbol.asyncDispose]();
  assert.deepEqual(started, ["a", "b", "c"], "every member began before any finished");
  assert.equal(group.disposed, true);
  release.resolve();
  await stopping;
});

Deno.test("a failing member does not keep the others from stopping; its error follows", async () => {
  const group = new StopTogether();
  let stopped = 0;
  group.defer(() => {
    throw new Error("first");
  });
  group.use({ [Symbol.asyncDispose]: () => Promise.resolve(void stopped++) });
  await assert.rejects(group[Symbol.asyncDispose](), /first/);
  assert.equal(stopped, 1);

  const two = new StopTogether();
  two.defer(() => Promise.reject(new Error("x")));
  two.defer(() => Promise.reject(new Error("y")));
  const err = await two[Symbol.asyncDispose]().catch((e) => e);
  assert.ok(err instanceof AggregateError);
  assert.deepEqual(err.errors.map((e: Error) => e.message), ["x", "y"]);
});

Deno.test("disposal is idempotent, and a stopped group refuses new members", async () => {
  const group = new StopTogether();
  let stops = 0;
  group.defer(() => void stops++);
  await Promise.all([group[Symbol.asyncDispose](), group[Symbol.asyncDispose]()]);
  assert.equal(stops, 1);
  assert.throws(() => group.defer(() => {}), ReferenceError);
});

Deno.test("on an AsyncDisposableStack, the group is released in the stack's order", async () => {
  const order: string[] = [];
  {
    await using stack = new AsyncDisposableStack();
    stack.defer(() => void order.push("first registered"));
    const group = stack.use(new StopTogether());
    group.defer(() => void order.push("group member"));
    stack.defer(() => void order.push("last registered"));
  }
  assert.deepEqual(order, ["last registered", "group member", "first registered"]);
});
