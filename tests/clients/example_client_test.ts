/**
 * examples/deno_client.ts (nats.js) run as docs/client-usage.md shows it: the three client rules
 * against the real service, nats-server and kube-apiserver (tests/clients/three_rules.ts), and the
 * private inbox of a ServiceAccount whose name has a dot.
 */
import assert from "node:assert/strict";
import { tolerateClientResets } from "../support/nats_server.ts";
import { Stack } from "../support/stack.ts";
import { waitFor } from "../support/wait.ts";
import { collectLines, proveThreeRules } from "./three_rules.ts";

tolerateClientResets();

const RUN = ["run", "--allow-net", "--allow-env", "--allow-read", "examples/deno_client.ts"];

Deno.test("nats.js example: keeps working across user-JWT expiries, token rotation and a refused reconnect, replies through its private inbox", async () => {
  await proveThreeRules({ command: Deno.execPath(), args: RUN });
});

Deno.test("nats.js example: a ServiceAccount with a dot in its name gets its replies through _INBOX_<ns>_<name with _>", async () => {
  await using stack = await Stack.start();
  const dir = await Deno.makeTempDir();
  try {
    // Its inbox prefix is _INBOX_team-a_orders_v2, not a prefix of anyone's.
    stack.addServiceAccount("team-a", "orders.v2");
    stack.addServiceAccount("team-a", "observer");
    const tokenFile = `${dir}/token`;
    await Deno.writeTextFile(tokenFile, (await stack.token("team-a", "orders.v2")) + "\n");
    const observer = await stack.connect(await stack.token("team-a", "observer"));
    const replySubjects: string[] = [];
    observer.subscribe("team-a.echo", {
      callback: (_err, msg) => void replySubjects.push(msg.reply!),
    });
    await observer.flush();

    const child = new Deno.Command(Deno.execPath(), {
      args: RUN,
      cwd: new URL("../..", import.meta.url).pathname,
      env: { NATS_URL: stack.nats.url, NATS_TOKEN_FILE: tokenFile },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const out = collectLines(child.stdout);
    const err = collectLines(child.stderr);
    try {
      await waitFor(() => out.lines.includes("reply: echo: ping 1"), {
        timeoutMs: 15_000,
        what: "the first reply",
      });
    } finally {
      child.kill("SIGTERM");
    }
    const status = await child.status;
    await Promise.all([out.done, err.done]);
    assert.equal(status.code, 0, out.text() + err.text());
    assert.equal(
      out.lines[0],
      "starting as team-a/orders.v2, inbox prefix _INBOX_team-a_orders_v2",
    );
    assert.equal(out.lines.at(-1), "stopped");
    await waitFor(() => replySubjects.length > 0, { what: "the observer to see the request" });
    assert.match(replySubjects[0]!, /^_INBOX_team-a_orders_v2\./);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
