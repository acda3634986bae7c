/**
 * The product against a nats-server in **operator mode** (DESIGN §2): an operator, a system account,
 * an `AUTH` account whose JWT carries the callout's `authorization` block, and the account clients
 * are placed in — all generated at test time with `@nats-io/jwt` and preloaded into a memory
 * resolver. Clients present the AUTH account's deny-all bearer sentinel user in `jwt` and their
 * ServiceAccount token in `auth_token`, as a pod would. The service is started from the same
 * environment variables a deployment sets, like {@linkcode Stack} does for config mode.
 *
 * @module
 */
import {
  encodeAccount,
  encodeOperator,
  encodeUser,
  type ExternalAuthorization,
  fmtCreds,
} from "@nats-io/jwt";
import { createAccount, createOperator, createUser } from "@nats-io/nkeys";
import {
  connect,
  credsAuthenticator,
  jwtAuthenticator,
  type NatsConnection,
} from "@nats-io/transport-node";
import { loadConfig } from "../../lib/config/config.ts";
import { createLogger } from "../../lib/telemetry/log.ts";
import { type Service, startService } from "../../lib/service/service.ts";
import { NatsServer } from "./nats_server.ts";
import { curveKey, KeyDir, seedOf, UNLIMITED_ACCOUNT } from "./nkeys.ts";
import { generateSigningKey, mintServiceAccountToken, publicJwks } from "./sa_tokens.ts";
import type { SigningKey } from "./sa_tokens.ts";
import { ISSUER } from "./stack.ts";
import { TestApiServer } from "./test_apiserver.ts";
import { waitFor } from "./wait.ts";

/**
 * Which key the service signs with (`NATS_SIGNING_KEY_FILE`):
 * - `account`: the target account's own key;
 * - `signing_key`: an unscoped signing key of the target account (user JWTs then carry
 *   `issuer_account`);
 * - `shared_signing_key`: one signing key listed on both the target account and AUTH, so the
 *   same key may also sign the callout responses;
 * - `scoped_signing_key`: a *scoped* signing key of the target account (not supported: the server
 *   wants user JWTs without permissions from it).
 */
export type OperatorSigner =
  | "account"
  | "signing_key"
  | "shared_signing_key"
  | "scoped_signing_key";

/** Options of {@linkcode OperatorStack.start}. */
export interface OperatorStackOptions {
  /** Where clients are placed: a separate `APP` account allowed by AUTH, or AUTH itself. @default {"app"} */
  target?: "app" | "auth";
  /** @default {"account"} */
  signer?: OperatorSigner;
  /** Put an xkey in AUTH's `authorization` (requests and answers sealed). @default {false} */
  xkey?: boolean;
  /**
   * Set the server's `default_sentinel` to the sentinel, so a client with no JWT of its own (a
   * plain `--token`) is treated as if it presented it. @default {false}
   */
  defaultSentinel?: boolean;
  /** Turn live revocation on with a creds file of a system-account user. @default {false} */
  revocation?: boolean;
  /**
   * A second target account `TEAM` (allowed by AUTH) for a cluster policy to place namespaces in,
   * signed with its own key or with a signing key of its own; its seed goes to a file whose path
   * the `policy` callback receives. @default {none}
   */
  teamAccount?: "account" | "signing_key";
  /** Cluster policy text, given TEAM's public key and seed file; passed as `POLICY_FILE`. */
  policy?: (team: { key: string; seedFile: string }) => string;
}

const decoder = new TextDecoder();

/** Limits an account needs to be usable (the JWT's zero values would mean "none"). */
/** A running operator-mode stack; dispose to stop everything. */
export class OperatorStack implements AsyncDisposable {
  readonly nats: NatsServer;
  readonly api: TestApiServer;
  readonly service: Service;
  /** Public key of the account clients are placed in. */
  readonly targetAccount: string;
  /** Public key of the AUTH account (the one with the `authorization` block). */
  readonly authAccount: string;
  /** Public key of the TEAM account, when started with `teamAccount`. */
  readonly teamAccount: string | undefined;
  /** The deny-all bearer user of AUTH that every client presents in `jwt`. */
  readonly sentinelJwt: string;
  /** Parsed JSON log lines of the service. */
  readonly logs: Record<string, unknown>[];
  readonly #systemCreds: Uint8Array;
  readonly #signingKey: SigningKey;
  readonly #dir: KeyDir;
  readonly #clients: NatsConnection[] = [];
  readonly #uids = new Map<string, string>();

  private constructor(init: {
    nats: NatsServer;
    api: TestApiServer;
    service: Service;
    targetAccount: string;
    authAccount: string;
    teamAccount: string | undefined;
    sentinelJwt: string;
    logs: Record<string, unknown>[];
    systemCreds: Uint8Array;
    signingKey: SigningKey;
    dir: KeyDir;
  }) {
    this.nats = init.nats;
    this.api = init.api;
    this.service = init.service;
    this.targetAccount = init.targetAccount;
    this.authAccount = init.authAccount;
    this.teamAccount = init.teamAccount;
    this.sentinelJwt = init.sentinelJwt;
    this.logs = init.logs;
    this.#systemCreds = init.systemCreds;
    this.#signingKey = init.signingKey;
    this.#dir = init.dir;
  }

  /** Start nats-server (operator mode), the test apiserver and the service; resolves when ready. */
  static async start(options: OperatorStackOptions = {}): Promise<OperatorStack> {
    const { target = "app", signer = "account" } = options;
    const dir = await KeyDir.create();
    const operator = createOperator();
    const sys = createAccount();
    const auth = createAccount();
    const app = target === "app" ? createAccount() : undefined;
    const targetKp = app ?? auth;
    const sk = signer === "account" ? undefined : createAccount();
    const serviceUser = createUser();
    const xkey = options.xkey ? curveKey() : undefined;
    const team = options.teamAccount ? createAccount() : undefined;
    const teamSk = options.teamAccount === "signing_key" ? createAccount() : undefined;

    const signed = { signer: operator };
    const targetSigningKeys = !sk ? {} : signer === "scoped_signing_key"
      ? {
        signing_keys: [{
          kind: "user_scope" as const,
          key: sk.getPublicKey(),
          role: "pods",
          template: { pub: { allow: [">"] }, sub: { allow: [">"] } },
        }],
      }
      : { signing_keys: [sk.getPublicKey()] };
    const authorization: Partial<ExternalAuthorization> = {
      auth_users: [serviceUser.getPublicKey()],
      ...(app || team
        ? {
          allowed_accounts: [app, team].filter((k) => k !== undefined).map((k) => k.getPublicKey()),
        }
        : {}),
      ...(xkey ? { xkey: xkey.publicKey } : {}),
    };
    const authSigningKeys = signer === "shared_signing_key" || !app ? targetSigningKeys : {};
    const accounts: Record<string, string> = {
      [sys.getPublicKey()]: await encodeAccount("SYS", sys, { limits: UNLIMITED_ACCOUNT }, signed),
      [auth.getPublicKey()]: await encodeAccount(
        "AUTH",
        auth,
        { limits: UNLIMITED_ACCOUNT, authorization, ...authSigningKeys },
        signed,
      ),
    };
    if (app) {
      accounts[app.getPublicKey()] = await encodeAccount(
        "APP",
        app,
        { limits: UNLIMITED_ACCOUNT, ...targetSigningKeys },
        signed,
      );
    }
    if (team) {
      accounts[team.getPublicKey()] = await encodeAccount(
        "TEAM",
        team,
        { limits: UNLIMITED_ACCOUNT, ...(teamSk ? { signing_keys: [teamSk.getPublicKey()] } : {}) },
        signed,
      );
    }
    const sentinelJwt = await encodeUser("sentinel", createUser(), auth, {
      bearer_token: true,
      pub: { deny: [">"] },
      sub: { deny: [">"] },
    });
    const operatorJwt = await encodeOperator("OP", operator, {
      system_account: sys.getPublicKey(),
    });
    const nats = await NatsServer.start({
      config: {
        operator: operatorJwt,
        system_account: sys.getPublicKey(),
        resolver: "MEMORY",
        resolver_preload: accounts,
        ...(options.defaultSentinel ? { default_sentinel: sentinelJwt } : {}),
        // Wait long for our answer: a client refused within its 3 s connect timeout was refused by
        // our error answer, not by the server giving up on us.
        authorization: { timeout: 10 },
      },
    });

    // The callout's own user bypasses the callout (auth_users); the documented permissions.
    const serviceJwt = await encodeUser("auth-service", serviceUser, auth, {
      pub: { allow: ["$SYS._INBOX.>"] },
      sub: { allow: ["$SYS.REQ.USER.AUTH"] },
    });
    const systemUser = createUser();
    const systemCreds = fmtCreds(await encodeUser("sys", systemUser, sys), systemUser);

    const signingKey = await generateSigningKey("RS256");
    const api = await TestApiServer.start({ jwks: publicJwks([signingKey]), issuer: ISSUER });
    const env: Record<string, string> = {
      K8S_IN_CLUSTER: "false",
      KUBECONFIG: await dir.write("kubeconfig", api.kubeConfig().exportConfig()),
      JWKS_URL: `${api.url}/openid/v1/jwks`,
      JWT_ISSUER: ISSUER,
      NATS_URL: nats.url,
      NATS_USER_CREDS_FILE: await dir.write(
        "auth-service.creds",
        decoder.decode(fmtCreds(serviceJwt, serviceUser)),
      ),
      NATS_ACCOUNT: targetKp.getPublicKey(),
      NATS_SIGNING_KEY_FILE: await dir.write("signing.nk", seedOf(sk ?? targetKp)),
      ...(xkey ? { NATS_XKEY_SEED_FILE: await dir.write("xkey.nk", xkey.seed) } : {}),
      ...(options.revocation
        ? { NATS_SYSTEM_CREDS_FILE: await dir.write("sys.creds", decoder.decode(systemCreds)) }
        : {}),
    };
    if (options.policy) {
      const seedFile = await dir.write("team.nk", team ? seedOf(teamSk ?? team) : "");
      const key = team?.getPublicKey() ?? "";
      env.POLICY_FILE = await dir.write("policy.yaml", options.policy({ key, seedFile }));
    }
    const logs: Record<string, unknown>[] = [];
    const logger = createLogger({ level: "debug", write: (line) => logs.push(JSON.parse(line)) });
    let service: Service;
    try {
      service = await startService({ config: loadConfig(env), logger });
    } catch (err) {
      await nats.stop();
      await api.stop();
      await dir[Symbol.asyncDispose]();
      throw err;
    }
    await waitFor(() => service.ready, { timeoutMs: 15_000, what: "service ready" });
    return new OperatorStack({
      nats,
      api,
      service,
      targetAccount: targetKp.getPublicKey(),
      authAccount: auth.getPublicKey(),
      teamAccount: team?.getPublicKey(),
      sentinelJwt,
      logs,
      systemCreds,
      signingKey,
      dir,
    });
  }

  /** Create a ServiceAccount in the test apiserver. */
  addServiceAccount(namespace: string, name: string): void {
    const { uid } = this.api.upsertServiceAccount(namespace, name, {});
    this.#uids.set(`${namespace}/${name}`, uid);
  }

  /**
   * A projected token for a ServiceAccount made with {@linkcode addServiceAccount}, bound to the Pod
   * `<name>-pod` (created in the test apiserver if missing), as the kubelet's are.
   */
  token(namespace: string, name: string): Promise<string> {
    const podName = `${name}-pod`;
    return mintServiceAccountToken({
      key: this.#signingKey,
      issuer: ISSUER,
      namespace,
      serviceAccount: name,
      uid: this.#uids.get(`${namespace}/${name}`) ?? crypto.randomUUID(),
      pod: { name: podName, uid: this.api.upsertPod(namespace, podName).uid },
    });
  }

  /**
   * Connect as a pod does in operator mode: the sentinel in `jwt` (unless `sentinel` is false),
   * `token` in `auth_token` (no reconnects); closed when the stack stops.
   */
  async connect(token: string, options: { sentinel?: boolean } = {}): Promise<NatsConnection> {
    const nc = await connect({
      servers: this.nats.url,
      ...(options.sentinel === false ? {} : { authenticator: jwtAuthenticator(this.sentinelJwt) }),
      token,
      timeout: 3000,
      reconnect: false,
    });
    this.#clients.push(nc);
    return nc;
  }

  /**
   * The user names (JWT `name`) connected in `account`, asked of the server as the system account
   * (`$SYS.REQ.ACCOUNT.<account>.CONNZ`): where the server really placed each client.
   */
  async usersIn(account: string): Promise<string[]> {
    const nc = await connect({
      servers: this.nats.url,
      authenticator: credsAuthenticator(this.#systemCreds),
      reconnect: false,
    });
    try {
      const reply = await nc.request(`$SYS.REQ.ACCOUNT.${account}.CONNZ`, '{"auth":true}', {
        timeout: 2000,
      });
      const { data } = reply.json<{ data?: { connections?: { authorized_user?: string }[] } }>();
      return (data?.connections ?? []).map((c) => c.authorized_user ?? "");
    } finally {
      await nc.close();
    }
  }

  /** Stop the clients, the service and both servers; remove the key directory. */
  async [Symbol.asyncDispose](): Promise<void> {
    for (const nc of this.#clients) await nc.close().catch(() => {});
    await this.service.close();
    await this.nats.stop();
    await this.api.stop();
    await this.#dir[Symbol.asyncDispose]();
  }
}
