/**
 * The policy's `inbox` field (issue 17 §4): parsed at every level, resolved like every setting
 * (a ServiceAccount's entry over its namespace rule over the defaults), refused with file:line
 * when misspelt, and `private` withholds `_INBOX.>` while the private inbox stays granted.
 */
import assert from "node:assert/strict";
import { parsePolicy, PolicyFileError } from "../../lib/decision/policy_file.ts";
import { permissionsFor, resolveSettings } from "../../lib/decision/policy.ts";

const POLICY = `
defaults:
  inbox: private
namespaces:
  - names: [legacy]
    inbox: shared
    serviceAccounts:
      careful:
        inbox: private
`;

function subscribeAllow(namespace: string, name: string): readonly string[] {
  const { policy } = parsePolicy(POLICY, { path: "policy.yaml", defaultAccount: "APP" });
  const { settings } = resolveSettings(policy, namespace, name);
  const sa = { namespace, name, uid: "u", annotations: {} };
  return permissionsFor(sa, { annotationPrefix: "nats.io/", settings }).permissions.sub.allow;
}

Deno.test("policy inbox: private withholds _INBOX.> and keeps the private inbox; shared is the reference's grant; the most specific setting wins", () => {
  assert.deepEqual(subscribeAllow("team-a", "orders"), [
    "_INBOX_team-a_orders.>",
    "team-a",
    "team-a.>",
  ]);
  assert.deepEqual(subscribeAllow("legacy", "app"), [
    "_INBOX.>",
    "_INBOX_legacy_app.>",
    "legacy",
    "legacy.>",
  ]);
  assert.deepEqual(subscribeAllow("legacy", "careful"), [
    "_INBOX_legacy_careful.>",
    "legacy",
    "legacy.>",
  ]);
  // Dots in the name become "_" in the private inbox, withheld or not.
  assert.deepEqual(subscribeAllow("team-a", "api.v2")[0], "_INBOX_team-a_api_v2.>");
});

Deno.test("policy inbox: anything but shared or private is refused with file:line and what to set", () => {
  let problems: readonly string[] = [];
  try {
    parsePolicy("defaults:\n  inbox: own\n", { path: "policy.yaml", defaultAccount: "APP" });
  } catch (err) {
    assert.ok(err instanceof PolicyFileError);
    problems = err.problems;
  }
  assert.equal(problems.length, 1);
  assert.match(problems[0]!, /^policy\.yaml:2:10: defaults\.inbox must be "shared" or "private"/);
  assert.match(problems[0]!, /_INBOX_<ns>_<sa'>/);
});

Deno.test("policy inbox: private drops every subscribe entry whose leading wildcard covers other workloads' private inboxes (queue form and a lone *, which nats-server lets subscribe to >, included); shared keeps them", () => {
  const annotations = {
    "nats.io/allowed-sub-subjects":
      "*.>, > q, >, *.*, *.x, *, _INBOX.>, _INBOX_team-a_orders.>, team-b.x, shared.*, x.*.>",
  };
  const sa = { namespace: "team-b", name: "snoop", uid: "u", annotations };
  const priv = permissionsFor(sa, { annotationPrefix: "nats.io/", settings: { inbox: "private" } });
  // `*` alone is dropped too: nats-server lets it subscribe to `>`. `x.*.>` starts literal.
  assert.deepEqual(priv.permissions.sub.allow, [
    "_INBOX_team-b_snoop.>",
    "team-b",
    "team-b.>",
    "team-b.x",
    "shared.*",
    "x.*.>",
  ]);
  assert.deepEqual(priv.dropped.map((d) => [d.entry, d.reason]), [
    ["*.>", "internal"],
    ["> q", "internal"],
    [">", "internal"],
    ["*.*", "internal"],
    ["*.x", "internal"],
    ["*", "internal"],
    ["_INBOX.>", "internal"],
    ["_INBOX_team-a_orders.>", "internal"],
  ]);
  assert.match(priv.dropped[0]!.detail, /other workloads' private inboxes/);
  assert.deepEqual(priv.filteredInternal, priv.dropped.map((d) => d.entry));

  // Shared (the reference's grant): the wildcards stay; client-usage.md says what they then read.
  const shared = permissionsFor(sa, {
    annotationPrefix: "nats.io/",
    settings: { inbox: "shared" },
  });
  assert.deepEqual(shared.dropped.map((d) => d.entry), ["_INBOX.>", "_INBOX_team-a_orders.>"]);
  assert.ok(shared.permissions.sub.allow.includes("*.>"));
  // Publish entries are not subscriptions: `>` on publish is the annotation's to grant.
  const pub = permissionsFor(
    { ...sa, annotations: { "nats.io/allowed-pub-subjects": ">" } },
    { annotationPrefix: "nats.io/", settings: { inbox: "private" } },
  );
  assert.deepEqual(pub.dropped, []);
});
