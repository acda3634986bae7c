/**
 * The parts the reflector loop (lib/cache/reflector.ts) ties together, each on its own: the watch
 * stream's events and their effect on the index (lib/cache/reflector_watch.ts), why a watch ended,
 * and the retry delay (lib/cache/reflector_health.ts). The loop itself, against the in-process and
 * the real apiserver, is tested in tests/cache/pods_test.ts, serviceaccounts_test.ts and
 * pods_kube_test.ts.
 *
 * @module
 */
import assert from "node:assert/strict";
import { assertEquals } from "../support/assert.ts";
import { RecordIndex } from "../../lib/cache/record_index.ts";
import { backoffDelay } from "../../lib/cache/reflector_health.ts";
import {
  applyWatchEvent,
  openedWatch,
  type WatchEvent,
  watchEvents,
  watchPath,
  WatchRequest,
} from "../../lib/cache/reflector_watch.ts";

type Rec = { namespace: string; name: string; uid: string };

function toRecord(object: unknown, intern: (ns: string) => string): Rec | undefined {
  const md = (object as { metadata?: Partial<Rec> } | undefined)?.metadata;
  if (!md?.namespace || !md.name || !md.uid) return undefined;
  return { namespace: intern(md.namespace), name: md.name, uid: md.uid };
}

function stream(...chunks: string[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return ReadableStream.from(chunks.map((c) => encoder.encode(c)));
}

Deno.test("watch events: lines split across chunks are joined; blank and unparsable lines are skipped", async () => {
  const events: WatchEvent[] = [];
  for await (
    const event of watchEvents(
      stream('{"type":"ADD', 'ED"}\n\n', "not json\n", '{"type":"BOOKMARK"}'),
    )
  ) {
    events.push(event);
  }
  assertEquals(events, [{ type: "ADDED" }, { type: "BOOKMARK" }]);
});

Deno.test("a watch event sets, deletes, moves the resourceVersion on, or ends the watch", () => {
  const index = new RecordIndex<Rec>();
  const object = { metadata: { namespace: "a", name: "b", uid: "u1", resourceVersion: "5" } };
  assertEquals(applyWatchEvent({ type: "ADDED", object }, index, toRecord), {
    kind: "applied",
    resourceVersion: "5",
  });
  assert.equal(index.get("a", "b")?.uid, "u1");
  applyWatchEvent({ type: "DELETED", object }, index, toRecord);
  assert.equal(index.size, 0);
  const bookmark = { type: "BOOKMARK", object: { metadata: { resourceVersion: "9" } } };
  assertEquals(applyWatchEvent(bookmark, index, toRecord), {
    kind: "applied",
    resourceVersion: "9",
  });
  assertEquals(applyWatchEvent({ type: "SOMETHING" }, index, toRecord), { kind: "skipped" });
  assertEquals(applyWatchEvent({ type: "ERROR", object: { code: 410 } }, index, toRecord), {
    kind: "gone",
  });
  const failed = applyWatchEvent(
    { type: "ERROR", object: { code: 500, message: "boom" } },
    index,
    toRecord,
  );
  assert.equal(failed.kind, "error");
});

Deno.test("a watch response: 410 is gone, another status an error, 200 a stream", async () => {
  assertEquals(await openedWatch(new Response("{}", { status: 410 })), { kind: "gone" });
  const refused = await openedWatch(new Response('{"message":"no"}', { status: 403 }));
  assert.equal(refused.kind, "error");
  const open = await openedWatch(new Response(stream("")));
  assert.equal(open.kind, "open");
  assert.match(watchPath("/api/v1/pods", undefined, 300), /^\/api\/v1\/pods\?watch=true&/);
});

Deno.test("a watch request ends as stopped or relist when one of those cut it", () => {
  const stop = new AbortController();
  {
    using request = new WatchRequest(stop.signal, { relistInMs: 60_000, deadlineMs: 60_000 });
    assertEquals(request.ended({ kind: "gone" }), { kind: "gone" });
    request.endForRelist();
    assert.ok(request.signal.aborted);
    assertEquals(request.ended({ kind: "gone" }), { kind: "relist" });
  }
  stop.abort();
  using stopped = new WatchRequest(stop.signal, { relistInMs: 60_000, deadlineMs: 60_000 });
  assert.ok(stopped.signal.aborted);
  assertEquals(stopped.ended({ kind: "relist" }), { kind: "stopped" });
});

Deno.test("backoff grows from initialMs, is capped tighter before the first sync, and jitters", () => {
  const backoff = { initialMs: 500, maxMs: 30_000, firstSyncMaxMs: 2_000 };
  const at = (failures: number, synced: boolean, random: number) =>
    backoffDelay(backoff, { failures, synced, random: () => random });
  assert.equal(at(0, true, 1), 500);
  assert.equal(at(3, true, 1), 4_000);
  assert.equal(at(3, false, 1), 2_000);
  assert.equal(at(100, true, 1), 30_000);
  assert.equal(at(100, true, 0), 15_000);
});
