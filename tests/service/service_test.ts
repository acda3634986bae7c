/**
 * lib/service/service.ts start-up: a problem no retry can fix fails start-up at once with an error that
 * names the file, instead of a service that never becomes ready.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../../lib/config/config.ts";
import { silentLogger } from "../../lib/telemetry/log.ts";
import { startService } from "../../lib/service/service.ts";
import { accountKey, KeyDir } from "../support/nkeys.ts";

async function baseEnv(dir: KeyDir): Promise<Record<string, string>> {
  return {
    // A JWKS URL that refuses connections: the key source starts and retries in the background,
    // so the failure below happens after it exists (start-up must close it).
    JWKS_URL: "http://127.0.0.1:1/openid/v1/jwks",
    JWT_ISSUER: "https://kubernetes.default.svc.cluster.local",
    NATS_ACCOUNT: "APP",
    NATS_SIGNING_KEY_FILE: await dir.write("account.seed", accountKey().seed),
  };
}

Deno.test("a missing kubeconfig fails start-up at once with an error naming its path", async () => {
  await using dir = await KeyDir.create();
  const config = loadConfig({
    ...await baseEnv(dir),
    K8S_IN_CLUSTER: "false",
    KUBECONFIG: `${dir.path}/missing-kubeconfig`,
  });
  await assert.rejects(startService({ config, logger: silentLogger() }), /missing-kubeconfig/);
});

Deno.test("an unreadable cluster CA fails start-up at once with an error naming its path", async () => {
  await using dir = await KeyDir.create();
  const config = loadConfig({
    ...await baseEnv(dir),
    K8S_IN_CLUSTER: "true",
    KUBERNETES_SERVICE_HOST: "127.0.0.1",
    K8S_CA_FILE: `${dir.path}/missing-ca.crt`,
    K8S_TOKEN_FILE: await dir.write("token", "pod-token"),
  });
  await assert.rejects(startService({ config, logger: silentLogger() }), /missing-ca\.crt/);
});

Deno.test({
  name: "a failure after the policy file started releases its watch: start-up owns what it started",
  // Off by default in Deno 2: here they are the assertion (the watch and its timers are gone).
  sanitizeOps: true,
  sanitizeResources: true,
  fn: async () => {
    await using dir = await KeyDir.create();
    const config = loadConfig({
      ...await baseEnv(dir),
      POLICY_FILE: await dir.write("policy.yaml", "namespaces:\n  - names: [team-a]\n"),
      K8S_IN_CLUSTER: "true",
      KUBERNETES_SERVICE_HOST: "127.0.0.1",
      K8S_CA_FILE: `${dir.path}/missing-ca.crt`,
      K8S_TOKEN_FILE: await dir.write("token", "pod-token"),
    });
    await assert.rejects(startService({ config, logger: silentLogger() }), /missing-ca\.crt/);
  },
});
