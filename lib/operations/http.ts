/**
 * The HTTP surface: liveness, readiness and Prometheus metrics, as a plain
 * `(Request) => Promise<Response>` handler that `main.ts` passes to `Deno.serve`.
 *
 * - `/healthz` and `/health` (the reference's path): 200 while the process serves requests.
 *   The body carries both our `{"status":"ok"}` and the reference's `{"healthy":true}`.
 * - `/readyz`: 200 only when every readiness check passes (NATS connected, ServiceAccounts
 *   synced, keys loaded); otherwise 503 naming the failing checks. The reference had no
 *   readiness and kept `/health` green while it served nothing.
 * - `/metrics`: Prometheus text format 0.0.4.
 * - `POST /resync`: relist ServiceAccounts and refetch keys now (as SIGHUP); 202 when started,
 *   429 with `Retry-After` when the last one was too recent. Only when a `resync` is given.
 *
 * @module
 */
import type { Registry } from "../telemetry/metrics.ts";
import type { Resync } from "./resync.ts";

/** One condition the service needs before it can answer logins. */
export interface ReadinessCheck {
  /** Short stable name shown in the 503 body, e.g. "nats", "serviceaccounts", "keys". */
  readonly name: string;
  /** Whether the condition holds now. Must be cheap; a throw counts as not ready. */
  ready(): boolean;
  /**
   * Facts an operator needs next to the verdict (e.g. how stale a cache is, and why a check
   * fails), shown under `checks.<name>` in the `/readyz` body. Must be cheap; a throw omits them.
   */
  details?(): Readonly<Record<string, unknown>> | undefined;
}

/** Options of {@linkcode createHttpHandler}. */
export interface HttpHandlerOptions {
  /** Checks that must all pass for `/readyz` to answer 200. */
  readonly checks: readonly ReadinessCheck[];
  /** Rendered on `/metrics`. */
  readonly registry: Registry;
  /** Service version, added to the health body when given. */
  readonly version?: string;
  /** Served on `POST /resync` when given. */
  readonly resync?: Resync;
}

/** Content type of Prometheus text exposition 0.0.4. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

function json(status: number, body: unknown, head: boolean, headers: HeadersInit = {}): Response {
  return new Response(head ? null : JSON.stringify(body) + "\n", {
    status,
    headers: {
      "content-type": "application/json; charset=utf-8",
      "cache-control": "no-store",
      ...headers,
    },
  });
}

function passes(check: ReadinessCheck): boolean {
  try {
    return check.ready() === true;
  } catch {
    return false;
  }
}

function detailsOf(
  checks: readonly ReadinessCheck[],
): Record<string, Readonly<Record<string, unknown>>> | undefined {
  let out: Record<string, Readonly<Record<string, unknown>>> | undefined;
  for (const check of checks) {
    if (!check.details) continue;
    try {
      const d = check.details();
      if (d) (out ??= {})[check.name] = d;
    } catch {
      // Details are a courtesy; the verdict stands without them.
    }
  }
  return out;
}

/**
 * Create the service's HTTP handler. Only GET and HEAD are served (405 otherwise); unknown paths
 * are 404. Paths match exactly, query strings are ignored.
 *
 * @example
 * ```ts
 * import { createHttpHandler } from "./http.ts";
 * import { Registry } from "../telemetry/metrics.ts";
 * const handler = createHttpHandler({
 *   checks: [{ name: "nats", ready: () => false }],
 *   registry: new Registry(),
 * });
 * const res = await handler(new Request("http://localhost/readyz"));
 * console.assert(res.status === 503);
 * await res.body?.cancel();
 * ```
 */
export function createHttpHandler(
  options: HttpHandlerOptions,
): (req: Request) => Promise<Response> {
  const { checks, registry, version, resync } = options;
  const health = { status: "ok", healthy: true, ...(version !== undefined ? { version } : {}) };

  return async (req: Request): Promise<Response> => {
    const path = new URL(req.url).pathname;
    if (path === "/resync" && resync) {
      if (req.method !== "POST") {
        return json(405, { error: "method not allowed" }, false, { allow: "POST" });
      }
      await req.body?.cancel();
      const outcome = resync("http");
      return outcome.started
        ? json(202, { status: "resync started" }, false)
        : json(429, { error: "resync too soon", retry_after_ms: outcome.retryAfterMs }, false, {
          "retry-after": String(Math.ceil(outcome.retryAfterMs / 1000)),
        });
    }
    const known = path === "/healthz" || path === "/health" || path === "/readyz" ||
      path === "/metrics";
    if (!known) return json(404, { error: "not found" }, req.method === "HEAD");
    if (req.method !== "GET" && req.method !== "HEAD") {
      return json(405, { error: "method not allowed" }, false, { allow: "GET, HEAD" });
    }
    const head = req.method === "HEAD";

    switch (path) {
      case "/healthz":
      case "/health":
        return json(200, health, head);
      case "/readyz": {
        const failing = checks.filter((c) => !passes(c)).map((c) => c.name);
        const details = detailsOf(checks);
        const extra = details ? { checks: details } : {};
        return failing.length === 0
          ? json(200, { status: "ready", ...extra }, head)
          : json(503, { status: "not ready", failing, ...extra }, head);
      }
      default: {
        let text: string;
        try {
          text = registry.render();
        } catch {
          return json(500, { error: "metrics unavailable" }, head);
        }
        return new Response(head ? null : text, {
          status: 200,
          headers: { "content-type": METRICS_CONTENT_TYPE, "cache-control": "no-store" },
        });
      }
    }
  };
}
