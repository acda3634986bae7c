// deno-lint-ignore-file no-console -- a developer tool talks to its user on the console
/**
 * `deno task permissions`: write the scoped permission flags of the tasks that run the service —
 * `--allow-env=` of `start`, `explain` and `compile`, `--allow-read=` and `--deny-net=` of
 * `compile` — into deno.json from their one source, lib/config/permissions.ts (whose variables come
 * from the schema, lib/config/variables.ts). Only those flag words change; every other word of the
 * three commands, and every other byte of deno.json, stays as written.
 *
 * ```sh
 * deno task permissions           # rewrite deno.json if it is out of date
 * deno task permissions --check   # exit 1 if it is out of date, change nothing
 * ```
 *
 * tests/config/permissions_test.ts fails with "deno.json is out of date: run deno task
 * permissions" until the tasks match. Deno's config-file permission sets (`"permissions"` with
 * `-P`) would avoid generating, but Deno 2.9 calls them experimental and warns on every run, and
 * whether `deno compile -P` bakes them into the binary cannot be checked here; the compile command
 * stays explicit.
 *
 * @module
 */
import { TASK_PERMISSIONS, type TaskPermissions } from "../lib/config/permissions.ts";

/**
 * `command` with each flag of `permissions` set to its values: the one word `--<flag>=…` is
 * replaced by `--<flag>=<values joined by ",">`.
 *
 * @throws {Error} when `command` has no `--<flag>=` word for a flag, or more than one
 *
 * @example
 * ```ts
 * import { withPermissions } from "./permissions.ts";
 * const command = withPermissions("deno run --allow-env=A main.ts", { "allow-env": ["A", "B"] });
 * console.assert(command === "deno run --allow-env=A,B main.ts");
 * ```
 */
export function withPermissions(command: string, permissions: TaskPermissions): string {
  const words = command.split(" ");
  for (const [flag, values] of Object.entries(permissions)) {
    const prefix = `--${flag}=`;
    const at = words.flatMap((word, i) => word.startsWith(prefix) ? [i] : []);
    if (at.length !== 1) {
      throw new Error(
        `expected one ${prefix} in the command, found ${at.length}: ${command.slice(0, 60)}...`,
      );
    }
    words[at[0]!] = prefix + values.join(",");
  }
  return words.join(" ");
}

/**
 * The text of deno.json with the tasks of {@linkcode TASK_PERMISSIONS} carrying their permissions.
 * The text is edited in place, not re-serialized, so the file keeps its formatting; the result
 * equals `text` when deno.json is up to date.
 *
 * @throws {Error} when a task is missing, is not one command string, or lacks one of its flags
 */
export function updateDenoJson(text: string): string {
  const tasks: Record<string, unknown> = JSON.parse(text).tasks ?? {};
  let updated = text;
  for (const [name, permissions] of Object.entries(TASK_PERMISSIONS)) {
    const task = tasks[name];
    const command = typeof task === "object" && task !== null && "command" in task
      ? task.command
      : task;
    if (typeof command !== "string") throw new Error(`deno.json has no "${name}" task`);
    const before = JSON.stringify(command);
    if (updated.split(before).length !== 2) {
      throw new Error(
        `the "${name}" task's command is not written once, as JSON.stringify spells it`,
      );
    }
    updated = updated.replace(before, () => JSON.stringify(withPermissions(command, permissions)));
  }
  return updated;
}

async function main(args: readonly string[]): Promise<number> {
  const check = args.includes("--check");
  const path = new URL("../deno.json", import.meta.url);
  const text = await Deno.readTextFile(path);
  const updated = updateDenoJson(text);
  const tasks = Object.keys(TASK_PERMISSIONS).join(", ");
  if (updated === text) {
    console.log(`deno.json: the permissions of ${tasks} are up to date`);
    return 0;
  }
  if (check) {
    console.error("deno.json is out of date: run deno task permissions");
    return 1;
  }
  await Deno.writeTextFile(path, updated);
  console.log(`deno.json: wrote the permissions of ${tasks} (lib/config/permissions.ts)`);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
