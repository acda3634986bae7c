/**
 * The 100,000-case cross-check of lib/tokens/rsa_pkcs1.ts against `node:crypto` (issue 18): random
 * token-shaped inputs signed with RS256/384/512 under 2048-, 3072- and 4096-bit keys, each verified
 * as signed and in tampered forms (tests/support/rsa_crosscheck.ts). Prints the counts and exits
 * non-zero on any disagreement. Run with `deno run -A bench/rsa_crosscheck.ts [--cases=100000]`;
 * the test suite runs a quick form (tests/tokens/rsa_pkcs1_test.ts).
 *
 * @module
 */
import { generateKeyPairSync } from "node:crypto";
import { parseArgs } from "node:util";
import { rsaPublicKey } from "../lib/tokens/rsa_pkcs1.ts";
import { crossCheckRsa } from "../tests/support/rsa_crosscheck.ts";

const { values } = parseArgs({ args: Deno.args, options: { cases: { type: "string" } } });
const total = Number(values.cases ?? 100_000);
const sizes = [2048, 3072, 4096];
const share = [0.8, 0.1, 0.1];
let disagreements = 0;
const rows = [];
for (const [i, bits] of sizes.entries()) {
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: bits });
  const jwk = publicKey.export({ format: "jwk" });
  const key = rsaPublicKey(jwk.n!, jwk.e!)!;
  const started = performance.now();
  const r = crossCheckRsa({ publicKey, privateKey, key, count: Math.round(total * share[i]!) });
  disagreements += r.disagreements;
  rows.push({ bits, ...r, seconds: Math.round(performance.now() - started) / 1000 });
}
const encoder = new TextEncoder();
Deno.stdout.writeSync(
  encoder.encode(JSON.stringify({ total, disagreements, rows }, null, 2) + "\n"),
);
if (disagreements > 0) Deno.exit(1);
