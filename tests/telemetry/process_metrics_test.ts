/**
 * `process_*`, build info and the Go reference's metric names on /metrics; and what least
 * privilege leaves out (a real `deno run` with scoped permissions, as the `start` task and the
 * compiled binary run).
 */
import assert from "node:assert/strict";
import { Registry } from "../../lib/telemetry/metrics.ts";
import { registerProcessMetrics } from "../../lib/telemetry/process_metrics.ts";
import { REFERENCE_ALIASES } from "../../lib/telemetry/reference_metrics.ts";
import { createServiceMetrics } from "../../lib/telemetry/service_metrics.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

function sample(text: string, name: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(name + " ") || l.startsWith(name + "{"));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

Deno.test("process metrics: CPU, RSS, start time, fds and build info, with -A", () => {
  const reg = new Registry();
  const report = registerProcessMetrics(reg, {
    version: "9.9.9",
    runtime: { deno: "2.9.6", v8: "v8x", typescript: "ts" },
  });
  assert.deepEqual(report.unavailable, []);
  registerProcessMetrics(reg, { version: "9.9.9" }); // a second registration is a no-op
  const text = reg.render();
  assert.match(
    text,
    /^nats_k8s_oidc_callout_build_info\{deno="2\.9\.6",typescript="ts",v8="v8x",version="9\.9\.9"\} 1$/m,
  );
  assert.match(text, /# TYPE process_cpu_seconds_total counter/);
  assert.ok(sample(text, "process_cpu_seconds_total")! > 0);
  const rss = sample(text, "process_resident_memory_bytes")!;
  assert.ok(rss > 10 * 1024 * 1024 && rss < 4 * 1024 ** 3, `rss ${rss}`);
  const start = sample(text, "process_start_time_seconds")!;
  assert.ok(Math.abs(start - (Date.now() - performance.now()) / 1000) < 5, `start ${start}`);
  assert.ok(sample(text, "process_open_fds")! > 2);
  assert.ok(sample(text, "process_max_fds")! >= sample(text, "process_open_fds")!);
});

Deno.test("process metrics under least privilege: fd gauges are left out, never exported as 0", async () => {
  const script = `
    import { Registry } from "${ROOT}lib/telemetry/metrics.ts";
    import { registerProcessMetrics } from "${ROOT}lib/telemetry/process_metrics.ts";
    const reg = new Registry();
    const report = registerProcessMetrics(reg, { version: "1" });
    console.log(JSON.stringify({ report, text: reg.render() }));
  `;
  const child = new Deno.Command(Deno.execPath(), {
    // The compiled binary's kind of flags: scoped reads, no --allow-all.
    args: ["run", "--frozen", `--allow-read=${ROOT},/etc/nats`, "-"],
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(script));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  const { report, text } = JSON.parse(new TextDecoder().decode(stdout));
  assert.deepEqual(report.unavailable, ["process_open_fds", "process_max_fds"]);
  assert.ok(!text.includes("process_open_fds"), text);
  assert.ok(!text.includes("process_max_fds"));
  assert.ok(sample(text, "process_resident_memory_bytes")! > 0);
  assert.ok(sample(text, "process_cpu_seconds_total")! > 0);
});

Deno.test("the Go reference's documented names are views of our families", () => {
  const m = createServiceMetrics();
  m.requests.inc({ result: "allowed", reason: "" }, 3);
  m.requests.inc({ result: "denied", reason: "token_expired" }, 2);
  m.requests.inc({ result: "denied", reason: "audience_mismatch" });
  m.requests.inc({ result: "dropped", reason: "bad_request" });
  m.cacheHits.inc(undefined, 4);
  m.cacheMisses.inc();
  m.natsConnected.set(1);
  const text = m.registry.render();
  for (const name of REFERENCE_ALIASES) assert.match(text, new RegExp(`^# TYPE ${name} `, "m"));
  assert.equal(sample(text, "nats_auth_requests_success"), 3);
  assert.equal(sample(text, "nats_auth_requests_denied"), 3);
  assert.equal(sample(text, "nats_messages_processed_total"), 7);
  assert.equal(sample(text, "nats_auth_cache_hits"), 4);
  assert.equal(sample(text, "sa_cache_hits_total"), 4);
  assert.equal(sample(text, "nats_auth_cache_misses"), 1);
  assert.equal(sample(text, "sa_cache_misses_total"), 1);
  assert.match(text, /^nats_connection_status\{status="connected"\} 1$/m);
  assert.match(text, /^nats_connection_status\{status="disconnected"\} 0$/m);
  m.natsConnected.set(0);
  assert.match(m.registry.render(), /^nats_connection_status\{status="disconnected"\} 1$/m);
});
