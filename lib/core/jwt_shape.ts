/**
 * Whether a string a client sent has the shape of a JWT, for deciding what a CONNECT field holds
 * (a workload's token, or a configured user's password or name) and whether a value may be logged;
 * and the claims of a JWT read without verifying it, where the signature is checked elsewhere or
 * does not matter (what a resolver holds, the service's own creds file).
 *
 * @module
 */

/**
 * Whether `text` has the shape of a JWT: three dot-separated parts whose first is base64url JSON
 * naming an `alg` — a workload's token, even one whose claims or signature are damaged (it is then
 * refused by the token checks with a reason about the token). A password or user name that merely
 * has two dots (`aaa.bbb.ccc`, `team.backup.user`) is not one.
 *
 * @example
 * ```ts
 * import { looksLikeJwt } from "./jwt_shape.ts";
 * console.assert(looksLikeJwt("eyJhbGciOiJSUzI1NiJ9.eyJz.c2ln"));
 * console.assert(!looksLikeJwt("aaa.bbb.ccc"));
 * console.assert(!looksLikeJwt("s3cret"));
 * ```
 */
export function looksLikeJwt(text: string): boolean {
  const parts = text.split(".");
  if (parts.length !== 3 || !/^[A-Za-z0-9_-]+$/.test(parts[0]!)) return false;
  try {
    const header = JSON.parse(atob(parts[0]!.replaceAll("-", "+").replaceAll("_", "/")));
    return typeof header === "object" && header !== null && typeof header.alg === "string";
  } catch {
    return false;
  }
}

/**
 * The claims (payload) of `jwt` as an object, **unverified**; `undefined` when the second part is
 * not base64url JSON of an object.
 *
 * @example
 * ```ts
 * import { unverifiedClaims } from "./jwt_shape.ts";
 * console.assert(unverifiedClaims("e30.eyJpc3MiOiJBIn0.c2ln")?.iss === "A");
 * console.assert(unverifiedClaims("not a jwt") === undefined);
 * ```
 */
export function unverifiedClaims(jwt: string): Record<string, unknown> | undefined {
  try {
    const part = jwt.split(".")[1] ?? "";
    const value: unknown = JSON.parse(
      new TextDecoder().decode(Uint8Array.fromBase64(part, { alphabet: "base64url" })),
    );
    return value !== null && typeof value === "object" && !Array.isArray(value)
      ? value as Record<string, unknown>
      : undefined;
  } catch {
    return undefined;
  }
}
