/**
 * The watch half of a reflector (lib/cache/reflector.ts): the request of one watch stream and its
 * timers, what the response's status means, the newline-delimited JSON events of its body, and
 * what one event does to the index. A watch ends in one of five ways ({@linkcode WatchEnd}): the
 * resourceVersion is gone (`410`, as a status or an `ERROR` event), it failed, the apiserver closed
 * it, a relist is due, or the reflector stopped.
 *
 * @module
 */
import { ApiError, apiErrorFromResponse } from "../kubernetes/apiserver_errors.ts";
import type { NamespacedRecord, RecordIndex, ToRecord } from "./record_index.ts";

/** Why a watch ended. */
export type WatchEnd =
  | { kind: "gone" }
  | { kind: "closed"; events: number; durationMs: number }
  | { kind: "error"; error: unknown }
  | { kind: "relist" }
  | { kind: "stopped" };

/** One event of a watch stream, as the apiserver sends it (fields are checked where used). */
export interface WatchEvent {
  /** `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` or `ERROR`; any other is skipped. */
  type?: string;
  /** The object (only its metadata for a metadata watch), or a `Status` on `ERROR`. */
  object?: {
    code?: number;
    message?: string;
    metadata?: { resourceVersion?: string };
  };
}

/** What one watch event did: changed the index, nothing, or ends the watch. */
export type EventOutcome =
  | { kind: "applied"; resourceVersion: string | undefined }
  | { kind: "skipped" }
  | { kind: "gone" }
  | { kind: "error"; error: ApiError };

/**
 * The path and query of a watch from `resourceVersion` (none: from now), with bookmarks, that the
 * apiserver ends after `timeoutSeconds`.
 *
 * @example
 * ```ts
 * import { watchPath } from "./reflector_watch.ts";
 * console.assert(watchPath("/api/v1/pods", "42", 300).endsWith("&resourceVersion=42"));
 * ```
 */
export function watchPath(
  path: string,
  resourceVersion: string | undefined,
  timeoutSeconds: number,
): string {
  const params = new URLSearchParams({
    watch: "true",
    allowWatchBookmarks: "true",
    timeoutSeconds: String(timeoutSeconds),
  });
  if (resourceVersion !== undefined) params.set("resourceVersion", resourceVersion);
  return `${path}?${params}`;
}

/** Options of {@linkcode WatchRequest}. */
export interface WatchRequestOptions {
  /** End the watch for a relist after this long (when the next periodic relist is due). */
  relistInMs: number;
  /**
   * Abort the request after this long: the apiserver ends the stream at its `timeoutSeconds`, so
   * past that plus a grace the connection is dead.
   */
  deadlineMs: number;
}

/**
 * The lifetime of one watch request: its abort signal, tied to the reflector's `stop`; a timer that
 * ends it when a relist is due ({@linkcode WatchRequest.endForRelist} does the same at once, for a
 * resync); a deadline for a silently dead connection. {@linkcode WatchRequest.ended} turns how the
 * stream ended into why the watch ended: a stop or a due relist, when one caused it.
 *
 * @example
 * ```ts
 * import { WatchRequest } from "./reflector_watch.ts";
 * const stop = new AbortController();
 * using request = new WatchRequest(stop.signal, { relistInMs: 60_000, deadlineMs: 600_000 });
 * request.endForRelist();
 * console.assert(request.signal.aborted && request.ended({ kind: "gone" }).kind === "relist");
 * ```
 */
export class WatchRequest implements Disposable {
  readonly #ctl = new AbortController();
  readonly #stop: AbortSignal;
  readonly #onStop = () => this.#ctl.abort();
  readonly #relistTimer: ReturnType<typeof setTimeout>;
  readonly #deadline: ReturnType<typeof setTimeout>;
  #relistDue = false;

  /** Start the timers; the request is aborted at once if `stop` already is. */
  constructor(stop: AbortSignal, options: WatchRequestOptions) {
    this.#stop = stop;
    stop.addEventListener("abort", this.#onStop, { once: true });
    if (stop.aborted) this.#ctl.abort();
    this.#relistTimer = setTimeout(this.endForRelist, options.relistInMs);
    this.#deadline = setTimeout(() => this.#ctl.abort(), options.deadlineMs);
  }

  /** The request's signal: aborted by a stop, a due relist, the deadline or {@linkcode abort}. */
  get signal(): AbortSignal {
    return this.#ctl.signal;
  }

  /** End the watch now because a relist is due. */
  readonly endForRelist = (): void => {
    this.#relistDue = true;
    this.#ctl.abort();
  };

  /** Abort the request (the watch ends for a reason already known). */
  abort(): void {
    this.#ctl.abort();
  }

  /** Why the watch ended: `stopped` or `relist` when one of those cut it, else `end`. */
  ended(end: WatchEnd): WatchEnd {
    if (this.#stop.aborted) return { kind: "stopped" };
    if (this.#relistDue) return { kind: "relist" };
    return end;
  }

  /** Clear the timers and let go of the stop signal. */
  [Symbol.dispose](): void {
    clearTimeout(this.#relistTimer);
    clearTimeout(this.#deadline);
    this.#stop.removeEventListener("abort", this.#onStop);
  }
}

/**
 * What a watch response's status means: a `200` with a body is a stream to read; `410 Gone` means
 * the resourceVersion is too old (relist); any other answer is a failure. Consumes the body of
 * every answer but a stream.
 */
export async function openedWatch(
  res: Response,
): Promise<{ kind: "open"; body: ReadableStream<Uint8Array> } | WatchEnd> {
  if (res.status === 410) {
    await res.body?.cancel();
    return { kind: "gone" };
  }
  if (res.status !== 200) return { kind: "error", error: await apiErrorFromResponse(res) };
  if (!res.body) return { kind: "error", error: new Error("watch response has no body") };
  return { kind: "open", body: res.body };
}

/**
 * The events of a watch stream (newline-delimited JSON); blank and unparsable lines are skipped.
 * Ends when the stream ends, throws when it fails; leaving the loop early cancels the stream.
 */
export async function* watchEvents(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<WatchEvent, void, undefined> {
  const lines = body.pipeThrough(new TextDecoderStream()).pipeThrough(lineSplitter());
  for await (const line of lines) {
    if (!line.trim()) continue;
    let event: WatchEvent;
    try {
      event = JSON.parse(line);
    } catch {
      continue;
    }
    yield event;
  }
}

/**
 * Apply one watch event to `index`: `ADDED`/`MODIFIED` set the record, `DELETED` removes it, a
 * `BOOKMARK` only moves the resourceVersion on; an `ERROR` event ends the watch (`gone` for 410),
 * and an event of an unknown type is skipped.
 *
 * @example
 * ```ts
 * import { applyWatchEvent } from "./reflector_watch.ts";
 * import { RecordIndex } from "./record_index.ts";
 * const index = new RecordIndex<{ namespace: string; name: string }>();
 * const toRecord = () => ({ namespace: "team-a", name: "orders" });
 * const event = { type: "ADDED", object: { metadata: { resourceVersion: "7" } } };
 * console.assert(applyWatchEvent(event, index, toRecord).kind === "applied" && index.size === 1);
 * ```
 */
export function applyWatchEvent<R extends NamespacedRecord>(
  event: WatchEvent,
  index: RecordIndex<R>,
  toRecord: ToRecord<R>,
): EventOutcome {
  const obj = event.object;
  switch (event.type) {
    case "ADDED":
    case "MODIFIED": {
      const record = toRecord(obj, index.intern);
      if (record) index.set(record);
      break;
    }
    case "DELETED": {
      const record = toRecord(obj, index.intern);
      if (record) index.delete(record.namespace, record.name);
      break;
    }
    case "BOOKMARK":
      break;
    case "ERROR":
      if (obj?.code === 410) return { kind: "gone" };
      return {
        kind: "error",
        error: new ApiError(obj?.code ?? 0, obj?.message ?? "watch ERROR event"),
      };
    default:
      return { kind: "skipped" };
  }
  return { kind: "applied", resourceVersion: obj?.metadata?.resourceVersion };
}

/** Split a text stream into lines (the watch protocol is newline-delimited JSON). */
function lineSplitter(): TransformStream<string, string> {
  let buffer = "";
  return new TransformStream<string, string>({
    transform(chunk, controller) {
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        controller.enqueue(buffer.slice(0, nl));
        buffer = buffer.slice(nl + 1);
      }
    },
    flush(controller) {
      if (buffer) controller.enqueue(buffer);
    },
  });
}
