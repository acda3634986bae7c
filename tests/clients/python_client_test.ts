/**
 * examples/python_client.py (nats-py) against the real service, nats-server and kube-apiserver: the
 * three client rules of docs/client-usage.md (tests/clients/three_rules.ts). And why the example
 * supervises its connection: a plain nats-py client is closed for good at the first user-JWT expiry.
 *
 * nats-py comes from a venv: `NATS_PY_PYTHON` (set by .ci/run), else /tmp/nats-py-venv/bin/python.
 */
import assert from "node:assert/strict";
import { tolerateClientResets } from "../support/nats_server.ts";
import { ClientRig, proveThreeRules } from "./three_rules.ts";

tolerateClientResets();

const PYTHON = Deno.env.get("NATS_PY_PYTHON") ?? "/tmp/nats-py-venv/bin/python";

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

Deno.test("nats-py: a plain client is closed for good at the first user-JWT expiry", async () => {
  const py = await python();
  await using rig = await ClientRig.start();
  const script = `
import asyncio, nats
async def main():
    closed = asyncio.Event()
    async def on_closed(): closed.set()
    async def on_error(e): pass
    nc = await nats.connect("${rig.stack.nats.url}", token=lambda: open("${rig.tokenFile}").read().strip(),
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
});

Deno.test("nats-py example: keeps working across user-JWT expiries, token rotation and a refused reconnect, replies through its private inbox", async () => {
  await proveThreeRules({ command: await python(), args: ["examples/python_client.py"] });
});
