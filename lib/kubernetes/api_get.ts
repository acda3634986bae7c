/**
 * One GET on the apiserver through an {@linkcode ApiAccess}: the access's headers (credentials
 * recomputed per request, so a rotated token is picked up at once), its TLS client, and Deno's
 * native `fetch`. Not client-node's: its undici `fetch` under Deno never errors a response body when
 * the connection drops or the request is aborted (Deno's `node:stream.isReadable()` returns `null`
 * for web streams, so undici skips erroring the stream), so a dropped watch would hang forever, and
 * so would a list page cut mid-body.
 *
 * @module
 */
import type { ApiAccess } from "./access.ts";

/** Options of {@linkcode apiGet}. */
export interface ApiGetOptions {
  /** Aborts the request, and the reading of its body. */
  signal: AbortSignal;
  /** The `Accept` header. @default {the access's (`application/json`)} */
  accept?: string | undefined;
  /**
   * Abort unless the response's headers arrive within this long; the body is not limited by it
   * (a watch streams for minutes). @default {no limit}
   */
  headersTimeoutMs?: number;
}

/**
 * GET `path` (with its query) on the apiserver `access` reaches; resolves to the response whatever
 * its status, so the caller decides what a `410` or a `403` means.
 *
 * @example
 * ```ts ignore
 * import { apiGet } from "./api_get.ts";
 * const res = await apiGet(access, "/api/v1/serviceaccounts?limit=500", { signal });
 * ```
 */
export async function apiGet(
  access: Pick<ApiAccess, "server" | "headers" | "client">,
  path: string,
  options: ApiGetOptions,
): Promise<Response> {
  const { signal, accept, headersTimeoutMs } = options;
  const headers = await access.headers();
  if (accept !== undefined) headers.set("accept", accept);
  const url = access.server + path;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let reqSignal = signal;
  if (headersTimeoutMs !== undefined) {
    const ctl = new AbortController();
    timer = setTimeout(() => ctl.abort(), headersTimeoutMs);
    reqSignal = AbortSignal.any([signal, ctl.signal]);
  }
  try {
    const client = access.client;
    return await fetch(url, { headers, signal: reqSignal, ...(client ? { client } : {}) });
  } finally {
    clearTimeout(timer);
  }
}
