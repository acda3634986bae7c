/**
 * YAML read with positions, for a file people edit by hand (the policy file): a problem is not
 * thrown at the first bad node but collected as `path:line:column: message`, so one run names
 * every mistake. The typed readers here turn a node into a value, or report why they cannot and
 * return `undefined`; lib/decision/policy_schema.ts builds the policy's fields from them.
 *
 * @module
 */
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from "yaml";

/** One key of a YAML mapping: its name, its value, and the key's node (where a bad key is shown). */
export interface MappingEntry {
  /** The key's text; a key that is not a string is reported and its entry left out. */
  readonly key: string;
  /** `null` when the key has no value (`defaults:`). */
  readonly value: Node | null;
  /** The key's node, to report a problem at (e.g. an unknown field). */
  readonly keyNode: unknown;
}

/** A line and a column in the file, both counted from 1. */
export interface Position {
  /** Counted from 1. */
  readonly line: number;
  /** Counted from 1, in UTF-16 code units (string offsets, as the `yaml` package counts them). */
  readonly col: number;
}

/**
 * How each key of a mapping is read: the value for the key, or `undefined` after the reader has
 * reported why not. `at` is the field's dotted path for messages (`defaults.response.max`).
 */
export type FieldReaders<T> = {
  readonly [K in keyof T]-?: (value: Node | null, at: string) => T[K] | undefined;
};

/** What {@linkcode YamlReader.fields} read: the fields it could, and whether every field could be. */
export interface FieldsRead<T> {
  /** The fields whose readers returned a value; the others are absent. */
  readonly value: Partial<T>;
  /** False when a reader reported a problem (an unknown key does not count). */
  readonly complete: boolean;
}

/**
 * One YAML text, parsed with positions, and the problems found in it so far. Syntax errors (and
 * duplicate keys) are its first problems; the readers add theirs in the order they meet them, which
 * is the order the file's author reads them.
 *
 * @example
 * ```ts
 * import { YamlReader } from "./policy_yaml.ts";
 * const yaml = new YamlReader("retries: many\n", "app.yaml");
 * const [entry] = yaml.mapping(yaml.root, "the file") ?? [];
 * yaml.strings(entry!.value, "retries");
 * console.assert(yaml.problems[0] === "app.yaml:1:10: retries must be a list of strings");
 * ```
 */
export class YamlReader {
  /** The file name, first in every problem. */
  readonly path: string;
  /** The document's top node; `null` or `undefined` for an empty document. */
  readonly root: unknown;
  readonly #lines = new LineCounter();
  readonly #problems: string[] = [];

  /** Parse `text` (the content of `path`); syntax errors become the first problems. */
  constructor(text: string, path: string) {
    this.path = path;
    const doc = parseDocument(text, {
      lineCounter: this.#lines,
      prettyErrors: true,
      uniqueKeys: true,
    });
    for (const err of [...doc.errors, ...doc.warnings]) {
      const first = err.message.split("\n", 1)[0]!.replace(/ at line \d+, column \d+:?$/, "");
      this.#problems.push(`${this.#at(err.linePos?.[0])}: ${first}`);
    }
    this.root = doc.contents;
  }

  /** Every problem so far, each `path:line:column: message` (or `path: message` without a node). */
  get problems(): readonly string[] {
    return this.#problems;
  }

  /** Where `node` starts in the file; `undefined` for a missing node. */
  positionOf(node: unknown): Position | undefined {
    const offset = (node as { range?: [number, number, number] } | undefined)?.range?.[0];
    return offset === undefined ? undefined : this.#lines.linePos(offset);
  }

  /** Report `message` at `node`. */
  problem(node: unknown, message: string): void {
    this.#problems.push(`${this.#at(this.positionOf(node))}: ${message}`);
  }

  /** The entries of a mapping (none for a missing node); `undefined` if `node` is no mapping. */
  mapping(node: unknown, what: string): MappingEntry[] | undefined {
    if (node === null || node === undefined) return [];
    if (!isMap(node)) {
      this.problem(node, `${what} must be a mapping`);
      return undefined;
    }
    const entries: MappingEntry[] = [];
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? pair.key.value : undefined;
      if (typeof key !== "string") {
        this.problem(pair.key, `${what}: keys must be strings`);
        continue;
      }
      entries.push({ key, value: (pair.value as Node | null) ?? null, keyNode: pair.key });
    }
    return entries;
  }

  /**
   * Read a mapping whose keys are known: each key by its reader, every other key reported as
   * unknown with the list of known ones. `undefined` if `node` is no mapping.
   */
  fields<T>(node: unknown, at: string, readers: FieldReaders<T>): FieldsRead<T> | undefined {
    const entries = this.mapping(node, at);
    if (entries === undefined) return undefined;
    const known = Object.keys(readers);
    const value: Partial<T> = {};
    let complete = true;
    for (const { key, value: node, keyNode } of entries) {
      if (!known.includes(key)) {
        this.problem(keyNode, `${at}: unknown field "${key}" (expected ${known.join(", ")})`);
        continue;
      }
      const field = key as keyof T;
      const read = readers[field](node, `${at}.${key}`);
      if (read === undefined) complete = false;
      else value[field] = read;
    }
    return { value, complete };
  }

  /** A non-empty string. */
  string(node: Node | null, what: string): string | undefined {
    if (isScalar(node) && typeof node.value === "string" && node.value !== "") return node.value;
    this.problem(node, `${what} must be a non-empty string`);
    return undefined;
  }

  /** A list of non-empty strings; `undefined` (every bad entry reported) if any entry is not one. */
  strings(node: Node | null, what: string): string[] | undefined {
    if (!isSeq(node)) {
      this.problem(node, `${what} must be a list of strings`);
      return undefined;
    }
    const out: string[] = [];
    let ok = true;
    for (const item of node.items) {
      const value = this.string(item as Node | null, `${what} entries`);
      if (value === undefined) ok = false;
      else out.push(value);
    }
    return ok ? out : undefined;
  }

  /** `path:line:column`, or `path` alone without a position. */
  #at(pos: Position | undefined): string {
    return pos ? `${this.path}:${pos.line}:${pos.col}` : this.path;
  }
}

/** The node of item `index` of a sequence (for a problem about one entry of a list). */
export function itemOf(node: Node | null, index: number): unknown {
  return isSeq(node) ? node.items[index] : undefined;
}
