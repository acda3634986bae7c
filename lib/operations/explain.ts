/**
 * "Would this token / ServiceAccount get in, and with what?" — answered by the service's own login
 * decision ({@linkcode Login.explain}, the same steps as a real login), so an explanation can never
 * disagree with the service. Two faces:
 *
 * - `deno task explain` (and the binary's `explain` subcommand, lib/service/explain_cli.ts): starts everything but NATS from
 *   the same environment as the service, waits for the ServiceAccounts and keys, prints one JSON
 *   explanation and exits 0 (allowed), 1 (refused) or 2 (usage or configuration problem). The token
 *   is read from a file or stdin, never from the command line (where `ps` would show it).
 * - `/explain` on the HTTP port, only with `EXPLAIN_ENABLED=true`: `POST /explain` with a token
 *   (plain text, or JSON `{"token": "...", "connection_type": "MQTT"}`), or
 *   `GET /explain?serviceaccount=<ns>/<sa>[&connection_type=…]`. The answer never contains the
 *   token.
 *
 * @module
 */
import type { ExplainInput, Login } from "../decision/login.ts";
import { CONNECTION_TYPES } from "../decision/policy.ts";

/** Longest request body `/explain` reads (a token is a few KiB). */
const MAX_BODY = 64 * 1024;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body, null, 2) + "\n", {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store" },
  });
}

/**
 * Parse `<namespace>/<serviceaccount>`; `undefined` when it is not two valid Kubernetes names.
 *
 * @example
 * ```ts
 * import { parseServiceAccountRef } from "./explain.ts";
 * console.assert(parseServiceAccountRef("team-a/orders")?.name === "orders");
 * console.assert(parseServiceAccountRef("team-a") === undefined);
 * ```
 */
export function parseServiceAccountRef(
  ref: string,
): { namespace: string; name: string } | undefined {
  const [namespace = "", name = "", ...rest] = ref.split("/");
  if (rest.length > 0 || namespace.length > 63 || !DNS_LABEL.test(namespace)) return undefined;
  if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) return undefined;
  return { namespace, name };
}

/** The connection type named in a query or flag, upper-cased; an `Error` when it is not one. */
export function connectionType(raw: string | null | undefined): string | undefined | Error {
  if (raw === null || raw === undefined || raw === "") return undefined;
  const upper = raw.toUpperCase();
  return (CONNECTION_TYPES as readonly string[]).includes(upper)
    ? upper
    : new Error(`connection_type must be one of ${CONNECTION_TYPES.join(", ")}`);
}

/**
 * The `/explain` handler. `login()` returns the service's login decision, or `undefined` while
 * it is still being built (then 503).
 *
 * @example
 * ```ts ignore
 * const handler = createExplainHandler(() => service.login);
 * const res = await handler(new Request("http://x/explain?serviceaccount=team-a/orders"));
 * ```
 */
export function createExplainHandler(
  login: () => Login | undefined,
): (req: Request) => Promise<Response> {
  return async (req) => {
    let input: ExplainInput;
    const url = new URL(req.url);
    if (req.method === "GET") {
      const ref = url.searchParams.get("serviceaccount");
      const sa = ref === null ? undefined : parseServiceAccountRef(ref);
      if (!sa) {
        return json(400, { error: "serviceaccount=<namespace>/<name> is required" });
      }
      const type = connectionType(url.searchParams.get("connection_type"));
      if (type instanceof Error) return json(400, { error: type.message });
      input = { ...sa, ...(type ? { connectionType: type } : {}) };
    } else if (req.method === "POST") {
      const length = Number(req.headers.get("content-length") ?? "0");
      if (length > MAX_BODY) return json(413, { error: `body larger than ${MAX_BODY} bytes` });
      const text = (await req.text()).slice(0, MAX_BODY + 1);
      if (text.length > MAX_BODY) {
        return json(413, { error: `body larger than ${MAX_BODY} bytes` });
      }
      let token = text.trim();
      let type = connectionType(url.searchParams.get("connection_type"));
      if ((req.headers.get("content-type") ?? "").includes("json")) {
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          return json(400, { error: "body is not JSON" });
        }
        const b = body as { token?: unknown; connection_type?: unknown };
        if (typeof b?.token !== "string") {
          return json(400, { error: 'JSON body needs "token" (a string)' });
        }
        token = b.token.trim();
        if (b.connection_type !== undefined) {
          type = connectionType(typeof b.connection_type === "string" ? b.connection_type : "?");
        }
      }
      if (type instanceof Error) return json(400, { error: type.message });
      if (token === "") return json(400, { error: "no token in the body" });
      input = { token, ...(type ? { connectionType: type } : {}) };
    } else {
      return new Response("method not allowed\n", {
        status: 405,
        headers: { allow: "GET, POST" },
      });
    }
    const current = login();
    if (!current) return json(503, { error: "not ready: keys or issuer not loaded yet" });
    try {
      return json(200, await current.explain(input));
    } catch {
      // Our bug, not the input's: say so without details (they could echo the input).
      return json(500, { error: "internal_error" });
    }
  };
}
