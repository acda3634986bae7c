/**
 * nkey seeds at the configuration boundary. The service's two private keys — the account signing
 * seed (`SA…`) and the curve seed of an encrypted callout (`SX…`) — are read from files, plain or as
 * the seed block of a creds file, and checked here, once. A seed pasted into a variable that takes
 * a public value is found here too. No problem line, and nothing `describeConfig` shows, ever
 * contains a seed: a seed is a private key.
 *
 * @module
 */
import * as nkeys from "@nats-io/nkeys";
import { unverifiedClaims } from "../core/jwt_shape.ts";
import { show } from "./parse.ts";
import { CONFIG_VARIABLES } from "./variables.ts";

/** What the second letter of a seed (or the first of a public key) says the key is. */
const KEY_KINDS: Readonly<Record<string, string>> = {
  A: "account",
  U: "user",
  O: "operator",
  N: "server",
  C: "cluster",
  X: "curve (xkey)",
};

/**
 * Read an nkey seed of kind `kind` ("A" account, "X" curve) from `path`, named by `variable`: the
 * whole file, or the `BEGIN … NKEY SEED` block of a creds file. Problems name the variable and the
 * path, never the seed.
 *
 * @returns the seed, or undefined after reporting why the file does not hold one of that kind
 */
export function readSeed(
  variable: string,
  path: string,
  kind: "A" | "X" | "O",
  readTextFile: (path: string) => string,
  problem: (text: string) => void,
): string | undefined {
  const want = kind === "A"
    ? "an account seed (SA...)"
    : kind === "O"
    ? "an operator signing key seed (SO...)"
    : "a curve seed (SX...)";
  let text: string;
  try {
    text = readTextFile(path);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    problem(`${variable}: cannot read ${show(path)}: ${reason}`);
    return undefined;
  }
  const seed = extractSeed(text);
  if (seed === undefined) {
    problem(`${variable}: ${show(path)} has a BEGIN line but no NKEY SEED block with a seed`);
    return undefined;
  }
  if (seed === "" || /\s/.test(seed)) {
    problem(`${variable}: ${show(path)} must hold one seed, ${want}`);
    return undefined;
  }
  if (!seed.startsWith(`S${kind}`)) {
    const other = KEY_KINDS[seed[1] ?? ""];
    const got = seed.startsWith("S") && other !== undefined
      ? `a seed of another kind (S${seed[1]}..., ${other})`
      : KEY_KINDS[seed[0] ?? ""] !== undefined && seed.length === 56
      ? "a public key, not a seed"
      : "something that is not an nkey seed";
    problem(`${variable}: ${show(path)} holds ${got}; expected ${want}`);
    return undefined;
  }
  try {
    nkeys.fromSeed(new TextEncoder().encode(seed));
  } catch {
    problem(
      `${variable}: ${
        show(path)
      } holds a malformed seed (bad encoding or checksum); expected ${want}`,
    );
    return undefined;
  }
  return seed;
}

/**
 * The seed in a file: the trimmed content, or, when the file has a BEGIN line (creds format), the
 * last non-empty line inside the first `BEGIN … NKEY SEED` block; undefined if there is none.
 */
export function extractSeed(text: string): string | undefined {
  if (!text.includes("BEGIN")) return text.trim();
  let inside = false;
  let seed: string | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (/BEGIN [A-Z ]*NKEY SEED/.test(line)) {
      inside = true;
      continue;
    }
    if (!inside) continue;
    if (/END [A-Z ]*NKEY SEED/.test(line)) break;
    if (line !== "") seed = line;
  }
  return seed;
}

/** An nkey seed: `S`, its role letter and 56 more base32 characters (58 in all). */
const SEED_SHAPE = /S[A-Z2-7]{57}/;
const SEED_PROBLEM = "holds an nkey seed";

/**
 * Report every variable whose value contains an nkey seed (`SA…`, `SU…`, `SO…`, `SX…`, …) where a
 * public value, a name or a path is expected, and return their names: `loadConfig` reads them as
 * unset from then on, so no later problem line and no start-up log echoes the seed. The userinfo of
 * NATS_URL is a secret position (a token or password) and is not checked, nor are variables whose
 * schema row `acceptsSeed`. The problem line never shows the value.
 */
export function misplacedSeeds(
  env: Readonly<Record<string, string | undefined>>,
  problem: (text: string) => void,
): string[] {
  const found: string[] = [];
  for (const variable of CONFIG_VARIABLES) {
    if (variable.acceptsSeed) continue;
    for (const name of [variable.name, ...(variable.aliases ?? [])]) {
      let value = env[name];
      if (value === undefined) continue;
      if (name === "NATS_URL") {
        value = value.split(",").map((e) => e.slice(e.lastIndexOf("@") + 1)).join(",");
      }
      if (!SEED_SHAPE.test(value)) continue;
      found.push(name);
      problem(
        `${name}: ${SEED_PROBLEM} (S..., a private key; value not shown); a seed belongs only in ` +
          "a file (NATS_SIGNING_KEY_FILE, NATS_XKEY_SEED_FILE, NATS_USER_CREDS_FILE) — " +
          (name === "NATS_ACCOUNT"
            ? "NATS_ACCOUNT takes the account name (config mode) or its public A... key"
            : "this variable takes a public value") +
          "; if the seed was shared, rotate it",
      );
    }
  }
  return found;
}

/**
 * `problems` without the other problems of the variables that hold a misplaced seed: for those,
 * the one line saying a seed was found is the whole story.
 */
export function withoutSeedEchoes(
  problems: readonly string[],
  seedVariables: ReadonlySet<string>,
): string[] {
  return problems.filter((p) =>
    ![...seedVariables].some((name) => p.startsWith(`${name}:`) && !p.includes(SEED_PROBLEM))
  );
}

/** Whether `key` is a valid public account key (`A…`, checksum included). */
export function isPublicAccountKey(key: string): boolean {
  try {
    return nkeys.fromPublic(key).getPublicKey().startsWith("A");
  } catch {
    return false;
  }
}

/** The public key of `seed`, for logs (an operator checks it against nats-server's config). */
export function publicKeyOf(seed: string): string {
  try {
    return nkeys.fromSeed(new TextEncoder().encode(seed)).getPublicKey();
  } catch {
    return "(invalid)";
  }
}

/**
 * The account a creds file's user belongs to: its user JWT's `nats.issuer_account` (a user signed
 * by one of the account's signing keys) or else its `iss`, when that is a valid public account key;
 * `undefined` when the text holds no such JWT. In operator mode that is the callout's own account
 * (AUTH), whose JWT must admit the accounts the service places users in.
 *
 * @example
 * ```ts
 * import { credsAccount } from "./seeds.ts";
 * console.assert(credsAccount("no jwt here") === undefined);
 * ```
 */
export function credsAccount(text: string): string | undefined {
  const lines = text.split(/\r?\n/).map((l) => l.trim());
  const begin = lines.findIndex((l) => /BEGIN [A-Z ]*USER JWT/.test(l));
  const jwt = lines.slice(begin + 1).find((l) => l !== "" && !l.startsWith("---"));
  if (begin < 0 || jwt === undefined) return undefined;
  const claims = unverifiedClaims(jwt) as
    | { iss?: unknown; nats?: { issuer_account?: unknown } }
    | undefined;
  const account = claims?.nats?.issuer_account ?? claims?.iss;
  return typeof account === "string" && isPublicAccountKey(account) ? account : undefined;
}
