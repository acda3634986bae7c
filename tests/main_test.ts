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

Deno.test("the process becomes ready, serves a login, and stops cleanly on SIGTERM", async () => {
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
  } finally {
    child.kill("SIGTERM");
  }
  const status = await child.status;
  await reading;
  await child.stderr.cancel();
  assert.equal(status.code, 0, text);
  assert.match(text, /"event":"shutting_down","signal":"SIGTERM"/);
  assert.match(text, /"event":"stopped"/);
  assert.ok(!text.includes(stack.serviceUser.password), "the NATS password is never logged");
});
