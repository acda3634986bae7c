/**
 * Issue 17 §3: a user configured in nats-server (a password, the service's own system user, a
 * verified client certificate) that is missing from `auth_callout.auth_users` reaches the callout.
 * Real nats-server, real clients.
 *
 * Before: refused as `token_malformed` ("token is not a JWT (expected three dot-separated
 * parts…") — or `token_missing` with a certificate only — in a line naming neither the CONNECT user
 * nor the connection; the service's own system connection logged only `nats_connect_failed
 * connection=system cause=authentication_refused`.
 */
import assert from "node:assert/strict";
import { connect, errors } from "@nats-io/transport-node";
import { KeyDir } from "../support/nkeys.ts";
import { tolerateClientResets } from "../support/nats_server.ts";
import { createServerCertificates, issueClientCertificate } from "../support/server_certs.ts";
import { Stack } from "../support/stack.ts";
import { waitFor } from "../support/wait.ts";

tolerateClientResets();

const PASSWORD = "s3cret-backup-pw";

function refusedAsAuthorization(err: unknown): boolean {
  assert.ok(err instanceof errors.AuthorizationError, String(err));
  return true;
}

Deno.test("a password user missing from auth_users is refused as not_in_auth_users, naming the user and the connection, never the password", async () => {
  await using stack = await Stack.start({
    accounts: { APP: { users: [{ user: "backup", password: PASSWORD }] } },
  });
  await assert.rejects(
    connect({
      servers: stack.nats.url,
      user: "backup",
      pass: PASSWORD,
      name: "nightly-backup",
      reconnect: false,
    }),
    refusedAsAuthorization,
  );
  const denied = stack.logs.find((l) => l.event === "login_denied");
  assert.ok(denied, JSON.stringify(stack.logs.map((l) => l.event)));
  assert.equal(denied.reason, "not_in_auth_users");
  assert.equal(denied.connect_user, "backup");
  assert.equal(denied.client_name, "nightly-backup");
  assert.match(
    String(denied.message),
    /a user configured in nats-server reached the callout: CONNECT names user "backup", connection "nightly-backup" with a password that is not a ServiceAccount token; list it in auth_callout\.auth_users/,
  );
  assert.equal(
    stack.service.metrics.requests.value({ result: "denied", reason: "not_in_auth_users" }),
    1,
  );
  assert.doesNotMatch(JSON.stringify(stack.logs), new RegExp(PASSWORD));
});

Deno.test("the service's own system user missing from auth_users: its connection says where to look, and its own callout names it", async () => {
  await using stack = await Stack.start({
    revocation: true,
    authUsers: ({ service }) => [service],
  });
  const refused = await waitFor(
    () => stack.logs.find((l) => l.event === "login_denied" && l.reason === "not_in_auth_users"),
    { timeoutMs: 10_000, what: "the system user's login refused by the callout" },
  );
  assert.equal(refused.connect_user, stack.systemUser.user);
  assert.equal(refused.client_name, "nats-k8s-oidc-callout-revocation");
  const failed = await waitFor(
    () =>
      stack.logs.find((l) =>
        l.event === "nats_connect_failed" && l.connection === "system" &&
        l.cause === "authentication_refused"
      ),
    { timeoutMs: 10_000, what: "the system connection refused" },
  );
  assert.equal(failed.cause, "authentication_refused");
  assert.match(String(failed.hint), /auth_callout\.auth_users/);
  assert.match(String(failed.hint), /not_in_auth_users/);
  assert.equal(stack.service.metrics.natsSystemConnected.value(), 0);
  assert.doesNotMatch(JSON.stringify(stack.logs), new RegExp(stack.systemUser.password));
});

Deno.test("a verified client certificate without a token is refused as not_in_auth_users, naming the certificate's subject", async () => {
  await using dir = await KeyDir.create();
  const certs = await createServerCertificates(dir.path);
  const serviceCert = await issueClientCertificate(dir.path, "nats-k8s-oidc-callout");
  const gateway = await issueClientCertificate(dir.path, "edge-gateway");
  await using stack = await Stack.start({
    tls: { caFile: certs.caFile, server: certs.ipAndLocalhost, client: serviceCert, verify: true },
  });
  await assert.rejects(
    connect({
      // localhost: a plain nats.js client checks that name for an address (nats.js#303).
      servers: `tls://localhost:${stack.nats.port}`,
      tls: { caFile: certs.caFile, certFile: gateway.certFile, keyFile: gateway.keyFile },
      name: "gateway-7",
      reconnect: false,
    }),
    refusedAsAuthorization,
  );
  const denied = stack.logs.find((l) => l.event === "login_denied");
  assert.ok(denied, JSON.stringify(stack.logs.map((l) => l.event)));
  assert.equal(denied.reason, "not_in_auth_users");
  assert.equal(denied.client_name, "gateway-7");
  assert.match(
    String(denied.message),
    /no token, and the client presents a verified TLS certificate \(subject "CN=edge-gateway"\), connection "gateway-7": if the certificate is a configured user's \(verify_and_map\), list it in auth_callout\.auth_users/,
  );
});
