import assert from "node:assert/strict";
import type { ServiceAccountRecord } from "../lib/model.ts";
import {
  isInternalSubject,
  parseSubjectList,
  permissionsFor,
  PUB_ANNOTATION,
  SUB_ANNOTATION,
} from "../lib/policy.ts";

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
  assert.deepEqual(permissions.pub.allow, ["foo.>"]);
  assert.deepEqual(permissions.sub.allow, ["_INBOX.>", "_INBOX_foo_my-service.>", "foo.>"]);
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
  assert.deepEqual(permissions.pub.allow, ["foo.>", "platform.commands.*", "shared.metrics"]);
  assert.deepEqual(permissions.sub.allow, [
    "_INBOX.>",
    "_INBOX_foo_my-service.>",
    "foo.>",
    "platform.events.*",
    "shared.status",
  ]);
});

Deno.test("policy: dots in the ServiceAccount name become underscores in the private inbox", () => {
  const { permissions } = permissionsFor(sa({}, "team-a", "api.v2"), { annotationPrefix: PREFIX });
  assert.deepEqual(permissions.sub.allow, ["_INBOX.>", "_INBOX_team-a_api_v2.>", "team-a.>"]);
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
  assert.deepEqual(result.permissions.pub.allow, ["foo.>", "ok.pub"]);
  assert.deepEqual(result.permissions.sub.allow, [
    "_INBOX.>", // the default stays
    "_INBOX_foo_my-service.>",
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
  assert.deepEqual(result.permissions.pub.allow, ["foo.>", "good.one", "good.two"]);
  assert.deepEqual(result.permissions.sub.allow, [
    "_INBOX.>",
    "_INBOX_foo_my-service.>",
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
  assert.deepEqual(result.permissions.pub.allow, ["foo.>", "a.b"]);
  assert.deepEqual(result.permissions.sub.allow, ["_INBOX.>", "_INBOX_foo_my-service.>", "foo.>"]);
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
  assert.deepEqual(permissions.pub.allow, ["foo.>", "custom.pub"]);
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
