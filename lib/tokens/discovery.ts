/**
 * Issuer discovery: which issuer the apiserver puts in ServiceAccount tokens, read from its
 * `/.well-known/openid-configuration` with the same CA and credentials as every other apiserver
 * request (a real kube-apiserver answers 403 to anonymous ones).
 *
 * @module
 */
import type { ApiAccess } from "../kubernetes/access.ts";
import { redactUrl } from "../telemetry/log.ts";
import { createClient, getJson } from "./http_json.ts";
import { checkDuration, denoReadTextFile, describeError, type ReadTextFile } from "./key_source.ts";

/** Abort the discovery request after this long by default. */
const DEFAULT_TIMEOUT_MS = 5_000;

/** Options of {@linkcode discoverIssuer}. */
export interface DiscoverIssuerOptions {
  /** PEM CA file for the apiserver's certificate. @default {the system trust store} */
  caCertFile?: string;
  /** Bearer token file sent as `Authorization`. @default {no Authorization header} */
  bearerTokenFile?: string;
  /** `fetch` implementation. @default {globalThis.fetch} */
  fetch?: typeof fetch;
  /** Abort the request after this long. @default {5000} */
  timeoutMs?: number;
  /** File reader. @default {Deno.readTextFile} */
  readTextFile?: ReadTextFile;
  /** The apiserver's access, used instead of `caCertFile`/`bearerTokenFile`. Not closed here. */
  access?: Pick<ApiAccess, "headers" | "client">;
}

/**
 * Ask the apiserver which issuer it puts in ServiceAccount tokens, from
 * `<apiServerUrl>/.well-known/openid-configuration`. The in-cluster default
 * `https://kubernetes.default.svc` is wrong on many clusters (kubeadm, k3s, EKS), and a wrong issuer
 * denies every login, so discovering it beats guessing.
 *
 * @example
 * ```ts ignore
 * import { discoverIssuer } from "./discovery.ts";
 * const issuer = await discoverIssuer("https://kubernetes.default.svc", {
 *   caCertFile: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
 *   bearerTokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token",
 * });
 * ```
 */
export async function discoverIssuer(
  apiServerUrl: string,
  options: DiscoverIssuerOptions = {},
): Promise<string> {
  const url = `${apiServerUrl.replace(/\/+$/, "")}/.well-known/openid-configuration`;
  const where = redactUrl(url);
  const read = options.readTextFile ?? denoReadTextFile;
  const client = options.access ? undefined : await createClient(options.caCertFile, read);
  try {
    let doc: unknown;
    try {
      doc = await getJson(url, {
        fetch: options.fetch ?? fetch,
        access: options.access,
        client,
        bearerTokenFile: options.bearerTokenFile,
        readTextFile: read,
        timeoutMs: checkDuration("timeoutMs", options.timeoutMs ?? DEFAULT_TIMEOUT_MS, false),
      });
    } catch (err) {
      throw new Error(`cannot discover the token issuer from ${where}: ${describeError(err)}`, {
        cause: err,
      });
    }
    const issuer = typeof doc === "object" && doc !== null
      ? (doc as Record<string, unknown>).issuer
      : undefined;
    if (typeof issuer !== "string" || issuer === "") {
      throw new Error(
        `cannot discover the token issuer from ${where}: no "issuer" in the document`,
      );
    }
    return issuer;
  } finally {
    client?.close();
  }
}
