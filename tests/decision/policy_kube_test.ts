/**
 * The cluster policy against the real kube-apiserver (tests/support/kube_stack.ts): real
 * ServiceAccounts with annotations, real TokenRequest tokens (`kubectl create token
 * --duration=8760h` is this request), the service reaching it with a client-certificate
 * kubeconfig, and the `explain` command run against the same apiserver.
 */
import assert from "node:assert/strict";
import { runExplainCli } from "../../lib/service/explain_cli.ts";
import type { Explanation } from "../../lib/decision/login.ts";
import { KubeStack } from "../support/kube_stack.ts";
import { tolerateClientResets } from "../support/nats_server.ts";
import { publishRefused } from "../support/permissions.ts";
import { waitFor } from "../support/wait.ts";

tolerateClientResets();

const POLICY = `
defaults:
  annotations:
    allow:
      pub: ["{namespace}.>", "shared.>"]
    deny: ["$SYS.>"]
  maxTokenLifetime: 24h
`;

Deno.test("real apiserver: a token requested for a year is refused, a 1h one logs in within the annotation bound; explain agrees", async () => {
  const policyFile = await Deno.makeTempFile({ prefix: "policy-", suffix: ".yaml" });
  try {
    await Deno.writeTextFile(policyFile, POLICY);
    // Client-certificate kubeconfig: independent of the chart RBAC rendering.
    await using stack = await KubeStack.start({
      mode: "kubeconfig-client-cert",
      rbac: false,
      env: { POLICY_FILE: policyFile },
    });
    await stack.addServiceAccount("team-a", "api", {
      "nats.io/allowed-pub-subjects": "shared.events, team-b.orders, $SYS.REQ.x",
    });
    const short = await stack.token("team-a", "api");
    const year = await stack.kube.token("team-a", "api", { expirationSeconds: 8760 * 3600 });

    const nc = await waitFor(() => stack.connect(short), { what: "team-a/api logs in" });
    assert.match(await publishRefused(nc, "team-b.orders"), /Publish to "team-b.orders"/);
    await assert.rejects(stack.connect(year), /authorization violation/i);
    const denied = stack.logs.find((l) => l.event === "login_denied");
    assert.equal(denied?.reason, "token_lifetime_too_long");
    assert.equal(stack.service.metrics.policyDroppedSubjects.value() >= 2, true);

    const out: string[] = [];
    const io = {
      readTextFile: (p: string) => Promise.resolve(p === "short" ? short : year),
      stdout: (t: string) => void out.push(t),
      stderr: () => {},
    };
    assert.equal(await runExplainCli(["--token-file", "year"], stack.env, { io }), 1);
    assert.equal((JSON.parse(out.join("")) as Explanation).reason, "token_lifetime_too_long");
    out.length = 0;
    assert.equal(await runExplainCli(["team-a/api"], stack.env, { io }), 0);
    const e = JSON.parse(out.join("")) as Explanation;
    assert.deepEqual(e.permissions?.pub.allow, ["team-a", "team-a.>", "shared.events"]);
    assert.deepEqual(e.dropped?.map((d) => d.entry), ["team-b.orders", "$SYS.REQ.x"]);
  } finally {
    await Deno.remove(policyFile).catch(() => {});
  }
});

Deno.test("real apiserver: a namespace rule by labels follows the Namespace's labels, relabelled live", async () => {
  const policyFile = await Deno.makeTempFile({ prefix: "policy-", suffix: ".yaml" });
  try {
    await Deno.writeTextFile(
      policyFile,
      `
namespaces:
  - names: [team-open]
  - labels: { tier: locked, "example.com/owner": payments }
    connectionTypes: []
`,
    );
    await using stack = await KubeStack.start({
      mode: "kubeconfig-client-cert",
      rbac: false,
      env: { POLICY_FILE: policyFile },
    });
    await stack.kube.request("POST", "/api/v1/namespaces", {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: "shop", labels: { tier: "locked", "example.com/owner": "payments" } },
    });
    await stack.addServiceAccount("shop", "api");
    const relabel = (labels: Record<string, string | null>) =>
      stack.kube.request(
        "PATCH",
        "/api/v1/namespaces/shop",
        { metadata: { labels } },
        "application/merge-patch+json",
      );
    const token = await stack.token("shop", "api");
    const refused = async () => {
      await assert.rejects(stack.connect(token), /authorization violation/i);
      const denied = stack.logs.findLast((l) => l.event === "login_denied");
      return denied?.reason;
    };
    // The labelled rule allows no connection type: refused while the labels are on.
    await waitFor(async () => (await refused()) === "connection_type_not_allowed", {
      what: "shop/api refused by the labelled rule",
    });
    assert.ok(stack.logs.some((l) => l.event === "namespace_cache_synced"));
    assert.equal(stack.service.metrics.namespaceCacheSynced.value(), 1);

    await relabel({ tier: "open" });
    const nc = await waitFor(() => stack.connect(token), {
      what: "shop/api logs in once relabelled",
    });
    await nc.close();

    await relabel({ tier: "locked" });
    await waitFor(async () => (await refused()) === "connection_type_not_allowed", {
      what: "shop/api refused again once relabelled back",
    });
  } finally {
    await Deno.remove(policyFile).catch(() => {});
  }
});
