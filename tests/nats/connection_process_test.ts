/**
 * The service's own NATS connection tells the truth, in the real process (issue 9 §6): the cause of
 * a failed connection (authentication refused, unreachable, TLS) is logged once per change of
 * cause with the attempt count, and SIGTERM stops the process within 1 s with exit status 0 in
 * every connection state — first connect refused, unreachable, hanging in the handshake, TLS
 * refused, reconnecting, connected.
 */
import assert from "node:assert/strict";
import { freePort, waitReady } from "../support/http_probe.ts";
import { authCalloutConfig, NatsServer } from "../support/nats_server.ts";
import { accountKey, KeyDir } from "../support/nkeys.ts";
import { generateSigningKey, ISSUER, publicJwks } from "../support/sa_tokens.ts";
import { createTestCertificates } from "../support/test_apiserver.ts";
import { spawnStartTask } from "../support/start_task.ts";
import { waitFor } from "../support/wait.ts";

type Event = Record<string, unknown> & { event: string; level: string };

/** The service process started with the `start` task's own flags, its log parsed as it comes. */
class ServiceProcess implements AsyncDisposable {
  readonly events: Event[] = [];
  text = "";
  readonly #child: Deno.ChildProcess;
  readonly #reading: Promise<void>;

  constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#reading = (async () => {
      let buffered = "";
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        this.text += chunk;
        buffered += chunk;
        let nl: number;
        while ((nl = buffered.indexOf("\n")) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          try {
            this.events.push(JSON.parse(line));
          } catch {
            // not a log line
          }
        }
      }
    })();
  }

  static async start(env: Record<string, string>): Promise<ServiceProcess> {
    const child = await spawnStartTask(env);
    return new ServiceProcess(child);
  }

  named(event: string): Event[] {
    return this.events.filter((e) => e.event === event);
  }

  waitEvent(event: string, where: (e: Event) => boolean = () => true): Promise<Event> {
    return waitFor(() => this.named(event).find(where), {
      timeoutMs: 20_000,
      what: `log event ${event}`,
    }).catch((err) => {
      throw new Error(`${err.message}\n--- service log ---\n${this.text}`);
    });
  }

  /** SIGTERM; resolves with the exit code and the milliseconds from the signal to the exit. */
  async terminate(): Promise<{ code: number; ms: number }> {
    const started = performance.now();
    this.#child.kill("SIGTERM");
    const { code } = await this.#child.status;
    const ms = performance.now() - started;
    await this.#reading;
    await this.#child.stderr.cancel();
    return { code, ms };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await this.#child.status;
    await this.#reading.catch(() => {});
    await this.#child.stderr.cancel().catch(() => {});
  }
}

/** Everything the service needs except NATS: keys and ServiceAccounts from files. */
async function baseEnv(dir: KeyDir): Promise<Record<string, string>> {
  const key = await generateSigningKey("RS256");
  return {
    K8S_IN_CLUSTER: "false",
    JWKS_PATH: await dir.write("jwks.json", JSON.stringify(publicJwks([key]))),
    JWT_ISSUER: ISSUER,
    SERVICEACCOUNTS_FILE: await dir.write(
      "serviceaccounts.yaml",
      "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  namespace: team-a\n  name: orders\n  uid: 11111111-2222-3333-4444-555555555555\n",
    ),
    NATS_ACCOUNT: "APP",
    NATS_SIGNING_KEY_FILE: await dir.write("account.seed", accountKey().seed),
    PORT: String(freePort()),
    LOG_LEVEL: "info",
  };
}

async function assertStopsFast(proc: ServiceProcess): Promise<void> {
  const { code, ms } = await proc.terminate();
  assert.equal(code, 0, proc.text);
  assert.ok(ms < 1000, `stopped ${Math.round(ms)} ms after SIGTERM (limit 1 s)`);
  assert.ok(proc.named("stopped").length === 1, proc.text);
}

Deno.test("wrong password: authentication_refused logged once with the attempt count; SIGTERM stops at once", async () => {
  await using dir = await KeyDir.create();
  const account = accountKey();
  const { config, service } = authCalloutConfig({ issuer: account.publicKey });
  await using ns = await NatsServer.start({ config });
  const wrong = "not-" + service.password;
  await using proc = await ServiceProcess.start({
    ...await baseEnv(dir),
    NATS_URL: `nats://${service.user}:${wrong}@127.0.0.1:${ns.port}`,
  });
  const failed = await proc.waitEvent("nats_connect_failed");
  assert.equal(failed.cause, "authentication_refused");
  assert.equal(failed.level, "error");
  assert.equal(failed.attempts, 1);
  await waitFor(() => (ns.log.match(/authentication error/gi)?.length ?? 0) >= 3, {
    timeoutMs: 20_000,
    what: "three refused attempts in the server log",
  });
  assert.equal(proc.named("nats_connect_failed").length, 1, "once per change of cause");
  await assertStopsFast(proc);
  assert.ok(!proc.text.includes(wrong), "the password is never logged");
});

Deno.test("unreachable: logged once at warn; the server comes up and the service connects, naming the attempts", async () => {
  await using dir = await KeyDir.create();
  const port = freePort();
  const account = accountKey();
  const { config, service } = authCalloutConfig({ issuer: account.publicKey });
  await using proc = await ServiceProcess.start({
    ...await baseEnv(dir),
    NATS_URL: `nats://${service.user}:${service.password}@127.0.0.1:${port}`,
  });
  const failed = await proc.waitEvent("nats_connect_failed");
  assert.equal(failed.cause, "unreachable");
  assert.equal(failed.level, "warn");
  await using _ns = await NatsServer.start({ config, port });
  const connected = await proc.waitEvent("nats_connected");
  assert.ok(Number(connected.attempts) >= 2, JSON.stringify(connected));
  assert.equal(proc.named("nats_connect_failed").length, 1, "once per change of cause");
  await proc.waitEvent("callout_joined");
  await assertStopsFast(proc);
});

Deno.test("TLS refused: cause tls; SIGTERM stops at once", async () => {
  await using dir = await KeyDir.create();
  const certs = await createTestCertificates(dir.path);
  const account = accountKey();
  const { config, service } = authCalloutConfig({ issuer: account.publicKey });
  await using ns = await NatsServer.start({ config }); // no TLS on the server
  await using proc = await ServiceProcess.start({
    ...await baseEnv(dir),
    NATS_URL: `nats://${service.user}:${service.password}@127.0.0.1:${ns.port}`,
    NATS_TLS_CA_FILE: certs.caFile,
  });
  const failed = await proc.waitEvent("nats_connect_failed");
  assert.equal(failed.cause, "tls", JSON.stringify(failed));
  await assertStopsFast(proc);
});

Deno.test("a server that accepts TCP but never speaks: SIGTERM during the handshake stops at once", async () => {
  await using dir = await KeyDir.create();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    try {
      for await (const conn of listener) held.push(conn);
    } catch {
      // closed
    }
  })();
  try {
    await using proc = await ServiceProcess.start({
      ...await baseEnv(dir),
      NATS_URL: `nats://127.0.0.1:${listener.addr.port}`,
    });
    await waitFor(() => held.length > 0, { timeoutMs: 20_000, what: "the service to dial" });
    await assertStopsFast(proc);
  } finally {
    listener.close();
    for (const c of held) c.close();
    await accepting;
  }
});

Deno.test("connected, then the server goes away and returns refusing us: each cause named while reconnecting; SIGTERM stops at once", async () => {
  await using dir = await KeyDir.create();
  const account = accountKey();
  const { config, service, system } = authCalloutConfig({ issuer: account.publicKey });
  const ns = await NatsServer.start({ config });
  const env = await baseEnv(dir);
  await using proc = await ServiceProcess.start({
    ...env,
    NATS_URL: `nats://${service.user}:${service.password}@127.0.0.1:${ns.port}`,
    // Live revocation on: its system connection is reconnecting too when SIGTERM comes.
    NATS_SYSTEM_USER: system.user,
    NATS_SYSTEM_PASSWORD: system.password,
  });
  await waitReady(Number(env.PORT));
  await proc.waitEvent("nats_connected", (e) => e.connection === "system");
  await ns.stop();
  await proc.waitEvent("nats_disconnected");
  const failed = await proc.waitEvent("nats_connect_failed", (e) => e.connection !== "system");
  assert.equal(failed.cause, "unreachable");

  // It comes back with another password for the service: the cause changes, and is named.
  const changed = authCalloutConfig({
    issuer: account.publicKey,
    service: { user: service.user, password: "rotated-" + service.password },
  });
  await using _ns2 = await NatsServer.start({ config: changed.config, port: ns.port });
  const refused = await proc.waitEvent(
    "nats_connect_failed",
    (e) => e.cause === "authentication_refused" && e.connection !== "system",
  );
  assert.equal(refused.level, "error");
  assert.ok(Number(refused.attempts) >= 2, JSON.stringify(refused));
  await assertStopsFast(proc);
});

Deno.test("live revocation's system connection refused: named as such; the callout still serves; SIGTERM stops at once", async () => {
  await using dir = await KeyDir.create();
  const account = accountKey();
  const { config, service, system } = authCalloutConfig({ issuer: account.publicKey });
  await using ns = await NatsServer.start({ config });
  const env = await baseEnv(dir);
  await using proc = await ServiceProcess.start({
    ...env,
    NATS_URL: `nats://${service.user}:${service.password}@127.0.0.1:${ns.port}`,
    NATS_SYSTEM_USER: system.user,
    NATS_SYSTEM_PASSWORD: "wrong-" + system.password,
  });
  const failed = await proc.waitEvent("nats_connect_failed", (e) => e.connection === "system");
  assert.equal(failed.cause, "authentication_refused");
  await waitReady(Number(env.PORT));
  // Revocation being down is visible to monitoring, apart from the main connection's gauge.
  const metrics = await (await fetch(`http://127.0.0.1:${env.PORT}/metrics`)).text();
  assert.match(metrics, /^nats_system_connected 0$/m);
  assert.match(metrics, /^nats_connected 1$/m);
  await assertStopsFast(proc);
  assert.ok(!proc.text.includes(system.password), "no password in the log");
});
