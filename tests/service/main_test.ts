/**
 * The real process, as an operator runs it: `deno run main.ts` with environment variables.
 */
import assert from "node:assert/strict";
import { tolerateClientResets } from "../support/nats_server.ts";
import { Stack } from "../support/stack.ts";
import { freePort, waitReady } from "../support/http_probe.ts";
import { spawnStartTask } from "../support/start_task.ts";
import { waitFor } from "../support/wait.ts";

tolerateClientResets(); // refused logins while the new SA propagates reset their sockets

const spawnMain = spawnStartTask;

Deno.test("bad configuration: exit status 2 and one message naming every problem", async () => {
  const child = await spawnMain({
    PATH: Deno.env.get("PATH") ?? "",
    PORT: "eighty",
    CACHE_CLEANUP_INTERVAL: "soon",
    NATS_URL: "http://wrong",
  });
  const { code, stdout, stderr } = await child.output();
  assert.equal(code, 2);
  assert.equal(new TextDecoder().decode(stdout), "");
  const lines = new TextDecoder().decode(stderr).trim().split("\n");
  assert.equal(lines.length, 1, "one message");
  const record = JSON.parse(lines[0]!);
  assert.equal(record.event, "config_invalid");
  for (
    const name of [
      "PORT",
      "CACHE_CLEANUP_INTERVAL",
      "NATS_URL",
      "NATS_ACCOUNT",
      "NATS_SIGNING_KEY_FILE",
    ]
  ) {
    assert.ok(
      record.problems.some((p: string) => p.startsWith(name)),
      `${name} named in ${JSON.stringify(record.problems)}`,
    );
  }
});

Deno.test("the process logs ready, serves a login, resyncs on SIGHUP, and stops cleanly on SIGTERM", async () => {
  await using stack = await Stack.start({ captureLogs: false });
  await stack.service.close(); // only the process under test answers
  const port = freePort();
  const child = await spawnMain({
    PATH: Deno.env.get("PATH") ?? "",
    ...stack.env,
    PORT: String(port),
    LOG_LEVEL: "info",
  });
  const output = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const reading = (async () => {
    for (;;) {
      const { value, done } = await output.read();
      if (done) return;
      text += value;
    }
  })();
  try {
    await waitReady(port);

    stack.addServiceAccount("team-a", "orders");
    const token = await stack.token("team-a", "orders");
    const nc = await waitFor(() => stack.connect(token).catch(() => undefined), {
      what: "login through the process",
    });
    await nc.close();

    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    assert.match(metrics, /nats_auth_requests_total\{reason="",result="allowed"\} 1/);
    await waitFor(() => text.includes('"event":"ready"'), { what: "the ready log line" });

    // Prometheus conventions under the start task's least-privilege flags.
    assert.match(
      metrics,
      /^nats_k8s_oidc_callout_build_info\{deno="[^"]+",typescript="[^"]+",v8="[^"]+",version="0\.1\.0"\} 1$/m,
    );
    assert.match(metrics, /^process_cpu_seconds_total \d/m);
    assert.match(metrics, /^process_resident_memory_bytes [1-9]\d*$/m);
    assert.match(metrics, /^process_start_time_seconds [1-9]/m);
    assert.doesNotMatch(metrics, /process_open_fds/, "left out, not 0, without /proc access");
    assert.match(metrics, /^nats_auth_requests_success 1$/m, "the Go reference's name");

    // SIGHUP relists ServiceAccounts and refetches keys now; POST /resync does the same, and
    // refuses a second resync within 5 s.
    child.kill("SIGHUP");
    await waitFor(async () => {
      const m = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return /^sa_cache_relists_total\{trigger="resync"\} 1$/m.test(m) &&
        text.includes('"event":"resync_keys_refetched","trigger":"SIGHUP"');
    }, { what: "the SIGHUP resync" });
    const res = await fetch(`http://127.0.0.1:${port}/resync`, { method: "POST" });
    assert.equal(res.status, 429);
    assert.ok(Number(res.headers.get("retry-after")) >= 1);
    await res.body?.cancel();
  } finally {
    child.kill("SIGTERM");
  }
  const status = await child.status;
  await reading;
  await child.stderr.cancel();
  assert.equal(status.code, 0, text);
  assert.match(text, /"event":"shutting_down","signal":"SIGTERM"/);
  assert.match(text, /"event":"stopped"/);
  assert.match(text, /"event":"not_ready","failing":\["stopping"\]/);
  assert.ok(!text.includes(stack.serviceUser.password), "the NATS password is never logged");
});

/** Run main.ts with `env` until `until(output)` holds, then kill it; stdout + stderr. */
async function runUntil(
  env: Record<string, string>,
  until: (output: string) => boolean,
): Promise<string> {
  const child = await spawnMain(env);
  let text = "";
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) text += chunk;
  };
  const reading = Promise.all([drain(child.stdout), drain(child.stderr)]);
  try {
    await waitFor(() => until(text), { timeoutMs: 30_000, what: "process output" });
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await reading;
  }
  return text;
}

Deno.test("a token in NATS_URL appears nowhere in stdout or stderr, at debug level (issue 10, defect 2)", async () => {
  await using stack = await Stack.start({ captureLogs: false });
  await stack.service.close();
  const token = "T0k" + crypto.randomUUID().replaceAll("-", "");
  const port = freePort();
  const output = await runUntil({
    PATH: Deno.env.get("PATH") ?? "",
    ...stack.env,
    // The form nats.js and our connection code accept as a token, on two servers.
    NATS_URL:
      `nats://${token}@127.0.0.1:${stack.nats.port},nats://${token}@localhost:${stack.nats.port}`,
    PORT: String(port),
    LOG_LEVEL: "debug",
  }, (text) => text.includes('"sa_cache_synced"') && text.includes('"nats_connecting"'));
  assert.match(output, /"event":"starting"/);
  assert.match(output, /nats:\/\/\*\*\*@127\.0\.0\.1/);
  assert.ok(!output.includes(token), output);
  assert.ok(!output.includes(token.slice(3, 20)), "no part of the token");

  // user:password, through a connection that succeeds and subscribes.
  const userPass = await runUntil({
    PATH: Deno.env.get("PATH") ?? "",
    ...stack.env,
    NATS_URL:
      `nats://${stack.serviceUser.user}:${stack.serviceUser.password}@127.0.0.1:${stack.nats.port}`,
    PORT: String(freePort()),
    LOG_LEVEL: "debug",
  }, (text) => text.includes('"nats_connected"') && text.includes('"sa_cache_synced"'));
  assert.match(userPass, /"event":"nats_connected"/);
  assert.ok(!userPass.includes(stack.serviceUser.password), userPass);
});

Deno.test("an nkey seed in NATS_ACCOUNT stops the process, and the refusal does not echo it (issue 10, defect 3)", async () => {
  const { createAccount } = await import("@nats-io/nkeys");
  const seed = new TextDecoder().decode(createAccount().getSeed());
  const child = await spawnMain({
    PATH: Deno.env.get("PATH") ?? "",
    NATS_ACCOUNT: seed,
    NATS_SIGNING_KEY_FILE: "/nonexistent/signing.nk",
    LOG_LEVEL: "debug",
  });
  const { code, stdout, stderr } = await child.output();
  const text = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  assert.equal(code, 2, text);
  assert.match(text, /NATS_ACCOUNT: holds an nkey seed/);
  assert.ok(!text.includes(seed), text);
  assert.ok(!text.includes(seed.slice(2, 20)), text);
});
