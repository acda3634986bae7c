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

const IMPORT_RE =
  /(?:^|[\s;])(import|export)\s+(type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/gm;

/** Every import of one module's source text; comments (and so `@example` blocks) are skipped. */
export function readImports(from: string, source: string): ImportEdge[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  const edges: ImportEdge[] = [];
  for (const m of code.matchAll(IMPORT_RE)) {
    const specifier = m[3] ?? m[4];
    if (specifier) edges.push({ from, specifier, typeOnly: m[2] !== undefined });
  }
  return edges;
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
    if (!edge.specifier.startsWith(".")) {
      const owners = PACKAGES[edge.specifier];
      if (owners && !owners.includes(from)) {
        problems.push(
          `${edge.from} imports ${edge.specifier}, which only lib/{${owners.join(",")}}/ may use`,
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
    else if (entry.name.endsWith(".ts")) out.push(path.slice(ROOT.length));
  }
  return out.sort();
}

Deno.test("every import under lib/ follows the folder rule of docs/design.md", async () => {
  const edges: ImportEdge[] = [];
  for (const path of await libModules()) {
    edges.push(...readImports(path, await Deno.readTextFile(`${ROOT}${path}`)));
  }
  assert.ok(edges.length > 100, `only ${edges.length} imports read: the reader is broken`);
  assertEquals(violations(edges), []);
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
  const source = [
    `import type { X } from "../tokens/verifier.ts";`,
    `import { connectNats } from "../nats/connection.ts";`,
    `export { y } from "./policy.ts";`,
    `const m = await import("../cache/pods.ts");`,
    `/** @example import { z } from "../service/service.ts"; */`,
  ].join("\n");
  const read = readImports("lib/decision/login.ts", source);
  assertEquals(read.map((e) => [e.specifier, e.typeOnly]), [
    ["../tokens/verifier.ts", true],
    ["../nats/connection.ts", false],
    ["./policy.ts", false],
    ["../cache/pods.ts", false],
  ]);
  assertEquals(violations(read), [
    "lib/decision/login.ts imports lib/nats/connection.ts: lib/decision/ may not import lib/nats/",
    "lib/decision/login.ts imports lib/cache/pods.ts: lib/decision/ may not import lib/cache/",
  ]);
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
