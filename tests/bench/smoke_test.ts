/**
 * Keeps the benchmark harness (`deno task bench`) from rotting: runs it end to end with tiny counts
 * and checks that it writes well-formed JSON with every section and prints the table. No timing is
 * asserted — only that each section measured what it says.
 */
import assert from "node:assert/strict";
// Type-only: makes `deno check tests/` check the harness too (it runs below as its own process).
import type { BenchResult } from "../../bench/run.ts";

const ROOT = new URL("../../", import.meta.url);

Deno.test("deno task bench runs end to end with tiny counts and writes every section", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bench-smoke-" });
  try {
    const out = `${dir}/result.json`;
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "bench/run.ts",
        "--logins=4",
        "--concurrency=1,2",
        "--fresh=2",
        "--denials=2",
        "--storm-clients=3",
        "--cache-sas=20",
        "--cache-pods=30",
        "--decision-ms=50",
        "--warmup=2",
        "--rolling-rounds=1",
        "--revocation-clients=3",
        "--account-namespaces=5",
        "--account-first-logins=2",
        "--latency-logins=20",
        // This checkout stands in for "before" (the Go reference is not built in CI).
        `--before=${ROOT.pathname}`,
        "--versus-rounds=1",
        "--live-connections=30",
        "--live-servers=2",
        `--out=${out}`,
      ],
      cwd: ROOT.pathname,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(stderr);
    assert.equal(code, 0, `bench failed:\n${err}`);

    const result = JSON.parse(await Deno.readTextFile(out)) as BenchResult;
    assert.deepEqual(
      Object.keys(result).sort(),
      [
        "accounts",
        "cache",
        "decision",
        "latency",
        "live",
        "logins",
        "meta",
        "ratio",
        "revocation",
        "rolling",
        "service",
        "soak",
        "storm",
        "versus",
      ],
    );
    assert.equal(result.soak, null, "the soak runs only when --soak-minutes asks for it");
    assert.ok(result.decision && result.storm && result.cache, "no section was skipped");
    assert.equal(result.accounts?.namespaces, 5, "the accounts section ran");
    assert.ok((result.accounts?.firstLoginP50Ms ?? 0) > 0);
    assert.ok(result.decision.seenTokenPerSecond > 0);
    assert.ok(result.decision.firstSeenTokenPerSecond > 0);

    const runs = result.logins.map((l) => `${l.run}@${l.concurrency}`);
    assert.deepEqual(runs.sort(), [
      "callout-first-seen@16",
      "callout@1",
      "callout@2",
      "denial@16",
      "token-baseline@1",
      "token-baseline@2",
    ]);
    for (const l of result.logins) {
      assert.ok(l.loginsPerSecond > 0 && l.p50Ms <= l.p90Ms && l.p90Ms <= l.p99Ms, l.run);
      if (l.run === "denial") assert.equal(l.failed, l.attempts, "every forged token is refused");
      else assert.equal(l.ok, l.attempts, `${l.run}: ${JSON.stringify(l.errors)}`);
    }
    assert.deepEqual(result.ratio.map((r) => r.concurrency), [1, 2]);
    assert.ok(result.service.peakRssMiB > 0);

    assert.equal(result.storm.clients, 3);
    for (const storm of [result.storm.returning, result.storm.firstSeen, result.storm.baseline]) {
      assert.equal(storm.clientsNotBack, 0);
      assert.ok(storm.allBackSeconds > 0);
    }
    assert.ok(result.storm.returning.allowedByService >= 3);
    assert.ok(result.storm.firstSeen.allowedByService >= 3, "the restarted service let them in");
    assert.equal(result.storm.baseline.allowedByService as unknown, null, "no service: no count");

    assert.ok(result.latency, "the latency breakdown ran");
    assert.ok(result.latency.calloutP50Ms > 0 && result.latency.plainP50Ms > 0);
    assert.ok(result.latency.serviceHandlerP50Ms > 0, "the service's log lines were read");
    assert.ok(result.latency.steps.signMs > 0 && result.latency.steps.verifyRequestMs > 0);

    assert.ok(result.versus, "the side-by-side section ran");
    assert.deepEqual(
      [...new Set(result.versus.figures.map((f) => f.contender))],
      ["now", "before"],
    );
    for (const f of result.versus.figures) {
      assert.equal(f.median.unexpected, 0, `${f.contender} ${f.scenario}`);
    }
    assert.equal(result.versus.ratios.length, 4);

    assert.ok(result.live, "the live-connections run ran");
    assert.equal(result.live.connected, 30);
    assert.equal(result.live.deletion.closed, result.live.deletion.connections);
    assert.equal(result.live.deletion.othersClosed, 0);
    assert.equal(result.live.replicas.reduce((n, r) => n + r.remembered, 0) >= 30, true);

    assert.equal(result.cache.serviceAccounts, 20);
    assert.ok(result.cache.rssAfterSyncMiB > 0);
    assert.equal(result.cache.podWatch?.pods, 30);
    assert.ok(result.cache.podWatch.rssAfterSyncMiB > 0);

    assert.ok(result.rolling && result.rolling.ok > 0, "the rolling restart logged in");
    assert.equal(result.rolling.refused + result.rolling.otherFailures, 0, "no login lost");

    assert.ok(result.revocation, "the revocation run ran");
    assert.equal(result.revocation.revoked, 3, "every deleted ServiceAccount's connection closed");

    const table = new TextDecoder().decode(stdout);
    assert.match(table, /\| callout, returning token \| 1 \| 4 \| 0 \|/);
    assert.match(table, /reconnect storm, 3 clients/);
    assert.match(table, /one returning login at concurrency 1/);
    assert.match(table, /side by side, median of 1 rounds/);
    assert.match(table, /30 live connections, 2-server cluster/);
    assert.match(table, /ServiceAccount cache: 20 ServiceAccounts/);
    assert.match(table, /Pod watch \(K8S_WATCH_PODS\): 30 Pods/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
