/**
 * The service against the real kube-apiserver (v1.37.2, tests/support/kube_apiserver.ts): what a
 * user sees in each way of reaching it, and the Kubernetes-facing faults found that way.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../../lib/config/config.ts";
import { createLogger } from "../../lib/telemetry/log.ts";
import { startService } from "../../lib/service/service.ts";
import { KubeApiServer } from "../support/kube_apiserver.ts";
import { type AccessMode, KubeStack } from "../support/kube_stack.ts";
import { publishRefused } from "../support/permissions.ts";
import { NatsServer, tolerateClientResets } from "../support/nats_server.ts";
import { createTestCertificates } from "../support/test_apiserver.ts";
import { waitFor } from "../support/wait.ts";

tolerateClientResets();

/** Log in with `token` and publish on `subject`; resolves when the server accepted both. */
async function publishes(stack: KubeStack, token: string, subject: string): Promise<void> {
  const nc = await stack.connect(token);
  nc.publish(subject, "hi");
  await nc.flush();
  await nc.close();
}

async function refusedLogin(stack: KubeStack, token: string): Promise<string> {
  const err = await stack.connect(token).then(
    () => assert.fail("login was accepted"),
    (e: Error) => e,
  );
  assert.match(String(err), /Authorization Violation|AUTHORIZATION_VIOLATION/i);
  return String(err);
}

function denials(stack: KubeStack, reason: string): number {
  return stack.logs.filter((l) => l.event === "login_denied" && l.reason === reason).length;
}

for (
  const mode of [
    "in-cluster",
    "kubeconfig-token",
    "kubeconfig-client-cert",
    "kubeconfig-proxy",
  ] as AccessMode[]
) {
  Deno.test(`real apiserver, ${mode}: ready with discovered keys and issuer; a TokenRequest token logs in within its namespace`, async () => {
    await using stack = await KubeStack.start({ mode });
    assert.ok(
      stack.logs.some((l) => l.event === "issuer_discovered" && l.issuer === stack.kube.issuer),
    );
    assert.ok(stack.logs.some((l) => l.event === "jwks_loaded"));
    await stack.addServiceAccount("team-a", "worker");
    const token = await stack.token("team-a", "worker");
    await publishes(stack, token, "team-a.orders");
    const nc = await stack.connect(token);
    assert.match(await publishRefused(nc, "team-b.orders"), /Permissions Violation/);
  });
}

Deno.test("real apiserver, in-cluster: annotation change, delete and recreate reach the next login", async () => {
  await using stack = await KubeStack.start({ mode: "in-cluster" });
  await stack.addServiceAccount("team-a", "worker");
  const token = await stack.token("team-a", "worker");
  const nc = await stack.connect(token);
  assert.match(await publishRefused(nc, "shared.events"), /Permissions Violation/);
  await nc.close();

  await stack.kube.annotateServiceAccount("team-a", "worker", {
    "nats.io/allowed-pub-subjects": "shared.events",
  });
  await waitFor(async () => {
    const c = await stack.connect(token);
    const errs: string[] = [];
    await publishRefused(c, "shared.events").then((m) => errs.push(m), () => {});
    await c.close();
    return errs.length === 0;
  }, { timeoutMs: 10_000, what: "annotation granted on the next login" });

  await stack.kube.deleteServiceAccount("team-a", "worker");
  await waitFor(() => stack.connect(token).then((c) => c.close().then(() => false), () => true), {
    timeoutMs: 10_000,
    what: "deleted ServiceAccount refused",
  });
  assert.ok(denials(stack, "serviceaccount_not_found") >= 1);

  // Recreated under the same name: a new UID; the old token names the old one.
  await stack.kube.createServiceAccount("team-a", "worker");
  const fresh = await stack.token("team-a", "worker");
  await waitFor(() => publishes(stack, fresh, "team-a.x").then(() => true), {
    timeoutMs: 10_000,
    what: "recreated ServiceAccount logs in with a new token",
  });
  await refusedLogin(stack, token);
  assert.ok(denials(stack, "serviceaccount_uid_mismatch") >= 1);
});

Deno.test("real apiserver, in-cluster: signing-key rotation and an apiserver restart heal without a restart of ours", async () => {
  await using stack = await KubeStack.start({ mode: "in-cluster" });
  await stack.addServiceAccount("team-a", "worker");
  const before = await stack.token("team-a", "worker");
  await publishes(stack, before, "team-a.x");

  // The apiserver restarts signing with a new key (the old one still verifies): our watch breaks
  // and resumes or relists (410 for a resourceVersion the new watch cache does not hold), and the
  // first token with the new kid makes us refetch the JWKS.
  await stack.kube.restart({ rotateSigningKey: true });
  await stack.addServiceAccount("team-a", "after-restart");
  const rotated = await stack.token("team-a", "after-restart");
  assert.notEqual(
    JSON.parse(atob(rotated.split(".")[0]!.replace(/-/g, "+").replace(/_/g, "/"))).kid,
    JSON.parse(atob(before.split(".")[0]!.replace(/-/g, "+").replace(/_/g, "/"))).kid,
  );
  await waitFor(() => publishes(stack, rotated, "team-a.y").then(() => true), {
    timeoutMs: 15_000,
    what: "a ServiceAccount created after the restart logs in with a token of the new key",
  }).catch((err) => {
    const seen = stack.logs.filter((l) => l.level !== "debug" || String(l.event).startsWith("jwks"))
      .slice(-25);
    throw new Error(`${err.message}\n${seen.map((l) => JSON.stringify(l)).join("\n")}`);
  });
  await publishes(stack, before, "team-a.z");
  assert.ok(stack.service.ready);
});

Deno.test("real apiserver: JWT_ISSUER takes a list (issuer migration)", async () => {
  // Before: a comma list was one issuer; the service started, reported ready, then refused every
  // token with issuer_mismatch.
  await using stack = await KubeStack.start({
    mode: "kubeconfig-token",
    env: (kube) => ({ JWT_ISSUER: `https://old-issuer.example, ${kube.issuer}` }),
  });
  await stack.addServiceAccount("team-a", "worker");
  await publishes(stack, await stack.token("team-a", "worker"), "team-a.x");
  assert.equal(denials(stack, "issuer_mismatch"), 0);
});

Deno.test("real apiserver, in-cluster: JWT_AUDIENCE equal to the apiserver's own audience stops the start", async () => {
  // The apiserver's default API audience is its issuer; the service's own token carries it, so the
  // risk is found at start even with the issuer left to discovery.
  await using stack = await KubeStack.start({
    mode: "in-cluster",
    env: (kube) => ({ JWT_AUDIENCE: kube.issuer }),
    waitReady: false,
  });
  const err = await stack.service.failed;
  assert.match(
    err.message,
    /apiserver's own API audiences .*every pod's default ServiceAccount token/,
  );
  assert.match(err.message, /JWT_AUDIENCE_ALLOW_API_AUDIENCE=true/);
  assert.equal(stack.service.ready, false);
});

Deno.test("real apiserver: failures to reach it are named once per cause at warn (TLS, RBAC)", async () => {
  await using kube = await KubeApiServer.start();
  await using nats = await NatsServer.start({ config: {} });
  // 1. TLS: a kubeconfig whose CA is not the cluster's.
  const other = await createTestCertificates(await Deno.makeTempDir({ dir: kube.dir }));
  const wrongCa = await kube.writeKubeconfig("wrong-ca", { token: kube.adminToken });
  const text = (await Deno.readTextFile(wrongCa)).replace(kube.caFile, other.caFile);
  await Deno.writeTextFile(wrongCa, text);
  // 2. RBAC: a ServiceAccount token without the chart's ClusterRole.
  await kube.createNamespace("nats-system");
  await kube.createServiceAccount("nats-system", "no-rbac");
  const noRbac = await kube.writeKubeconfig("no-rbac", {
    token: await kube.token("nats-system", "no-rbac", { audiences: [] }),
  });
  for (
    const [kubeconfig, cause, pattern] of [
      [wrongCa, "tls", /certificate|UnknownIssuer/i],
      [noRbac, "forbidden", /cannot list resource \\?"serviceaccounts\\?"/],
    ] as const
  ) {
    const logs: Record<string, unknown>[] = [];
    const seed = (await import("../support/nkeys.ts")).accountKey().seed;
    const seedFile = await Deno.makeTempFile();
    await Deno.writeTextFile(seedFile, seed);
    await using service = await startService({
      config: loadConfig({
        K8S_IN_CLUSTER: "false",
        KUBECONFIG: kubeconfig,
        NATS_URL: nats.url,
        NATS_ACCOUNT: "APP",
        NATS_SIGNING_KEY_FILE: seedFile,
        JWT_ISSUER: kube.issuer,
      }),
      logger: createLogger({ level: "debug", write: (l) => logs.push(JSON.parse(l)) }),
    });
    const warned = await waitFor(
      () =>
        logs.find((l) =>
          l.event === "apiserver_request_failed" && l.level === "warn" &&
          l.request === "list/watch serviceaccounts"
        ),
      { timeoutMs: 10_000, what: `${cause} named` },
    );
    assert.equal(warned.cause, cause, JSON.stringify(warned));
    assert.match(String(warned.error), pattern);
    // Further attempts of the same cause stay at debug.
    await waitFor(
      () =>
        logs.filter((l) =>
          l.event === "apiserver_request_failed" && l.request === "list/watch serviceaccounts"
        ).length >= 2,
      {
        timeoutMs: 10_000,
        what: "a retry",
      },
    );
    assert.equal(
      logs.filter((l) =>
        l.level === "warn" && l.event === "apiserver_request_failed" &&
        l.request === "list/watch serviceaccounts"
      ).length,
      1,
    );
    assert.equal(service.ready, false);
    await Deno.remove(seedFile);
  }
});
