/**
 * The permissions one ServiceAccount gets. Pure: the same ServiceAccount and options always give
 * the same result, and the caller (which owns the logger and the metrics) reports what was dropped.
 *
 * Defaults match the Go reference exactly: publish `<ns>.>`; subscribe `_INBOX.>`, the private
 * inbox `_INBOX_<ns>_<sa>.>` and `<ns>.>`; one response per request with no time limit. The
 * annotations `<prefix>allowed-pub-subjects` and `<prefix>allowed-sub-subjects` add to them.
 *
 * @module
 */
import type { Permissions, ServiceAccountRecord } from "./model.ts";
import { inboxPrefix, isValidSubject } from "./subjects.ts";

/** Annotation name (after the prefix) listing extra publish subjects. */
export const PUB_ANNOTATION = "allowed-pub-subjects";

/** Annotation name (after the prefix) listing extra subscribe subjects. */
export const SUB_ANNOTATION = "allowed-sub-subjects";

/** Options of {@linkcode permissionsFor}. */
export interface PolicyOptions {
  /** Annotation prefix, e.g. `nats.io/` (config `SA_ANNOTATION_PREFIX`). */
  annotationPrefix: string;
  /**
   * How long a responder may answer a request, in milliseconds; 0 means no limit. The reference
   * sets no limit (`Expires: 0`).
   * @default {0}
   */
  responseTtlMs?: number;
}

/** What {@linkcode permissionsFor} decided, including what it left out and why. */
export interface PolicyResult {
  /** The permissions to put in the user JWT. */
  readonly permissions: Permissions;
  /** Annotation entries dropped because they start with `_INBOX` or `_REPLY` (warn and count). */
  readonly filteredInternal: readonly string[];
  /** Annotation entries dropped because they are not valid NATS subjects (warn and count). */
  readonly invalid: readonly string[];
}

/**
 * Split an annotation value the way the reference does: on commas, each entry trimmed, empty
 * entries dropped.
 *
 * @example
 * ```ts
 * import { parseSubjectList } from "./policy.ts";
 * console.assert(parseSubjectList(" a.b, ,c ").join("|") === "a.b|c");
 * ```
 */
export function parseSubjectList(value: string): string[] {
  return value.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

/**
 * Whether an annotation entry names a subject NATS manages itself. Same rule as the reference: a
 * case-sensitive prefix match on `_INBOX` or `_REPLY`, so `_INBOX.>`, `_INBOX_x.>` and
 * `_REPLY.x` are all internal; `_inbox.x` is an ordinary subject.
 */
export function isInternalSubject(subject: string): boolean {
  return subject.startsWith("_INBOX") || subject.startsWith("_REPLY");
}

/**
 * Derive the permissions of one ServiceAccount. Annotation entries are appended to the defaults
 * in order, duplicates removed; `_INBOX`/`_REPLY` entries go to `filteredInternal`, invalid
 * subjects to `invalid`, and neither is ever granted. One bad entry never voids the others.
 *
 * @example
 * ```ts
 * import { permissionsFor } from "./policy.ts";
 * const { permissions, invalid } = permissionsFor(
 *   {
 *     namespace: "team-a",
 *     name: "api",
 *     uid: "u1",
 *     annotations: { "nats.io/allowed-pub-subjects": "shared.events, a..b" },
 *   },
 *   { annotationPrefix: "nats.io/" },
 * );
 * console.assert(permissions.pub.allow.join(",") === "team-a.>,shared.events");
 * console.assert(invalid[0] === "a..b");
 * ```
 */
export function permissionsFor(sa: ServiceAccountRecord, options: PolicyOptions): PolicyResult {
  const { annotationPrefix, responseTtlMs = 0 } = options;
  if (!Number.isFinite(responseTtlMs) || responseTtlMs < 0) {
    throw new RangeError(`responseTtlMs must be a finite number >= 0, got ${responseTtlMs}`);
  }
  const filteredInternal: string[] = [];
  const invalid: string[] = [];

  const extend = (defaults: readonly string[], annotation: string): string[] => {
    const allow = new Set(defaults);
    const value = sa.annotations[annotationPrefix + annotation];
    for (const entry of value === undefined ? [] : parseSubjectList(value)) {
      if (isInternalSubject(entry)) filteredInternal.push(entry);
      else if (!isValidSubject(entry)) invalid.push(entry);
      else allow.add(entry);
    }
    return [...allow];
  };

  const own = `${sa.namespace}.>`;
  const pub = extend([own], PUB_ANNOTATION);
  const sub = extend(["_INBOX.>", `${inboxPrefix(sa.namespace, sa.name)}.>`, own], SUB_ANNOTATION);

  return {
    permissions: {
      pub: { allow: pub },
      sub: { allow: sub },
      resp: { max: 1, ttlNs: Math.round(responseTtlMs * 1e6) },
    },
    filteredInternal,
    invalid,
  };
}
