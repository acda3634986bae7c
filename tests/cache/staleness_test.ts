/**
 * How stale the ServiceAccount cache is, and the readiness bound on it (issue 10, defects 6 and 7):
 * `/readyz` details, `sa_cache_staleness_seconds`, `CACHE_MAX_STALENESS`.
 */
import assert from "node:assert/strict";
import { createAccount } from "@nats-io/nkeys";
import { loadConfig } from "../../lib/config/config.ts";
import { createHttpHandler } from "../../lib/operations/http.ts";
import type { ServiceAccountSource } from "../../lib/core/model.ts";
import { serviceAccountsCheck } from "../../lib/service/service.ts";
import { createServiceMetrics } from "../../lib/telemetry/service_metrics.ts";

function source(state: { synced: boolean; freshAt?: number }): ServiceAccountSource {
  return {
    lookup: () => undefined,
    get synced() {
      return state.synced;
    },
    size: 0,
    get freshAt() {
      return state.freshAt;
    },
    waitSynced: () => Promise.resolve(),
    resync: () => {},
    close: () => Promise.resolve(),
    [Symbol.asyncDispose]: () => Promise.resolve(),
  } as ServiceAccountSource;
}

async function readyz(check: ReturnType<typeof serviceAccountsCheck>) {
  const metrics = createServiceMetrics();
  const handler = createHttpHandler({ checks: [check], registry: metrics.registry });
  const res = await handler(new Request("http://localhost/readyz"));
  return { status: res.status, body: await res.json() };
}

Deno.test("readyz says how stale the cache is, ready or not", async () => {
  const state = { synced: true, freshAt: Date.now() - 4_000 };
  const ok = await readyz(serviceAccountsCheck(source(state), undefined));
  assert.equal(ok.status, 200);
  assert.equal(ok.body.status, "ready");
  const details = ok.body.checks.serviceaccounts;
  assert.equal(details.synced, true);
  assert.ok(
    details.staleness_seconds >= 4 && details.staleness_seconds < 60,
    JSON.stringify(details),
  );
  assert.equal(details.reason, undefined);

  const notSynced = await readyz(serviceAccountsCheck(source({ synced: false }), undefined));
  assert.equal(notSynced.status, 503);
  assert.deepEqual(notSynced.body.failing, ["serviceaccounts"]);
  assert.match(notSynced.body.checks.serviceaccounts.reason, /first list/);
});

Deno.test("past CACHE_MAX_STALENESS the serviceaccounts check fails and says why; it heals when fresh (issue 10, defect 7)", async () => {
  const state = { synced: true, freshAt: Date.now() - 90_000 };
  const check = serviceAccountsCheck(source(state), 60_000);
  const stale = await readyz(check);
  assert.equal(stale.status, 503);
  assert.deepEqual(stale.body.failing, ["serviceaccounts"]);
  const d = stale.body.checks.serviceaccounts;
  assert.equal(d.max_staleness_seconds, 60);
  assert.ok(d.staleness_seconds >= 90);
  assert.match(
    d.reason,
    /no answer from the apiserver for \d+(\.\d)?s, more than CACHE_MAX_STALENESS \(1m\)/,
  );
  state.freshAt = Date.now();
  const fresh = await readyz(check);
  assert.equal(fresh.status, 200);
  // Without a bound, staleness alone never fails readiness.
  state.freshAt = Date.now() - 10 * 3_600_000;
  assert.equal((await readyz(serviceAccountsCheck(source(state), undefined))).status, 200);
  // A file source is always current.
  assert.equal(serviceAccountsCheck(source({ synced: true }), 10_000).ready(), true);
});

Deno.test("sa_cache_staleness_seconds reads the probe at scrape time", () => {
  const metrics = createServiceMetrics();
  assert.match(metrics.registry.render(), /^sa_cache_staleness_seconds 0$/m);
  let s = 12.5;
  metrics.trackStaleness(() => s);
  assert.match(metrics.registry.render(), /^sa_cache_staleness_seconds 12\.5$/m);
  s = 3;
  assert.equal(metrics.cacheStaleness.value(), 3);
});

Deno.test("CACHE_MAX_STALENESS: off by default and for 0, a duration of at least 10s otherwise", () => {
  const base = { NATS_ACCOUNT: "APP", NATS_SIGNING_KEY_FILE: "/k" };
  const freshSeed = new TextDecoder().decode(createAccount().getSeed());
  const load = (v: string | undefined) =>
    loadConfig({ ...base, ...(v === undefined ? {} : { CACHE_MAX_STALENESS: v }) }, {
      readTextFile: () => freshSeed,
    });
  assert.equal(load(undefined).cacheMaxStalenessMs, undefined);
  assert.equal(load("0").cacheMaxStalenessMs, undefined);
  assert.equal(load("0s").cacheMaxStalenessMs, undefined);
  assert.equal(load("2m").cacheMaxStalenessMs, 120_000);
  assert.throws(() => load("5s"), /CACHE_MAX_STALENESS: "5s" is below the minimum of 10s/);
  assert.throws(() => load("soon"), /CACHE_MAX_STALENESS: "soon" is not a duration/);
});
