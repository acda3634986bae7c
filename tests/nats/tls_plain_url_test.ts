/**
 * Issue 17, finding F4: a `nats://` URL with no `NATS_TLS_*` files, at a server that requires
 * TLS. nats.js then upgraded the socket with its own options, so our server name check
 * (lib/nats/tls_identity.ts) was not installed and nats-io/nats.js#303 came back: a
 * `localhost`-only certificate was accepted at `nats://127.0.0.1`, an IP-SAN certificate refused
 * ("Host: localhost. is not cert's CN"). Now the service tells nats.js `tls: null` unless TLS was
 * asked for: such a server is refused (cause `tls`) with the hint to use `tls://`, whatever its
 * certificate; a server that merely offers TLS is spoken to in plaintext, as `nats://` says.
 *
 * The CA is trusted the way an operator without `NATS_TLS_CA_FILE` would have it trusted (the
 * runtime's root store: `DENO_CERT`), so the chain passes and only the name is in question; that
 * needs a process of its own. Real nats-server, the service's own `connectNats`.
 */
import assert from "node:assert/strict";
import { NatsServer } from "../support/nats_server.ts";
import { KeyDir } from "../support/nkeys.ts";
import {
  createServerCertificates,
  type ServerCertificate,
  tlsBlock,
} from "../support/server_certs.ts";
import { ROOT } from "../support/start_task.ts";

/** A process that dials `url` with no TLS options, trusting `caFile`; its log lines until the first verdict. */
async function dialFromProcess(
  dir: KeyDir,
  url: string,
  caFile: string,
): Promise<Record<string, unknown>[]> {
  const connection = new URL("../../lib/nats/connection.ts", import.meta.url).href;
  const log = new URL("../../lib/telemetry/log.ts", import.meta.url).href;
  const metrics = new URL("../../lib/telemetry/service_metrics.ts", import.meta.url).href;
  const script = await dir.write(
    "dial.ts",
    `import { connectNats } from "${connection}";
import { createLogger } from "${log}";
import { createServiceMetrics } from "${metrics}";
const stop = new AbortController();
const logger = createLogger({ level: "info", write: (line) => {
  console.log(line);
  if (line.includes('"nats_connect_failed"')) stop.abort();
} });
try {
  const nc = await connectNats({ servers: [${JSON.stringify(url)}], name: "tls-plain-url",
    logger, metrics: createServiceMetrics(), backoff: { initialMs: 50, maxMs: 50 }, signal: stop.signal });
  await nc.close();
} catch { /* aborted after the failure was logged */ }
`,
  );
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", `${ROOT}deno.json`, script],
    env: { DENO_CERT: caFile },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  return text.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
}

async function verdictAt(
  tls: (certs: Awaited<ReturnType<typeof createServerCertificates>>) => {
    cert: ServerCertificate;
    extra?: Record<string, unknown>;
  },
): Promise<Record<string, unknown>[]> {
  await using dir = await KeyDir.create();
  const certs = await createServerCertificates(dir.path);
  const { cert, extra = {} } = tls(certs);
  await using ns = await NatsServer.start({ config: { tls: tlsBlock(cert), ...extra } });
  return await dialFromProcess(dir, `nats://127.0.0.1:${ns.port}`, certs.caFile);
}

for (
  const [kind, pick] of [
    ["a localhost-only certificate (accepted before)", (c) => c.localhost],
    ["an IP-SAN certificate (refused as 'localhost' before)", (c) => c.ip],
  ] as const satisfies readonly (readonly [
    string,
    (c: Awaited<ReturnType<typeof createServerCertificates>>) => ServerCertificate,
  ])[]
) {
  Deno.test(`nats://127.0.0.1 with no TLS files at a TLS-required server with ${kind}: refused as tls, with the hint to use tls://`, async () => {
    const events = await verdictAt((c) => ({ cert: pick(c) }));
    assert.equal(events.some((e) => e.event === "nats_connected"), false, JSON.stringify(events));
    const failed = events.find((e) => e.event === "nats_connect_failed");
    assert.ok(failed, JSON.stringify(events));
    assert.equal(failed.cause, "tls");
    assert.match(String(failed.hint), /requires TLS but NATS_URL says nats:\/\/.*use tls:\/\//);
  });
}

Deno.test("nats://127.0.0.1 with no TLS files at a server that only offers TLS (allow_non_tls): connected in plaintext, no upgrade without our name check", async () => {
  const events = await verdictAt((c) => ({ cert: c.localhost, extra: { allow_non_tls: true } }));
  const connected = events.find((e) => e.event === "nats_connected");
  assert.ok(connected, JSON.stringify(events));
});
