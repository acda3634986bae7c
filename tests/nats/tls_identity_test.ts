/**
 * Issue 17 §2: the server certificate is verified against the host of the URL — IP SANs for an
 * address, DNS names for a name — on the main and the system connection. Real nats-server with
 * TLS, certificates made by openssl at test time; the `nats` CLI (nats.go) dialled with the same
 * URL and CA is the reference every verdict is checked against.
 *
 * Before the fix (nats.js's Node transport under Deno, nats-io/nats.js#303), `tls://127.0.0.1`
 * checked the name `localhost`: an `IP:127.0.0.1` certificate was refused with "Host: localhost.
 * is not cert's CN", and any certificate naming `localhost` was accepted for any address.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../../lib/config/config.ts";
import { connectNats } from "../../lib/nats/connection.ts";
import { startService } from "../../lib/service/service.ts";
import { createLogger, type Logger } from "../../lib/telemetry/log.ts";
import { createServiceMetrics } from "../../lib/telemetry/service_metrics.ts";
import { authCalloutConfig, NatsServer } from "../support/nats_server.ts";
import { accountKey, KeyDir } from "../support/nkeys.ts";
import { generateSigningKey, ISSUER, publicJwks } from "../support/sa_tokens.ts";
import {
  createServerCertificates,
  type ServerCertificate,
  type ServerCertificates,
  tlsBlock,
} from "../support/server_certs.ts";
import { waitFor } from "../support/wait.ts";

const HOME = Deno.env.get("HOME") ?? "";
/** `.ci/run` installs the nats CLI with `go install`, which puts it in ~/go/bin. */
const PATH = [`${HOME}/go/bin`, Deno.env.get("PATH") ?? ""].join(":");

type Verdict = "connected" | "refused";

function recordingLogger(): { logger: Logger; events: Record<string, unknown>[] } {
  const events: Record<string, unknown>[] = [];
  return {
    logger: createLogger({ level: "debug", write: (l) => events.push(JSON.parse(l)) }),
    events,
  };
}

/** What the service's connection makes of `url`: connected, or refused with its logged cause. */
async function serviceVerdict(
  url: string,
  caFile: string,
): Promise<{ verdict: Verdict; failure?: Record<string, unknown> }> {
  const { logger, events } = recordingLogger();
  const stop = new AbortController();
  const connecting = connectNats({
    servers: [url],
    tls: { caFile },
    name: "tls-identity-test",
    logger,
    metrics: createServiceMetrics(),
    backoff: { initialMs: 50, maxMs: 200 },
    signal: stop.signal,
  });
  const outcome = await Promise.race([
    connecting.then((nc) => ({ nc })),
    waitFor(() => events.find((e) => e.event === "nats_connect_failed"), {
      timeoutMs: 10_000,
      what: "nats_connect_failed",
    }).then((failure) => ({ failure })),
  ]);
  stop.abort();
  await connecting.then((nc) => nc.close(), () => {});
  if ("nc" in outcome) return { verdict: "connected" };
  return { verdict: "refused", failure: outcome.failure };
}

/** What the `nats` CLI (nats.go) makes of the same URL and CA. */
async function cliVerdict(url: string, caFile: string, configHome: string): Promise<Verdict> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("nats", {
      args: ["--server", url, "--tlsca", caFile, "--timeout", "3s", "pub", "tls.check", "x"],
      env: { PATH, HOME: configHome, XDG_CONFIG_HOME: configHome },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (err) {
    throw new Error("the nats CLI is needed: go install github.com/nats-io/natscli/nats@v0.5.1", {
      cause: err,
    });
  }
  return out.success ? "connected" : "refused";
}

async function withTlsServer<T>(
  cert: ServerCertificate,
  run: (port: number) => Promise<T>,
): Promise<T> {
  await using ns = await NatsServer.start({ config: { tls: tlsBlock(cert) } });
  return await run(ns.port);
}

/** One kind of certificate dialled at one host, and what both clients must make of it. */
interface Case {
  readonly name: string;
  readonly cert: (c: ServerCertificates) => ServerCertificate;
  readonly host: string;
  readonly expected: Verdict;
}

const CASES: readonly Case[] = [
  { name: "IP SAN at its address", cert: (c) => c.ip, host: "127.0.0.1", expected: "connected" },
  {
    name: "DNS SAN at its name",
    cert: (c) => c.localhost,
    host: "localhost",
    expected: "connected",
  },
  {
    name: "a localhost-only certificate at an IP address",
    cert: (c) => c.localhost,
    host: "127.0.0.1",
    expected: "refused",
  },
  {
    name: "another name at a DNS name",
    cert: (c) => c.wrongName,
    host: "localhost",
    expected: "refused",
  },
  {
    name: "another name at an IP address",
    cert: (c) => c.wrongName,
    host: "127.0.0.1",
    expected: "refused",
  },
  {
    name: "the right address from an untrusted CA",
    cert: (c) => c.untrusted,
    host: "127.0.0.1",
    expected: "refused",
  },
];

for (const c of CASES) {
  Deno.test(`TLS name check, ${c.name}: ${c.expected}, as the nats CLI decides`, async () => {
    await using dir = await KeyDir.create();
    const certs = await createServerCertificates(dir.path);
    await withTlsServer(c.cert(certs), async (port) => {
      const url = `tls://${c.host}:${port}`;
      const ours = await serviceVerdict(url, certs.caFile);
      const cli = await cliVerdict(url, certs.caFile, dir.path);
      assert.equal(cli, c.expected, `the nats CLI at ${url}`);
      assert.equal(ours.verdict, c.expected, `the service at ${url}: ${JSON.stringify(ours)}`);
      if (ours.failure) {
        assert.equal(ours.failure.cause, "tls", JSON.stringify(ours.failure));
        assert.equal(ours.failure.level, "error");
      }
    });
  });
}

Deno.test("a localhost-only certificate refused at tls://127.0.0.1 names the address it was checked against", async () => {
  await using dir = await KeyDir.create();
  const certs = await createServerCertificates(dir.path);
  await withTlsServer(certs.localhost, async (port) => {
    const { failure } = await serviceVerdict(`tls://127.0.0.1:${port}`, certs.caFile);
    const error = JSON.stringify(failure?.error);
    assert.match(error, /127\.0\.0\.1/, error);
    assert.doesNotMatch(error, /Host: localhost/, error);
  });
});

/** The service, in-cluster-less, against a TLS nats-server with the auth callout and a system user. */
async function serviceOverTls(
  dir: KeyDir,
  cert: ServerCertificate,
  caFile: string,
  run: (parts: {
    service: Awaited<ReturnType<typeof startService>>;
    events: Record<string, unknown>[];
  }) => Promise<void>,
): Promise<void> {
  const account = accountKey();
  const key = await generateSigningKey("RS256");
  const { config, service: user, system } = authCalloutConfig({
    issuer: account.publicKey,
    extra: { tls: tlsBlock(cert) },
  });
  await using ns = await NatsServer.start({ config });
  const env = {
    K8S_IN_CLUSTER: "false",
    JWKS_PATH: await dir.write("jwks.json", JSON.stringify(publicJwks([key]))),
    JWT_ISSUER: ISSUER,
    SERVICEACCOUNTS_FILE: await dir.write("sas.yaml", "kind: List\nitems: []\n"),
    NATS_URL: `tls://${user.user}:${user.password}@127.0.0.1:${ns.port}`,
    NATS_TLS_CA_FILE: caFile,
    NATS_SYSTEM_USER: system.user,
    NATS_SYSTEM_PASSWORD: system.password,
    NATS_ACCOUNT: "APP",
    NATS_SIGNING_KEY_FILE: await dir.write("account.seed", account.seed),
  };
  const { logger, events } = recordingLogger();
  await using service = await startService({ config: loadConfig(env), logger });
  await run({ service, events });
}

Deno.test("the service at NATS_URL=tls://<IP> with an IP-SAN certificate: main and system connections up, ready", async () => {
  await using dir = await KeyDir.create();
  const certs = await createServerCertificates(dir.path);
  await serviceOverTls(dir, certs.ip, certs.caFile, async ({ service, events }) => {
    await waitFor(() => service.ready, { timeoutMs: 15_000, what: "service ready" });
    await waitFor(
      () => events.find((e) => e.event === "nats_connected" && e.connection === "system"),
      { timeoutMs: 15_000, what: "the system connection up" },
    );
    const text = await (await service.handler(new Request("http://x/metrics"))).text();
    assert.match(text, /^nats_connected 1$/m);
    assert.match(text, /^nats_system_connected 1$/m);
  });
});

Deno.test("the service at NATS_URL=tls://<IP> with a localhost-only certificate: both connections refused as tls, not ready", async () => {
  await using dir = await KeyDir.create();
  const certs = await createServerCertificates(dir.path);
  await serviceOverTls(dir, certs.localhost, certs.caFile, async ({ service, events }) => {
    const failed = (system: boolean) =>
      events.find((e) =>
        e.event === "nats_connect_failed" && (e.connection === "system") === system
      );
    const main = await waitFor(() => failed(false), { timeoutMs: 15_000, what: "main refused" });
    const sys = await waitFor(() => failed(true), { timeoutMs: 15_000, what: "system refused" });
    assert.equal(main.cause, "tls", JSON.stringify(main));
    assert.equal(sys.cause, "tls", JSON.stringify(sys));
    const readyz = await service.handler(new Request("http://x/readyz"));
    assert.equal(readyz.status, 503);
    assert.deepEqual((await readyz.json()).failing, ["nats"]);
    assert.equal(events.some((e) => e.event === "nats_connected"), false);
  });
});
