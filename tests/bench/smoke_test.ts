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
        "logins",
        "meta",
        "ratio",
        "revocation",
        "rolling",
        "service",
        "soak",
        "storm",
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
    assert.equal(result.storm.clientsNotBack, 0);
    assert.ok(result.storm.allBackSeconds > 0);
    assert.ok(result.storm.allowedByService >= 3);

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
    assert.match(table, /reconnect storm: 3 clients/);
    assert.match(table, /ServiceAccount cache: 20 ServiceAccounts/);
    assert.match(table, /Pod watch \(K8S_WATCH_PODS\): 30 Pods/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
