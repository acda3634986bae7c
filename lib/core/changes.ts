/**
 * Change notifications from the caches to whoever must follow them (live revocation, issue 18):
 * which record of a namespaced kind changed (added, modified or deleted), or `"all"` when any may
 * have (a relist swapped the whole snapshot in). A feed fans one producer's notifications out to
 * its listeners, synchronously; a listener that throws does not stop the others.
 *
 * @module
 */

/** One record changed (by namespace and name), or possibly every record (`"all"`). */
export type RecordChange = { readonly namespace: string; readonly name: string } | "all";

/** Where a cache announces its changes, and where a follower listens. */
export interface ChangeFeed {
  /** Tell every listener. */
  emit(change: RecordChange): void;
  /** Listen until the returned function is called. */
  subscribe(listener: (change: RecordChange) => void): () => void;
}

/**
 * A feed with no listener yet.
 *
 * @example
 * ```ts
 * import { createChangeFeed, type RecordChange } from "./changes.ts";
 * const feed = createChangeFeed();
 * const seen: RecordChange[] = [];
 * const stop = feed.subscribe((c) => seen.push(c));
 * feed.emit({ namespace: "team-a", name: "orders" });
 * stop();
 * feed.emit("all");
 * console.assert(seen.length === 1);
 * ```
 */
export function createChangeFeed(): ChangeFeed {
  const listeners = new Set<(change: RecordChange) => void>();
  return {
    emit: (change) => {
      for (const listener of listeners) {
        try {
          listener(change);
        } catch {
          // one listener's bug must not keep a change from the others
        }
      }
    },
    subscribe: (listener) => {
      const own = (change: RecordChange) => listener(change);
      listeners.add(own);
      return () => listeners.delete(own);
    },
  };
}
