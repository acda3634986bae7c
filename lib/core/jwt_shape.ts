/**
 * Whether a string a client sent has the shape of a JWT, for deciding what a CONNECT field holds
 * (a workload's token, or a configured user's password or name) and whether a value may be logged.
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
