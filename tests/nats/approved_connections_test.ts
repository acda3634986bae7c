/**
 * The indexed set of approved connections (issue 18): a check gets exactly the connections a
 * change touches — by ServiceAccount, Pod, Namespace or key — every new approval once, everything
 * after "everything changed", a failed kick again; and expiry forgets by the second, without a
 * walk.
 */
import assert from "node:assert/strict";
import { createApprovedConnections } from "../../lib/nats/approved_connections.ts";
import type { ApprovedConnection } from "../../lib/nats/revocation.ts";
import type { Permissions } from "../../lib/core/model.ts";
import { createServiceMetrics } from "../../lib/telemetry/service_metrics.ts";

const PERMS: Permissions = {
  pub: { allow: ["a.>"] },
  sub: { allow: [] },
  resp: { max: 1, ttlNs: 0 },
};

function conn(cid: number, overrides: Partial<ApprovedConnection> = {}): ApprovedConnection {
  return {
    serverId: "N1",
    cid,
    namespace: "team-a",
    serviceAccount: "orders",
    uid: "u1",
    permissions: PERMS,
    expiresAt: 2_000_000_000,
    ...overrides,
  };
}

const cids = (list: readonly ApprovedConnection[]) => list.map((c) => c.cid).sort((a, b) => a - b);

/** 1,000 connections over 10 ServiceAccounts in 2 namespaces, each bound to its own Pod. */
function populated() {
  const metrics = createServiceMetrics();
  const live = createApprovedConnections(metrics);
  for (let cid = 0; cid < 1000; cid++) {
    live.remember(conn(cid, {
      namespace: cid % 2 ? "team-b" : "team-a",
      serviceAccount: `sa-${cid % 10}`,
      podName: `pod-${cid}`,
      kid: cid < 10 ? "old-key" : "key",
      alg: "RS256",
    }));
  }
  return { live, metrics };
}

Deno.test("every new approval is a candidate once; without changes there is nothing to check", () => {
  const { live, metrics } = populated();
  assert.equal(live.pending, true);
  assert.equal(live.takeCandidates().length, 1000);
  assert.equal(live.pending, false);
  assert.deepEqual(live.takeCandidates(), []);
  assert.equal(metrics.liveConnections.value(), 1000);
});

Deno.test("a ServiceAccount, Pod, Namespace or key change touches only its connections", () => {
  const { live } = populated();
  live.takeCandidates();

  live.serviceAccountChanged("team-b", "sa-3");
  assert.equal(live.takeCandidates().length, 100);
  live.serviceAccountChanged("team-a", "sa-3"); // no connection of that name in team-a
  live.serviceAccountChanged("team-z", "nobody");
  assert.equal(live.pending, false);

  live.podChanged("team-b", "pod-7");
  live.podChanged("team-a", "pod-7"); // pod-7's connection is in team-b
  assert.deepEqual(cids(live.takeCandidates()), [7]);

  live.namespaceChanged("team-a"); // sa-0, sa-2, … sa-8: every connection in team-a
  const inTeamA = live.takeCandidates();
  assert.equal(inTeamA.length, 500);
  assert.ok(inTeamA.every((c) => c.namespace === "team-a"));

  live.keyChanged("old-key");
  assert.deepEqual(cids(live.takeCandidates()), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual([...live.kids()], [["old-key", "RS256"], ["key", "RS256"]]);

  // Several marks: each connection once.
  live.serviceAccountChanged("team-b", "sa-3");
  live.podChanged("team-b", "pod-3");
  live.keyChanged("old-key");
  assert.equal(live.takeCandidates().length, 100 + 9);

  live.everythingChanged();
  assert.equal(live.takeCandidates().length, 1000);
});

Deno.test("forgotten connections leave every index; a replaced one is indexed anew", () => {
  const { live, metrics } = populated();
  live.takeCandidates();
  for (let cid = 0; cid < 1000; cid += 2) live.forget("N1", cid);
  assert.equal(live.size, 500);
  assert.equal(metrics.liveConnections.value(), 500);
  live.namespaceChanged("team-a");
  live.podChanged("team-a", "pod-0");
  assert.equal(live.pending, false, "team-a has no connection left");
  live.keyChanged("old-key");
  assert.deepEqual(cids(live.takeCandidates()), [1, 3, 5, 7, 9]);

  // The same server and cid approved again (a new login) replaces the entry and its indexes.
  live.remember(conn(1, { namespace: "team-c", serviceAccount: "web" }));
  live.takeCandidates();
  live.serviceAccountChanged("team-b", "sa-1");
  assert.deepEqual(
    cids(live.takeCandidates()),
    [11, 21, 31, 41, 51, 61, 71, 81, 91].concat(
      Array.from({ length: 90 }, (_, i) => 101 + i * 10),
    ),
  );
  live.serviceAccountChanged("team-c", "web");
  assert.deepEqual(cids(live.takeCandidates()), [1]);
  assert.equal(live.size, 500);
  // A connection forgotten after being marked is not handed over.
  live.serviceAccountChanged("team-c", "web");
  live.forget("N1", 1);
  assert.deepEqual(live.takeCandidates(), []);
});

Deno.test("a failed kick is a candidate again, unless the connection was forgotten or replaced", () => {
  const { live } = populated();
  const [first, second] = live.takeCandidates();
  live.retry(first!);
  assert.deepEqual(cids(live.takeCandidates()), [first!.cid]);
  live.forget(second!.serverId, second!.cid);
  live.retry(second!);
  assert.equal(live.pending, false);
});

Deno.test("expiry forgets by the second its user JWT expires, also after a jump of the clock", () => {
  const metrics = createServiceMetrics();
  const live = createApprovedConnections(metrics);
  for (let cid = 0; cid < 100; cid++) live.remember(conn(cid, { expiresAt: 1000 + cid + 0.5 }));
  live.forgetExpired(999);
  assert.equal(live.size, 100);
  live.forgetExpired(1009.9);
  assert.equal(live.size, 90, "expiresAt 1000.5 … 1009.5 are gone at 1009.9");
  assert.equal(live.has("N1", 9), false);
  assert.equal(live.has("N1", 10), true);
  live.forgetExpired(1009);
  assert.equal(live.size, 90, "a clock that goes back forgets nothing more");
  live.forgetExpired(5000);
  assert.equal(live.size, 0);
  assert.equal(metrics.liveConnections.value(), 0);
});
