/**
 * The dev-mode state directory (`.dev/` by default, git-ignored): everything `deno task dev` needs
 * that a cluster would otherwise provide, generated on the first run and reused afterwards, so
 * tokens minted yesterday still verify today and the ServiceAccounts file keeps your edits.
 *
 * | file | what | secret |
 * |---|---|---|
 * | `account.seed` | `SA…` account seed: signs user JWTs; its public key is `auth_callout.issuer` | yes (0600) |
 * | `signing-key.jwk.json` | RS256 private JWK: plays the apiserver's ServiceAccount token key | yes (0600) |
 * | `jwks.json` | the public half of that key, for `JWKS_PATH` | no |
 * | `issuer` | the token issuer (`JWT_ISSUER`) | no |
 * | `serviceaccounts.yaml` | the ServiceAccounts (`SERVICEACCOUNTS_FILE`); edit it freely | no |
 * | `tokens/<ns>_<sa>.jwt` | tokens minted for those ServiceAccounts, renewed while dev runs | yes (0600) |
 * | `nats-server.conf`, `nats-server.log`, `run/` | rewritten on every start | conf: yes (0600) |
 *
 * Delete the directory to start over with new keys.
 *
 * @module
 */
import { createAccount, fromSeed } from "@nats-io/nkeys";
import { isAbsolute, join, resolve } from "node:path";
import { devJwks, generateDevSigningKey, readDevSigningKey } from "./issuer.ts";

/** Where state lives unless `--state-dir` or `DEV_STATE_DIR` say otherwise. */
export const DEFAULT_STATE_DIR = ".dev";
/** The issuer dev tokens carry and the service expects; written to `issuer` on the first run. */
export const DEFAULT_DEV_ISSUER = "https://dev.nats-k8s-oidc-callout.local";
/** The account logged-in clients are placed in (`NATS_ACCOUNT`). */
export const DEV_ACCOUNT = "APP";

/**
 * The ServiceAccounts a first run starts with: one plain account and one with annotations, so
 * both the defaults and the annotation grants can be tried without editing anything.
 */
export const EXAMPLE_SERVICEACCOUNTS =
  `# ServiceAccounts for \`deno task dev\`, in place of a cluster's apiserver.
# Edit and save: the service reloads this file and the next login sees the change.
# Same shape as \`kubectl get serviceaccounts -A -o yaml\`; without metadata.uid a stable UID is
# derived from namespace/name. Mint a token with: deno task token <namespace>/<name>
apiVersion: v1
kind: List
items:
  # Defaults only: publish team-a.>, subscribe team-a.>, _INBOX.> and _INBOX_team-a_orders.>
  - apiVersion: v1
    kind: ServiceAccount
    metadata:
      name: orders
      namespace: team-a
  # Defaults plus what the annotations grant.
  - apiVersion: v1
    kind: ServiceAccount
    metadata:
      name: billing
      namespace: team-b
      annotations:
        nats.io/allowed-pub-subjects: "shared.billing.>"
        nats.io/allowed-sub-subjects: "team-a.orders.>"
`;

/** Paths and values of a ready state directory. Every path is absolute. */
export interface DevState {
  /** The state directory. */
  readonly dir: string;
  /** `NATS_SIGNING_KEY_FILE`. */
  readonly accountSeedFile: string;
  /** Public `A…` key of the account seed: `auth_callout.issuer`. */
  readonly accountPublicKey: string;
  /** The RS256 private JWK that signs dev ServiceAccount tokens. */
  readonly signingKeyFile: string;
  /** `JWKS_PATH`. */
  readonly jwksFile: string;
  /** `JWT_ISSUER`. */
  readonly issuer: string;
  /** `SERVICEACCOUNTS_FILE`. */
  readonly serviceAccountsFile: string;
  /** Where minted token files go. */
  readonly tokensDir: string;
  /** Scratch space of one run (nats-server's ports file). */
  readonly runDir: string;
  /** Files this call created (names inside `dir`); empty when everything was reused. */
  readonly created: readonly string[];
}

/** The state directory is unusable: a file is corrupt or missing. The message says what to do. */
export class DevStateError extends Error {
  /** Create an error with a message a developer can act on. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "DevStateError";
  }
}

function paths(dir: string) {
  const abs = isAbsolute(dir) ? dir : resolve(dir);
  return {
    dir: abs,
    accountSeedFile: join(abs, "account.seed"),
    signingKeyFile: join(abs, "signing-key.jwk.json"),
    jwksFile: join(abs, "jwks.json"),
    issuerFile: join(abs, "issuer"),
    serviceAccountsFile: join(abs, "serviceaccounts.yaml"),
    tokensDir: join(abs, "tokens"),
    runDir: join(abs, "run"),
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/** Write a file that holds a secret: created 0600, and chmod-ed in case it existed looser. */
async function writeSecret(path: string, text: string): Promise<void> {
  await Deno.writeTextFile(path, text, { mode: 0o600 });
  await Deno.chmod(path, 0o600);
}

function accountPublicKey(seedFile: string, seed: string): string {
  const trimmed = seed.trim();
  try {
    if (!trimmed.startsWith("SA")) throw new Error("not an account seed");
    return fromSeed(new TextEncoder().encode(trimmed)).getPublicKey();
  } catch (err) {
    throw new DevStateError(
      `${seedFile} does not hold an account seed (SA...); delete it to generate a new one`,
      { cause: err },
    );
  }
}

/**
 * Make sure the state directory has everything dev mode needs: create what is missing, keep what
 * is there (keys, issuer and the ServiceAccounts file survive restarts), and re-derive `jwks.json`
 * from the signing key so the two cannot disagree. Secrets are written with mode 0600.
 *
 * @example
 * ```ts ignore
 * import { ensureDevState } from "./state.ts";
 * const state = await ensureDevState(".dev");
 * console.log(state.created.length === 0 ? "reused" : `created ${state.created.join(", ")}`);
 * ```
 */
export async function ensureDevState(dir: string): Promise<DevState> {
  const p = paths(dir);
  const created: string[] = [];
  await Deno.mkdir(p.dir, { recursive: true, mode: 0o700 });
  await Deno.mkdir(p.tokensDir, { recursive: true, mode: 0o700 });
  await Deno.mkdir(p.runDir, { recursive: true });

  if (!(await exists(p.accountSeedFile))) {
    const seed = new TextDecoder().decode(createAccount().getSeed());
    await writeSecret(p.accountSeedFile, seed + "\n");
    created.push("account.seed");
  }
  const publicKey = accountPublicKey(p.accountSeedFile, await Deno.readTextFile(p.accountSeedFile));

  if (!(await exists(p.signingKeyFile))) {
    await writeSecret(p.signingKeyFile, JSON.stringify(await generateDevSigningKey()) + "\n");
    created.push("signing-key.jwk.json");
  }
  const key = await readDevSigningKey(p.signingKeyFile).catch((err) => {
    throw new DevStateError(`${err.message}; delete it to generate a new one`, { cause: err });
  });
  const jwks = JSON.stringify(devJwks(key), null, 2) + "\n";
  const oldJwks = await Deno.readTextFile(p.jwksFile).catch(() => undefined);
  if (oldJwks !== jwks) {
    await Deno.writeTextFile(p.jwksFile, jwks);
    if (oldJwks === undefined) created.push("jwks.json");
  }

  if (!(await exists(p.issuerFile))) {
    await Deno.writeTextFile(p.issuerFile, DEFAULT_DEV_ISSUER + "\n");
    created.push("issuer");
  }
  if (!(await exists(p.serviceAccountsFile))) {
    await Deno.writeTextFile(p.serviceAccountsFile, EXAMPLE_SERVICEACCOUNTS);
    created.push("serviceaccounts.yaml");
  }

  return Object.freeze({
    dir: p.dir,
    accountSeedFile: p.accountSeedFile,
    accountPublicKey: publicKey,
    signingKeyFile: p.signingKeyFile,
    jwksFile: p.jwksFile,
    issuer: await readIssuer(p.issuerFile),
    serviceAccountsFile: p.serviceAccountsFile,
    tokensDir: p.tokensDir,
    runDir: p.runDir,
    created: Object.freeze(created),
  });
}

/** What the `token` command needs from an existing state directory. */
export interface DevTokenState {
  readonly signingKeyFile: string;
  readonly serviceAccountsFile: string;
  readonly issuer: string;
}

/**
 * Open an existing state directory for minting, without creating anything: a token signed by a
 * key that no running service knows would only confuse. Throws {@linkcode DevStateError} telling
 * the user to run `deno task dev` first when the directory is not set up.
 */
export async function openDevTokenState(dir: string): Promise<DevTokenState> {
  const p = paths(dir);
  for (const file of [p.issuerFile, p.signingKeyFile, p.serviceAccountsFile]) {
    if (!(await exists(file))) {
      throw new DevStateError(
        `${file} not found: run \`deno task dev\` once to set up ${dir} (or pass --state-dir)`,
      );
    }
  }
  return {
    signingKeyFile: p.signingKeyFile,
    serviceAccountsFile: p.serviceAccountsFile,
    issuer: await readIssuer(p.issuerFile),
  };
}

async function readIssuer(file: string): Promise<string> {
  const issuer = (await Deno.readTextFile(file)).trim();
  if (issuer === "" || /\s/.test(issuer)) {
    throw new DevStateError(`${file} must hold one issuer URL; delete it to use the default`);
  }
  return issuer;
}

/** The file a token for `<namespace>/<serviceaccount>` is kept in (`_` occurs in neither name). */
export function tokenFile(
  state: Pick<DevState, "tokensDir">,
  namespace: string,
  name: string,
): string {
  return join(state.tokensDir, `${namespace}_${name}.jwt`);
}
