/**
 * NATS subject rules for permission entries, and the per-ServiceAccount private inbox prefix.
 * A subject that reaches a user JWT unchecked can make nats-server reject the whole JWT (the Go
 * reference's fault: one bad annotation entry locked the pod out), so entries are checked here,
 * one by one, before they are granted.
 *
 * @module
 */

/**
 * Longest subject accepted in a permission entry. nats-server has no limit of its own below the
 * control line (4096 bytes by default); 256 characters is far beyond any sane subject and keeps
 * one annotation from bloating every user JWT.
 */
export const MAX_SUBJECT_LENGTH = 256;

// Whitespace and control characters are never part of a subject (the protocol splits on them).
// deno-lint-ignore no-control-regex
const FORBIDDEN = /[\s\x00-\x1f\x7f]/u;

/**
 * Why `subject` is not a valid permission subject, or `undefined` when it is. Rules: not empty,
 * at most {@linkcode MAX_SUBJECT_LENGTH} characters, no whitespace or control characters, no
 * empty tokens (`a..b`, `.a`, `a.`), `*` only as a whole token, `>` only as the whole last token.
 *
 * @example
 * ```ts
 * import { subjectProblem } from "./subjects.ts";
 * console.assert(subjectProblem("orders.*.created") === undefined);
 * console.assert(subjectProblem("a.>.b") !== undefined);
 * ```
 */
export function subjectProblem(subject: string): string | undefined {
  if (subject === "") return "is empty";
  if (subject.length > MAX_SUBJECT_LENGTH) {
    return `is longer than ${MAX_SUBJECT_LENGTH} characters`;
  }
  if (FORBIDDEN.test(subject)) return "contains whitespace or a control character";
  const tokens = subject.split(".");
  for (const [i, token] of tokens.entries()) {
    if (token === "") return "has an empty token";
    if (token === ">") {
      if (i !== tokens.length - 1) return "has '>' before the last token";
      continue;
    }
    if (token === "*") continue;
    if (token.includes("*")) return "has '*' inside a token (it must be a whole token)";
    if (token.includes(">")) return "has '>' inside a token (it must be the whole last token)";
  }
  return undefined;
}

/**
 * Whether `subject` may be granted as a publish or subscribe permission.
 *
 * @example
 * ```ts
 * import { isValidSubject } from "./subjects.ts";
 * console.assert(isValidSubject("team-a.>"));
 * console.assert(!isValidSubject("foo bar"));
 * ```
 */
export function isValidSubject(subject: string): boolean {
  return subjectProblem(subject) === undefined;
}

/**
 * Why a **subscribe** permission entry is not valid, or `undefined` when it is. As in NATS
 * permissions and the Go reference, a subscribe entry may name a queue group after one space:
 * `orders.> workers` allows subscribing to `orders.>` in queue group `workers` only. Both parts
 * follow {@linkcode subjectProblem} (the queue may use wildcards, as NATS allows). Publish entries
 * have no queue: use {@linkcode subjectProblem} for them, which refuses any space.
 *
 * @example
 * ```ts
 * import { subscribeEntryProblem } from "./subjects.ts";
 * console.assert(subscribeEntryProblem("orders.> workers") === undefined);
 * console.assert(subscribeEntryProblem("orders.>  workers") !== undefined);
 * ```
 */
export function subscribeEntryProblem(entry: string): string | undefined {
  const parts = entry.split(" ");
  if (parts.length === 1) return subjectProblem(entry);
  if (parts.length > 2) return 'has more than one space (expected "subject queue")';
  const [subject = "", queue = ""] = parts;
  const bad = subjectProblem(subject);
  if (bad) return bad;
  const badQueue = subjectProblem(queue);
  return badQueue ? `has a queue group that ${badQueue}` : undefined;
}

/**
 * The private inbox prefix of one ServiceAccount: `_INBOX_<namespace>_<name>`, with the dots of
 * the name replaced by `_`. ServiceAccount names may contain dots, and without the replacement SA
 * `foo`'s `_INBOX_ns_foo.>` would also cover SA `foo.bar`'s inbox. Kubernetes names never contain
 * `_`, so the result stays unambiguous. Clients pass this as their inbox prefix.
 *
 * @example
 * ```ts
 * import { inboxPrefix } from "./subjects.ts";
 * console.assert(inboxPrefix("team-a", "api.v2") === "_INBOX_team-a_api_v2");
 * ```
 */
export function inboxPrefix(namespace: string, serviceAccount: string): string {
  return `_INBOX_${namespace}_${serviceAccount.replaceAll(".", "_")}`;
}
