/**
 * Other spellings of one signed token that lenient base64url decoders accept: the inputs of
 * issue 10, defect 4 (whitespace or padding appended, whitespace inside a segment, the standard
 * base64 alphabet, a changed unused trailing bit). A verifier must refuse every one.
 *
 * @module
 */

/** `[name, variant]` pairs, each a different string from `token` that decodes to the same bytes. */
export function respellings(token: string): [string, string][] {
  const [h, p, s] = token.split(".") as [string, string, string];
  const lastBits = (() => {
    // Flip an unused trailing bit of the signature's last character (RS256: 342 chars, 2 unused).
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unused = s.length % 4 === 2 ? 4 : s.length % 4 === 3 ? 2 : 0;
    if (unused === 0) return undefined;
    const i = alphabet.indexOf(s.at(-1)!);
    return `${h}.${p}.${s.slice(0, -1)}${alphabet[i ^ 1]}`;
  })();
  const cases: [string, string | undefined][] = [
    ["newline appended", token + "\n"],
    ["space appended", token + " "],
    ["tab appended", token + "\t"],
    ["padding appended", token + "=="],
    ["form feed appended", token + "\f"],
    ["CRLF appended", token + "\r\n"],
    ["space inside the signature", `${h}.${p}.${s.slice(0, 10)} ${s.slice(10)}`],
    ["newline inside the signature", `${h}.${p}.${s.slice(0, 10)}\n${s.slice(10)}`],
    ["tab inside the payload", `${h}.${p.slice(0, 5)}\t${p.slice(5)}.${s}`],
    ["padding on the header", `${h}${"=".repeat((4 - h.length % 4) % 4 || 4)}.${p}.${s}`],
    ["base64 (not url) alphabet", `${h}.${p}.${s.replaceAll("-", "+").replaceAll("_", "/")}`],
    ["leading space", " " + token],
    ["changed unused trailing bits", lastBits],
  ];
  return cases.filter((c): c is [string, string] => c[1] !== undefined && c[1] !== token);
}
