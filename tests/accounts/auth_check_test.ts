/** AUTH's `allowed_accounts`: the verdict (pure) and the check that logs each change once. */
import assert from "node:assert/strict";
import * as nkeys from "@nats-io/nkeys";
import { createAuthCheck, judgeAuthAccount } from "../../lib/accounts/auth_check.ts";
import type { ResolverClient } from "../../lib/accounts/resolver.ts";
import { ResolverError } from "../../lib/accounts/resolver.ts";
import { createLogger } from "../../lib/telemetry/log.ts";
import { Registry } from "../../lib/telemetry/metrics.ts";

const AUTH = nkeys.createAccount().getPublicKey();
const APP = nkeys.createAccount().getPublicKey();

/** An account JWT for `sub` with `authorization` (unsigned: only its claims are read). */
function accountJwt(
  sub: string,
  authorization?: Record<string, unknown>,
  claims: { name?: string; iat?: number } = {},
): string {
  const part = (v: unknown) =>
    new TextEncoder().encode(JSON.stringify(v)).toBase64({
      alphabet: "base64url",
      omitPadding: true,
    });
  const nats = { type: "account", version: 2, ...(authorization ? { authorization } : {}) };
  return `${part({ typ: "JWT", alg: "ed25519-nkey" })}.${part({ sub, ...claims, nats })}.c2ln`;
}

Deno.test('judgeAuthAccount: only allowed_accounts exactly ["*"] admits the namespaces\' accounts', () => {
  assert.deepEqual(
    judgeAuthAccount(AUTH, [accountJwt(AUTH, { allowed_accounts: ["*"] })]),
    { ok: true },
  );
  const app = judgeAuthAccount(AUTH, [accountJwt(AUTH, { allowed_accounts: [APP] })]);
  assert.ok(!app.ok);
  assert.equal(app.reason, "not_admitting");
  assert.deepEqual(app.allowedAccounts, [APP]);
  assert.ok(app.problem.includes(AUTH) && app.problem.includes(APP));
  assert.ok(
    app.problem.includes(
      `nsc edit authcallout --account AUTH --rm-allowed-account ${APP} --allowed-account '*'`,
    ),
    app.problem,
  );
  for (const authorization of [undefined, {}, { allowed_accounts: [] }]) {
    const none = judgeAuthAccount(AUTH, [accountJwt(AUTH, authorization)]);
    assert.ok(!none.ok && none.reason === "not_admitting", JSON.stringify(authorization));
    assert.match(none.problem, /lists allowed_accounts \[\], not exactly \["\*"\]/);
    assert.match(none.problem, /nsc edit authcallout --account AUTH --allowed-account '\*'/);
  }
  // nsc adds before it removes: removing '*' after adding it would leave the list empty.
  const mixed = judgeAuthAccount(AUTH, [accountJwt(AUTH, { allowed_accounts: [APP, "*"] })]);
  assert.ok(!mixed.ok && mixed.reason === "not_admitting");
  assert.match(mixed.problem, new RegExp(`--rm-allowed-account ${APP} && nsc push`));
  assert.doesNotMatch(mixed.problem, /--rm-allowed-account '\*'/);
  // The account's nsc name is its JWT's name.
  const named = judgeAuthAccount(AUTH, [
    accountJwt(AUTH, { allowed_accounts: [APP] }, { name: "AUTH_CALLOUT" }),
  ]);
  assert.ok(!named.ok);
  assert.match(
    named.problem,
    /nsc edit authcallout --account AUTH_CALLOUT .* nsc push --account AUTH_CALLOUT$/,
  );
});

Deno.test("judgeAuthAccount: every server's copy counts; a stale one is named with the fix", () => {
  const star = (iat: number) =>
    accountJwt(AUTH, { allowed_accounts: ["*"] }, { name: "AUTH_CALLOUT", iat });
  const app = (iat: number) =>
    accountJwt(AUTH, { allowed_accounts: [APP] }, { name: "AUTH_CALLOUT", iat });
  assert.deepEqual(judgeAuthAccount(AUTH, [star(1), star(2), star(3)]), { ok: true });
  // The newest copy admits all, one server kept the old one: push again.
  const stale = judgeAuthAccount(AUTH, [star(2), star(2), app(1)]);
  assert.ok(!stale.ok && stale.reason === "servers_disagree");
  assert.match(stale.problem, /3 copies list \["\*"\] \/ \[".*"\]/);
  assert.match(stale.problem, /Fix: nsc push --account AUTH_CALLOUT \(/);
  // The newest copy does not admit all: the edit, then the push.
  const newer = judgeAuthAccount(AUTH, [star(1), app(2)]);
  assert.ok(!newer.ok && newer.reason === "servers_disagree");
  assert.match(
    newer.problem,
    /Fix: nsc edit authcallout --account AUTH_CALLOUT --rm-allowed-account/,
  );
});

Deno.test("judgeAuthAccount: AUTH on no resolver, a lookup that failed, a JWT that is not AUTH's", () => {
  const missing = judgeAuthAccount(AUTH, []);
  assert.ok(!missing.ok && missing.reason === "not_on_resolver");
  assert.match(missing.problem, /nsc push --account/);
  const failed = judgeAuthAccount(AUTH, new ResolverError("no_response", "nobody answered"));
  assert.ok(!failed.ok && failed.reason === "lookup_failed");
  assert.ok(failed.problem.includes(`$SYS.REQ.ACCOUNT.${AUTH}.CLAIMS.LOOKUP: nobody answered`));
  for (const held of [accountJwt(APP, { allowed_accounts: ["*"] }), "not a jwt"]) {
    const other = judgeAuthAccount(AUTH, [accountJwt(AUTH, { allowed_accounts: ["*"] }), held]);
    assert.ok(!other.ok && other.reason === "malformed_jwt", held);
    assert.match(other.problem, /push AUTH's account JWT again/);
  }
  const bad = judgeAuthAccount(AUTH, [accountJwt(AUTH, { allowed_accounts: "*" })]);
  assert.ok(!bad.ok && bad.reason === "malformed_jwt");
});

Deno.test("createAuthCheck: a problem until checked; each change logged once; the gauge follows", async () => {
  let held: string | Error = accountJwt(AUTH, { allowed_accounts: [APP] });
  const resolver = {
    copies: (account: string) => {
      assert.equal(account, AUTH);
      return held instanceof Error ? Promise.reject(held) : Promise.resolve([held]);
    },
  } as unknown as ResolverClient;
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({ level: "debug", write: (l) => logs.push(JSON.parse(l)) });
  const gauge = new Registry().gauge("g", "g");
  const auth = createAuthCheck({ resolver, authAccount: AUTH, logger, gauge });
  assert.match(auth.problem!, /not been checked yet/);

  await auth.check();
  await auth.check();
  assert.match(auth.problem!, /not exactly \["\*"\]/);
  assert.equal(gauge.value(), 0);
  assert.deepEqual(logs.map((l) => l.event), ["auth_account_not_admitting"]);
  assert.deepEqual(logs[0]!.allowed_accounts, [APP]);

  // A lookup nobody answered says nothing about AUTH: the last answer stands, warned once.
  held = new ResolverError("no_response", "first words");
  await auth.check();
  held = new ResolverError("no_response", "other words");
  await auth.check();
  assert.match(auth.problem!, /not exactly \["\*"\]/);
  assert.equal(gauge.value(), 0);
  assert.deepEqual(logs.map((l) => l.event), [
    "auth_account_not_admitting",
    "auth_account_lookup_failed",
  ]);

  held = accountJwt(AUTH, { allowed_accounts: ["*"] });
  await auth.check();
  await auth.check();
  assert.equal(auth.problem, undefined);
  assert.equal(gauge.value(), 1);
  assert.deepEqual(logs.map((l) => l.event).slice(2), ["auth_account_admitting"]);

  // Admitting, then a restart of every server: still ready.
  held = new ResolverError("no_response", "restarting");
  await auth.check();
  assert.equal(auth.problem, undefined);
  assert.equal(gauge.value(), 1);
});

Deno.test("createAuthCheck: a lookup that fails before any answer is the problem, naming the error", async () => {
  const resolver = {
    copies: () => Promise.reject(new ResolverError("no_response", "no server answered")),
  } as unknown as ResolverClient;
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({ level: "debug", write: (l) => logs.push(JSON.parse(l)) });
  const auth = createAuthCheck({
    resolver,
    authAccount: AUTH,
    logger,
    gauge: new Registry().gauge("g", "g"),
  });
  await auth.check();
  assert.match(auth.problem!, /cannot be looked up on the resolver .*no server answered/);
  assert.deepEqual(logs.map((l) => [l.event, l.reason]), [[
    "auth_account_unchecked",
    "lookup_failed",
  ]]);
});
