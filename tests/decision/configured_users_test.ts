import assert from "node:assert/strict";
import {
  certificateText,
  configuredUserRefusal,
  looksLikeJwt,
} from "../../lib/decision/configured_users.ts";
import { extractToken } from "../../lib/decision/login.ts";
import type { CalloutRequest } from "../../lib/callout/handler.ts";
import { KeyDir } from "../support/nkeys.ts";
import { createServerCertificates, issueClientCertificate } from "../support/server_certs.ts";

type Request = Pick<CalloutRequest, "connectOpts" | "clientInfo" | "clientCertificate">;

function refusalOf(request: Request) {
  return configuredUserRefusal(request, extractToken(request.connectOpts));
}

const TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";

Deno.test("configuredUserRefusal: a user with a password that is no token is a configured user, named with its connection, never with its password", () => {
  const refusal = refusalOf({
    connectOpts: { user: "callout-system", pass: "hunter2-s3cret", name: "revocation" },
    clientInfo: {},
  });
  assert.equal(refusal?.reason, "not_in_auth_users");
  assert.match(refusal!.message, /CONNECT names user "callout-system", connection "revocation"/);
  assert.match(refusal!.message, /auth_callout\.auth_users/);
  assert.doesNotMatch(refusal!.message, /hunter2/);
});

Deno.test("configuredUserRefusal: a user without a password, an nkey user, a client certificate alone: configured users too", () => {
  assert.match(
    refusalOf({ connectOpts: { user: "backup" }, clientInfo: {} })!.message,
    /user "backup" with no password and no token/,
  );
  assert.match(
    refusalOf({ connectOpts: { nkey: "UABC" }, clientInfo: { name: "ops" } })!.message,
    /nkey "UABC", connection "ops"/,
  );
  assert.match(
    refusalOf({
      connectOpts: {},
      clientInfo: {},
      clientCertificate: { verified: true, pem: "junk" },
    })!.message,
    /no token, and the client presents a verified TLS certificate \(unreadable\): if the certificate is a configured user's \(verify_and_map\), list it in auth_callout\.auth_users.*a workload sends its ServiceAccount token/,
  );
});

Deno.test("configuredUserRefusal: two dots do not make a JWT (a password or a user name with dots)", () => {
  // Found by trying to break issue 17: `aaa.bbb.ccc` was taken for a token (token_malformed) and a
  // dotted user name was hidden as if it were one.
  const dotted = refusalOf({
    connectOpts: { user: "mqttish", pass: "aaa.bbb.ccc" },
    clientInfo: {},
  });
  assert.equal(dotted?.reason, "not_in_auth_users");
  assert.match(
    dotted!.message,
    /user "mqttish" with a password that is not a ServiceAccount token/,
  );
  const named = refusalOf({ connectOpts: { user: "team.backup.user", pass: "x" }, clientInfo: {} });
  assert.match(named!.message, /user "team\.backup\.user"/);
  assert.ok(!looksLikeJwt("aaa.bbb.ccc") && !looksLikeJwt("e30.e30.e30"));
  assert.ok(looksLikeJwt(`${btoa('{"alg":"RS256"}').replaceAll("=", "")}.x.y`));
});

Deno.test("configuredUserRefusal: a workload is never taken for a configured user", () => {
  const workloads: Request[] = [
    { connectOpts: { auth_token: TOKEN }, clientInfo: {} },
    // An auth_token decides even next to a user: the token is checked and refused on its own.
    { connectOpts: { auth_token: "not-a-jwt", user: "x", pass: "y" }, clientInfo: {} },
    // MQTT and user/password clients put the token in the password, any user name beside it.
    { connectOpts: { user: "mqtt-client", pass: TOKEN }, clientInfo: {} },
    // A damaged token keeps its token reason (token_malformed), wherever it is.
    { connectOpts: { user: "mqtt-client", pass: `${TOKEN}\n` }, clientInfo: {} },
    { connectOpts: { pass: "not-a-jwt" }, clientInfo: {} },
    // mTLS plus a token: a workload.
    {
      connectOpts: { auth_token: TOKEN },
      clientInfo: {},
      clientCertificate: { verified: true, pem: "junk" },
    },
    // Nothing at all: token_missing, as before.
    { connectOpts: {}, clientInfo: {} },
  ];
  for (const request of workloads) {
    assert.equal(refusalOf(request), undefined, JSON.stringify(request));
  }
});

Deno.test("configuredUserRefusal: a token put in the user field is not quoted", () => {
  const refusal = refusalOf({ connectOpts: { user: TOKEN }, clientInfo: {} });
  assert.equal(refusal?.reason, "not_in_auth_users");
  assert.doesNotMatch(refusal!.message, /eyJ/);
});

Deno.test("certificateText reads a real certificate's subject and names an unreadable one", async () => {
  await using dir = await KeyDir.create();
  await createServerCertificates(dir.path);
  const client = await issueClientCertificate(dir.path, "edge-gateway");
  const pem = await Deno.readTextFile(client.certFile);
  assert.equal(certificateText(pem), 'subject "CN=edge-gateway"');
  assert.equal(certificateText(""), "unreadable");
  assert.equal(
    certificateText("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"),
    "unreadable",
  );
  assert.ok(looksLikeJwt(TOKEN) && !looksLikeJwt("a.b"));
});
