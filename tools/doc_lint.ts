// deno-lint-ignore-file no-console -- a developer tool talks to its user on the console
/**
 * The documentation step of `deno task check`: `deno doc --lint` over every module under `lib/`,
 * plus a `@module` doc in each. `deno doc` is given the folder itself and expands it, so a new
 * module is linted without a file list to keep.
 *
 * Every diagnostic fails the step — an export without a doc comment (`missing-jsdoc`), a signature
 * that names one of our types that no module exports (`private-type-ref`), … — but one: a
 * `private-type-ref` to a type the module imports from an npm package (`@kubernetes/client-node`'s
 * `KubeConfig`, jose's `JWTVerifyGetKey`, yaml's `Node`, nats.js's `NatsConnection`). `deno doc`
 * calls such a type private because no module under `lib/` exports it, and re-exporting it is no
 * fix: the package's own types are then linted in turn (re-exporting yaml's `Node` reports its
 * `Alias`, `Scalar`, `YAMLMap` and `YAMLSeq` in yaml's `dist/nodes/Node.d.ts`). A reader finds
 * those types in the package's documentation.
 *
 * ```sh
 * deno task check                                                  # runs it last
 * deno run --allow-run=deno --allow-read=lib tools/doc_lint.ts    # alone (the folder: lib/)
 * ```
 *
 * `deno doc --lint` prints text only (no `--json` for diagnostics), so its output is parsed here;
 * when the number of diagnostics read differs from the count it reports, the step fails and shows
 * the output as it came.
 *
 * @module
 */

/** One diagnostic of `deno doc --lint`, as read from its text output. */
export interface DocDiagnostic {
  /** The rule, e.g. `missing-jsdoc` or `private-type-ref`. */
  readonly code: string;
  /** The rest of the first line, e.g. `public type 'f' references private type 'T'`. */
  readonly message: string;
  /** The file the diagnostic is about (its `-->` line, without line and column). */
  readonly file: string;
  /** The whole diagnostic as printed, to show again. */
  readonly text: string;
}

const HEADER = /^error\[([\w-]+)\]: (.*)$/gm;
const SUMMARY = /^error: Found (\d+) documentation lint errors?\./m;

/**
 * The diagnostics in the output of `deno doc --lint` (run with `NO_COLOR=1`). Output without
 * diagnostics gives none.
 *
 * @throws {Error} when the output reports a count of diagnostics other than the number read
 *
 * @example
 * ```ts
 * import { parseDiagnostics } from "./doc_lint.ts";
 * const output = "error[missing-jsdoc]: exported symbol is missing JSDoc documentation\n" +
 *   "  --> /repo/lib/a.ts:3:1\n\nerror: Found 1 documentation lint error.\n";
 * console.assert(parseDiagnostics(output)[0]?.file === "/repo/lib/a.ts");
 * ```
 */
export function parseDiagnostics(output: string): DocDiagnostic[] {
  const summary = SUMMARY.exec(output);
  const end = summary?.index ?? output.length;
  const starts = [...output.slice(0, end).matchAll(HEADER)];
  const diagnostics = starts.map((m, i) => {
    const text = output.slice(m.index, starts[i + 1]?.index ?? end).trimEnd();
    const at = /^\s*--> (.+?):\d+:\d+$/m.exec(text);
    return { code: m[1]!, message: m[2]!, file: at?.[1] ?? "", text };
  });
  const reported = summary ? Number(summary[1]) : 0;
  if (diagnostics.length !== reported) {
    throw new Error(`read ${diagnostics.length} diagnostics, deno doc reported ${reported}`);
  }
  return diagnostics;
}

/**
 * Whether `source` (a module's text) imports `name` from an npm package or other bare specifier:
 * `import { name }`, `import { type name }`, `import { x as name }`, `import type { name }`,
 * `import * as name` or `import name`, from a specifier that does not start with `.` or `/`.
 *
 * @example
 * ```ts
 * import { importsFromPackage } from "./doc_lint.ts";
 * console.assert(importsFromPackage('import { isMap, type Node } from "yaml";', "Node"));
 * console.assert(!importsFromPackage('import type { Node } from "./nodes.ts";', "Node"));
 * ```
 */
export function importsFromPackage(source: string, name: string): boolean {
  const imports = /^\s*import\s+(?:type\s+)?([^"';]*?)\s+from\s+["']([^"']+)["']/gm;
  for (const [, clause, specifier] of source.matchAll(imports)) {
    if (specifier!.startsWith(".") || specifier!.startsWith("/")) continue;
    const names = clause!.replace(/[{}]/g, ",").split(",").map((part) =>
      part.trim().replace(/^type\s+/, "").replace(/^\*\s+as\s+/, "").split(/\s+as\s+/).at(-1)
    );
    if (names.includes(name)) return true;
  }
  return false;
}

/**
 * The diagnostics that fail the step: all but a `private-type-ref` to a type its module imports
 * from a package (see the module doc). `readSource` returns a module's text; a module it cannot
 * read keeps its diagnostics.
 *
 * @example
 * ```ts
 * import { failing } from "./doc_lint.ts";
 * const diagnostic = {
 *   code: "private-type-ref",
 *   message: "public type 'parse' references private type 'Node'",
 *   file: "/repo/lib/a.ts",
 *   text: "",
 * };
 * console.assert(failing([diagnostic], () => 'import type { Node } from "yaml";').length === 0);
 * console.assert(failing([diagnostic], () => "interface Node {}").length === 1);
 * ```
 */
export function failing(
  diagnostics: readonly DocDiagnostic[],
  readSource: (file: string) => string,
): DocDiagnostic[] {
  return diagnostics.filter((d) => {
    if (d.code !== "private-type-ref") return true;
    const type = /references private type '([^']+)'/.exec(d.message)?.[1];
    if (type === undefined) return true;
    try {
      // A qualified name (`t.KeyObject`) is reached through its first part (`import * as t`).
      return !importsFromPackage(readSource(d.file), type.split(".")[0]!);
    } catch {
      return true;
    }
  });
}

/**
 * The modules under `folder` (recursively) whose text has no `@module` doc: every module says what
 * it is for at its top.
 */
export async function modulesWithoutModuleDoc(folder: string): Promise<string[]> {
  const missing: string[] = [];
  for await (const entry of Deno.readDir(folder)) {
    const path = `${folder.replace(/\/+$/, "")}/${entry.name}`;
    if (entry.isDirectory) missing.push(...await modulesWithoutModuleDoc(path));
    else if (entry.isFile && path.endsWith(".ts")) {
      if (!/^\s*\*\s*@module\b/m.test(await Deno.readTextFile(path))) missing.push(path);
    }
  }
  return missing.sort();
}

/**
 * Lint `folder` (default `lib/`): exit 0 when clean; otherwise print what fails and exit 1.
 */
async function main(folder = "lib/"): Promise<number> {
  const run = await new Deno.Command("deno", {
    args: ["doc", "--lint", folder],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const output = new TextDecoder().decode(run.stdout) + new TextDecoder().decode(run.stderr);
  let diagnostics: DocDiagnostic[];
  try {
    diagnostics = parseDiagnostics(output);
    if (run.code !== 0 && diagnostics.length === 0) throw new Error(`deno doc exited ${run.code}`);
  } catch (err) {
    console.error(output);
    console.error(`doc lint: cannot read deno doc's output (${(err as Error).message})`);
    return 1;
  }
  const fails = failing(diagnostics, (file) => Deno.readTextFileSync(file));
  const noModuleDoc = await modulesWithoutModuleDoc(folder);
  for (const d of fails) console.error(`${d.text}\n`);
  for (const path of noModuleDoc) console.error(`${path}: no @module doc`);
  const problems = fails.length + noModuleDoc.length;
  const allowed = diagnostics.length - fails.length;
  const note = `allowed: ${allowed} references to a type of an npm package`;
  if (problems > 0) {
    console.error(`doc lint: ${problems} problems in ${folder}; ${note}`);
    return 1;
  }
  console.log(`doc lint: ${folder} is documented; ${note}`);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args[0]));
