/**
 * lib/nats/server_refusals.ts without a server: what an auth error event is, which approvals it
 * matches (same server and cid, within the memory), and the bounded reasons. The real events are
 * in tests/service/server_refusals_test.ts.
 */
import assert from "node:assert/strict";
import type { CalloutRequest } from "../../lib/callout/handler.ts";
import {
  APPROVAL_MEMORY_MS,
  createServerRefusals,
  parseAuthErrorEvent,
  refusalKind,
} from "../../lib/nats/server_refusals.ts";
import { createLogger } from "../../lib/telemetry/log.ts";
import { createServiceMetrics } from "../../lib/telemetry/service_metrics.ts";

const te = new TextEncoder();

function request(serverId: string, cid?: number): CalloutRequest {
  return {
    serverId,
    serverName: "n1",
    userNkey: "U",
    clientInfo: cid === undefined ? {} : { id: cid },
    connectOpts: {},
    encrypted: false,
  };
}

const GRANT = {
  name: "system:serviceaccount:team-a:orders",
  permissions: { pub: { allow: [] }, sub: { allow: [] }, resp: { max: 1, ttlNs: 0 } },
  expiresAt: 0,
};

Deno.test("parseAuthErrorEvent reads server id, cid and reason, and nothing from junk", () => {
  const event = {
    type: "io.nats.server.advisory.v1.client_disconnect",
    server: { name: "n2", id: "NSERVER" },
    client: { id: 7, acc: "AUTH" },
    reason: "Could not register auth callout user: maximum account active connections exceeded",
  };
  assert.deepEqual(parseAuthErrorEvent(te.encode(JSON.stringify(event))), {
    serverId: "NSERVER",
    serverName: "n2",
    cid: 7,
    reason: event.reason,
  });
  for (
    const junk of [
      "",
      "{",
      "[]",
      "null",
      '{"server":{"id":1},"client":{"id":7}}',
      '{"server":{"id":"N"},"client":{"id":1.5}}',
    ]
  ) {
    assert.equal(parseAuthErrorEvent(te.encode(junk)), undefined, junk);
  }
});

Deno.test("an approval is matched by server and cid once, within the memory; others and old ones are not", () => {
  let now = 1_000_000;
  const lines: Record<string, unknown>[] = [];
  const metrics = createServiceMetrics();
  const refusals = createServerRefusals({
    logger: createLogger({ level: "debug", write: (l) => lines.push(JSON.parse(l)) }),
    metrics,
    now: () => now,
  });
  refusals.allowed(request("NA", 1), GRANT, { namespace: "team-a", serviceaccount: "orders" });
  refusals.allowed(request("NA", 2), GRANT, {});
  refusals.allowed(request("NA"), GRANT, {}); // no cid: cannot be matched, not kept
  assert.equal(refusals.size, 2);
  const full = "Could not register auth callout user: maximum account active connections exceeded";
  assert.equal(refusals.refused({ serverId: "NB", serverName: "", cid: 1, reason: full }), false);
  assert.equal(refusals.refused({ serverId: "NA", serverName: "n1", cid: 1, reason: full }), true);
  assert.equal(refusals.refused({ serverId: "NA", serverName: "n1", cid: 1, reason: full }), false);
  assert.equal(metrics.refusedByServer.value({ reason: "account_connections_exceeded" }), 1);
  const [line] = lines;
  assert.equal(line!.event, "login_refused_by_server");
  assert.equal(line!.namespace, "team-a");
  assert.equal(line!.user, GRANT.name);
  now += APPROVAL_MEMORY_MS + 1;
  assert.equal(refusals.refused({ serverId: "NA", serverName: "n1", cid: 2, reason: "" }), false);
  assert.equal(refusals.size, 0);
});

Deno.test("refusalKind keeps the metric label bounded", () => {
  assert.equal(refusalKind("Error validating user JWT: claim is expired"), "user_jwt_invalid");
  assert.equal(refusalKind("Auth callout signing key is unknown"), "response_rejected");
  assert.equal(refusalKind(""), "other");
  assert.equal(refusalKind("something new in 2.16"), "other");
});
