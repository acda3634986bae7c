/**
 * Issue 18, found by trying to break it: an importer's grant depends on the exporter Namespace. When the exporter's
 * account goes away (Namespace deleted / Terminating), a fresh login of the importer no longer gets
 * the imported subject, so the importer's live connection must be kicked (permissions_changed),
 * as the level-triggered check did before issue 18.
 *
 * @module
 */
import assert from "node:assert/strict";
import { tolerateClientResets } from "../support/nats_server.ts";
import { ProvisioningStack } from "../support/provisioning_stack.ts";
import { waitFor } from "../support/wait.ts";

const POLICY = `
namespaces:
  - glob: "team-*"
    namespaceAccount:
      exports:
        - service: "{namespace}.api.>"
          to: [team-b]
`;

Deno.test("exporter Namespace deleted: the importer's live connection is kicked (its grant shrank)", async () => {
  using _resets = tolerateClientResets();
  await using stack = await ProvisioningStack.start({ policy: POLICY });
  for (const ns of ["team-a", "team-b"]) {
    await stack.createNamespace(ns);
    await stack.kube.createServiceAccount(ns, "app", {
      "nats.io/allowed-sub-subjects": "x",
    });
  }
  const login = async (ns: string, server = 0) => {
    const token = await stack.token(ns, "app");
    return await waitFor(() => stack.connect(token, server).catch(() => undefined), {
      timeoutMs: 15_000,
      what: `${ns}/app logs in`,
    });
  };
  const a = await login("team-a");
  a.subscribe("team-a.api.echo", { callback: (_e, m) => void m.respond("echo") });
  await a.flush();
  const b = await login("team-b", 1);
  const reply = await waitFor(
    () => b.request("team-a.api.echo", "hi", { timeout: 1000 }).catch(() => undefined),
    { what: "team-b's request is answered across accounts" },
  );
  assert.equal(reply.string(), "echo");
  const bClosed = b.closed().then(() => true);

  // Past the replica's one-time adoption (which checks everything once).
  await waitFor(() => stack.replicas[0]!.logs.some((l) => l.event === "connections_adopted"), {
    timeoutMs: 30_000,
    what: "adoption done",
  });
  await new Promise((r) => setTimeout(r, 1500));
  await stack.deleteNamespace("team-a");
  // team-a's own connection goes (its Namespace is Terminating)...
  await waitFor(() => a.isClosed(), { timeoutMs: 10_000, what: "team-a's connection kicked" });
  // ...and a fresh login of team-b is no longer granted team-a.api.>:
  const fresh = await login("team-b", 2);
  const denied = await fresh.request("team-a.api.echo", "hi", { timeout: 1000 }).then(
    () => "answered",
    (e) => String(e),
  );
  assert.notEqual(denied, "answered", "a fresh team-b login no longer gets the import");
  const kicked = await Promise.race([
    bClosed,
    new Promise<boolean>((r) => setTimeout(() => r(false), 10_000)),
  ]);
  assert.ok(kicked, "team-b's old connection, granted team-a.api.> by the import, is still open");
  // The kick is logged on the server's reply to it, which can come after the client saw its close.
  await waitFor(
    () =>
      stack.replicas.flatMap((r) => r.logs).some((l) =>
        l.event === "connection_kicked" && l.namespace === "team-b"
      ),
    { timeoutMs: 5_000, what: "team-b's kick logged" },
  );
});
