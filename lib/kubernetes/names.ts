/**
 * Kubernetes object names as the apiserver validates them (RFC 1123, `k8s.io/apimachinery`
 * `validation.IsDNS1123Label` / `IsDNS1123Subdomain`). A ServiceAccount's namespace and name end up
 * in NATS subjects (`<namespace>.>`, `_INBOX_<namespace>_<name>.>`), so a record from any source —
 * the apiserver, a manifest file, a token's claims — is checked against these rules before it can
 * reach a permission: a namespace `*` or `>` would otherwise be granted `*.>` or `>.>`.
 *
 * @module
 */

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Longest DNS-1123 label (a namespace name). */
export const MAX_LABEL_LENGTH = 63;
/** Longest DNS-1123 subdomain (a ServiceAccount name). */
export const MAX_SUBDOMAIN_LENGTH = 253;

/**
 * True when `value` is a DNS-1123 label: what a namespace name must be.
 *
 * @example
 * ```ts
 * import { isDnsLabel } from "./names.ts";
 * console.assert(isDnsLabel("team-a"));
 * console.assert(!isDnsLabel("*"));
 * ```
 */
export function isDnsLabel(value: unknown): value is string {
  return typeof value === "string" && value.length <= MAX_LABEL_LENGTH && DNS_LABEL.test(value);
}

/**
 * True when `value` is a DNS-1123 subdomain: what a ServiceAccount name must be (dots allowed,
 * each part a label).
 *
 * @example
 * ```ts
 * import { isDnsSubdomain } from "./names.ts";
 * console.assert(isDnsSubdomain("orders.v2"));
 * console.assert(!isDnsSubdomain("Orders"));
 * ```
 */
export function isDnsSubdomain(value: unknown): value is string {
  return typeof value === "string" && value.length <= MAX_SUBDOMAIN_LENGTH &&
    DNS_SUBDOMAIN.test(value) && value.split(".").every((l) => l.length <= MAX_LABEL_LENGTH);
}

/**
 * Why a ServiceAccount's namespace and name cannot be used, or undefined when both are valid.
 * The text never repeats the values (they are untrusted); callers log them quoted.
 */
export function serviceAccountNameProblem(namespace: unknown, name: unknown): string | undefined {
  if (!isDnsLabel(namespace)) return "namespace is not a DNS-1123 label";
  if (!isDnsSubdomain(name)) return "name is not a DNS-1123 subdomain";
  return undefined;
}
