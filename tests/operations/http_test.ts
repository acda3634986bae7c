import assert from "node:assert/strict";
import {
  createHttpHandler,
  METRICS_CONTENT_TYPE,
  type ReadinessCheck,
} from "../../lib/operations/http.ts";
import { Registry } from "../../lib/telemetry/metrics.ts";
import { createServiceMetrics } from "../../lib/telemetry/service_metrics.ts";

function check(name: string, ready: () => boolean): ReadinessCheck {
  return { name, ready };
}

function get(path: string, method = "GET"): Request {
  return new Request(`http://localhost:8080${path}`, { method });
}

Deno.test("http: /healthz and the reference's /health answer 200 while serving", async () => {
  const handler = createHttpHandler({
    checks: [check("nats", () => false)],
    registry: new Registry(),
    version: "1.2.3",
  });
  for (const path of ["/healthz", "/health", "/health?probe=1"]) {
    const res = await handler(get(path));
    assert.equal(res.status, 200, path);
    assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
    assert.equal(res.headers.get("cache-control"), "no-store");
    assert.deepEqual(await res.json(), { status: "ok", healthy: true, version: "1.2.3" });
  }
});

Deno.test("http: /health body keeps the reference's {healthy:true} field", async () => {
  const handler = createHttpHandler({ checks: [], registry: new Registry() });
  const body = await (await handler(get("/health"))).json();
  assert.equal(body.healthy, true);
  assert.equal(body.status, "ok");
  assert.equal("version" in body, false);
});

Deno.test("http: /readyz is 200 only when every check passes", async () => {
  let nats = true;
  let synced = true;
  const handler = createHttpHandler({
    checks: [
      check("nats", () => nats),
      check("serviceaccounts", () => synced),
      check("keys", () => true),
    ],
    registry: new Registry(),
  });

  let res = await handler(get("/readyz"));
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { status: "ready" });

  nats = false;
  synced = false;
  res = await handler(get("/readyz"));
  assert.equal(res.status, 503);
  assert.deepEqual(await res.json(), { status: "not ready", failing: ["nats", "serviceaccounts"] });

  nats = true;
  res = await handler(get("/readyz"));
  assert.equal(res.status, 503);
  assert.deepEqual(await res.json(), { status: "not ready", failing: ["serviceaccounts"] });

  synced = true;
  res = await handler(get("/readyz"));
  assert.equal(res.status, 200);
  await res.body?.cancel();
});

Deno.test("http: a readiness check that throws counts as failing, not as a crash", async () => {
  const handler = createHttpHandler({
    checks: [check("keys", () => {
      throw new Error("boom");
    })],
    registry: new Registry(),
  });
  const res = await handler(get("/readyz"));
  assert.equal(res.status, 503);
  assert.deepEqual(await res.json(), { status: "not ready", failing: ["keys"] });
});

Deno.test("http: /readyz with no checks is ready", async () => {
  const res = await createHttpHandler({ checks: [], registry: new Registry() })(get("/readyz"));
  assert.equal(res.status, 200);
  await res.body?.cancel();
});

Deno.test("http: /metrics serves the registry as Prometheus text 0.0.4", async () => {
  const metrics = createServiceMetrics();
  metrics.requests.inc({ result: "denied", reason: "token_expired" });
  const handler = createHttpHandler({ checks: [], registry: metrics.registry });
  const res = await handler(get("/metrics"));
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), METRICS_CONTENT_TYPE);
  assert.equal(METRICS_CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
  const text = await res.text();
  assert.match(text, /^# TYPE nats_auth_requests_total counter$/m);
  assert.match(text, /^nats_auth_requests_total\{reason="token_expired",result="denied"\} 1$/m);

  metrics.requests.inc({ result: "denied", reason: "token_expired" });
  const again = await (await handler(get("/metrics"))).text();
  assert.match(again, /^nats_auth_requests_total\{reason="token_expired",result="denied"\} 2$/m);
});

Deno.test("http: HEAD gets the status and headers without a body", async () => {
  const handler = createHttpHandler({
    checks: [check("nats", () => false)],
    registry: new Registry(),
  });
  const health = await handler(get("/healthz", "HEAD"));
  assert.equal(health.status, 200);
  assert.equal(health.body, null);
  const ready = await handler(get("/readyz", "HEAD"));
  assert.equal(ready.status, 503);
  assert.equal(ready.body, null);
  const metrics = await handler(get("/metrics", "HEAD"));
  assert.equal(metrics.status, 200);
  assert.equal(metrics.headers.get("content-type"), METRICS_CONTENT_TYPE);
  assert.equal(metrics.body, null);
});

Deno.test("http: other methods are 405 with an Allow header", async () => {
  const handler = createHttpHandler({ checks: [], registry: new Registry() });
  for (const method of ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]) {
    const res = await handler(get("/healthz", method));
    assert.equal(res.status, 405, method);
    assert.equal(res.headers.get("allow"), "GET, HEAD");
    await res.body?.cancel();
  }
});

Deno.test("http: unknown paths are 404", async () => {
  const handler = createHttpHandler({ checks: [], registry: new Registry() });
  for (const path of ["/", "/healthz/", "/metricsx", "/ready", "/HEALTHZ", "/api/v1"]) {
    const res = await handler(get(path));
    assert.equal(res.status, 404, path);
    assert.deepEqual(await res.json(), { error: "not found" });
  }
});

Deno.test("http: the handler works behind a real Deno.serve", async () => {
  const handler = createHttpHandler({
    checks: [check("nats", () => true)],
    registry: new Registry(),
  });
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handler);
  const base = `http://127.0.0.1:${server.addr.port}`;
  const health = await fetch(`${base}/health`);
  assert.equal(health.status, 200);
  assert.deepEqual(await health.json(), { status: "ok", healthy: true });
  const ready = await fetch(`${base}/readyz`);
  assert.equal(ready.status, 200);
  await ready.body?.cancel();
});

Deno.test("http: POST /resync starts a resync (202), a too-early one is 429 with Retry-After", async () => {
  const calls: string[] = [];
  let allow = true;
  const handler = createHttpHandler({
    checks: [],
    registry: new Registry(),
    resync: (trigger) => {
      calls.push(trigger);
      return allow ? { started: true } : { started: false, retryAfterMs: 4200 };
    },
  });
  let res = await handler(get("/resync", "POST"));
  assert.equal(res.status, 202);
  assert.deepEqual(await res.json(), { status: "resync started" });
  allow = false;
  res = await handler(get("/resync", "POST"));
  assert.equal(res.status, 429);
  assert.equal(res.headers.get("retry-after"), "5");
  assert.deepEqual(await res.json(), { error: "resync too soon", retry_after_ms: 4200 });
  assert.deepEqual(calls, ["http", "http"]);

  res = await handler(get("/resync"));
  assert.equal(res.status, 405, "GET must not trigger it");
  assert.equal(res.headers.get("allow"), "POST");
  await res.body?.cancel();
  assert.equal(calls.length, 2);
});

Deno.test("http: without a resync action /resync is 404", async () => {
  const handler = createHttpHandler({ checks: [], registry: new Registry() });
  const res = await handler(get("/resync", "POST"));
  assert.equal(res.status, 404);
  await res.body?.cancel();
});
