import assert from "node:assert/strict";
import {
  inboxPrefix,
  isValidSubject,
  MAX_SUBJECT_LENGTH,
  subjectProblem,
} from "../../lib/core/subjects.ts";

Deno.test("subjects: ordinary subjects and whole-token wildcards are valid", () => {
  for (
    const s of [
      "a",
      "team-a.>",
      ">",
      "*",
      "orders.*.created",
      "*.*.>",
      "platform.events.*",
      "_inbox.lowercase",
      "$JS.API.>",
      "ünïcødé.ok",
      "a".repeat(MAX_SUBJECT_LENGTH),
    ]
  ) {
    assert.equal(subjectProblem(s), undefined, s);
    assert.ok(isValidSubject(s), s);
  }
});

Deno.test("subjects: malformed entries are refused with a reason", () => {
  const cases: [string, RegExp][] = [
    ["", /empty/],
    ["a..b", /empty token/],
    [".a", /empty token/],
    ["a.", /empty token/],
    [".", /empty token/],
    ["a.>.b", /'>' before the last token/],
    [">.a", /'>' before the last token/],
    ["a.b>", /'>' inside a token/],
    ["*x", /'\*' inside a token/],
    ["a.x*.b", /'\*' inside a token/],
    ["foo bar", /whitespace/],
    ["foo\tbar", /whitespace/],
    ["foo\nbar", /whitespace/],
    ["foo\u00a0bar", /whitespace/],
    ["foo\x00bar", /control/],
    ["a".repeat(MAX_SUBJECT_LENGTH + 1), /longer than/],
  ];
  for (const [s, reason] of cases) {
    const problem = subjectProblem(s);
    assert.ok(problem !== undefined, `accepted ${JSON.stringify(s)}`);
    assert.match(problem, reason);
    assert.ok(!isValidSubject(s));
  }
});

Deno.test("inboxPrefix replaces the dots of a ServiceAccount name", () => {
  assert.equal(inboxPrefix("foo", "my-service"), "_INBOX_foo_my-service");
  assert.equal(inboxPrefix("team-a", "api.v2"), "_INBOX_team-a_api_v2");
  assert.equal(inboxPrefix("ns", "a.b.c"), "_INBOX_ns_a_b_c");
});

Deno.test("inboxPrefix: SA foo's inbox wildcard no longer covers SA foo.bar's inbox", () => {
  const foo = inboxPrefix("ns", "foo");
  const fooBar = inboxPrefix("ns", "foo.bar");
  // With "." kept, `${foo}.>` would match `_INBOX_ns_foo.bar.<id>`.
  assert.ok(!`${fooBar}.reply1`.startsWith(`${foo}.`));
  assert.ok(!fooBar.includes("."));
  assert.ok(isValidSubject(`${fooBar}.>`));
});
