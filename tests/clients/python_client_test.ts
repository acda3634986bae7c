/**
 * The nats-py pattern of docs/client-usage.md (examples/python_client.py), run with the real
 * nats-py against the real stack (nats-server with auth callout, the service, the test apiserver):
 * tokens that live seconds, rotated in the file as the kubelet does, so the user JWT expires again
 * and again. A plain nats-py client is closed for good at the first expiry; the example survives.
 *
 * nats-py comes from a venv: `NATS_PY_PYTHON` (set by .ci/run), else /tmp/nats-py-venv/bin/python.
 */
import assert from "node:assert/strict";
import { tolerateClientResets } from "../support/nats_server.ts";
import { Stack } from "../support/stack.ts";
import { waitFor } from "../support/wait.ts";

tolerateClientResets();

const ROOT = new URL("../..", import.meta.url).pathname;
const PYTHON = Deno.env.get("NATS_PY_PYTHON") ?? "/tmp/nats-py-venv/bin/python";
const TOKEN_LIFETIME_S = 4;

async function python(): Promise<string> {
  const { code } = await new Deno.Command(PYTHON, { args: ["-c", "import nats"] }).output()
    .catch(() => ({ code: -1 }));
  assert.equal(
    code,
    0,
    `nats-py not found at ${PYTHON}: python3 -m venv /tmp/nats-py-venv && ` +
      "/tmp/nats-py-venv/bin/pip install nats-py==2.16.0 (or run .ci/run)",
  );
  return PYTHON;
}

/** A token file rewritten every second with a fresh short-lived token, as the kubelet does. */
async function rotatingTokenFile(
  stack: Stack,
  dir: string,
): Promise<AsyncDisposable & { path: string }> {
  const path = `${dir}/token`;
  const write = async () => {
    const token = await stack.token("team-a", "orders", { lifetimeSec: TOKEN_LIFETIME_S });
    await Deno.writeTextFile(`${path}.new`, token);
    await Deno.rename(`${path}.new`, path);
  };
  await write();
  let writing = Promise.resolve();
  const timer = setInterval(() => {
    writing = writing.then(write).catch(() => {});
  }, 1000);
  return {
    path,
    [Symbol.asyncDispose]: async () => {
      clearInterval(timer);
      await writing;
    },
  };
}

function collect(stream: ReadableStream<Uint8Array>): { text: () => string; done: Promise<void> } {
  let text = "";
  const done = stream.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (chunk) => void (text += chunk) }),
  );
  return { text: () => text, done };
}

Deno.test("nats-py: a plain client is closed for good at the first user-JWT expiry", async () => {
  const py = await python();
  await using stack = await Stack.start();
  stack.addServiceAccount("team-a", "orders");
  const dir = await Deno.makeTempDir();
  try {
    await using tokens = await rotatingTokenFile(stack, dir);
    const script = `
import asyncio, nats
async def main():
    closed = asyncio.Event()
    async def on_closed(): closed.set()
    async def on_error(e): pass
    nc = await nats.connect("${stack.nats.url}", token=lambda: open("${tokens.path}").read().strip(),
                            max_reconnect_attempts=-1, closed_cb=on_closed, error_cb=on_error)
    print("connected", flush=True)
    await asyncio.wait_for(closed.wait(), 30)
    print("closed:", repr(nc.last_error), flush=True)
asyncio.run(main())
`;
    const { code, stdout, stderr } = await new Deno.Command(py, {
      args: ["-c", script],
      stdin: "null",
    }).output();
    const out = new TextDecoder().decode(stdout);
    assert.equal(code, 0, out + new TextDecoder().decode(stderr));
    assert.match(out, /^connected\nclosed: .*user authentication expired/im);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("nats-py: the documented pattern stays logged in across repeated user-JWT expiry", async () => {
  const py = await python();
  await using stack = await Stack.start();
  stack.addServiceAccount("team-a", "orders");
  const dir = await Deno.makeTempDir();
  try {
    await using tokens = await rotatingTokenFile(stack, dir);
    const child = new Deno.Command(py, {
      args: ["examples/python_client.py"],
      cwd: ROOT,
      env: { NATS_URL: stack.nats.url, NATS_TOKEN_FILE: tokens.path },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const out = collect(child.stdout);
    const err = collect(child.stderr);
    try {
      // Two expiries survived, and request/reply through the private inbox works after them.
      await waitFor(
        () => /connected #3 as team-a\/orders\n(.*\n)*reply: echo: ping \d+\n/.test(out.text()),
        {
          timeoutMs: 40_000,
          what: "a reply on the third connection",
        },
      );
    } finally {
      child.kill("SIGTERM");
    }
    const status = await child.status;
    await Promise.all([out.done, err.done]);
    assert.equal(status.code, 0, out.text() + err.text());
    assert.match(
      out.text(),
      /connection #1 closed \(.*user authentication expired.*\); connecting again/i,
    );
    assert.match(out.text(), /stopped\n$/);
    const logins = stack.logs.filter((l) =>
      l.event === "login_allowed" && l.serviceaccount === "orders"
    );
    assert.ok(logins.length >= 3, `logged in ${logins.length} times`);
    const granted = stack.logs.find((l) => l.event === "login_granted");
    assert.ok(
      (granted?.sub as string[]).includes("_INBOX_team-a_orders.>"),
      "its private inbox was granted",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
