/**
 * The list half of a reflector (lib/cache/reflector.ts): every page of a collection, read into a
 * new {@linkcode RecordIndex}, with the resourceVersion the watch continues from. The first page's
 * resourceVersion is the consistent snapshot the `continue` tokens of the later pages belong to.
 *
 * @module
 */
import type { ApiAccess } from "../kubernetes/access.ts";
import { apiGet } from "../kubernetes/api_get.ts";
import { apiErrorFromResponse } from "../kubernetes/apiserver_errors.ts";
import { type NamespacedRecord, RecordIndex, type ToRecord } from "./record_index.ts";

/** Options of {@linkcode listAll}. */
export interface ListOptions<R extends NamespacedRecord> {
  /** Where the apiserver is and how to authenticate. */
  access: ApiAccess;
  /** Collection path, e.g. `/api/v1/pods`. */
  path: string;
  /** `Accept` of each page (metadata-only lists), or the access's default. */
  accept: string | undefined;
  /** Items per page (`limit`). */
  pageSize: number;
  /** Limit for one page, body included. */
  timeoutMs: number;
  /** Aborts the page in flight (the reflector's close). */
  signal: AbortSignal;
  /** Object → record; objects it maps to `undefined` are skipped. */
  toRecord: ToRecord<R>;
}

/** A complete list: the new index and where a watch continues from. */
export interface ListResult<R extends NamespacedRecord> {
  /** Every record the list's pages mapped to, ready to replace the current index. */
  readonly index: RecordIndex<R>;
  /** The list's resourceVersion (the first page's). */
  readonly resourceVersion: string;
  /** Pages read. */
  readonly pages: number;
}

interface ListPage {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: unknown[];
}

/**
 * Read every page of `options.path` into a new index. Rejects on the first failed page (an
 * {@linkcode ApiError} for a non-200 answer) and when the list has no resourceVersion to watch
 * from; the reflector's current index is untouched either way.
 *
 * @example
 * ```ts ignore
 * import { listAll } from "./reflector_list.ts";
 * const { index, resourceVersion } = await listAll({ access, path: "/api/v1/pods",
 *   accept: undefined, pageSize: 500, timeoutMs: 30_000, signal, toRecord });
 * ```
 */
export async function listAll<R extends NamespacedRecord>(
  options: ListOptions<R>,
): Promise<ListResult<R>> {
  const { path, pageSize, toRecord } = options;
  const index = new RecordIndex<R>();
  let cont: string | undefined;
  let listRv: string | undefined;
  let pages = 0;
  do {
    const params = new URLSearchParams({ limit: String(pageSize) });
    if (cont) params.set("continue", cont);
    const page = await getPage(`${path}?${params}`, options);
    pages++;
    listRv ??= page.metadata?.resourceVersion;
    for (const item of page.items ?? []) {
      const record = toRecord(item, index.intern);
      if (record) index.set(record);
    }
    cont = page.metadata?.continue || undefined;
  } while (cont);
  if (listRv === undefined) throw new Error("list response has no metadata.resourceVersion");
  return { index, resourceVersion: listRv, pages };
}

/** One page, within the page time limit and cut short by `signal`. */
async function getPage(
  pathAndQuery: string,
  options: Pick<ListOptions<NamespacedRecord>, "access" | "accept" | "timeoutMs" | "signal">,
): Promise<ListPage> {
  const { access, accept, timeoutMs, signal } = options;
  const ctl = new AbortController();
  const onStop = () => ctl.abort();
  signal.addEventListener("abort", onStop, { once: true });
  if (signal.aborted) ctl.abort();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  try {
    const res = await apiGet(access, pathAndQuery, { signal: ctl.signal, accept });
    if (res.status !== 200) throw await apiErrorFromResponse(res);
    return await res.json() as ListPage;
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", onStop);
  }
}
