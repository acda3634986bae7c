/**
 * Why a request to the apiserver failed, named the way an operator fixes it: the TLS handshake (wrong
 * or missing cluster CA), DNS, a refused or timed-out connection, 401 (no or stale credentials), 403
 * (the RBAC rule that is missing, quoted from the apiserver's own Status message), or another HTTP
 * status. {@linkcode FailureReporter} logs at warn once per change of cause, with the attempt count,
 * and at info when requests succeed again — so a misconfigured CA or RBAC rule is one clear line,
 * not a silent debug retry loop, and a long outage is not a flood.
 *
 * @module
 */
import type { Logger } from "../telemetry/log.ts";
import { redactUrl } from "../telemetry/log.ts";

/** What kind of failure one apiserver request met (a log field and nothing else: unbounded text stays out). */
export type ApiFailureCause =
  | "tls"
  | "dns"
  | "refused"
  | "timeout"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "server_error"
  | "http_error"
  | "credentials"
  | "network";

/** A non-2xx answer from the apiserver, with the message of its `Status` body when it had one. */
export class ApiError extends Error {
  /** HTTP status (or a watch `ERROR` event's code). */
  readonly status: number;

  /** Create the error. */
  constructor(status: number, message: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

/**
 * The credentials of a request could not be produced (a token file that is missing or empty, a
 * kubeconfig file that cannot be read): a problem of this side, not of the network.
 */
export class CredentialsError extends Error {
  /** Create the error; the message names the file, never its content. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "CredentialsError";
  }
}

/**
 * Turn a non-2xx response into an {@linkcode ApiError}, reading the Kubernetes `Status` message
 * (e.g. `serviceaccounts is forbidden: User "system:serviceaccount:nats:callout" cannot list
 * resource "serviceaccounts" in API group "" at the cluster scope`). Consumes the body.
 */
export async function apiErrorFromResponse(res: Response): Promise<ApiError> {
  let message = `HTTP ${res.status}`;
  try {
    const body = await res.json() as { message?: unknown };
    if (typeof body.message === "string") message = `HTTP ${res.status}: ${body.message}`;
  } catch {
    // not a Status object
  }
  return new ApiError(res.status, message);
}

/** An error's message followed by its causes' ("fetch failed: invalid peer certificate: …"), URLs redacted. */
export function errorChain(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 4; depth++) {
    const message = e instanceof Error ? e.message : String(e);
    if (!parts.some((p) => p.includes(message))) parts.push(message);
    e = e instanceof Error ? e.cause : undefined;
  }
  return redactUrl(parts.join(": "));
}

/**
 * Classify a failed apiserver request.
 *
 * @example
 * ```ts
 * import { ApiError, classifyApiFailure } from "./apiserver_errors.ts";
 * console.assert(classifyApiFailure(new ApiError(403, "HTTP 403: forbidden")) === "forbidden");
 * console.assert(classifyApiFailure(new TypeError("error sending request: Connection refused")) === "refused");
 * ```
 */
export function classifyApiFailure(err: unknown): ApiFailureCause {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; depth++, e = e.cause) {
    if (e instanceof ApiError) {
      err = e;
      break;
    }
  }
  if (err instanceof ApiError) {
    if (err.status === 401) return "unauthorized";
    if (err.status === 403) return "forbidden";
    if (err.status === 404) return "not_found";
    if (err.status >= 500) return "server_error";
    return "http_error";
  }
  if (
    err instanceof Error &&
    (err.name === "KubeconfigError" || /token file|tokenFile/i.test(err.message))
  ) {
    return "credentials";
  }
  const text = errorChain(err).toLowerCase();
  if (/certificate|tls|handshake|unknownissuer|peer cert/.test(text)) return "tls";
  if (
    /dns|failed to lookup|name or service not known|no address associated|nodename nor servname/
      .test(text)
  ) {
    return "dns";
  }
  if (/connection refused|econnrefused/.test(text)) return "refused";
  if (/timed out|timeout|deadline/.test(text)) return "timeout";
  return "network";
}

/** A short hint for the operator, per cause. */
const HINTS: Record<ApiFailureCause, string> = {
  tls:
    "the apiserver's certificate is not signed by the configured CA (K8S_CA_FILE or the kubeconfig's certificate-authority)",
  dns: "the apiserver's host name does not resolve",
  refused: "nothing listens at the apiserver address (or at the kubeconfig's proxy-url)",
  timeout: "the apiserver did not answer in time",
  unauthorized:
    "the apiserver refused the credentials (token file missing, expired or for another cluster)",
  forbidden: "the credentials lack an RBAC rule; the message names it",
  not_found: "the apiserver has no such path (JWKS_URL or the apiserver URL is wrong)",
  server_error: "the apiserver failed the request",
  http_error: "the apiserver refused the request",
  credentials: "the credentials could not be read",
  network: "the request failed on the network",
};

/** Options of {@linkcode FailureReporter}. */
export interface FailureReporterOptions {
  /** Where the lines go. */
  logger: Logger;
  /** What the requests are for, in the log's `request` field (`list serviceaccounts`, `jwks`, …). */
  request: string;
}

/**
 * Logs one warn line per change of failure cause (with the attempt count and a hint) and one info
 * line on recovery; repeated failures of the same cause go to debug.
 *
 * @example
 * ```ts ignore
 * const report = new FailureReporter({ logger, request: "list serviceaccounts" });
 * try { await list(); report.succeeded(); } catch (err) { report.failed(err); }
 * ```
 */
export class FailureReporter {
  readonly #logger: Logger;
  readonly #request: string;
  #cause: ApiFailureCause | undefined;
  #attempts = 0;
  #since = 0;

  /** Create a reporter for one kind of request. */
  constructor(options: FailureReporterOptions) {
    this.#logger = options.logger;
    this.#request = options.request;
  }

  /** The cause of the current failure streak, if failing. */
  get cause(): ApiFailureCause | undefined {
    return this.#cause;
  }

  /** Record a failure; returns its cause. */
  failed(err: unknown, fields: Record<string, unknown> = {}): ApiFailureCause {
    const cause = classifyApiFailure(err);
    this.#attempts++;
    if (this.#cause === undefined) this.#since = performance.now();
    const line = {
      request: this.#request,
      cause,
      error: errorChain(err),
      ...(err instanceof ApiError ? { status: err.status } : {}),
      attempts: this.#attempts,
      ...fields,
    };
    if (cause !== this.#cause) {
      this.#logger.warn("apiserver_request_failed", { ...line, hint: HINTS[cause] });
    } else {
      this.#logger.debug("apiserver_request_failed", line);
    }
    this.#cause = cause;
    return cause;
  }

  /** Record a success; logs the recovery when a failure streak ends. */
  succeeded(): void {
    if (this.#cause !== undefined) {
      this.#logger.info("apiserver_request_recovered", {
        request: this.#request,
        cause: this.#cause,
        attempts: this.#attempts,
        duration_ms: Math.round(performance.now() - this.#since),
      });
    }
    this.#cause = undefined;
    this.#attempts = 0;
  }
}
