/** The policy's `namespaceAccount`: what it accepts, and every problem named at once. */
import assert from "node:assert/strict";
import { parseBytes } from "../../lib/decision/namespace_account.ts";
import { parsePolicy, PolicyFileError } from "../../lib/decision/policy_file.ts";
import { resolveSettings } from "../../lib/decision/policy.ts";

const OPTIONS = {
  path: "policy.yaml",
  defaultAccount: "AAPP",
  namespaceAccountsUnavailable: undefined,
};

function problems(text: string, options: Parameters<typeof parsePolicy>[1] = OPTIONS): string[] {
  try {
    parsePolicy(text, options);
  } catch (err) {
    if (err instanceof PolicyFileError) return [...err.problems];
    throw err;
  }
  return [];
}

Deno.test("namespaceAccount: limits left out are unlimited, jetstream left out is off", () => {
  const { policy } = parsePolicy(
    `namespaces:\n  - glob: "t-*"\n    namespaceAccount: {}\n`,
    OPTIONS,
  );
  const settings = resolveSettings(policy, "t-1", "x").settings.namespaceAccount;
  assert.deepEqual(settings, {
    limits: { connections: -1, subscriptions: -1, payload: -1, leafNodes: -1 },
    exports: [],
  });
  assert.equal(parseBytes("64MiB"), 64 * 2 ** 20);
  assert.equal(parseBytes("1.5KB"), 1500);
  assert.equal(parseBytes("unlimited"), -1);
  assert.equal(parseBytes("-3"), undefined);
});

Deno.test("namespaceAccount: a later account replaces it, and it replaces an inherited account", () => {
  const { policy } = parsePolicy(
    `defaults:\n  namespaceAccount: {}\nnamespaces:\n  - names: [legacy]\n    account: AAPP\n`,
    OPTIONS,
  );
  assert.equal(resolveSettings(policy, "legacy", "x").settings.namespaceAccount, undefined);
  assert.equal(resolveSettings(policy, "legacy", "x").settings.account, "AAPP");
  assert.ok(resolveSettings(policy, "other", "x").settings.namespaceAccount);
});

Deno.test("namespaceAccount: every problem at once, with its position", () => {
  assert.deepEqual(
    problems(`namespaces:
  - glob: "t-*"
    account: AAPP
    namespaceAccount:
      data: 5
      limits: { connections: -2, payload: lots, data: 1 }
      jetstream: { streams: 2 }
      exports:
        - service: "other.api.>"
          to: [t-b]
        - stream: "{namespace}.events"
        - service: "{namespace}.x"
          stream: "{namespace}.y"
          to: ["BAD NAME"]
    serviceAccounts:
      api:
        namespaceAccount: {}
`),
    [
      "policy.yaml:5:13: namespaces[0].namespaceAccount.data: the data limit is not offered: nats-server never enforces an account's data limit (it reads connections, subscriptions, payload and leaf nodes only)",
      'policy.yaml:6:30: namespaces[0].namespaceAccount.limits.connections must be an integer >= 0 or "unlimited"',
      'policy.yaml:6:43: namespaces[0].namespaceAccount.limits.payload must be a size such as 1048576, "512KiB", "64MiB", "1GB" or "unlimited"',
      "policy.yaml:6:55: namespaces[0].namespaceAccount.limits.data: the data limit is not offered: nats-server never enforces an account's data limit (it reads connections, subscriptions, payload and leaf nodes only)",
      'policy.yaml:7:18: namespaces[0].namespaceAccount.jetstream: set memory or disk (a size, or "unlimited"); with neither the account has no JetStream (leave jetstream out for that)',
      'policy.yaml:9:20: namespaces[0].namespaceAccount.exports[0].service: "other.api.>" must be under the namespace\'s own subjects ("{namespace}.…")',
      "policy.yaml:11:11: namespaces[0].namespaceAccount.exports[1]: to must name the namespaces that may import it (names or globs)",
      'policy.yaml:14:16: namespaces[0].namespaceAccount.exports[2].to: "BAD NAME" is not a namespace name or glob',
      "policy.yaml:17:27: namespaces[0].serviceAccounts.api.namespaceAccount: an account belongs to a namespace; set it on the namespace rule",
    ],
  );
});

Deno.test("namespaceAccount: not together with account at the same level", () => {
  assert.deepEqual(
    problems(`namespaces:\n  - glob: "t-*"\n    account: AAPP\n    namespaceAccount: {}\n`),
    [
      "policy.yaml:4:5: namespaces[0]: set account or namespaceAccount, not both (where logins go is one choice)",
    ],
  );
});

Deno.test("namespaceAccount: refused with the reason when the service cannot provision", () => {
  const found = problems(`namespaces:\n  - glob: "t-*"\n    namespaceAccount: {}\n`, {
    path: "policy.yaml",
    defaultAccount: "APP",
  });
  assert.equal(found.length, 1);
  assert.match(
    found[0]!,
    /^policy\.yaml:3:23: namespaces\[0\]\.namespaceAccount: namespaceAccount needs operator mode/,
  );
});
