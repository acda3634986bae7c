import assert from "node:assert/strict";
import type { ServiceAccountRecord } from "../../lib/core/model.ts";
import type { ClusterPolicy } from "../../lib/decision/policy.ts";
import {
  checkLogin,
  connectionTypeOf,
  isInternalSubject,
  jetstreamSubjects,
  labelsMatch,
  parseSubjectList,
  permissionsFor,
  PUB_ANNOTATION,
  resolveSettings,
  SUB_ANNOTATION,
  subjectCovers,
  subjectsOverlap,
} from "../../lib/decision/policy.ts";

const PREFIX = "nats.io/";

function sa(
  annotations: Record<string, string> = {},
  namespace = "foo",
  name = "my-service",
): ServiceAccountRecord {
  return { namespace, name, uid: "uid-1", annotations };
}

Deno.test("policy: defaults are the reference's (namespace scope, inboxes, one response)", () => {
  const { permissions, filteredInternal, invalid } = permissionsFor(sa(), {
    annotationPrefix: PREFIX,
  });
  assert.deepEqual(permissions.pub.allow, ["foo", "foo.>"]);
  assert.deepEqual(permissions.sub.allow, ["_INBOX.>", "_INBOX_foo_my-service.>", "foo", "foo.>"]);
  assert.deepEqual(permissions.resp, { max: 1, ttlNs: 0 });
  assert.deepEqual(filteredInternal, []);
  assert.deepEqual(invalid, []);
});

Deno.test("policy: README example annotations are appended after the defaults", () => {
  const { permissions } = permissionsFor(
    sa({
      "nats.io/allowed-pub-subjects": "platform.commands.*, shared.metrics",
      "nats.io/allowed-sub-subjects": "platform.events.*, shared.status",
    }),
    { annotationPrefix: PREFIX },
  );
  assert.deepEqual(permissions.pub.allow, [
    "foo",
    "foo.>",
    "platform.commands.*",
    "shared.metrics",
  ]);
  assert.deepEqual(permissions.sub.allow, [
    "_INBOX.>",
    "_INBOX_foo_my-service.>",
    "foo",
    "foo.>",
    "platform.events.*",
    "shared.status",
  ]);
});

Deno.test("policy: dots in the ServiceAccount name become underscores in the private inbox", () => {
  const { permissions } = permissionsFor(sa({}, "team-a", "api.v2"), { annotationPrefix: PREFIX });
  assert.deepEqual(permissions.sub.allow, [
    "_INBOX.>",
    "_INBOX_team-a_api_v2.>",
    "team-a",
    "team-a.>",
  ]);
});

Deno.test("policy: _INBOX and _REPLY entries are filtered (case-sensitive prefix) and reported", () => {
  const result = permissionsFor(
    sa({
      [PREFIX + PUB_ANNOTATION]: "_REPLY.x, ok.pub, _INBOXES.x",
      [PREFIX + SUB_ANNOTATION]: "_INBOX.>, _INBOX_other_sa.>, _inbox.lower, ok.sub",
    }),
    { annotationPrefix: PREFIX },
  );
  assert.deepEqual(result.filteredInternal, [
    "_REPLY.x",
    "_INBOXES.x",
    "_INBOX.>",
    "_INBOX_other_sa.>",
  ]);
  assert.deepEqual(result.permissions.pub.allow, ["foo", "foo.>", "ok.pub"]);
  assert.deepEqual(result.permissions.sub.allow, [
    "_INBOX.>", // the default stays
    "_INBOX_foo_my-service.>",
    "foo",
    "foo.>",
    "_inbox.lower", // not the reserved prefix: an ordinary subject
    "ok.sub",
  ]);
  assert.ok(isInternalSubject("_REPLY") && !isInternalSubject("x._INBOX"));
});

Deno.test("policy: invalid entries are left out and reported, the rest still granted", () => {
  const result = permissionsFor(
    sa({
      [PREFIX + PUB_ANNOTATION]: "a..b, good.one, a.>.b, foo bar, *x, good.two",
      [PREFIX + SUB_ANNOTATION]: "x.>, y>, .lead",
    }),
    { annotationPrefix: PREFIX },
  );
  assert.deepEqual(result.invalid, ["a..b", "a.>.b", "foo bar", "*x", "y>", ".lead"]);
  assert.deepEqual(result.permissions.pub.allow, ["foo", "foo.>", "good.one", "good.two"]);
  assert.deepEqual(result.permissions.sub.allow, [
    "_INBOX.>",
    "_INBOX_foo_my-service.>",
    "foo",
    "foo.>",
    "x.>",
  ]);
  for (const bad of result.invalid) {
    assert.ok(!result.permissions.pub.allow.includes(bad));
    assert.ok(!result.permissions.sub.allow.includes(bad));
  }
});

Deno.test("policy: empty entries are dropped silently and duplicates collapse", () => {
  const result = permissionsFor(
    sa({
      [PREFIX + PUB_ANNOTATION]: " , ,a.b,, a.b ,foo.>,",
      [PREFIX + SUB_ANNOTATION]: "",
    }),
    { annotationPrefix: PREFIX },
  );
  assert.deepEqual(result.permissions.pub.allow, ["foo", "foo.>", "a.b"]);
  assert.deepEqual(result.permissions.sub.allow, [
    "_INBOX.>",
    "_INBOX_foo_my-service.>",
    "foo",
    "foo.>",
  ]);
  assert.deepEqual(result.invalid, []);
  assert.deepEqual(result.filteredInternal, []);
});

Deno.test("policy: a custom prefix is honoured and the default prefix is then ignored", () => {
  const annotations = {
    "example.com/nats-allowed-pub-subjects": "custom.pub",
    "nats.io/allowed-pub-subjects": "ignored.pub",
  };
  const { permissions } = permissionsFor(sa(annotations), {
    annotationPrefix: "example.com/nats-",
  });
  assert.deepEqual(permissions.pub.allow, ["foo", "foo.>", "custom.pub"]);
});

Deno.test("policy: response TTL is passed in nanoseconds; bad values are refused", () => {
  const { permissions } = permissionsFor(sa(), { annotationPrefix: PREFIX, responseTtlMs: 1500 });
  assert.deepEqual(permissions.resp, { max: 1, ttlNs: 1_500_000_000 });
  assert.throws(
    () => permissionsFor(sa(), { annotationPrefix: PREFIX, responseTtlMs: -1 }),
    RangeError,
  );
  assert.throws(
    () => permissionsFor(sa(), { annotationPrefix: PREFIX, responseTtlMs: Infinity }),
    RangeError,
  );
});

Deno.test("policy: the same input always gives the same permissions (pure)", () => {
  const record = sa({ [PREFIX + PUB_ANNOTATION]: "b, a, _INBOX.x, a..b" });
  const one = permissionsFor(record, { annotationPrefix: PREFIX });
  const two = permissionsFor(record, { annotationPrefix: PREFIX });
  assert.deepEqual(one, two);
  assert.notEqual(one.permissions.pub.allow, two.permissions.pub.allow);
});

Deno.test("parseSubjectList splits on commas, trims and drops empties", () => {
  assert.deepEqual(parseSubjectList(""), []);
  assert.deepEqual(parseSubjectList(" a , b ,,c, "), ["a", "b", "c"]);
  assert.deepEqual(parseSubjectList("a b"), ["a b"]);
});

Deno.test("policy bound: annotation entries outside the allowed patterns or overlapping a denied one are dropped with a reason", () => {
  const result = permissionsFor(
    sa({
      [PREFIX + PUB_ANNOTATION]: "foo.x, shared.events.a, shared.other, >, $SYS.REQ.x, team-b.>",
      [PREFIX + SUB_ANNOTATION]: "shared.events.>, *.>, bad..x",
    }),
    {
      annotationPrefix: PREFIX,
      settings: {
        annotations: {
          allow: { pub: ["{namespace}.>", "shared.events.>"], sub: ["shared.>"] },
          deny: [">", "$SYS.>"],
        },
      },
    },
  );
  // ">" is denied by the pattern ">" overlapping everything: so is every entry; the bound is
  // read with deny first. Use a narrower deny to see the allow half at work.
  assert.deepEqual(result.permissions.pub.allow, ["foo", "foo.>"]);
  assert.equal(result.outsidePolicy.length, 6 + 2);

  const narrow = permissionsFor(
    sa({
      [PREFIX + PUB_ANNOTATION]: "foo.x, shared.events.a, shared.other, >, $SYS.REQ.x, team-b.>",
      [PREFIX + SUB_ANNOTATION]: "shared.events.>, *.>, bad..x",
    }),
    {
      annotationPrefix: PREFIX,
      settings: {
        annotations: {
          allow: { pub: ["{namespace}.>", "shared.events.>"], sub: ["shared.>"] },
          deny: ["$SYS.>"],
        },
      },
    },
  );
  assert.deepEqual(narrow.permissions.pub.allow, ["foo", "foo.>", "foo.x", "shared.events.a"]);
  assert.deepEqual(narrow.permissions.sub.allow, [
    "_INBOX.>",
    "_INBOX_foo_my-service.>",
    "foo",
    "foo.>",
    "shared.events.>",
  ]);
  assert.deepEqual(narrow.outsidePolicy, ["shared.other", ">", "$SYS.REQ.x", "team-b.>", "*.>"]);
  assert.deepEqual(narrow.invalid, ["bad..x"]);
  assert.deepEqual(narrow.dropped.find((d) => d.entry === "$SYS.REQ.x"), {
    annotation: "pub",
    entry: "$SYS.REQ.x",
    reason: "outside_policy",
    detail: "overlaps the denied pattern $SYS.>",
  });
  assert.match(
    narrow.dropped.find((d) => d.entry === "team-b.>")!.detail,
    /^not within the allowed patterns foo\.>, shared\.events\.>$/,
  );
  // An empty allow list for a direction honours no annotation entry at all.
  const none = permissionsFor(sa({ [PREFIX + SUB_ANNOTATION]: "foo.x" }), {
    annotationPrefix: PREFIX,
    settings: { annotations: { allow: { sub: [] } } },
  });
  assert.deepEqual(none.outsidePolicy, ["foo.x"]);
});

Deno.test("policy bound: a subscribe entry ending in * is judged by what nats-server lets it subscribe to (the same place as >)", () => {
  // nats-server matches a SUB's subject against the allow list literally: allow `shared.*`
  // accepts `SUB shared.>` (tests/service/private_inbox_test.ts shows it on a real server).
  const result = permissionsFor(
    sa({ [PREFIX + SUB_ANNOTATION]: "shared.*, shared.*.x, shared.x, shared.* q, other.*" }),
    {
      annotationPrefix: PREFIX,
      settings: { annotations: { allow: { sub: ["shared.*", "shared.*.x", "other.>"] } } },
    },
  );
  assert.deepEqual(result.permissions.sub.allow.slice(4), ["shared.*.x", "shared.x", "other.*"]);
  assert.deepEqual(result.outsidePolicy, ["shared.*", "shared.* q"]);
  assert.equal(
    result.dropped[0]!.detail,
    "not within the allowed patterns shared.*, shared.*.x, other.> " +
      "(nats-server lets shared.* subscribe to shared.>)",
  );
  // A denied pattern is judged against the reach too.
  const denied = permissionsFor(sa({ [PREFIX + SUB_ANNOTATION]: "secret.*, public.*" }), {
    annotationPrefix: PREFIX,
    settings: { annotations: { deny: ["secret.a.b"] } },
  });
  assert.deepEqual(denied.outsidePolicy, ["secret.*"]);
});

Deno.test("policy deny lists, response limits and JetStream grants reach the permissions", () => {
  const { permissions } = permissionsFor(sa({ [PREFIX + PUB_ANNOTATION]: "$SYS.x" }), {
    annotationPrefix: PREFIX,
    settings: {
      deny: { pub: ["$SYS.>", "{namespace}.secret.>"], sub: ["{namespace}.secret.>"] },
      response: { max: 3, ttlMs: 2000 },
      jetstream: { streams: ["{namespace}"], kv: ["cfg"] },
    },
  });
  assert.deepEqual(permissions.pub.deny, ["$SYS.>", "foo.secret.>"]);
  assert.deepEqual(permissions.sub.deny, ["foo.secret.>"]);
  assert.deepEqual(permissions.resp, { max: 3, ttlNs: 2_000_000_000 });
  for (const s of ["$JS.API.STREAM.INFO.foo", "$JS.ACK.foo.>", "$JS.ACK.KV_cfg.>", "$KV.cfg.>"]) {
    assert.ok(permissions.pub.allow.includes(s), s);
  }
  assert.ok(!permissions.pub.allow.some((s) => s.startsWith("$JS.API.STREAM.CREATE")));
  assert.deepEqual(jetstreamSubjects({ api: true }), ["$JS.>", "$KV.>", "$O.>"]);
  // Without a policy there is no deny list at all (the reference's JWT).
  assert.equal(permissionsFor(sa(), { annotationPrefix: PREFIX }).permissions.pub.deny, undefined);
});

Deno.test("subjectCovers and subjectsOverlap follow NATS wildcard rules", () => {
  const covers: [string, string, boolean][] = [
    ["a.>", "a.b", true],
    ["a.>", "a.b.*", true],
    ["a.>", "a.>", true],
    ["a.>", "a", false],
    ["a.*", "a.b", true],
    ["a.*", "a.*", true],
    ["a.*", "a.>", false],
    ["a.*", "a.b.c", false],
    [">", ">", true],
    ["a.>", ">", false],
    ["a.b", "a.b", true],
    ["a.b", "a.*", false],
  ];
  for (const [p, e, want] of covers) assert.equal(subjectCovers(p, e), want, `${p} covers ${e}`);
  const overlaps: [string, string, boolean][] = [
    [">", "$SYS.x", true],
    ["a.*", "*.b", true],
    ["a.>", "b.>", false],
    ["a.*", "a.b.c", false],
    ["a.>", "a", false],
    ["$JS.API.>", "$JS.*.x", true],
  ];
  for (const [a, b, want] of overlaps) {
    assert.equal(subjectsOverlap(a, b), want, `${a} overlaps ${b}`);
    assert.equal(subjectsOverlap(b, a), want, `${b} overlaps ${a}`);
  }
});

Deno.test("checkLogin: connection types and the longest token lifetime", () => {
  assert.equal(connectionTypeOf({ kind: "Client", type: "nats" }), "STANDARD");
  assert.equal(connectionTypeOf({ kind: "Client", type: "websocket" }), "WEBSOCKET");
  assert.equal(connectionTypeOf({ kind: "Client", type: "mqtt" }), "MQTT");
  assert.equal(connectionTypeOf({ kind: "Leafnode" }), "LEAFNODE");
  const facts = { connectionType: "WEBSOCKET", issuedAt: 1000, expiresAt: 1000 + 3600 };
  assert.equal(checkLogin({}, facts), undefined);
  assert.equal(
    checkLogin({ connectionTypes: ["STANDARD"] }, facts)?.reason,
    "connection_type_not_allowed",
  );
  assert.equal(checkLogin({ connectionTypes: ["WEBSOCKET"] }, facts), undefined);
  assert.equal(checkLogin({ maxTokenLifetimeMs: 3600_000 }, facts), undefined);
  assert.deepEqual(checkLogin({ maxTokenLifetimeMs: 3599_000 }, facts), {
    reason: "token_lifetime_too_long",
    message: "token lifetime 3600s exceeds the policy maximum of 3599s",
  });
  assert.equal(
    checkLogin({ maxTokenLifetimeMs: 3600_000 }, { ...facts, issuedAt: undefined })?.reason,
    "token_lifetime_too_long",
  );
});

Deno.test("subscribe entries may name a queue group after one space; publish entries may not", () => {
  const result = permissionsFor(
    sa({
      [PREFIX + PUB_ANNOTATION]: "jobs.> workers, jobs.ok",
      [PREFIX + SUB_ANNOTATION]:
        "jobs.> workers, jobs.* q.*, a b c, jobs.x  two, jobs.y bad..q, x..y q",
    }),
    { annotationPrefix: PREFIX },
  );
  assert.deepEqual(result.permissions.pub.allow, ["foo", "foo.>", "jobs.ok"]);
  assert.deepEqual(result.permissions.sub.allow.slice(4), ["jobs.> workers", "jobs.* q.*"]);
  assert.deepEqual(result.invalid, [
    "jobs.> workers",
    "a b c",
    "jobs.x  two",
    "jobs.y bad..q",
    "x..y q",
  ]);
  assert.match(
    result.dropped.find((d) => d.entry === "jobs.y bad..q")!.detail,
    /queue group that has an empty token/,
  );
  // The bound judges the subject of a queue entry.
  const bounded = permissionsFor(
    sa({ [PREFIX + SUB_ANNOTATION]: "foo.jobs workers, other.jobs workers" }),
    { annotationPrefix: PREFIX, settings: { annotations: { allow: { sub: ["{namespace}.>"] } } } },
  );
  assert.deepEqual(bounded.permissions.sub.allow.slice(4), ["foo.jobs workers"]);
  assert.deepEqual(bounded.outsidePolicy, ["other.jobs workers"]);
});

Deno.test("policy labels: a rule matches when every given label is on the Namespace; first match wins", () => {
  const rule = (source: string, names: string[], labels?: Record<string, string>) => ({
    source,
    names,
    globs: [],
    ...(labels ? { labels } : {}),
    settings: { account: source },
    serviceAccounts: new Map(),
  });
  const policy: ClusterPolicy = {
    defaults: {},
    namespaces: [
      rule("by-name", ["team-a"]),
      rule("gold", [], { tier: "gold", env: "prod" }),
      rule("prod", [], { env: "prod" }),
      rule("by-name-or-label", ["team-z"], { env: "dev" }),
    ],
  };
  const labels: Record<string, Record<string, string>> = {
    "team-a": { tier: "gold", env: "prod" },
    "shop": { tier: "gold", env: "prod", extra: "x" },
    "web": { env: "prod", tier: "silver" },
    "lab": { env: "dev" },
    "bare": {},
  };
  const labelsOf = (ns: string) => labels[ns];
  const account = (ns: string) => resolveSettings(policy, ns, "api", labelsOf).settings.account;
  assert.equal(account("team-a"), "by-name"); // names first, in file order
  assert.equal(account("shop"), "gold"); // extra labels do not matter
  assert.equal(account("web"), "prod"); // tier differs: the next rule
  assert.equal(account("lab"), "by-name-or-label"); // labels alone suffice
  assert.equal(account("team-z"), "by-name-or-label"); // the name alone suffices
  assert.equal(account("bare"), undefined);
  assert.equal(account("unknown"), undefined); // labels not known: no label rule matches
  // No lookup: label rules never match.
  assert.equal(resolveSettings(policy, "shop", "api").settings.account, undefined);
  assert.deepEqual(resolveSettings(policy, "web", "api", labelsOf).matched, ["defaults", "prod"]);

  assert.ok(labelsMatch({ a: "1" }, { a: "1", b: "2" }));
  assert.ok(!labelsMatch({ a: "1", b: "2" }, { a: "1" }));
  assert.ok(!labelsMatch({ a: "" }, {}));
  assert.ok(labelsMatch({ a: "" }, { a: "" }));
  assert.ok(!labelsMatch({ toString: "x" }, {}));
  assert.ok(!labelsMatch({ a: "1" }, undefined));
});
