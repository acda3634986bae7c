/**
 * examples/deno_client.ts against the real service (nats-server with auth callout, the service,
 * the test apiserver): the documented command works, its replies travel through the private
 * inbox the callout grants, and it survives a token rotation by reading the file again.
 */
import assert from "node:assert/strict";
import { connect, type Msg } from "@nats-io/transport-node";
import { connectWithTokenFile, echoOnce, inboxPrefix } from "../../examples/deno_client.ts";
import { tolerateClientResets } from "../support/nats_server.ts";
import { Stack } from "../support/stack.ts";
import { waitFor } from "../support/wait.ts";

tolerateClientResets(); // the rotation test's stale-token attempts are refused and reset

const ROOT = new URL("../..", import.meta.url).pathname;

Deno.test("the example client, run as documented, gets its reply through its private inbox", async () => {
  await using stack = await Stack.start();
  const dir = await Deno.makeTempDir();
  try {
    // A name with a dot: its inbox prefix is _INBOX_team-a_orders_v2, not a prefix of anyone's.
    stack.addServiceAccount("team-a", "orders.v2");
    stack.addServiceAccount("team-a", "observer");
    const tokenFile = `${dir}/token`;
    await Deno.writeTextFile(tokenFile, (await stack.token("team-a", "orders.v2")) + "\n");

    // Another workload of the namespace sees the request, and where its reply is meant to go.
    const observer = await stack.connect(await stack.token("team-a", "observer"));
    const seen: Msg[] = [];
    observer.subscribe("team-a.echo", {
      callback: (_err, msg) => {
        seen.push(msg);
      },
    });
    await observer.flush();

    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-net", "--allow-env", "--allow-read", "examples/deno_client.ts"],
      cwd: ROOT,
      env: { NATS_URL: stack.nats.url, NATS_TOKEN_FILE: tokenFile },
      stdin: "null",
    }).output();
    const out = new TextDecoder().decode(stdout);
    assert.equal(code, 0, out + new TextDecoder().decode(stderr));
    assert.match(out, /connected as team-a\/orders\.v2, inbox prefix _INBOX_team-a_orders_v2\n/);
    assert.match(out, /reply: echo: hello\n/);

    await waitFor(() => seen.length > 0, { what: "the observer to see the request" });
    assert.match(seen[0]!.reply ?? "", /^_INBOX_team-a_orders_v2\./);
    assert.ok(
      stack.logs.some((l) => l.event === "login_allowed" && l.serviceaccount === "orders.v2"),
      "the example logged in through the callout",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("after its ServiceAccount is recreated, the example reconnects with the rotated token file", async () => {
  await using stack = await Stack.start();
  const dir = await Deno.makeTempDir();
  try {
    stack.addServiceAccount("team-a", "orders");
    const tokenFile = `${dir}/token`;
    await Deno.writeTextFile(tokenFile, await stack.token("team-a", "orders"));
    const owner = { namespace: "team-a", serviceAccount: "orders" };
    const nc = await connectWithTokenFile({ servers: stack.nats.url, tokenFile });
    try {
      assert.equal(inboxPrefix(owner), "_INBOX_team-a_orders");
      assert.equal(await echoOnce(nc, owner), "echo: hello");

      // Recreated with a new UID: the old token is refused from now on (uid mismatch). The kubelet
      // writes a token for the new UID into the file; the next connect must read it.
      const oldToken = await Deno.readTextFile(tokenFile);
      stack.api.deleteServiceAccount("team-a", "orders");
      stack.addServiceAccount("team-a", "orders");
      await waitFor(
        () => stack.connect(oldToken).then((c) => c.close().then(() => false), () => true),
        { what: "the old token to be refused" },
      );
      await Deno.writeTextFile(`${tokenFile}.new`, await stack.token("team-a", "orders"));
      await Deno.rename(`${tokenFile}.new`, tokenFile);
      const allowedBefore = stack.logs.filter((l) => l.event === "login_allowed").length;

      // The server closes the connection (as it does when a user JWT expires); the client
      // reconnects and logs in again.
      const kicked = nc.info!.client_id;
      const sys = await connect({
        servers: stack.nats.url,
        user: stack.systemUser.user,
        pass: stack.systemUser.password,
      });
      try {
        await sys.request(
          `$SYS.REQ.SERVER.${nc.info!.server_id}.KICK`,
          JSON.stringify({ cid: kicked }),
        );
      } finally {
        await sys.close();
      }
      await waitFor(() => nc.info!.client_id !== kicked, {
        timeoutMs: 15_000,
        what: "the example to reconnect with the new token",
      });
      const reply = await echoOnce(nc, owner);
      assert.equal(reply, "echo: hello");
      assert.ok(
        stack.logs.filter((l) => l.event === "login_allowed").length > allowedBefore,
        "it logged in again",
      );
    } finally {
      await nc.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
