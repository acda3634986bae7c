/**
 * The service as `deno task start` runs it: the task's own flags (scoped `--allow-env`,
 * `--allow-read`, V8 flags), so a process test proves the deployed least privilege suffices.
 *
 * @module
 */

/** The repository root. */
export const ROOT: string = new URL("../..", import.meta.url).pathname;

/** The `start` task's arguments after `deno` (they end with the entry, `main.ts`). */
export async function startTaskArgs(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  const [deno, ...args] = String(config.tasks.start).split(/\s+/);
  if (deno !== "deno") throw new Error(`the start task does not run deno: ${config.tasks.start}`);
  return args;
}

/**
 * Spawn `main.ts` with the start task's flags and exactly `env` (plus `PATH`), stdout and stderr
 * piped, stdin closed.
 */
export async function spawnStartTask(env: Record<string, string>): Promise<Deno.ChildProcess> {
  return new Deno.Command(Deno.execPath(), {
    args: await startTaskArgs(),
    cwd: ROOT,
    env: { PATH: Deno.env.get("PATH") ?? "", ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}
