/**
 * The chart's `policy:` value and the documented example: the ConfigMap the chart renders is a
 * policy file the service accepts, mounted (as a directory, so edits reach the pod) where
 * POLICY_FILE points; docs/policy.md's example parses as written.
 */
import assert from "node:assert/strict";
import { parse } from "yaml";
import { parsePolicy } from "../../lib/decision/policy_file.ts";
import { field, findAll, findOne, renderChart } from "../support/chart.ts";

const REQUIRED = { nats: { account: "APP", signingKey: { existingSecret: "signing" } } };

function docExample(): string {
  const text = Deno.readTextFileSync(new URL("../../docs/policy.md", import.meta.url));
  const block = text.match(/## A commented example\n\n```yaml\n([\s\S]*?)```/);
  assert.ok(block, "docs/policy.md has the commented example");
  return block[1]!;
}

Deno.test("docs/policy.md: the commented example is a valid policy", () => {
  const { policy } = parsePolicy(docExample(), { path: "docs/policy.md", defaultAccount: "APP" });
  assert.equal(policy.namespaces.length, 3);
});

Deno.test("chart policy: renders a ConfigMap the service accepts, mounted where POLICY_FILE points", async () => {
  const policy = parse(docExample());
  const docs = await renderChart({ ...REQUIRED, policy });
  const cm = findOne(docs, "ConfigMap", "r-nats-k8s-oidc-callout-policy");
  const text = String(field(cm, "data", "policy.yaml"));
  parsePolicy(text, { path: "policy.yaml", defaultAccount: "APP" });

  const pod = field(findOne(docs, "Deployment"), "spec", "template", "spec") as {
    containers: {
      env: { name: string; value?: string }[];
      volumeMounts: Record<string, unknown>[];
    }[];
    volumes: Record<string, unknown>[];
  };
  const c = pod.containers[0]!;
  const env = c.env.find((e) => e.name === "POLICY_FILE");
  assert.equal(env?.value, "/etc/nats-k8s-oidc-callout/policy/policy.yaml");
  const mount = c.volumeMounts.find((m) => m.name === "policy");
  assert.equal(mount?.mountPath, "/etc/nats-k8s-oidc-callout/policy");
  assert.equal(mount?.subPath, undefined, "a subPath mount would never see an edit");
  const volume = pod.volumes.find((v) => v.name === "policy");
  assert.deepEqual(volume?.configMap, { name: "r-nats-k8s-oidc-callout-policy" });

  // A YAML string works too (comments kept).
  const asText = await renderChart({ ...REQUIRED, policy: docExample() });
  assert.equal(
    String(
      field(findOne(asText, "ConfigMap", "r-nats-k8s-oidc-callout-policy"), "data", "policy.yaml"),
    ),
    docExample(),
  );
});

Deno.test("chart policy: without a policy there is no ConfigMap, no mount and no POLICY_FILE", async () => {
  const docs = await renderChart(REQUIRED);
  assert.equal(findAll(docs, "ConfigMap").length, 0);
  const c = field(findOne(docs, "Deployment"), "spec", "template", "spec", "containers") as {
    env: { name: string }[];
  }[];
  assert.ok(!c[0]!.env.some((e) => e.name === "POLICY_FILE"));
});
