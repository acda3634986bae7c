/** The schema of variables: one row each, the names derived from it, its defaults loadConfig's. */
import assert from "node:assert/strict";
import * as nkeys from "@nats-io/nkeys";
import { type Config, loadConfig } from "../../lib/config/config.ts";
import { CONFIG_ENV_VARS, CONFIG_VARIABLES, defaultOf } from "../../lib/config/variables.ts";

const dec = new TextDecoder();
const SEEDS: Record<string, string> = {
  "/signing.nk": dec.decode(nkeys.createAccount().getSeed()),
  "/xkey.nk": dec.decode(nkeys.createCurve().getSeed()),
  "/operator-sk.nk": dec.decode(nkeys.createOperator().getSeed()),
  "/accounts.nk": dec.decode(nkeys.createAccount().getSeed()),
};
const OPERATOR_ACCOUNT = nkeys.createAccount().getPublicKey();
const claims = { iss: nkeys.createAccount().getPublicKey(), nats: { type: "user" } };
SEEDS["/auth.creds"] = `-----BEGIN NATS USER JWT-----\ne30.${
  new TextEncoder().encode(JSON.stringify(claims)).toBase64({
    alphabet: "base64url",
    omitPadding: true,
  })
}.c2ln\n------END NATS USER JWT------\n`;
const BASE = { NATS_ACCOUNT: "APP", NATS_SIGNING_KEY_FILE: "/signing.nk" };

function load(env: Record<string, string>): Config {
  return loadConfig({ ...BASE, ...env }, { readTextFile: (path) => SEEDS[path] ?? "" });
}

Deno.test("variables: one row per variable; CONFIG_ENV_VARS is each name, then its aliases", () => {
  assert.deepEqual(
    CONFIG_ENV_VARS,
    CONFIG_VARIABLES.flatMap((v) => [v.name, ...(v.aliases ?? [])]),
  );
  assert.equal(new Set(CONFIG_ENV_VARS).size, CONFIG_ENV_VARS.length, "a name listed twice");
  assert.ok(Object.isFrozen(CONFIG_ENV_VARS) && Object.isFrozen(CONFIG_VARIABLES));
  assert.ok(CONFIG_VARIABLES.every((v) => Object.isFrozen(v)));
});

Deno.test("variables: setting every default changes nothing, so the table is loadConfig's defaults", () => {
  const defaults = Object.fromEntries(
    CONFIG_VARIABLES.flatMap((v) => v.default === undefined ? [] : [[v.name, v.default]]),
  );
  assert.ok(Object.keys(defaults).length >= 10);
  assert.deepEqual(load(defaults), load({}));
  assert.equal(defaultOf("PORT"), "8080");
  assert.equal(defaultOf("NATS_ACCOUNT"), undefined);
});

Deno.test("variables: each row's `sets` is a field of Config that the variable sets", () => {
  const fields = (value: unknown, prefix = ""): string[] =>
    typeof value === "object" && value !== null && !Array.isArray(value)
      ? Object.entries(value).flatMap(([k, v]) => [
        `${prefix}${k}`,
        ...fields(v, `${prefix}${k}.`),
      ])
      : [];
  const a = load({
    NATS_USER_CREDS_FILE: "/c",
    NATS_TLS_CA_FILE: "/ca",
    NATS_TLS_CERT_FILE: "/cert",
    NATS_TLS_KEY_FILE: "/key",
    NATS_SYSTEM_USER: "sys",
    NATS_SYSTEM_PASSWORD: "p",
    JWKS_URL: "https://i/keys",
    JWT_ISSUER: "https://i",
    K8S_NAMESPACE: "a",
    KUBECONFIG: "/kc",
    HOME: "/home",
    NATS_USER_JWT_TTL: "1h",
    CACHE_MAX_STALENESS: "5m",
    SERVICEACCOUNTS_FILE: "/sa.yaml",
    POLICY_FILE: "/policy.yaml",
    NATS_XKEY_SEED_FILE: "/xkey.nk",
  });
  const b = load({ NATS_TOKEN: "t", NATS_SYSTEM_CREDS_FILE: "/s", JWKS_PATH: "/jwks.json" });
  const c = load({ NATS_SYSTEM_TOKEN: "t" });
  const d = load({
    NATS_ACCOUNT: OPERATOR_ACCOUNT,
    NATS_USER_CREDS_FILE: "/auth.creds",
    NATS_SYSTEM_CREDS_FILE: "/s",
    NATS_OPERATOR_SIGNING_KEY_FILE: "/operator-sk.nk",
    NATS_ACCOUNTS_SEED_FILE: "/accounts.nk",
  });
  const known = new Set([...fields(a), ...fields(b), ...fields(c), ...fields(d)]);
  for (const v of CONFIG_VARIABLES) assert.ok(known.has(v.sets), `${v.name} sets ${v.sets}`);
});
