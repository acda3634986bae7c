/**
 * Issue 18, found by trying to break it: races of the change-driven revocation check, against a real nats-server.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createLogger } from "../../lib/telemetry/log.ts";
import type { Permissions, ServiceAccountRecord } from "../../lib/core/model.ts";
import { type ApprovedConnection, startRevocation } from "../../lib/nats/revocation.ts";
import { createServiceMetrics } from "../../lib/telemetry/service_metrics.ts";
import { createChangeFeed } from "../../lib/core/changes.ts";
import { droppable, revocationServer } from "../support/revocation.ts";

const PERMS: Permissions = {
  pub: { allow: ["a.>"] },
  sub: { allow: [] },
  resp: { max: 1, ttlNs: 0 },
};
const NARROW: Permissions = { pub: { allow: [] }, sub: { allow: [] }, resp: { max: 1, ttlNs: 0 } };
const SA: ServiceAccountRecord = {
  namespace: "team-a",
  name: "orders",
  uid: "uid-1",
  annotations: {},
};
const approved = (o: Partial<ApprovedConnection>): ApprovedConnection => ({
  serverId: "N",
  cid: 1,
  namespace: "team-a",
  serviceAccount: "orders",
  uid: "uid-1",
  permissions: PERMS,
  expiresAt: 2_000_000_000,
  ...o,
});

Deno.test("a connection approved with key k1, remembered after the key set dropped k1 and the check refreshed, is kicked", async () => {
  await using server = await revocationServer();
  const { sys } = server;
  const client = await server.client();
  const keySet = droppable(["k1", "k2"]);
  const revocation = startRevocation({
    system: sys,
    lookups: () => ({ serviceAccount: () => SA, permissionsOf: () => PERMS }),
    canDecide: () => true,
    keys: keySet.keys,
    logger: createLogger({ level: "error", write: () => {} }),
    metrics: createServiceMetrics(),
    tickMs: 20,
    adoptExisting: false,
    changes: { serviceAccounts: createChangeFeed() },
  });
  try {
    // The login verified its token with k1 ... then, before its approval is remembered (it is
    // still awaiting, e.g. the first login of a namespace provisioning its account), k1 leaves
    // the key set and a check refreshes key presence over the kids remembered so far.
    await new Promise((r) => setTimeout(r, 100)); // the system connection is taken, ticks run
    keySet.drop("k1");
    await revocation.check();
    revocation.remember(
      approved({
        serverId: client.info!.server_id,
        cid: client.info!.client_id,
        kid: "k1",
        alg: "RS256",
      }),
    );
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(
      client.isClosed(),
      "connection whose token was signed by a removed key is still open",
    );
  } finally {
    await revocation.close();
    await client.close().catch(() => {});
    await sys.close();
  }
});

Deno.test("a check that fails after taking its candidates does not lose them", async () => {
  await using server = await revocationServer();
  const { sys } = server;
  const client = await server.client();
  const feed = createChangeFeed();
  let deleted = false;
  let failOnce = false;
  const revocation = startRevocation({
    system: sys,
    lookups: () => {
      if (failOnce) {
        failOnce = false;
        throw new Error("transient lookup failure");
      }
      return { serviceAccount: () => (deleted ? undefined : SA), permissionsOf: () => PERMS };
    },
    canDecide: () => true,
    logger: createLogger({ level: "error", write: () => {} }),
    metrics: createServiceMetrics(),
    tickMs: 20,
    adoptExisting: false,
    changes: { serviceAccounts: feed },
  });
  try {
    await new Promise((r) => setTimeout(r, 100));
    revocation.remember(
      approved({ serverId: client.info!.server_id, cid: client.info!.client_id }),
    );
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(client.isClosed(), false);
    deleted = true;
    failOnce = true;
    feed.emit({ namespace: "team-a", name: "orders" });
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(client.isClosed(), "the deletion's mark was lost with the failed check");
  } finally {
    await revocation.close();
    await client.close().catch(() => {});
    await sys.close();
  }
});
void NARROW;
