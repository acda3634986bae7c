/**
 * The in-memory index a reflector (lib/cache/reflector.ts) keeps: records by namespace, then name,
 * with each namespace string stored once and shared by its records. A relist fills a new index and
 * swaps it in whole; watch events change the current one in place.
 *
 * @module
 */

/** What every record a reflector keeps has: the object's namespace and name. */
export interface NamespacedRecord {
  /** The object's `metadata.namespace`; `""` for a cluster-scoped object. */
  readonly namespace: string;
  /** The object's `metadata.name`, unique within its namespace. */
  readonly name: string;
}

/**
 * Turn one listed or watched object into the record kept, or `undefined` to ignore it. `intern`
 * returns the index's own copy of a namespace string, so records share it.
 */
export type ToRecord<R extends NamespacedRecord> = (
  object: unknown,
  intern: (namespace: string) => string,
) => R | undefined;

/**
 * Records by namespace, then name. With 100,000 records, composite `ns/name` keys and one namespace
 * string per record are several MiB; here each namespace string is stored once.
 *
 * @example
 * ```ts
 * import { RecordIndex } from "./record_index.ts";
 * const index = new RecordIndex<{ namespace: string; name: string }>();
 * index.set({ namespace: index.intern("team-a"), name: "orders" });
 * console.assert(index.get("team-a", "orders")?.name === "orders" && index.size === 1);
 * ```
 */
export class RecordIndex<R extends NamespacedRecord> {
  readonly #byNamespace = new Map<string, { namespace: string; items: Map<string, R> }>();
  #size = 0;

  /** Records held. */
  get size(): number {
    return this.#size;
  }

  /** The record of `namespace`/`name`, if held. */
  get(namespace: string, name: string): R | undefined {
    return this.#byNamespace.get(namespace)?.items.get(name);
  }

  /** The copy of `namespace` already held by the index (so records share it), else `namespace`. */
  readonly intern = (namespace: string): string =>
    this.#byNamespace.get(namespace)?.namespace ?? namespace;

  /** Add or replace the record of its namespace and name. */
  set(record: R): void {
    let bucket = this.#byNamespace.get(record.namespace);
    if (!bucket) {
      bucket = { namespace: record.namespace, items: new Map() };
      this.#byNamespace.set(record.namespace, bucket);
    }
    const before = bucket.items.size;
    bucket.items.set(record.name, record);
    this.#size += bucket.items.size - before;
  }

  /** Every record held, namespace by namespace (insertion order). */
  *values(): IterableIterator<R> {
    for (const bucket of this.#byNamespace.values()) yield* bucket.items.values();
  }

  /** Remove the record of `namespace`/`name`, if held; an emptied namespace is dropped. */
  delete(namespace: string, name: string): void {
    const bucket = this.#byNamespace.get(namespace);
    if (!bucket?.items.delete(name)) return;
    this.#size--;
    if (bucket.items.size === 0) this.#byNamespace.delete(namespace);
  }
}
