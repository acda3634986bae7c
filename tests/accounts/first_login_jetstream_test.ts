/**
 * The first JetStream call right after a namespace's first login succeeds (issue 20's fault:
 * `JetStream not enabled for account` although the login succeeded).
 *
 * nats-server loads an account on each server lazily and not atomically: a server that heard of
 * it through a route holds an expired placeholder, and while a JetStream API request loads it
 * there, the stream assignment the meta leader commits finds it without JetStream (or, a moment
 * later, has its store directory removed under it) — lib/accounts/settle.ts has the source
 * references. The window is as long as the load, so every importer here imports from
 * `EXPORTERS` namespaces: that widens it enough to hit it without extra CPU load (before the fix
 * 2–3 of 8–10 such first logins failed on this machine, idle). The service now loads the account
 * on every server and confirms it, JetStream included, before it admits the first login.
 */
import assert from "node:assert/strict";
import { jetstreamManager } from "@nats-io/jetstream";
import { tolerateClientResets } from "../support/nats_server.ts";
import { ProvisioningStack } from "../support/provisioning_stack.ts";
import { waitFor } from "../support/wait.ts";

const EXPORTERS = 40;
const FIRST_LOGINS = 12;

const POLICY = `
namespaces:
  - glob: "exp-*"
    namespaceAccount:
      exports:
        - service: "{namespace}.api.>"
          to: ["imp-*"]
  - glob: "imp-*"
    jetstream: { api: true }
    namespaceAccount:
      jetstream: { memory: 16MiB, disk: 64MiB, streams: 5, consumers: 10 }
`;

Deno.test("namespace accounts: the first JetStream call after a first login finds JetStream", async () => {
  using _resets = tolerateClientResets();
  await using stack = await ProvisioningStack.start({ policy: POLICY, jetstream: true });
  for (let i = 0; i < EXPORTERS; i++) await stack.createNamespace(`exp-${i}`);

  const failures: string[] = [];
  for (let i = 0; i < FIRST_LOGINS; i++) {
    const ns = `imp-${i}`;
    await stack.createNamespace(ns);
    await stack.kube.createServiceAccount(ns, "app", {
      "nats.io/allowed-sub-subjects": "shared.news",
    });
    const token = await stack.token(ns, "app");
    // Until the caches hear of the Namespace and ServiceAccount a login is refused: retry that.
    const nc = await waitFor(() => stack.connect(token, 2).catch(() => undefined), {
      timeoutMs: 30_000,
      what: `${ns}/app logs in`,
    });
    // A subscription's interest reaches the other servers as the account's first reference there.
    nc.subscribe("shared.news", { callback: () => {} });
    await nc.flush();
    // The client's very first JetStream request, with no account-info round trip before it.
    const jsm = await jetstreamManager(nc, { checkAPI: false });
    await jsm.streams.add({ name: "ORDERS", subjects: [`${ns}.orders.>`] }).catch((err) => {
      failures.push(`${ns}: ${(err as Error).name}: ${(err as Error).message}`);
    });
    await nc.close();
  }
  assert.deepEqual(failures, [], "every first stream create after a first login succeeds");
});
