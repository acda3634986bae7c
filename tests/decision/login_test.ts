/**
 * The login decision alone (lib/decision/login.ts): token extraction, lookup, uid check, expiry, warnings.
 * The token verifier is the real one's seam; here it is a function returning a fixed identity.
 */
import assert from "node:assert/strict";
import type { CalloutRequest } from "../../lib/callout/handler.ts";
import { AuthError } from "../../lib/core/errors.ts";
import { createLogger } from "../../lib/telemetry/log.ts";
import { createAuthorizer, extractToken, isNatsJwt } from "../../lib/decision/login.ts";
import type { ServiceAccountRecord, TokenIdentity } from "../../lib/core/model.ts";
import { createServiceMetrics } from "../../lib/telemetry/service_metrics.ts";

const NOW = Date.UTC(2026, 10, 23, 12, 0, 0);
const NATS_SENTINEL = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJzdWIiOiJVIn0.c2ln";

function request(connectOpts: CalloutRequest["connectOpts"]): CalloutRequest {
  return {
    serverId: "NSERVER",
    serverName: "n1",
    userNkey: "UUSER",
    clientInfo: { host: "10.0.0.1", id: 7 },
    connectOpts,
    encrypted: false,
  };
}

function setup(options: {
  identity?: Partial<TokenIdentity>;
  records?: ServiceAccountRecord[];
  synced?: boolean;
  verifyError?: Error;
  /** Cap on the user JWT's life; `null` for none. @default {5 minutes} */
  ttlMs?: number | null;
} = {}) {
  const identity: TokenIdentity = {
    namespace: "team-a",
    serviceAccount: "orders",
    uid: "uid-1",
    expiresAt: NOW / 1000 + 3600,
    ...options.identity,
  };
  const records = new Map(
    (options.records ?? [{ namespace: "team-a", name: "orders", uid: "uid-1", annotations: {} }])
      .map((r) => [`${r.namespace}/${r.name}`, r]),
  );
  const tokens: string[] = [];
  const lines: Record<string, unknown>[] = [];
  const metrics = createServiceMetrics();
  const authorize = createAuthorizer({
    verifyToken: (token) => {
      tokens.push(token);
      return options.verifyError ? Promise.reject(options.verifyError) : Promise.resolve(identity);
    },
    lookup: (ns, name) => records.get(`${ns}/${name}`),
    isSynced: () => options.synced ?? true,
    policy: { annotationPrefix: "nats.io/" },
    ...(options.ttlMs === null ? {} : { userJwtTtlMs: options.ttlMs ?? 5 * 60_000 }),
    logger: createLogger({ level: "debug", write: (l) => lines.push(JSON.parse(l)) }),
    metrics,
    now: () => NOW,
  });
  return { authorize, tokens, lines, metrics, records };
}

Deno.test("the token comes from auth_token, then pass, then a non-NATS jwt field", () => {
  assert.equal(extractToken({ auth_token: "a", pass: "p", jwt: "j.w.t" }), "a");
  assert.equal(extractToken({ pass: "p", jwt: "j.w.t" }), "p");
  assert.equal(
    extractToken({ jwt: "eyJhbGciOiJSUzI1NiJ9.e30.sig" }),
    "eyJhbGciOiJSUzI1NiJ9.e30.sig",
  );
  // Operator mode: `jwt` carries the sentinel user JWT, never a Kubernetes token.
  assert.equal(extractToken({ jwt: NATS_SENTINEL }), undefined);
  assert.equal(extractToken({ jwt: NATS_SENTINEL, pass: "k8s" }), "k8s");
  assert.equal(extractToken({}), undefined);
  assert.equal(isNatsJwt(NATS_SENTINEL), true);
  assert.equal(isNatsJwt("not a jwt"), false);
});

Deno.test("operator mode: the sentinel in jwt is skipped and the token in pass is verified", async () => {
  const { authorize, tokens } = setup();
  const result = await authorize(request({ jwt: NATS_SENTINEL, pass: "k8s-token" }));
  assert.equal(result.ok, true);
  assert.deepEqual(tokens, ["k8s-token"]);
});

Deno.test("an allowed login is named after the ServiceAccount and expires with the TTL", async () => {
  const { authorize, metrics } = setup();
  const result = await authorize(request({ auth_token: "t" }));
  assert.ok(result.ok);
  assert.equal(result.user.name, "system:serviceaccount:team-a:orders");
  assert.equal(result.user.expiresAt, NOW / 1000 + 300);
  assert.deepEqual(result.user.permissions.pub.allow, ["team-a", "team-a.>"]);
  assert.equal(metrics.cacheHits.value(), 1);
});

Deno.test("without NATS_USER_JWT_TTL the user JWT expires with its token", async () => {
  const { authorize } = setup({ ttlMs: null, identity: { expiresAt: NOW / 1000 + 3600 } });
  const result = await authorize(request({ auth_token: "t" }));
  assert.ok(result.ok);
  assert.equal(result.user.expiresAt, NOW / 1000 + 3600);
});

Deno.test("a token that expires before the TTL shortens the user JWT to the token's expiry", async () => {
  const { authorize } = setup({ identity: { expiresAt: NOW / 1000 + 42 } });
  const result = await authorize(request({ auth_token: "t" }));
  assert.ok(result.ok);
  assert.equal(result.user.expiresAt, NOW / 1000 + 42);
});

Deno.test("refusals carry their reason: missing token, cache not synced, unknown SA, uid mismatch, bad token", async () => {
  const cases: [ReturnType<typeof setup>, CalloutRequest["connectOpts"], string][] = [
    [setup(), {}, "token_missing"],
    [setup({ synced: false }), { auth_token: "t" }, "cache_not_ready"],
    [setup({ records: [] }), { auth_token: "t" }, "serviceaccount_not_found"],
    [
      setup({ records: [{ namespace: "team-a", name: "orders", uid: "uid-2", annotations: {} }] }),
      { auth_token: "t" },
      "serviceaccount_uid_mismatch",
    ],
    [setup({ verifyError: new AuthError("token_expired", "token expired 5s ago") }), {
      auth_token: "t",
    }, "token_expired"],
  ];
  for (const [{ authorize }, opts, reason] of cases) {
    const result = await authorize(request(opts));
    assert.equal(result.ok, false);
    assert.equal(!result.ok && result.reason, reason);
  }
  const notFound = setup({ records: [] });
  await notFound.authorize(request({ auth_token: "t" }));
  assert.equal(notFound.metrics.cacheMisses.value(), 1);
});

Deno.test("an unexpected verifier failure is not turned into a normal denial", async () => {
  const { authorize } = setup({ verifyError: new TypeError("bug") });
  await assert.rejects(authorize(request({ auth_token: "t" })), TypeError);
});

Deno.test("ignored annotation entries are warned once per ServiceAccount version and counted every login", async () => {
  const record: ServiceAccountRecord = {
    namespace: "team-a",
    name: "orders",
    uid: "uid-1",
    annotations: { "nats.io/allowed-pub-subjects": "ok.>, bad..x, _INBOX.x" },
  };
  const { authorize, lines, metrics, records } = setup({ records: [record] });
  await authorize(request({ auth_token: "t" }));
  await authorize(request({ auth_token: "t" }));
  assert.equal(lines.filter((l) => l.event === "annotation_subjects_ignored").length, 1);
  assert.equal(metrics.invalidSubjects.value(), 2);
  assert.equal(metrics.filteredInternalSubjects.value(), 2);
  records.set("team-a/orders", { ...record, annotations: { ...record.annotations } });
  await authorize(request({ auth_token: "t" }));
  assert.equal(lines.filter((l) => l.event === "annotation_subjects_ignored").length, 2);
});

Deno.test("a grant carries, for the debug line, each dropped annotation entry and why", async () => {
  const record: ServiceAccountRecord = {
    namespace: "team-a",
    name: "orders",
    uid: "uid-1",
    annotations: { "nats.io/allowed-pub-subjects": "ok.>, bad..x, _INBOX.x" },
  };
  const { authorize } = setup({ records: [record] });
  const result = await authorize(request({ auth_token: "t" }));
  assert.ok(result.ok);
  assert.deepEqual(result.grantFields, {
    dropped: [
      {
        annotation: "pub",
        subject: "bad..x",
        why: "invalid",
        detail: "subject has an empty token",
      },
      { annotation: "pub", subject: "_INBOX.x", why: "internal", detail: "NATS-managed subject" },
    ],
  });
  assert.ok(result.user.permissions.pub.allow.includes("ok.>"));
});
