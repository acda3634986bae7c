/**
 * The client code docs/client-usage.md shows is cut from the examples the client tests run: each
 * fenced Go, TypeScript, Java or Python block follows a `<!-- snippet: <file>#<region> -->` line (blank lines between allowed) and
 * must equal that region of the file (between `docs:start <region>` and `docs:end <region>`
 * comments, common indentation removed). A block without the line, or one that drifted from its
 * example, fails here.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../..", import.meta.url);
const DOC = "docs/client-usage.md";
const CODE_LANGUAGES = new Set(["go", "ts", "typescript", "js", "java", "python", "py"]);

/** A fenced block of a Markdown text, with the snippet marker before it (if any). */
interface Block {
  line: number;
  lang: string;
  body: string;
  marker: { file: string; region: string } | undefined;
}

function blocks(markdown: string): Block[] {
  const lines = markdown.split("\n");
  const found: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const end = lines.indexOf("```", i + 1);
    assert.ok(end > i, `${DOC}:${i + 1}: unterminated code block`);
    let before = i - 1;
    while (before >= 0 && lines[before]!.trim() === "") before--;
    const marker = /^<!-- snippet: (\S+)#(\S+) -->$/.exec(lines[before] ?? "");
    found.push({
      line: i + 1,
      lang: open[1]!,
      body: lines.slice(i + 1, end).join("\n"),
      marker: marker ? { file: marker[1]!, region: marker[2]! } : undefined,
    });
    i = end;
  }
  return found;
}

/** The lines between `docs:start <region>` and `docs:end <region>`, common indentation removed. */
export function region(source: string, name: string, file = "source"): string {
  const lines = source.split("\n");
  const start = lines.findIndex((l) => new RegExp(`docs:start ${name}$`).test(l.trim()));
  const end = lines.findIndex((l, i) =>
    i > start && new RegExp(`docs:end ${name}$`).test(l.trim())
  );
  assert.ok(start >= 0 && end > start, `${file}: no region "${name}"`);
  const body = lines.slice(start + 1, end);
  const indent = Math.min(
    ...body.filter((l) => l.trim()).map((l) => /^[\t ]*/.exec(l)![0].length),
  );
  return body.map((l) => l.slice(indent)).join("\n");
}

Deno.test("every client snippet in docs/client-usage.md is a region of an example", async () => {
  const doc = await Deno.readTextFile(new URL(DOC, ROOT));
  const code = blocks(doc).filter((b) => CODE_LANGUAGES.has(b.lang));
  const unmarked = code.filter((b) => !b.marker).map((b) => `${DOC}:${b.line} (${b.lang})`);
  assert.deepEqual(unmarked, [], "client code that no example runs");
  const shown = new Set<string>();
  for (const block of code) {
    const { file, region: name } = block.marker!;
    assert.match(file, /^examples\//, `${DOC}:${block.line}: snippets come from examples/`);
    const source = await Deno.readTextFile(new URL(file, ROOT));
    assert.equal(
      block.body,
      region(source, name, file),
      `${DOC}:${block.line} drifted from ${file}#${name}`,
    );
    shown.add(file);
  }
  // Each language's example is shown.
  for (
    const file of [
      "examples/go/main.go",
      "examples/deno_client.ts",
      "examples/java/Client.java",
      "examples/python_client.py",
    ]
  ) {
    assert.ok(shown.has(file), `${DOC} shows no part of ${file}`);
  }
});

Deno.test("a region is cut at its markers and loses only the common indentation", () => {
  const source = "x\n  // docs:start a\n  one\n    two\n\n  // docs:end a\ny";
  assert.equal(region(source, "a"), "one\n  two\n");
  assert.throws(() => region(source, "b"), /no region "b"/);
});
