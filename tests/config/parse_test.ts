/** The generic value checks of lib/config/parse.ts; loadConfig's use of them is config_test.ts. */
import assert from "node:assert/strict";
import {
  boolVar,
  deepFreeze,
  durationVar,
  type EnvReader,
  httpUrlProblem,
  isDnsLabel,
  isPortNumber,
  maskServerEntry,
  serverProblem,
  show,
  splitList,
} from "../../lib/config/parse.ts";

/** An EnvReader over `values` with `defaults`, collecting its problems. */
function reader(values: Record<string, string>, defaults: Record<string, string> = {}) {
  const problems: string[] = [];
  const env: EnvReader = {
    get: (name) => values[name],
    getOrDefault: (name) => values[name] ?? defaults[name] ?? assert.fail(`no ${name}`),
    defaultOf: (name) => defaults[name],
    problem: (text) => problems.push(text),
  };
  return { env, problems };
}

Deno.test("parse: booleans in Go's spellings; anything else is a problem and reads as the default", () => {
  for (const [text, value] of [["1", true], ["True", true], ["F", false], ["FALSE", false]]) {
    const { env, problems } = reader({ B: String(text) });
    assert.equal(boolVar(env, "B"), value);
    assert.deepEqual(problems, []);
  }
  const { env, problems } = reader({ B: "yes" }, { B: "true" });
  assert.equal(boolVar(env, "B"), true);
  assert.deepEqual(problems, ['B: "yes" is not a boolean (true or false)']);
  assert.equal(boolVar(reader({}, { B: "false" }).env, "B"), false);
});

Deno.test("parse: durations within bounds", () => {
  const bounds = { min: 10_000, max: 60_000 };
  const ok = reader({ D: "30s" });
  assert.equal(durationVar(ok.env, "D", bounds), 30_000);
  assert.deepEqual(ok.problems, []);
  const low = reader({ D: "5s" });
  durationVar(low.env, "D", bounds);
  assert.deepEqual(low.problems, ['D: "5s" is below the minimum of 10s']);
  const high = reader({ D: "2m" });
  durationVar(high.env, "D", bounds);
  assert.deepEqual(high.problems, ['D: "2m" is above the maximum of 1m']);
  const bad = reader({ D: "soon" }, { D: "15m" });
  assert.equal(
    durationVar(bad.env, "D", bounds),
    900_000,
    "a malformed value reads as the default",
  );
  assert.deepEqual(bad.problems, ['D: "soon" is not a duration (e.g. "90s", "15m", "1h30m")']);
});

Deno.test("parse: ports, lists, labels", () => {
  for (const p of ["1", "443", "0443", "65535"]) assert.ok(isPortNumber(p), p);
  for (const p of ["0", "65536", "-1", "80.5", "", "1e3", " 80"]) assert.ok(!isPortNumber(p), p);
  assert.deepEqual(splitList(" a, b ,,c"), ["a", "b", "", "c"]);
  assert.ok(isDnsLabel("team-a") && !isDnsLabel("Team_A") && !isDnsLabel("a".repeat(64)));
});

Deno.test("parse: URLs are judged without echoing a secret", () => {
  assert.equal(serverProblem("nats://h:4222"), undefined);
  assert.equal(serverProblem("h:4222"), undefined);
  assert.equal(serverProblem(""), "has an empty server entry");
  assert.match(serverProblem("ws://h") ?? "", /unsupported scheme "ws"/);
  assert.equal(httpUrlProblem("https://h/jwks"), undefined);
  assert.equal(httpUrlProblem("ftp://h"), "is not an http(s) URL");
  assert.equal(maskServerEntry("nats://secret token@h:1"), "nats://***@h:1");
  assert.equal(maskServerEntry("tok@h"), "***@h");
  assert.equal(maskServerEntry("h:1"), "h:1");
  assert.equal(show("x".repeat(100)), JSON.stringify("x".repeat(77) + "..."));
});

Deno.test("parse: deepFreeze freezes everything reachable", () => {
  const value = deepFreeze({ a: { b: [1, { c: 2 }] } });
  assert.ok(Object.isFrozen(value.a.b[1]));
});
