/**
 * The documentation step of `deno task check` (tools/doc_lint.ts): it reads `deno doc --lint`'s
 * output, fails on an export without docs, on a signature naming an unexported type of ours and
 * on a module without `@module`, and lets a signature name an npm package's type.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type DocDiagnostic,
  failing,
  importsFromPackage,
  parseDiagnostics,
} from "../../tools/doc_lint.ts";
import { assertEquals } from "../support/assert.ts";
import { ROOT } from "../support/start_task.ts";

/** `deno doc --lint`'s output for two diagnostics, as Deno 2.9 prints it with `NO_COLOR=1`. */
const OUTPUT = `error[missing-jsdoc]: exported symbol is missing JSDoc documentation
  --> /repo/lib/kubernetes/access.ts:94:3
   | 
94 |   readTextFileSync?: (path: string) => string;
   |   ^


error[private-type-ref]: public type 'accessFromKubeConfig' references private type 'KubeConfig'
   --> /repo/lib/kubernetes/access.ts:164:1
    | 
164 | export function accessFromKubeConfig(kc: KubeConfig): ApiAccess {
    | ^
    = hint: make the referenced type public or remove the reference
    | 
 29 | export declare class KubeConfig implements SecurityAuthentication {
    | - this is the referenced type
    | 

  info: to ensure documentation is complete all types that are exposed in the public API must be public


error: Found 2 documentation lint errors.

Stack backtrace:
   0: <unknown>
`;

Deno.test("doc lint: reads each diagnostic of deno doc's output, and refuses a miscount", () => {
  const diagnostics = parseDiagnostics(OUTPUT);
  assertEquals(diagnostics.map(({ code, message, file }) => ({ code, message, file })), [
    {
      code: "missing-jsdoc",
      message: "exported symbol is missing JSDoc documentation",
      file: "/repo/lib/kubernetes/access.ts",
    },
    {
      code: "private-type-ref",
      message: "public type 'accessFromKubeConfig' references private type 'KubeConfig'",
      file: "/repo/lib/kubernetes/access.ts",
    },
  ]);
  assert.ok(diagnostics[1]!.text.endsWith("must be public"));
  assertEquals(parseDiagnostics("Checked 64 files\n"), []);
  assert.throws(() => parseDiagnostics(OUTPUT.replace("Found 2", "Found 3")), /read 2/);
});

Deno.test("doc lint: an import from a package, in each form, and not from a module", () => {
  const source = [
    'import { isMap, type Node, parseDocument } from "yaml";',
    'import type { KubeConfig } from "@kubernetes/client-node";',
    'import {\n  errors,\n  type NatsConnection as Connection,\n} from "@nats-io/transport-node";',
    'import * as t from "jose";',
    'import { Local } from "./local.ts";',
  ].join("\n");
  for (const name of ["Node", "KubeConfig", "Connection", "t"]) {
    assert.ok(importsFromPackage(source, name), name);
  }
  for (const name of ["NatsConnection", "Local", "Missing"]) {
    assert.ok(!importsFromPackage(source, name), name);
  }
});

Deno.test("doc lint: only a reference to a package's type is let through", () => {
  const ref = (type: string): DocDiagnostic => ({
    code: "private-type-ref",
    message: `public type 'f' references private type '${type}'`,
    file: "/repo/lib/a.ts",
    text: "",
  });
  const source = 'import type { KubeConfig } from "@kubernetes/client-node";\ninterface Own {}';
  const missing = { ...ref("KubeConfig"), code: "missing-jsdoc" };
  assertEquals(failing([ref("KubeConfig"), ref("Own"), missing], () => source), [
    ref("Own"),
    missing,
  ]);
  const unreadable = () => {
    throw new Error("not readable");
  };
  assertEquals(failing([ref("KubeConfig")], unreadable), [ref("KubeConfig")]);
});

Deno.test("doc lint: the step fails on a new export without docs and on a module without @module", async () => {
  const dir = await Deno.makeTempDir({ prefix: "doc_lint_test_" });
  try {
    const lint = async () => {
      const out = await new Deno.Command("deno", {
        args: ["run", "--allow-run=deno", `--allow-read=${dir}`, `${ROOT}tools/doc_lint.ts`, dir],
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      return { code: out.code, text };
    };
    await Deno.mkdir(`${dir}/core`);
    await Deno.writeTextFile(
      `${dir}/core/a.ts`,
      '/**\n * A module.\n *\n * @module\n */\nimport type { Node } from "yaml";\n\n' +
        "/** Documented, and naming a package's type. */\nexport function f(n: Node): Node {\n  return n;\n}\n",
    );
    const clean = await lint();
    assert.equal(clean.code, 0, clean.text);
    assert.match(clean.text, /allowed: 1 references to a type of an npm package/);

    await Deno.writeTextFile(`${dir}/core/b.ts`, "export const undocumented = 1;\n");
    const dirty = await lint();
    assert.equal(dirty.code, 1, dirty.text);
    assert.match(dirty.text, /error\[missing-jsdoc\][\s\S]*core\/b\.ts:1:14/);
    assert.match(dirty.text, /core\/b\.ts: no @module doc/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
