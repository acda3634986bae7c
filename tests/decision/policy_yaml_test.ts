/**
 * The position-aware YAML reader of the policy file (lib/decision/policy_yaml.ts): problems are
 * collected, not thrown, each with `path:line:column`, in the order the readers meet them.
 */
import assert from "node:assert/strict";
import { YamlReader } from "../../lib/decision/policy_yaml.ts";

Deno.test("policy yaml: syntax errors and duplicate keys are the first problems, with their position", () => {
  const yaml = new YamlReader("a: 1\na: 2\n", "f.yaml");
  assert.equal(yaml.problems.length, 1);
  assert.match(yaml.problems[0]!, /^f\.yaml:2:1: Map keys must be unique/);
});

Deno.test("policy yaml: readers report and go on; a missing node has no position", () => {
  const yaml = new YamlReader("top:\n  1: x\n  name: ''\n  list: [a, 3]\n", "f.yaml");
  const [top] = yaml.mapping(yaml.root, "the file") ?? [];
  const entries = yaml.mapping(top!.value, "top") ?? [];
  assert.deepEqual(entries.map((e) => e.key), ["name", "list"]);
  assert.equal(yaml.string(entries[0]!.value, "top.name"), undefined);
  assert.equal(yaml.strings(entries[1]!.value, "top.list"), undefined);
  assert.equal(yaml.string(null, "top.missing"), undefined);
  assert.deepEqual(yaml.problems, [
    "f.yaml:2:3: top: keys must be strings",
    "f.yaml:3:9: top.name must be a non-empty string",
    "f.yaml:4:13: top.list entries must be a non-empty string",
    "f.yaml: top.missing must be a non-empty string",
  ]);
});

Deno.test("policy yaml: fields reads the known keys, names the unknown ones and tells whether all could be read", () => {
  const yaml = new YamlReader("{ a: x, b: '', c: 1 }\n", "f.yaml");
  const read = yaml.fields<{ a: string; b: string }>(yaml.root, "m", {
    a: (node, at) => yaml.string(node, at),
    b: (node, at) => yaml.string(node, at),
  });
  assert.deepEqual(read, { value: { a: "x" }, complete: false });
  assert.deepEqual(yaml.problems, [
    "f.yaml:1:12: m.b must be a non-empty string",
    'f.yaml:1:16: m: unknown field "c" (expected a, b)',
  ]);
  assert.equal(yaml.fields(new YamlReader("[1]\n", "g").root, "m", {}), undefined);
});
