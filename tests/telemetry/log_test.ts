import assert from "node:assert/strict";
import { createLogger, type Logger, redactUrl } from "../../lib/telemetry/log.ts";

function recording(): { logger: Logger; lines: string[]; last: () => Record<string, unknown> } {
  const lines: string[] = [];
  const logger = createLogger({ level: "debug", write: (l) => lines.push(l), now: () => 0 });
  return { logger, lines, last: () => JSON.parse(lines.at(-1)!) };
}

Deno.test("redactUrl masks URL userinfo in every form and leaves every other string alone", () => {
  assert.equal(redactUrl("nats://me:hunter2@nats:4222"), "nats://me:***@nats:4222");
  assert.equal(
    redactUrl("nats://a:p1@h1:4222,nats://b:p2@h2:4222"),
    "nats://a:***@h1:4222,nats://b:***@h2:4222",
  );
  assert.equal(redactUrl("dial tls://svc:pw@nats failed"), "dial tls://svc:***@nats failed");
  // A bare userinfo is a token to nats.js and to our connection code (issue 10, defect 2).
  assert.equal(redactUrl("nats://s3cr3t-token@nats:4222"), "nats://***@nats:4222");
  assert.equal(redactUrl("nats://svc@nats:4222"), "nats://***@nats:4222");
  assert.equal(redactUrl("NATS://T0K@h"), "NATS://***@h");
  assert.equal(redactUrl("nats://a%40b:p@ss@h:4222"), "nats://a%40b:***@h:4222");
  assert.equal(redactUrl("nats://tok@en@h:4222"), "nats://***@h:4222");
  assert.equal(redactUrl("nats://:only-pass@h"), "nats://***@h");
  assert.equal(
    redactUrl("nats://t1@h1:4222,tls://u:p@h2,nats://h3"),
    "nats://***@h1:4222,tls://u:***@h2,nats://h3",
  );
  assert.equal(redactUrl('servers ["nats://tk@h"]'), 'servers ["nats://***@h"]');
  for (
    const plain of [
      "",
      "login_allowed",
      "me@example.com",
      "nats://nats:4222",
      "see https://example.com/a@b",
    ]
  ) {
    assert.equal(redactUrl(plain), plain);
  }
});

Deno.test("secret-named keys are redacted at every depth up to 4, in objects and arrays", () => {
  const { logger, lines } = recording();
  logger.info("x", {
    token: "t0",
    nested: {
      password: "t1",
      // Depths 2, 3 (an array counts as a level) and 4.
      deeper: {
        seed: "t2",
        list: [{ auth_token: "t3" }],
        more: { inner: { NATS_CREDS: "t4" } },
      },
    },
    keep: "visible",
  });
  const line = lines[0]!;
  for (const secret of ["t0", "t1", "t2", "t3", "t4"]) {
    assert.ok(!line.includes(`"${secret}"`), `${secret} is not written`);
  }
  const parsed = JSON.parse(line);
  assert.equal(parsed.token, "[redacted]");
  assert.equal(parsed.nested.deeper.list[0].auth_token, "[redacted]");
  assert.equal(parsed.nested.deeper.more.inner.NATS_CREDS, "[redacted]");
  assert.equal(parsed.keep, "visible");
});

Deno.test("URL passwords are masked in strings at any depth and in error messages", () => {
  const { logger, lines, last } = recording();
  const err = Object.assign(new Error("connect to nats://svc:pw1@nats:4222 refused"), {
    code: "ECONNREFUSED",
  });
  logger.error("x", {
    servers: ["nats://a:pw2@h1:4222"],
    error: err,
    wrapped: { inner: { cause: new TypeError("bad url https://u:pw3@issuer/keys") } },
    url: "nats://b:pw4@h2",
  });
  for (const secret of ["pw1", "pw2", "pw3", "pw4"]) {
    assert.ok(!lines[0]!.includes(secret), `${secret} is not written`);
  }
  const parsed = last();
  assert.deepEqual(parsed.error, {
    name: "Error",
    message: "connect to nats://svc:***@nats:4222 refused",
    code: "ECONNREFUSED",
  });
  assert.deepEqual(parsed.servers, ["nats://a:***@h1:4222"]);
});

Deno.test("logging leaves the caller's fields untouched, and lines without secrets are verbatim", () => {
  const { logger, last } = recording();
  const fields = { token: "abc", nested: { url: "nats://u:p@h" }, n: 1, ok: true, none: null };
  logger.info("x", fields);
  assert.equal(fields.token, "abc");
  assert.equal(fields.nested.url, "nats://u:p@h");
  assert.deepEqual(last(), {
    ts: "1970-01-01T00:00:00.000Z",
    level: "info",
    event: "x",
    token: "[redacted]",
    nested: { url: "nats://u:***@h" },
    n: 1,
    ok: true,
    none: null,
  });
  const plain = { namespace: "team-a", serviceaccount: "worker", list: ["a", "b"], d: 0.5 };
  logger.info("y", plain);
  assert.deepEqual(last(), {
    ts: "1970-01-01T00:00:00.000Z",
    level: "info",
    event: "y",
    ...plain,
  });
});

Deno.test("objects with their own JSON form (a URL) never print a password through it", () => {
  const { logger, lines } = recording();
  logger.info("x", { server: new URL("nats://svc:pw5@nats:4222") });
  assert.ok(!lines[0]!.includes("pw5"));
});

Deno.test("child loggers redact their own fields too", () => {
  const { logger, last } = recording();
  logger.child({ password: "pw6", component: "jwks" }).warn("x", { seed: "s" });
  const parsed = last();
  assert.equal(parsed.password, "[redacted]");
  assert.equal(parsed.seed, "[redacted]");
  assert.equal(parsed.component, "jwks");
});
