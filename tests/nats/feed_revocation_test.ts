/**
 * Issue 18, found by trying to break it: live revocation driven by the change feeds, against the real kube-apiserver
 * and a real nats-server: Namespace relabel under a labels policy, policy reload, ServiceAccount
 * recreated under its name, and 300 connections of one ServiceAccount deleted at once.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { loadConfig } from "../../lib/config/config.ts";
import { createLogger } from "../../lib/telemetry/log.ts";
import { startService } from "../../lib/service/service.ts";
import { authCalloutConfig, NatsServer, tolerateClientResets } from "../support/nats_server.ts";
import { accountKey, KeyDir } from "../support/nkeys.ts";
import { publishRefused } from "../support/permissions.ts";
import { KubeApiServer } from "../support/kube_apiserver.ts";
import { waitFor } from "../support/wait.ts";

const POLICY_OPEN = `
namespaces:
  - labels: { tier: open }
    annotations: { allow: { pub: ["shared.>"] } }
  - labels: { tier: locked }
    annotations: { allow: { pub: [] } }
`;

Deno.test("feeds: relabel, policy reload, recreate, mass deletion each kick what they should", async (t) => {
  using _r = tolerateClientResets();
  await using dir = await KeyDir.create();
  const account = accountKey();
  const { config, service: serviceUser, system } = authCalloutConfig({
    issuer: account.publicKey,
    timeoutSeconds: 5,
  });
  await using nats = await NatsServer.start({ config });
  await using kube = await KubeApiServer.start();
  const policyFile = await dir.write("policy.yaml", POLICY_OPEN);
  await kube.request("POST", "/api/v1/namespaces", {
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name: "shop", labels: { tier: "open" } },
  });
  await kube.createNamespace("fleet");
  const env = {
    K8S_IN_CLUSTER: "false",
    KUBECONFIG: await kube.writeKubeconfig("service", { clientCert: true }),
    NATS_URL: `nats://${serviceUser.user}:${serviceUser.password}@127.0.0.1:${nats.port}`,
    NATS_ACCOUNT: "APP",
    NATS_SIGNING_KEY_FILE: await dir.write("account.seed", account.seed),
    NATS_SYSTEM_USER: system.user,
    NATS_SYSTEM_PASSWORD: system.password,
    POLICY_FILE: policyFile,
  };
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({ level: "debug", write: (l) => logs.push(JSON.parse(l)) });
  await using service = await startService({ config: loadConfig(env), logger });
  await waitFor(() => service.ready, { timeoutMs: 30_000, what: "service ready" });
  await waitFor(() => logs.some((l) => l.event === "connections_adopted"), {
    timeoutMs: 30_000,
    what: "adoption done",
  });
  const clients: NatsConnection[] = [];
  const login = async (token: string) => {
    const nc = await waitFor(
      () =>
        connect({ servers: nats.url, token, reconnect: false, timeout: 5000 }).catch(() =>
          undefined
        ),
      { what: "login" },
    );
    clients.push(nc);
    return nc;
  };
  try {
    await kube.createServiceAccount("shop", "api", { "nats.io/allowed-pub-subjects": "shared.x" });
    const apiToken = await kube.token("shop", "api", { audiences: ["nats"] });

    await t.step("Namespace relabel (labels policy) narrows the grant: kicked", async () => {
      const nc = await login(apiToken);
      nc.publish("shared.x");
      await nc.flush();
      await new Promise((r) => setTimeout(r, 1000));
      await kube.request("PATCH", "/api/v1/namespaces/shop", {
        metadata: { labels: { tier: "locked" } },
      }, "application/merge-patch+json");
      await waitFor(() => nc.isClosed(), { timeoutMs: 5000, what: "relabelled connection kicked" });
      const again = await login(apiToken);
      assert.match(await publishRefused(again, "shared.x"), /Permissions Violation/i);
    });

    await t.step("policy reload narrows: kicked", async () => {
      await kube.request("PATCH", "/api/v1/namespaces/shop", {
        metadata: { labels: { tier: "open" } },
      }, "application/merge-patch+json");
      const nc = await waitFor(async () => {
        const c = await login(apiToken);
        const refused = await publishRefused(c, "shared.x").catch(() => "");
        if (refused === "") return c;
        await c.close();
        return undefined;
      }, { what: "wide login again" });
      await new Promise((r) => setTimeout(r, 1000));
      await Deno.writeTextFile(policyFile, POLICY_OPEN.replace('pub: ["shared.>"]', "pub: []"));
      await waitFor(() => nc.isClosed(), { timeoutMs: 10_000, what: "kicked after policy reload" });
    });

    await t.step("ServiceAccount recreated under its name: kicked", async () => {
      await kube.createServiceAccount("fleet", "one");
      const tok = await kube.token("fleet", "one", { audiences: ["nats"] });
      const nc = await login(tok);
      await new Promise((r) => setTimeout(r, 1000));
      await kube.deleteServiceAccount("fleet", "one");
      await kube.createServiceAccount("fleet", "one");
      await waitFor(() => nc.isClosed(), { timeoutMs: 5000, what: "recreated SA kicked" });
    });

    await t.step("300 connections of one ServiceAccount, deleted: all kicked", async () => {
      await kube.createServiceAccount("fleet", "many");
      const tok = await kube.token("fleet", "many", { audiences: ["nats"] });
      await login(tok);
      const many: NatsConnection[] = [];
      for (let i = 0; i < 30; i++) {
        many.push(...await Promise.all(Array.from({ length: 10 }, () => login(tok))));
      }
      await new Promise((r) => setTimeout(r, 1000));
      const started = performance.now();
      await kube.deleteServiceAccount("fleet", "many");
      await waitFor(() => many.every((c) => c.isClosed()), {
        timeoutMs: 20_000,
        what: "all 300 kicked",
      });
      // deno-lint-ignore no-console -- the figure, printed with the test
      console.log(`300 kicked in ${Math.round(performance.now() - started)} ms`);
    });
  } finally {
    for (const c of clients) await c.close().catch(() => {});
  }
});
