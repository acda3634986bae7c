/**
 * The chart's live-revocation values (issue 9 §4): each way of giving the system-account user
 * renders the environment and files the service reads, with secrets only in Secrets, and the
 * rendered environment loads into a configuration with revocation on.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../../lib/config/config.ts";
import { deploymentEnv, deploymentFiles, findAll, renderChart } from "../support/chart.ts";
import { accountKey } from "../support/nkeys.ts";

const REQUIRED = { account: "APP", signingKey: { existingSecret: "sk" } };
const SEED = accountKey().seed;
const existingSecrets = {
  sk: { "signing.key": SEED },
  syscreds: { "system.creds": "-----BEGIN NATS USER JWT-----\nx\n------END NATS USER JWT------\n" },
};

function configOf(env: Record<string, string>) {
  return loadConfig({ ...env, NATS_SIGNING_KEY_FILE: "/k" }, { readTextFile: () => SEED });
}

Deno.test("chart: live revocation is off by default", async () => {
  const docs = await renderChart({ nats: REQUIRED });
  const env = deploymentEnv(docs, { existingSecrets });
  assert.ok(!Object.keys(env).some((k) => k.startsWith("NATS_SYSTEM_")));
  assert.equal(configOf(env).nats.system, undefined);
});

Deno.test("chart: nats.system user+password → env, the password from a Secret", async () => {
  const docs = await renderChart({
    nats: { ...REQUIRED, system: { user: "sys", password: "pw" } },
  });
  const rendered = JSON.stringify(findAll(docs, "Deployment"));
  assert.ok(!rendered.includes('"pw"'), "the password is not in the pod spec");
  const env = deploymentEnv(docs, { existingSecrets });
  assert.equal(env.NATS_SYSTEM_USER, "sys");
  assert.equal(env.NATS_SYSTEM_PASSWORD, "pw");
  assert.deepEqual(configOf(env).nats.system, { user: "sys", password: "pw" });
});

Deno.test("chart: nats.system token → env from a Secret", async () => {
  const docs = await renderChart({ nats: { ...REQUIRED, system: { token: "tok" } } });
  const env = deploymentEnv(docs, { existingSecrets });
  assert.equal(env.NATS_SYSTEM_TOKEN, "tok");
  assert.deepEqual(configOf(env).nats.system, { token: "tok" });
});

Deno.test("chart: nats.system existingSecret → a creds file mounted at /etc/nats/system.creds", async () => {
  const docs = await renderChart({ nats: { ...REQUIRED, system: { existingSecret: "syscreds" } } });
  const env = deploymentEnv(docs, { existingSecrets });
  assert.equal(env.NATS_SYSTEM_CREDS_FILE, "/etc/nats/system.creds");
  const files = deploymentFiles(docs, { existingSecrets });
  assert.match(files.get("/etc/nats/system.creds") ?? "", /BEGIN NATS USER JWT/);
  assert.deepEqual(configOf(env).nats.system, { credsFile: "/etc/nats/system.creds" });
});
