/**
 * The import rule of `lib/` (docs/design.md, "Folders and the arrows between them"): every folder
 * under `lib/` is a concern, and a module may import only from its own folder and from the folders
 * the rule lists for it. The rule is the table {@linkcode ALLOWED}; this test reads every import of
 * every module under `lib/` (static, dynamic and `export … from`) and fails on an arrow the table
 * does not allow, on a folder the table does not know, and on an npm package used outside the
 * folders that own it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { assertEquals } from "./support/assert.ts";
import { ROOT } from "./support/start_task.ts";

/**
 * Which folders each folder of `lib/` may import from (its own is always allowed). Read it bottom
 * up: `core` and `telemetry` are used by everyone; configuration is read before anything connects,
 * so it imports nothing that connects; the callout protocol knows no Kubernetes; token
 * verification needs no ServiceAccounts (`tokens` may not import `cache`); the decision knows no
 * transport and no HTTP (no `nats`, `kubernetes`, `cache`, `operations`); only the service wiring
 * imports everything. Accounts that follow namespaces (`accounts`) plan from the policy
 * (`decision`) and sign with the protocol's NATS JWTs (`callout`); they reach the servers through
 * an injected requester, so they know no transport, and the decision reaches them only through
 * the port it defines (`NamespaceAccounts`), so `decision` never imports `accounts`.
 */
export const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  core: [],
  telemetry: ["core"],
  config: ["core", "telemetry"],
  callout: ["core", "telemetry"],
  kubernetes: ["core", "telemetry"],
  cache: ["core", "telemetry", "kubernetes"],
  tokens: ["core", "telemetry", "kubernetes"],
  decision: ["core", "telemetry", "config", "callout", "tokens"],
  nats: ["core", "telemetry", "callout", "decision"],
  operations: ["core", "telemetry", "decision"],
  accounts: ["core", "telemetry", "callout", "decision"],
  service: [
    "core",
    "telemetry",
    "config",
    "callout",
    "kubernetes",
    "cache",
    "tokens",
    "decision",
    "nats",
    "operations",
    "accounts",
  ],
};

/**
 * Arrows that may carry types only (`import type`): the decision knows the verifier's interface,
 * not how keys are fetched.
 */
export const TYPE_ONLY: readonly string[] = ["decision->tokens"];

/** npm packages (and `node:` built-ins that do I/O) and the folders that may import them. */
export const PACKAGES: Readonly<Record<string, readonly string[]>> = {
  "@nats-io/transport-node": ["nats", "service"],
  "@kubernetes/client-node": ["kubernetes"],
  jose: ["tokens"],
};

/** One import found in a module. */
export interface ImportEdge {
  /** The importing module, relative to the repository root (`lib/decision/login.ts`). */
  readonly from: string;
  /** The specifier as written (`../tokens/verifier.ts`, `jose`). */
  readonly specifier: string;
  /** True for `import type …` / `export type … from`. */
  readonly typeOnly: boolean;
}

/** The package an npm/jsr specifier or bare name names (`npm:@a/b@1/x` → `@a/b`, `jose/jwt` → `jose`). */
function packageOf(specifier: string): string {
  const m = specifier.replace(/^(?:npm|jsr):\/?/, "").match(/^(@[^/@]+\/[^/@]+|[^/@]+)/);
  return m ? m[1]! : specifier;
}

/** `to` (repository path) as a specifier relative to the module `from` (`../nats/connection.ts`). */
function relativeSpecifier(from: string, to: string): string {
  const a = from.split("/").slice(0, -1);
  const b = to.split("/");
  let i = 0;
  while (i < a.length && i < b.length - 1 && a[i] === b[i]) i++;
  const up = a.length - i;
  return (up === 0 ? "./" : "../".repeat(up)) + b.slice(i).join("/");
}

interface GraphDependency {
  specifier: string;
  code?: { specifier: string };
  type?: { specifier: string };
}

/**
 * Every import of the given modules under `<root>lib/`, as Deno's own module graph reads them
 * (`deno info --json`): static, dynamic with a literal target, `export … from`, multi-line, with
 * comments anywhere; strings and comments are never taken for imports. An arrow is type-only when
 * the graph has no code edge for it. Relative targets come back relative to their importer,
 * packages as their names.
 */
export async function readGraph(root: string, modules: readonly string[]): Promise<ImportEdge[]> {
  const entry = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    await Deno.writeTextFile(
      entry,
      modules.map((m) => `import ${JSON.stringify(new URL(m, `file://${root}`).href)};`).join("\n"),
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", `--config=${root}deno.json`, entry],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) throw new Error(`deno info: ${new TextDecoder().decode(out.stderr)}`);
    const graph = JSON.parse(new TextDecoder().decode(out.stdout)) as {
      modules: { specifier: string; dependencies?: GraphDependency[] }[];
    };
    const base = new URL(`file://${root}`).href;
    const edges: ImportEdge[] = [];
    for (const module of graph.modules) {
      if (!module.specifier.startsWith(`${base}lib/`)) continue;
      const from = module.specifier.slice(base.length);
      for (const dep of module.dependencies ?? []) {
        const target = dep.code?.specifier ?? dep.type?.specifier ?? dep.specifier;
        const specifier = target.startsWith(base)
          ? relativeSpecifier(from, target.slice(base.length))
          : /^(npm|jsr):/.test(target)
          ? packageOf(target)
          : dep.specifier;
        edges.push({ from, specifier, typeOnly: dep.code === undefined });
      }
    }
    return edges;
  } finally {
    await Deno.remove(entry);
  }
}

/**
 * Dynamic imports whose target the graph cannot read (`import(name)`, a template with `${…}`):
 * the rule cannot check them, so they are refused.
 */
export function unreadableImports(from: string, source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  return [...code.matchAll(/\bimport\s*\(\s*(?!"[^"]*"\s*[,)]|'[^']*'\s*[,)]|`[^`$]*`\s*[,)])/g)]
    .map(() =>
      `${from}: a dynamic import() whose target is not a literal; the rule cannot check it`
    );
}

/** The folder of `lib/` a repository path lies in (`lib/decision/login.ts` → `decision`). */
function folderOf(path: string): string | undefined {
  const parts = path.split("/");
  return parts[0] === "lib" && parts.length > 2 ? parts[1] : undefined;
}

/** Resolve a relative specifier against its importer, both relative to the repository root. */
function resolve(from: string, specifier: string): string {
  const parts = from.split("/").slice(0, -1);
  for (const part of specifier.split("/")) {
    if (part === "..") parts.pop();
    else if (part !== ".") parts.push(part);
  }
  return parts.join("/");
}

/** Every arrow of `edges` the rule forbids, one readable line each. */
export function violations(edges: readonly ImportEdge[]): string[] {
  const problems: string[] = [];
  for (const edge of edges) {
    const from = folderOf(edge.from);
    if (from === undefined) {
      problems.push(`${edge.from}: a module directly under lib/; put it in a concern's folder`);
      continue;
    }
    const allowed = ALLOWED[from];
    if (!allowed) {
      problems.push(
        `${edge.from}: lib/${from}/ is not in the import rule (tests/architecture_test.ts)`,
      );
      continue;
    }
    if (edge.specifier.startsWith("file:") || edge.specifier.startsWith("/")) {
      problems.push(
        `${edge.from} imports ${edge.specifier}: by absolute path; import it relatively`,
      );
      continue;
    }
    if (!edge.specifier.startsWith(".")) {
      const owners = PACKAGES[packageOf(edge.specifier)];
      if (owners && !owners.includes(from)) {
        problems.push(
          `${edge.from} imports ${packageOf(edge.specifier)}, which only lib/{${
            owners.join(",")
          }}/ may use`,
        );
      }
      continue;
    }
    const target = resolve(edge.from, edge.specifier);
    const to = folderOf(target);
    if (!target.startsWith("lib/")) {
      problems.push(`${edge.from} imports ${target}, outside lib/`);
    } else if (to === undefined) {
      problems.push(`${edge.from} imports ${target}, a module directly under lib/`);
    } else if (to !== from && !allowed.includes(to)) {
      problems.push(`${edge.from} imports ${target}: lib/${from}/ may not import lib/${to}/`);
    } else if (TYPE_ONLY.includes(`${from}->${to}`) && !edge.typeOnly) {
      problems.push(`${edge.from} imports ${target}: lib/${from}/ → lib/${to}/ is for types only`);
    }
  }
  return problems;
}

async function libModules(dir = `${ROOT}lib`): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) out.push(...await libModules(path));
    else out.push(path.slice(ROOT.length));
  }
  return out.sort();
}

Deno.test("every import under lib/ follows the folder rule of docs/design.md", async () => {
  const files = await libModules();
  const misplaced = files.flatMap((path) =>
    path.split("/").length !== 3
      ? [`${path}: not in a concern's folder (directly under lib/, or nested deeper)`]
      : !path.endsWith(".ts")
      ? [`${path}: not a TypeScript module; the rule reads .ts files only`]
      : []
  );
  const modules = files.filter((p) => p.endsWith(".ts"));
  const edges = await readGraph(ROOT, modules);
  assert.ok(edges.length > 100, `only ${edges.length} imports read: the reader is broken`);
  const unreadable: string[] = [];
  for (const path of modules) {
    unreadable.push(...unreadableImports(path, await Deno.readTextFile(`${ROOT}${path}`)));
  }
  assertEquals([...misplaced, ...unreadable, ...violations(edges)], []);
});

Deno.test("the rule's table names every folder of lib/, and no folder it does not have", async () => {
  const folders: string[] = [];
  for await (const entry of Deno.readDir(`${ROOT}lib`)) {
    if (entry.isDirectory) folders.push(entry.name);
  }
  assertEquals(folders.sort(), Object.keys(ALLOWED).sort());
});

Deno.test("the rule refuses the arrows docs/design.md forbids", () => {
  const edge = (from: string, specifier: string, typeOnly = false): ImportEdge => ({
    from,
    specifier,
    typeOnly,
  });
  assertEquals(violations([edge("lib/decision/login.ts", "../nats/connection.ts")]), [
    "lib/decision/login.ts imports lib/nats/connection.ts: lib/decision/ may not import lib/nats/",
  ]);
  assertEquals(violations([edge("lib/decision/login.ts", "npm:@kubernetes/client-node@2.0.1")]), [
    "lib/decision/login.ts imports @kubernetes/client-node, which only lib/{kubernetes}/ may use",
  ]);
  assertEquals(violations([edge("lib/decision/login.ts", "jose/jwt/verify")]), [
    "lib/decision/login.ts imports jose, which only lib/{tokens}/ may use",
  ]);
  assertEquals(
    unreadableImports(
      "lib/decision/login.ts",
      'await import("../" + name);\nawait import(`./${x}.ts`);\nawait import("./ok.ts");',
    ),
    [
      "lib/decision/login.ts: a dynamic import() whose target is not a literal; the rule cannot check it",
      "lib/decision/login.ts: a dynamic import() whose target is not a literal; the rule cannot check it",
    ],
  );
  assertEquals(violations([edge("lib/decision/login.ts", "../tokens/jwks.ts")]), [
    "lib/decision/login.ts imports lib/tokens/jwks.ts: lib/decision/ → lib/tokens/ is for types only",
  ]);
  assertEquals(violations([edge("lib/callout/handler.ts", "../kubernetes/access.ts")]), [
    "lib/callout/handler.ts imports lib/kubernetes/access.ts: lib/callout/ may not import lib/kubernetes/",
  ]);
  assertEquals(violations([edge("lib/config/config.ts", "../nats/connection.ts")]), [
    "lib/config/config.ts imports lib/nats/connection.ts: lib/config/ may not import lib/nats/",
  ]);
  assertEquals(violations([edge("lib/tokens/verifier.ts", "../cache/serviceaccounts.ts")]), [
    "lib/tokens/verifier.ts imports lib/cache/serviceaccounts.ts: lib/tokens/ may not import lib/cache/",
  ]);
  assertEquals(violations([edge("lib/decision/policy.ts", "@nats-io/transport-node")]), [
    "lib/decision/policy.ts imports @nats-io/transport-node, which only lib/{nats,service}/ may use",
  ]);
  assertEquals(violations([edge("lib/stray.ts", "./core/model.ts")]), [
    "lib/stray.ts: a module directly under lib/; put it in a concern's folder",
  ]);
  assertEquals(violations([edge("lib/service/service.ts", "../../dev/issuer.ts")]), [
    "lib/service/service.ts imports dev/issuer.ts, outside lib/",
  ]);
});

Deno.test("the import reader sees what Deno sees, and nothing in strings or comments", async () => {
  const root = `${await Deno.makeTempDir()}/`;
  try {
    await Deno.writeTextFile(
      `${root}deno.json`,
      JSON.stringify({ imports: JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).imports }),
    );
    for (const dir of ["decision", "nats", "cache", "tokens", "operations"]) {
      await Deno.mkdir(`${root}lib/${dir}`, { recursive: true });
    }
    for (
      const m of ["nats/connection.ts", "cache/pods.ts", "tokens/verifier.ts", "operations/http.ts"]
    ) {
      await Deno.writeTextFile(`${root}lib/${m}`, "export const x = 1;\nexport type T = number;\n");
    }
    await Deno.writeTextFile(
      `${root}lib/decision/login.ts`,
      [
        'import type { T } from "../tokens/verifier.ts";',
        "import {",
        "  x, // a trailing comment inside a multi-line import",
        '} from "../nats/connection.ts";',
        "const m = await import(`../cache/pods.ts`);",
        'export * from "../operations/http.ts";',
        "const s = \"import { y } from '../nats/revocation.ts'\";",
        '/** @example import { z } from "../service/service.ts"; */',
        "export const all: [T, number, unknown, string] = [1, x, m, s];",
      ].join("\n"),
    );
    const edges = await readGraph(root, ["lib/decision/login.ts"]);
    assertEquals(edges.map((e) => [e.specifier, e.typeOnly]).sort(), [
      ["../cache/pods.ts", false],
      ["../nats/connection.ts", false],
      ["../operations/http.ts", false],
      ["../tokens/verifier.ts", true],
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
