/**
 * A login that is no workload's: a user configured in nats-server (a password, an nkey, a client
 * certificate) that is not listed in `auth_callout.auth_users` reaches the callout like any other
 * client. Without this check it was refused as `token_malformed` ("token is not a JWT") or
 * `token_missing`, in a line that named neither the user nor the connection, and the docs sent
 * the operator to the pod's token file. It gets a reason of its own, `not_in_auth_users`, with a
 * message that names what the CONNECT carried (never the password) and what to change.
 *
 * Pure, apart from reading the certificate with `node:crypto`'s X.509 parser (only on refusal).
 *
 * @module
 */
import { X509Certificate } from "node:crypto";
import type { CalloutRequest } from "../callout/handler.ts";
import { looksLikeJwt } from "../core/jwt_shape.ts";

export { looksLikeJwt };

/** The refusal of a configured user: always `not_in_auth_users`. */
export interface ConfiguredUserRefusal {
  /** Always `not_in_auth_users`. */
  readonly reason: "not_in_auth_users";
  /** What the CONNECT carried (never a password) and what to change. */
  readonly message: string;
}

/** What to change, said the same way in every such refusal. */
const FIX = "list it in auth_callout.auth_users (or, where auth_callout.allowed_accounts is set, " +
  "keep its account out of that list); a workload sends its ServiceAccount token instead";

/**
 * The `not_in_auth_users` refusal when the request is a configured user's rather than a
 * workload's, else `undefined`: CONNECT names a `user` and carries no token in `auth_token`, and
 * its password (if any) does not have a JWT's shape; or it carries an `nkey`, or only a TLS client
 * certificate, and no token at all. `token` is what {@linkcode extractToken} found.
 *
 * @example
 * ```ts
 * import { configuredUserRefusal } from "./configured_users.ts";
 * const refusal = configuredUserRefusal({
 *   connectOpts: { user: "backup", pass: "s3cret", name: "nightly" },
 *   clientInfo: {},
 * }, "s3cret");
 * console.assert(refusal?.reason === "not_in_auth_users");
 * console.assert(!refusal?.message.includes("s3cret"));
 * ```
 */
export function configuredUserRefusal(
  request: Pick<CalloutRequest, "connectOpts" | "clientInfo" | "clientCertificate">,
  token: string | undefined,
): ConfiguredUserRefusal | undefined {
  const { connectOpts, clientCertificate } = request;
  if (connectOpts.auth_token) return undefined;
  if (token !== undefined && looksLikeJwt(token)) return undefined;
  const connection = connectionText(request);
  const user = connectOpts.user;
  if (user) {
    const password = connectOpts.pass
      ? "a password that is not a ServiceAccount token"
      : "no password and no token";
    // A token put in the user field by mistake is a secret all the same: never quoted.
    const shown = looksLikeJwt(user) ? "(a JWT, not shown)" : quote(user);
    return refusal(`CONNECT names user ${shown}${connection} with ${password}`);
  }
  if (token !== undefined) return undefined;
  if (connectOpts.nkey) {
    return refusal(`CONNECT authenticates with nkey ${quote(connectOpts.nkey)}${connection}`);
  }
  if (clientCertificate) {
    // Under `verify: true` every client presents one, workloads too: say both fixes.
    const which = clientCertificate.verified ? "a verified" : "an unverified";
    return {
      reason: "not_in_auth_users",
      message: `no token, and the client presents ${which} TLS certificate (${
        certificateText(clientCertificate.pem)
      })${connection}: if the certificate is a configured user's (verify_and_map), ${FIX}`,
    };
  }
  return undefined;
}

function refusal(what: string): ConfiguredUserRefusal {
  return {
    reason: "not_in_auth_users",
    message: `a user configured in nats-server reached the callout: ${what}; ${FIX}`,
  };
}

/** `, connection "<name>"` when the client named its connection. */
function connectionText(request: Pick<CalloutRequest, "connectOpts" | "clientInfo">): string {
  const name = request.connectOpts.name ?? request.clientInfo.name;
  return name ? `, connection ${quote(name)}` : "";
}

/** A value from the CONNECT for a message: JSON-quoted, at most 80 characters. */
function quote(value: string): string {
  const text = JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}..."` : text;
}

/**
 * The certificate's subject (and its SANs) as openssl would print them, or why it cannot be read.
 *
 * @example
 * ```ts
 * import { certificateText } from "./configured_users.ts";
 * console.assert(certificateText("junk") === "unreadable");
 * ```
 */
export function certificateText(pem: string): string {
  try {
    const cert = new X509Certificate(pem);
    const subject = cert.subject.replaceAll("\n", ", ");
    const san = cert.subjectAltName;
    return `subject ${quote(subject)}${san ? `, ${quote(san)}` : ""}`;
  } catch {
    return "unreadable";
  }
}
