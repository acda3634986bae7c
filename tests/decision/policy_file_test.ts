/**
 * The cluster policy file (lib/decision/policy_file.ts): every field parsed, every problem reported at once
 * with file:line:column, unknown accounts refused at load, operator-mode signing seeds, and the live
 * source keeping the last good policy through a bad edit.
 */
import assert from "node:assert/strict";
import { createAccount } from "@nats-io/nkeys";
import { createLogger } from "../../lib/telemetry/log.ts";
import { parsePolicy, PolicyFileError, startPolicyFile } from "../../lib/decision/policy_file.ts";
import { resolveSettings } from "../../lib/decision/policy.ts";
import { loadConfig } from "../../lib/config/config.ts";
import { startService } from "../../lib/service/service.ts";
import { createServiceMetrics } from "../../lib/telemetry/service_metrics.ts";
import { waitFor } from "../support/wait.ts";

const FULL = `# every field
accounts:
  TEAM_A: {}
  TEAMS: {}
defaults:
  annotations:
    allow:
      pub: ["{namespace}.>", "shared.events.>"]
      sub: ["{namespace}.>", "shared.events.>"]
    deny: [">", "$SYS.>", "$JS.API.>"]
  deny:
    pub: ["$SYS.>"]
  connectionTypes: [STANDARD, WEBSOCKET]
  maxTokenLifetime: 24h
  response: { max: 1, ttl: 0 }
namespaces:
  - names: [team-a]
    account: TEAM_A
    jetstream: { api: true }
    serviceAccounts:
      worker:
        response: { max: 5, ttl: 30s }
        connectionTypes: [STANDARD, MQTT]
  - glob: team-*
    account: TEAMS
    jetstream: { streams: ["{namespace}"], kv: ["{namespace}-config"] }
  - glob: [edge-*, "leaf?"]
    connectionTypes: [LEAFNODE]
`;

function parse(text: string, defaultAccount = "APP") {
  return parsePolicy(text, { path: "policy.yaml", defaultAccount });
}

function problemsOf(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof PolicyFileError, String(err));
    return err.problems;
  }
  assert.fail("no PolicyFileError");
}

Deno.test("policy file: every field is parsed and resolved per namespace and ServiceAccount", () => {
  const { policy, accountSeeds } = parse(FULL);
  assert.equal(accountSeeds.size, 0);
  const d = policy.defaults;
  assert.deepEqual(d.annotations?.allow?.pub, ["{namespace}.>", "shared.events.>"]);
  assert.deepEqual(d.annotations?.deny, [">", "$SYS.>", "$JS.API.>"]);
  assert.deepEqual(d.deny, { pub: ["$SYS.>"] });
  assert.deepEqual(d.connectionTypes, ["STANDARD", "WEBSOCKET"]);
  assert.equal(d.maxTokenLifetimeMs, 24 * 3600_000);
  assert.deepEqual(d.response, { max: 1, ttlMs: 0 });

  const a = resolveSettings(policy, "team-a", "api");
  assert.equal(a.settings.account, "TEAM_A");
  assert.deepEqual(a.settings.jetstream, { api: true });
  assert.deepEqual(a.matched, ["defaults", "policy.yaml:17 (team-a)"]);
  const worker = resolveSettings(policy, "team-a", "worker").settings;
  assert.deepEqual(worker.response, { max: 5, ttlMs: 30_000 });
  assert.deepEqual(worker.connectionTypes, ["STANDARD", "MQTT"]);
  assert.equal(worker.account, "TEAM_A", "inherited from the namespace rule");

  const b = resolveSettings(policy, "team-b", "api").settings;
  assert.equal(b.account, "TEAMS");
  assert.deepEqual(b.jetstream, { streams: ["{namespace}"], kv: ["{namespace}-config"] });
  assert.deepEqual(resolveSettings(policy, "leaf1", "x").settings.connectionTypes, ["LEAFNODE"]);
  assert.deepEqual(resolveSettings(policy, "edge-eu", "x").settings.connectionTypes, ["LEAFNODE"]);
  const other = resolveSettings(policy, "other", "x");
  assert.equal(other.settings.account, undefined);
  assert.deepEqual(other.matched, ["defaults"]);
});

Deno.test("policy file: an empty or comment-only file is refused, never a policy without bounds", () => {
  for (const text of ["", "# only a comment\n", "{}\n", "---\n"]) {
    assert.throws(
      () => parse(text),
      (err: unknown) =>
        err instanceof PolicyFileError &&
        /the policy is empty; .*unset POLICY_FILE/.test(err.problems.join()),
      JSON.stringify(text),
    );
  }
});

Deno.test("policy file: every problem is reported at once with file:line:column", () => {
  const problems = problemsOf(() =>
    parse(`defaults:
  connectionTypes: [STANDARD, CARRIER_PIGEON]
  maxTokenLifetime: forever
  response: { max: 0 }
  annotations:
    allow:
      pub: ["a..b"]
  colour: blue
namespaces:
  - names: [team-a]
    account: NOPE
  - account: APP
    selector: { tier: prod }
`)
  );
  assert.deepEqual(problems, [
    'policy.yaml:2:31: defaults.connectionTypes: "CARRIER_PIGEON" is not one of STANDARD, WEBSOCKET, MQTT, LEAFNODE',
    'policy.yaml:3:21: defaults.maxTokenLifetime: Invalid duration "forever": expected a Go duration such as "90s", "15m" or "1h30m"',
    "policy.yaml:4:20: defaults.response.max must be an integer >= 1",
    'policy.yaml:7:13: defaults.annotations.allow.pub: "a..b" has an empty token',
    'policy.yaml:8:3: defaults: unknown field "colour" (expected account, annotations, deny, connectionTypes, maxTokenLifetime, response, jetstream, inbox, namespaceAccount)',
    'policy.yaml:11:14: namespaces[0].account: unknown account "NOPE"; list it under accounts (or use NATS_ACCOUNT)',
    "policy.yaml:12:5: namespaces[1]: needs names, glob or labels to say which namespaces it is for",
    "policy.yaml:13:5: namespaces[1].selector: selector is not supported; match namespaces by names, glob or labels (labels: {key: value}, every pair must be on the Namespace)",
  ]);
});

Deno.test("policy file: namespace rules by labels are parsed; bad labels are refused with file:line:column", () => {
  const { policy } = parse(`accounts:
  GOLD: {}
namespaces:
  - names: [team-a]
  - labels: { tier: gold, "example.com/team": payments, empty: "" }
    account: GOLD
    serviceAccounts:
      api: { deny: { pub: [">"] } }
`);
  const rule = policy.namespaces[1]!;
  assert.deepEqual(rule.labels, { tier: "gold", "example.com/team": "payments", empty: "" });
  assert.deepEqual([rule.names, rule.globs], [[], []]);
  assert.equal(rule.source, "policy.yaml:5 (tier=gold, example.com/team=payments, empty=)");
  assert.equal(policy.namespaces[0]!.labels, undefined);
  const labels = { tier: "gold", "example.com/team": "payments", empty: "", other: "x" };
  const resolved = resolveSettings(policy, "shop", "api", () => labels);
  assert.equal(resolved.settings.account, "GOLD");
  assert.deepEqual(resolved.matched, [
    "defaults",
    rule.source,
    `${rule.source} serviceAccounts.api`,
  ]);
  assert.equal(resolveSettings(policy, "shop", "api").settings.account, undefined);

  const problems = problemsOf(() =>
    parse(`defaults:
  labels: { tier: gold }
namespaces:
  - labels: { tier: 1, on: true }
  - labels: {}
  - labels: [tier]
  - labels: { "bad key!": x, tier: "has space" }
`)
  );
  assert.deepEqual(problems, [
    "policy.yaml:2:3: defaults.labels: labels pick namespaces, so they belong only on a namespace rule",
    "policy.yaml:4:21: namespaces[0].labels.tier must be a string (quote numbers and booleans)",
    "policy.yaml:4:28: namespaces[0].labels.on must be a string (quote numbers and booleans)",
    "policy.yaml:5:13: namespaces[1].labels must name at least one label",
    "policy.yaml:6:13: namespaces[2].labels must be a mapping",
    'policy.yaml:7:15: namespaces[3].labels: "bad key!" is not a Kubernetes label key',
    'policy.yaml:7:36: namespaces[3].labels.tier: "has space" is not a Kubernetes label value',
  ]);
});

Deno.test("policy file: broken YAML names the spot; the whole JetStream API is refused in the shared account", () => {
  const [yamlProblem] = problemsOf(() => parse("defaults:\n  deny: [a\n"));
  assert.match(yamlProblem!, /^policy\.yaml:\d+:\d+: /);
  assert.deepEqual(
    problemsOf(() => parse("namespaces:\n  - names: [a]\n    jetstream: { api: true }\n")),
    [
      "policy.yaml:3:16: namespaces[0].jetstream.api: the whole JetStream API is only for a namespace in an account of its own (set account); in the shared account use streams/kv",
    ],
  );
  assert.deepEqual(
    problemsOf(() => parse("namespaces:\n  - names: [a]\n    jetstream: { streams: [a.b] }\n")),
    [
      'policy.yaml:3:28: namespaces[0].jetstream.streams: "a.b" is not a stream/bucket name (no ".", "*", ">", spaces)',
    ],
  );
});

Deno.test("policy file: the whole JetStream API is judged by the rule's account wherever it is written", () => {
  const { policy } = parse(
    "accounts: { TEAM_A: {} }\nnamespaces:\n  - names: [a]\n    jetstream: { api: true }\n    account: TEAM_A\n",
  );
  assert.deepEqual(resolveSettings(policy, "a", "x").settings.jetstream, { api: true });
  assert.deepEqual(
    problemsOf(() =>
      parse(
        "accounts: { TEAM_A: {} }\ndefaults: { account: TEAM_A }\nnamespaces:\n  - names: [a]\n    jetstream: { api: true }\n    account: APP\n",
      )
    ),
    [
      "policy.yaml:5:16: namespaces[0].jetstream.api: the whole JetStream API is only for a namespace in an account of its own (set account); in the shared account use streams/kv",
    ],
  );
});

Deno.test("policy file: a key that is no string is reported once, in a rule as anywhere else", () => {
  assert.deepEqual(problemsOf(() => parse("namespaces:\n  - names: [a]\n    1: x\n")), [
    "policy.yaml:3:5: namespaces[0]: keys must be strings",
  ]);
});

Deno.test("policy file: operator mode lists accounts by key with one signing seed file each", () => {
  const app = createAccount().getPublicKey();
  const team = createAccount();
  const seed = new TextDecoder().decode(team.getSeed());
  const files: Record<string, string> = { "/keys/team.nk": seed, "/keys/user.nk": "SUAJUNK" };
  const readTextFile = (p: string) => {
    const text = files[p];
    if (text === undefined) throw new Deno.errors.NotFound(`no such file ${p}`);
    return text;
  };
  const key = team.getPublicKey();
  const { accountSeeds } = parsePolicy(
    `accounts:\n  ${key}: { signingKeyFile: /keys/team.nk }\nnamespaces:\n  - names: [a]\n    account: ${key}\n`,
    { path: "p.yaml", defaultAccount: app, readTextFile },
  );
  assert.equal(accountSeeds.get(key), seed);

  const problems = problemsOf(() =>
    parsePolicy(
      `accounts:\n  TEAM: {}\n  ${key}: {}\n  ${createAccount().getPublicKey()}: { signingKeyFile: /keys/missing.nk }\n  ${createAccount().getPublicKey()}: { signingKeyFile: /keys/user.nk }\n`,
      { path: "p.yaml", defaultAccount: app, readTextFile },
    )
  );
  assert.equal(problems.length, 4);
  assert.match(
    problems[0]!,
    /^p\.yaml:2:3: accounts\.TEAM: in operator mode accounts are public keys/,
  );
  assert.match(problems[1]!, /^p\.yaml:3:3: .*signingKeyFile is required in operator mode/);
  assert.match(problems[2]!, /cannot read signingKeyFile "\/keys\/missing\.nk"/);
  assert.match(problems[3]!, /does not hold an SA\.\.\. seed/);
  assert.ok(!problems.join("\n").includes("SUAJUNK"), "a file's content is never echoed");
  // Config mode: names only, no seed files.
  assert.match(
    problemsOf(() => parse("accounts:\n  TEAM: { signingKeyFile: /x }\n"))[0]!,
    /signingKeyFile is for operator mode/,
  );
});

Deno.test("policy file: the live source keeps the last good policy through a bad edit and logs where", async () => {
  const dir = await Deno.makeTempDir({ prefix: "policy-test-" });
  try {
    const path = `${dir}/policy.yaml`;
    await Deno.writeTextFile(path, "namespaces:\n  - names: [a]\n    connectionTypes: [MQTT]\n");
    const lines: Record<string, unknown>[] = [];
    const metrics = createServiceMetrics();
    await using source = startPolicyFile({
      path,
      defaultAccount: "APP",
      logger: createLogger({ write: (l) => lines.push(JSON.parse(l)) }),
      metrics,
      debounceMs: 10,
    });
    const types = () =>
      resolveSettings(source.current.policy, "a", "x").settings.connectionTypes?.join();
    assert.equal(types(), "MQTT");

    await Deno.writeTextFile(path, "namespaces:\n  - names: [a]\n    connectionTypes: [BOGUS]\n");
    const bad = await waitFor(() => lines.find((l) => l.event === "policy_file_invalid"), {
      what: "policy_file_invalid",
    });
    assert.deepEqual(bad.problems, [
      `${path}:3:23: namespaces[0].connectionTypes: "BOGUS" is not one of STANDARD, WEBSOCKET, MQTT, LEAFNODE`,
    ]);
    assert.equal(types(), "MQTT", "the last good policy stays");
    assert.equal(metrics.policyReloads.value({ result: "error" }), 1);

    // An emptied file (a ConfigMap cleared by mistake) is a bad edit too.
    await Deno.writeTextFile(path, "# nothing here\n");
    await waitFor(() => metrics.policyReloads.value({ result: "error" }) === 2, {
      what: "the empty policy refused",
    });
    assert.equal(types(), "MQTT", "the last good policy stays");

    await Deno.writeTextFile(
      `${path}.new`,
      "namespaces:\n  - names: [a]\n    connectionTypes: [WEBSOCKET]\n",
    );
    await Deno.rename(`${path}.new`, path);
    await waitFor(() => types() === "WEBSOCKET", { what: "the fixed policy" });
    assert.equal(metrics.policyReloads.value({ result: "ok" }), 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("policy file: a missing or bad file fails the start with every problem", () => {
  const logger = createLogger({ write: () => {} });
  const metrics = createServiceMetrics();
  assert.throws(
    () =>
      startPolicyFile({ path: "/nonexistent/policy.yaml", defaultAccount: "APP", logger, metrics }),
    (err: unknown) =>
      err instanceof PolicyFileError && err.message === "/nonexistent/policy.yaml: file not found",
  );
});

Deno.test("policy file: rules by labels fail the start when ServiceAccounts come from SERVICEACCOUNTS_FILE", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/policy.yaml`, "namespaces:\n  - labels: { tier: gold }\n");
    await Deno.writeTextFile(
      `${dir}/account.seed`,
      new TextDecoder().decode(createAccount().getSeed()),
    );
    const config = loadConfig({
      NATS_ACCOUNT: "APP",
      NATS_SIGNING_KEY_FILE: `${dir}/account.seed`,
      K8S_IN_CLUSTER: "false",
      SERVICEACCOUNTS_FILE: `${dir}/sa.yaml`,
      JWKS_PATH: `${dir}/jwks.json`,
      JWT_ISSUER: "https://issuer.example",
      POLICY_FILE: `${dir}/policy.yaml`,
    });
    const logger = createLogger({ level: "error", write: () => {} });
    const err = await startService({ config, logger, nats: false }).then(
      () => assert.fail("started"),
      (e) => e,
    );
    assert.ok(err instanceof PolicyFileError, String(err));
    assert.match(
      err.problems[0]!,
      /policy\.yaml: namespace rules with labels need .*SERVICEACCOUNTS_FILE/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// Found by trying to break issue 20: `api` was judged only on the entry that sets it, so a rule or
// ServiceAccount entry that moves its logins to the shared account inherited the whole API.
Deno.test("policy file: the whole JetStream API inherited into the shared account is refused where it is inherited", () => {
  const OPS = {
    path: "policy.yaml",
    defaultAccount: "AAPP",
    namespaceAccountsUnavailable: undefined,
  };
  const problems = (text: string) => problemsOf(() => parsePolicy(text, OPS));
  const inherits = (what: string) =>
    `${what}.account: places these logins in the shared account, but they inherit the whole ` +
    "JetStream API from namespaces[0].jetstream.api; set jetstream here (streams/kv, without api) " +
    "or keep them in an account of their own";
  // A namespace rule with an account of its own, one ServiceAccount moved to the shared account.
  assert.deepEqual(
    problems(
      'namespaces:\n  - glob: "team-*"\n    namespaceAccount: {}\n    jetstream: { api: true }\n    serviceAccounts:\n      legacy:\n        account: AAPP\n',
    ),
    [`policy.yaml:7:18: ${inherits("namespaces[0].serviceAccounts.legacy")}`],
  );
  // The same with a listed account (no issue 20 needed).
  assert.deepEqual(
    problems(
      'accounts:\n  ATEAM: {}\nnamespaces:\n  - glob: "team-*"\n    account: ATEAM\n    jetstream: { api: true }\n    serviceAccounts:\n      legacy:\n        account: AAPP\n',
    ),
    [`policy.yaml:9:18: ${inherits("namespaces[0].serviceAccounts.legacy")}`],
  );
  // The defaults give every namespace an account and the API; a rule moves one to the shared account.
  assert.deepEqual(
    problems(
      "defaults:\n  namespaceAccount: {}\n  jetstream: { api: true }\nnamespaces:\n  - names: [legacy]\n    account: AAPP\n",
    ),
    [
      "policy.yaml:6:14: namespaces[0].account: places these logins in the shared account, but " +
      "they inherit the whole JetStream API from defaults.jetstream.api; set jetstream here " +
      "(streams/kv, without api) or keep them in an account of their own",
    ],
  );
  // Each of them is fine once the entry says what JetStream it has, and a login resolves to that.
  const { policy } = parsePolicy(
    "defaults:\n  namespaceAccount: {}\n  jetstream: { api: true }\nnamespaces:\n  - names: [legacy]\n    account: AAPP\n    jetstream: { streams: [legacy] }\n    serviceAccounts:\n      x: { connectionTypes: [STANDARD] }\n",
    OPS,
  );
  assert.deepEqual(resolveSettings(policy, "legacy", "x").settings.jetstream, {
    streams: ["legacy"],
  });
  // A rule that only inherits is judged once, where its cause is written.
  assert.deepEqual(
    problems(
      "defaults:\n  jetstream: { api: true }\nnamespaces:\n  - names: [a]\n    connectionTypes: [STANDARD]\n",
    ),
    [
      "policy.yaml:2:14: defaults.jetstream.api: the whole JetStream API is only for a namespace in an account of its own (set account); in the shared account use streams/kv",
    ],
  );
});
