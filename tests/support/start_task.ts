/**
 * The service as its deno.json tasks run it. `deno task start` runs `main.ts` from source with the
 * task's own flags (scoped `--allow-env`, `--allow-read`, V8 flags), so a process test proves the
 * deployed least privilege suffices. The image runs what `deno task compile` builds: `main.ts`
 * bundled by the `bundle` task, compiled with the compile task's flags. Compiling needs the denort
 * download, which this machine cannot reach, so {@linkcode imageRunArgs} runs that same bundle
 * with those same flags under `deno run`.
 *
 * @module
 */

/** The repository root. */
export const ROOT: string = new URL("../..", import.meta.url).pathname;

/**
 * A deno.json task's command line, split into words (a task is a string or `{ command }`); `root`
 * is another checkout's (a benchmark compares with one).
 */
export async function taskWords(name: string, root: string = ROOT): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${root}deno.json`));
  const task: unknown = config.tasks?.[name];
  const command = typeof task === "object" && task !== null && "command" in task
    ? task.command
    : task;
  if (typeof command !== "string") throw new Error(`deno.json has no "${name}" task`);
  const words = command.split(/\s+/);
  if (words[0] !== "deno") throw new Error(`the ${name} task does not run deno: ${command}`);
  return words;
}

/** The `start` task's arguments after `deno` (they end with the entry, `main.ts`). */
export async function startTaskArgs(root: string = ROOT): Promise<string[]> {
  return (await taskWords("start", root)).slice(1);
}

const bundled = new Map<string, Promise<string>>();

/**
 * The image's entry: `main.ts` bundled by the `bundle` task (the file `deno task compile`
 * compiles), built once per process into a temporary directory under `dist/` that is removed at
 * exit.
 *
 * @param root the checkout to bundle (another one when a benchmark compares with it)
 * @returns the bundle's path
 * @throws when `deno bundle` fails (its stderr in the message)
 */
export function imageEntry(root: string = ROOT): Promise<string> {
  let entry = bundled.get(root);
  entry ??= (async () => {
    // Inside the repository: the bundle's one outside import, `@kubernetes/client-node`, resolves
    // through the deno.json Deno finds above the script (as `deno compile` resolves it for the image).
    await Deno.mkdir(`${root}dist`, { recursive: true });
    const dir = await Deno.makeTempDir({ dir: `${root}dist`, prefix: "image-entry-" });
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch { /* already gone */ }
    });
    const out = `${dir}/main.js`;
    const words = await taskWords("bundle", root);
    const at = words.indexOf("--output");
    if (at < 0) throw new Error("the bundle task has no --output");
    words[at + 1] = out;
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: words.slice(1),
      cwd: root,
      stdout: "null",
      stderr: "piped",
    }).output();
    if (code !== 0) throw new Error(`deno bundle failed: ${new TextDecoder().decode(stderr)}`);
    // The first `deno run` of a new file analyses its imports (a parse of the whole bundle) and
    // caches the result; the compiled image never does. Pay that here, once, not in the first
    // service process a test or a benchmark measures.
    await new Deno.Command(Deno.execPath(), {
      args: ["run", "--frozen", "--allow-read", "--allow-env", out, "--version"],
      cwd: root,
      stdout: "null",
      stderr: "null",
    }).output();
    return out;
  })();
  bundled.set(root, entry);
  return entry;
}

/**
 * The `compile` task as a `deno run` of {@linkcode imageEntry}: the image's V8 and permission
 * flags, with `extraRead` appended to its read allow-list (the image reads only its secret mounts;
 * a test keeps its files elsewhere).
 */
export async function imageRunArgs(extraRead: readonly string[]): Promise<string[]> {
  const words = await taskWords("compile");
  if (words[1] !== "compile") throw new Error(`the compile task does not run deno compile`);
  const bundle = await taskWords("bundle");
  const output = bundle[bundle.indexOf("--output") + 1];
  if (words.at(-1) !== output) {
    throw new Error(`the compile task compiles ${words.at(-1)}, not the bundle (${output})`);
  }
  const args = ["run"];
  const flags = words.slice(2, -1); // the last word is the entry
  for (let i = 0; i < flags.length; i++) {
    const w = flags[i]!;
    if (w === "--output") i++;
    else args.push(w.startsWith("--allow-read=") ? [w, ...extraRead].join(",") : w);
  }
  return [...args, await imageEntry()];
}

/**
 * Spawn the service with exactly `env` (plus `PATH`), stdout and stderr piped, stdin closed: the
 * start task's `main.ts` unless `args` (e.g. {@linkcode imageRunArgs}) say otherwise.
 */
export async function spawnStartTask(
  env: Record<string, string>,
  args?: readonly string[],
): Promise<Deno.ChildProcess> {
  return new Deno.Command(Deno.execPath(), {
    args: [...(args ?? await startTaskArgs())],
    cwd: ROOT,
    env: { PATH: Deno.env.get("PATH") ?? "", ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}
