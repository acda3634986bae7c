/** `--help` and `--version` (lib/config/cli.ts), in-process and through the real entry with no config. */
import assert from "node:assert/strict";
import { parseCli } from "../../lib/config/cli.ts";
import { CONFIG_ENV_VARS } from "../../lib/config/variables.ts";
import { VERSION } from "../../lib/core/version.ts";
import { imageRunArgs, ROOT, startTaskArgs } from "../support/start_task.ts";

Deno.test("cli: no flags run the service; -h/--help and -V/--version answer; anything else is a usage error", () => {
  assert.equal(parseCli([]).kind, "run");
  for (const f of ["-h", "--help"]) assert.equal(parseCli([f]).kind, "help");
  for (const f of ["-V", "--version"]) assert.equal(parseCli([f]).kind, "version");
  const help = parseCli(["--help"]);
  assert.ok(help.kind === "help");
  for (const name of CONFIG_ENV_VARS) assert.ok(help.text.includes(name), name);
  assert.match(help.text, /SIGHUP/);
  assert.match(help.text, /POST \/resync/);
  const bad = parseCli(["--port=80"]);
  assert.ok(bad.kind === "usage_error");
  assert.match(bad.text, /--port/);
  assert.match(bad.text, /^Usage: /m);
  assert.equal(parseCli(["serve"]).kind, "usage_error");
});

Deno.test("cli: VERSION is deno.json's version", async () => {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  assert.equal(VERSION, config.version);
});

/**
 * The `start` task's arguments (`main.ts` from source), or the image's: the bundle `deno task
 * compile` compiles, under the compile task's flags (compiling needs the denort download, which
 * this machine cannot reach).
 */
function taskArgs(task: "start" | "compile"): Promise<string[]> {
  return task === "start" ? startTaskArgs() : imageRunArgs([]);
}

async function runEntry(
  args: string[],
  task: "start" | "compile" = "start",
): Promise<{ code: number; out: string; err: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [...await taskArgs(task), ...args], // the task's own least-privilege flags
    cwd: ROOT,
    env: { PATH: Deno.env.get("PATH") ?? "" },
    clearEnv: true, // no configuration at all
    stdin: "null",
  }).output();
  const td = new TextDecoder();
  return { code, out: td.decode(stdout), err: td.decode(stderr) };
}

for (const task of ["start", "compile"] as const) {
  Deno.test(`cli: main.ts --help and --version exit 0 without any configuration (${task} task's flags)`, async () => {
    const help = await runEntry(["--help"], task);
    assert.equal(help.code, 0, help.err);
    assert.match(help.out, /^nats-k8s-oidc-callout \d+\.\d+\.\d+: /);
    assert.match(help.out, /NATS_SIGNING_KEY_FILE/);
    assert.equal(help.err, "");
    const version = await runEntry(["--version"], task);
    assert.equal(version.code, 0, version.err);
    assert.equal(
      version.out,
      `nats-k8s-oidc-callout ${VERSION} (deno ${Deno.version.deno}, v8 ${Deno.version.v8}, typescript ${Deno.version.typescript})\n`,
    );
    const bad = await runEntry(["--bogus"], task);
    assert.equal(bad.code, 2);
    assert.equal(bad.out, "");
    assert.match(bad.err, /Unknown option '--bogus'/);
  });
}
