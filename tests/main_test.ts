/**
 * The real process, as an operator runs it: `deno run main.ts` with environment variables.
 */
import assert from "node:assert/strict";
import { tolerateClientResets } from "./support/nats_server.ts";
import { Stack } from "./support/stack.ts";
import { freePort, waitReady } from "./support/http_probe.ts";
import { waitFor } from "./support/wait.ts";

tolerateClientResets(); // refused logins while the new SA propagates reset their sockets

const ROOT = new URL("..", import.meta.url).pathname;

/** The `start` task's own arguments, so the test proves its least-privilege flags suffice. */
async function startTaskArgs(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  const [deno, ...args] = String(config.tasks.start).split(/\s+/);
  assert.equal(deno, "deno");
  return args;
}

async function spawnMain(env: Record<string, string>): Promise<Deno.ChildProcess> {
  return new Deno.Command(Deno.execPath(), {
    args: await startTaskArgs(),
    cwd: ROOT,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

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
