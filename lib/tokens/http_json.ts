/**
 * The one GET the remote key set and issuer discovery make: a JSON document from the apiserver
 * (with its access: CA, client certificate, per-request credentials) or from another server (with
 * an optional CA file and bearer token file), redirects refused, within a time limit. Every failure
 * is an `Error` whose message never holds a secret.
 *
 * @module
 */
import { apiErrorFromResponse } from "../kubernetes/apiserver_errors.ts";
import type { ApiAccess } from "../kubernetes/access.ts";
import { describeError, type ReadTextFile } from "./key_source.ts";

/** What a fetch needs besides the URL: CA client, bearer token, timeout. */
export interface HttpGetSettings {
  /** `fetch` implementation. */
  readonly fetch: typeof fetch;
  /** The apiserver's access; when set, its headers and client are used, not the two below. */
  readonly access: Pick<ApiAccess, "headers" | "client"> | undefined;
  /** TLS client with the configured CA ({@linkcode createClient}), or the system trust store. */
  readonly client: Deno.HttpClient | undefined;
  /** File with a bearer token, re-read on every request. */
  readonly bearerTokenFile: string | undefined;
  /** Reads `bearerTokenFile` on every request. */
  readonly readTextFile: ReadTextFile;
  /** Abort the request after this long. */
  readonly timeoutMs: number;
}

/**
 * A TLS client that trusts the CA(s) of `caCertFile`, or `undefined` (the system trust store) when
 * none is given. An unreadable file or one without a PEM certificate is an error: a configuration
 * problem, reported at start. The caller closes the client.
 */
export async function createClient(
  caCertFile: string | undefined,
  read: ReadTextFile,
): Promise<Deno.HttpClient | undefined> {
  if (caCertFile === undefined) return undefined;
  let pem: string;
  try {
    pem = await read(caCertFile);
  } catch (err) {
    throw new Error(`cannot read CA certificate file ${caCertFile}: ${describeError(err)}`, {
      cause: err,
    });
  }
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
    throw new Error(`CA certificate file ${caCertFile} contains no PEM certificate`);
  }
  return Deno.createHttpClient({ caCerts: [pem] });
}

/** GET `url` and parse a JSON body; every failure is an Error whose message never has a secret. */
export async function getJson(
  url: string,
  s: HttpGetSettings,
  signal?: AbortSignal,
): Promise<unknown> {
  const headers = s.access
    ? await s.access.headers()
    : new Headers({ accept: "application/json, application/jwk-set+json" });
  headers.set("accept", "application/json, application/jwk-set+json");
  if (!s.access && s.bearerTokenFile !== undefined) {
    let token: string;
    try {
      token = (await s.readTextFile(s.bearerTokenFile)).trim();
    } catch (err) {
      throw new Error(`cannot read bearer token file ${s.bearerTokenFile}: ${describeError(err)}`);
    }
    if (!token) throw new Error(`bearer token file ${s.bearerTokenFile} is empty`);
    headers.set("authorization", `Bearer ${token}`);
  }
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new Error(`timed out after ${s.timeoutMs} ms`)),
    s.timeoutMs,
  );
  const onAbort = () => controller.abort(signal?.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    if (signal?.aborted) throw signal.reason;
    const init: RequestInit & { client?: Deno.HttpClient } = {
      method: "GET",
      headers,
      redirect: "manual",
      signal: controller.signal,
    };
    const client = s.access ? s.access.client : s.client;
    if (client) init.client = client;
    let response: Response;
    try {
      response = await s.fetch(url, init);
    } catch (err) {
      throw controller.signal.aborted ? controller.signal.reason : err;
    }
    if (response.status !== 200) throw await apiErrorFromResponse(response);
    try {
      return await response.json();
    } catch (cause) {
      throw new Error("response body is not JSON", { cause });
    }
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
}
