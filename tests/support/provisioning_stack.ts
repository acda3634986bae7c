/**
 * Accounts that follow namespaces, against real parts: a 3-server nats-server cluster in operator
 * mode with a `full` resolver (its own directory per server, `allow_delete` as asked, JetStream
 * when asked), the real kube-apiserver for Namespaces and ServiceAccounts, and one or more
 * replicas of the service started from the environment a deployment sets. Every key is generated
 * here: the operator and the service's operator signing key, SYS, AUTH (the callout account,
 * `allowed_accounts: ["*"]`, an xkey), APP (`NATS_ACCOUNT`), the accounts seed.
 *
 * @module
 */
import { encodeAccount, encodeOperator, encodeUser, fmtCreds } from "@nats-io/jwt";
import { createAccount, createOperator, createUser } from "@nats-io/nkeys";
import {
  connect,
  credsAuthenticator,
  jwtAuthenticator,
  type NatsConnection,
} from "@nats-io/transport-node";
import { loadConfig } from "../../lib/config/config.ts";
import { rootSecret } from "../../lib/accounts/keys.ts";
import { deriveAccountKeys } from "../../lib/accounts/keys.ts";
import { createLogger } from "../../lib/telemetry/log.ts";
import { type Service, startService } from "../../lib/service/service.ts";
import { KubeApiServer } from "./kube_apiserver.ts";
import { NatsCluster } from "./nats_cluster.ts";
import { curveKey, KeyDir, seedOf, UNLIMITED_ACCOUNT } from "./nkeys.ts";
import { freePort } from "./http_probe.ts";
import { waitFor } from "./wait.ts";

/** Options of {@linkcode ProvisioningStack.start}. */
export interface ProvisioningStackOptions {
  /** The policy file's text. */
  policy: string;
  /** The resolver allows `$SYS.REQ.CLAIMS.DELETE`. @default {true} */
  allowDelete?: boolean;
  /** Replicas of the service started at once. @default {1} */
  replicas?: number;
  /** JetStream on every server. @default {false} */
  jetstream?: boolean;
  /** A leafnode listener on every server. @default {false} */
  leafnodes?: boolean;
  /**
   * The operator JWT lists the service's operator signing key (false: the servers do not trust
   * the key the service signs accounts with). @default {true}
   */
  trustOperatorSigningKey?: boolean;
  /**
   * AUTH's `authorization.allowed_accounts` (`"APP"` stands for APP's key): anything but `["*"]`
   * leaves the servers refusing every login placed in a namespace's account. @default {["*"]}
   */
  authAllowedAccounts?: readonly string[];
}

const decoder = new TextDecoder();
/** One running replica of the service and its log lines. */
export interface Replica {
  readonly service: Service;
  readonly logs: Record<string, unknown>[];
}

/** The running stack; dispose to stop everything. */
export class ProvisioningStack implements AsyncDisposable {
  readonly cluster: NatsCluster;
  readonly kube: KubeApiServer;
  readonly replicas: Replica[] = [];
  /** The deny-all bearer sentinel of AUTH every client presents. */
  readonly sentinelJwt: string;
  /** Public key of the service's operator signing key (the `iss` of provisioned accounts). */
  readonly operatorSigningKey: string;
  /** The environment every replica starts with. */
  readonly env: Readonly<Record<string, string>>;
  /** Public keys of AUTH (the callout's account) and APP (`NATS_ACCOUNT`). */
  readonly keys: { readonly auth: string; readonly app: string };
  readonly #authJwt: (allowedAccounts: readonly string[]) => Promise<string>;
  readonly #systemCreds: Uint8Array;
  readonly #root: Uint8Array;
  readonly #dir: KeyDir;
  readonly #clients: NatsConnection[] = [];
  readonly #policyFile: string;
  readonly #sentinelCreds: string;
  /** The leafnode port of each server (when started with `leafnodes`). */
  readonly leafPorts: readonly number[];

  private constructor(init: {
    cluster: NatsCluster;
    kube: KubeApiServer;
    sentinelJwt: string;
    operatorSigningKey: string;
    env: Record<string, string>;
    keys: { auth: string; app: string };
    authJwt: (allowedAccounts: readonly string[]) => Promise<string>;
    systemCreds: Uint8Array;
    root: Uint8Array;
    dir: KeyDir;
    policyFile: string;
    leafPorts: number[];
    sentinelCreds: string;
  }) {
    this.cluster = init.cluster;
    this.kube = init.kube;
    this.sentinelJwt = init.sentinelJwt;
    this.operatorSigningKey = init.operatorSigningKey;
    this.env = init.env;
    this.keys = init.keys;
    this.#authJwt = init.authJwt;
    this.#systemCreds = init.systemCreds;
    this.#root = init.root;
    this.#dir = init.dir;
    this.#policyFile = init.policyFile;
    this.leafPorts = init.leafPorts;
    this.#sentinelCreds = init.sentinelCreds;
  }

  /** Start the cluster, the apiserver and the replicas; resolves when every replica is ready. */
  static async start(options: ProvisioningStackOptions): Promise<ProvisioningStack> {
    const dir = await KeyDir.create();
    const operator = createOperator();
    const operatorSk = createOperator();
    const sys = createAccount();
    const auth = createAccount();
    const app = createAccount();
    const serviceUser = createUser();
    const systemUser = createUser();
    const xkey = curveKey();
    const accountsSeed = seedOf(createAccount());

    const signed = { signer: operator };
    const authJwt = (allowed: readonly string[]) =>
      encodeAccount("AUTH", auth, {
        limits: UNLIMITED_ACCOUNT,
        authorization: {
          auth_users: [serviceUser.getPublicKey()],
          allowed_accounts: allowed.map((a) => a === "APP" ? app.getPublicKey() : a),
          xkey: xkey.publicKey,
        },
      }, signed);
    const accounts: Record<string, string> = {
      [sys.getPublicKey()]: await encodeAccount("SYS", sys, { limits: UNLIMITED_ACCOUNT }, signed),
      [auth.getPublicKey()]: await authJwt(options.authAllowedAccounts ?? ["*"]),
      [app.getPublicKey()]: await encodeAccount("APP", app, { limits: UNLIMITED_ACCOUNT }, signed),
    };
    const operatorJwt = await encodeOperator("OP", operator, {
      system_account: sys.getPublicKey(),
      signing_keys: options.trustOperatorSigningKey === false ? [] : [operatorSk.getPublicKey()],
    });
    const sentinelUser = createUser();
    const sentinelJwt = await encodeUser("sentinel", sentinelUser, auth, {
      bearer_token: true,
      pub: { deny: [">"] },
      sub: { deny: [">"] },
    });
    const systemCreds = fmtCreds(await encodeUser("sys", systemUser, sys), systemUser);
    const serviceJwt = await encodeUser("auth-service", serviceUser, auth, {
      pub: { allow: ["$SYS._INBOX.>"] },
      sub: { allow: ["$SYS.REQ.USER.AUTH"] },
    });
    const base = dir.path;
    const leafPorts = [freePort(), freePort(), freePort()];
    const cluster = await NatsCluster.start({
      config: {
        operator: operatorJwt,
        system_account: sys.getPublicKey(),
        resolver_preload: accounts,
        authorization: { timeout: 10 },
      },
      perServer: (i) => ({
        ...(options.leafnodes ? { leafnodes: { listen: `127.0.0.1:${leafPorts[i]}` } } : {}),
        resolver: {
          type: "full",
          dir: `${base}/jwt-${i}`,
          allow_delete: options.allowDelete ?? true,
          interval: "2m",
        },
        ...(options.jetstream
          ? {
            jetstream: { store_dir: `${base}/js-${i}`, max_mem: 268435456, max_file: 1073741824 },
          }
          : {}),
      }),
      probeUser: { connect: { authenticator: credsAuthenticator(systemCreds) } },
    }).catch(async (err) => {
      await dir[Symbol.asyncDispose]();
      throw err;
    });
    let kube: KubeApiServer;
    try {
      kube = await KubeApiServer.start();
    } catch (err) {
      await cluster[Symbol.asyncDispose]();
      await dir[Symbol.asyncDispose]();
      throw err;
    }
    const policyFile = await dir.write("policy.yaml", options.policy);
    const env: Record<string, string> = {
      K8S_IN_CLUSTER: "false",
      KUBECONFIG: await kube.writeKubeconfig("service", { clientCert: true }),
      NATS_URL: cluster.servers.map((s) => s.url).join(","),
      NATS_USER_CREDS_FILE: await dir.write(
        "auth-service.creds",
        decoder.decode(fmtCreds(serviceJwt, serviceUser)),
      ),
      NATS_ACCOUNT: app.getPublicKey(),
      NATS_SIGNING_KEY_FILE: await dir.write("app.nk", seedOf(app)),
      NATS_XKEY_SEED_FILE: await dir.write("xkey.nk", xkey.seed),
      NATS_SYSTEM_CREDS_FILE: await dir.write("sys.creds", decoder.decode(systemCreds)),
      NATS_OPERATOR_SIGNING_KEY_FILE: await dir.write("operator-sk.nk", seedOf(operatorSk)),
      NATS_ACCOUNTS_SEED_FILE: await dir.write("accounts.nk", accountsSeed),
      POLICY_FILE: policyFile,
    };
    const stack = new ProvisioningStack({
      cluster,
      kube,
      sentinelJwt,
      operatorSigningKey: operatorSk.getPublicKey(),
      env,
      keys: { auth: auth.getPublicKey(), app: app.getPublicKey() },
      authJwt,
      systemCreds,
      root: rootSecret(accountsSeed),
      dir,
      policyFile,
      leafPorts,
      sentinelCreds: decoder.decode(fmtCreds(sentinelJwt, sentinelUser)),
    });
    try {
      for (let i = 0; i < (options.replicas ?? 1); i++) await stack.startReplica();
    } catch (err) {
      await stack[Symbol.asyncDispose]();
      throw err;
    }
    return stack;
  }

  /**
   * Start one more replica with the stack's environment; resolves when it is ready (or at once,
   * with `ready: false`). `accountsSeed` gives it another `NATS_ACCOUNTS_SEED_FILE` (an `SA…` seed).
   */
  async startReplica(options: { ready?: boolean; accountsSeed?: string } = {}): Promise<Replica> {
    const logs: Record<string, unknown>[] = [];
    const logger = createLogger({ level: "debug", write: (line) => logs.push(JSON.parse(line)) });
    const env = options.accountsSeed === undefined ? this.env : {
      ...this.env,
      NATS_ACCOUNTS_SEED_FILE: await this.#dir.write(
        `accounts-${this.replicas.length}.nk`,
        options.accountsSeed,
      ),
    };
    const service = await startService({ config: loadConfig(env), logger });
    const replica = { service, logs };
    this.replicas.push(replica);
    if (options.ready === false) return replica;
    await waitFor(() => service.ready, { timeoutMs: 30_000, what: "replica ready" }).catch(
      (err) => {
        const tail = logs.filter((l) => l.level !== "debug").slice(-8);
        throw new Error(`${(err as Error).message}; last logs: ${JSON.stringify(tail)}`);
      },
    );
    return replica;
  }

  /** Stop replica `i` (it stays in the list, stopped). */
  async stopReplica(i: number): Promise<void> {
    await this.replicas[i]?.service.close();
  }

  /**
   * Push AUTH's JWT again, as `nsc push --account AUTH` does, with `allowedAccounts` (`"APP"`
   * stands for APP's key); resolves when a server answered `jwt updated`.
   */
  async pushAuth(allowedAccounts: readonly string[]): Promise<void> {
    const nc = await this.system();
    const reply = await nc.request("$SYS.REQ.CLAIMS.UPDATE", await this.#authJwt(allowedAccounts), {
      timeout: 5000,
    });
    const answer = reply.json<{ data?: { message?: string }; error?: unknown }>();
    if (answer.data?.message !== "jwt updated") {
      throw new Error(`AUTH push not stored: ${reply.string()}`);
    }
  }

  /** Replace the policy file (every replica follows it). */
  async writePolicy(text: string): Promise<void> {
    await Deno.writeTextFile(this.#policyFile, text);
  }

  /** Create a Namespace (with labels); resolves to its uid. */
  async createNamespace(name: string, labels: Record<string, string> = {}): Promise<string> {
    const ns = await this.kube.request("POST", "/api/v1/namespaces", {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name, labels },
    });
    return ns.metadata.uid!;
  }

  /**
   * Delete a Namespace. Without a controller-manager it stays `Terminating` (its `kubernetes`
   * finalizer is never run); `finalize` then removes the object as the namespace controller would.
   */
  async deleteNamespace(name: string, options: { finalize?: boolean } = {}): Promise<void> {
    await this.kube.request("DELETE", `/api/v1/namespaces/${name}`);
    if (!options.finalize) return;
    const ns = await this.kube.request("GET", `/api/v1/namespaces/${name}`);
    await this.kube.request("PUT", `/api/v1/namespaces/${name}/finalize`, {
      ...ns,
      spec: { finalizers: [] },
    });
  }

  /** The account key a Namespace uid derives (what the service must have provisioned). */
  accountOf(uid: string): string {
    return deriveAccountKeys(this.#root, uid).account;
  }

  /** A TokenRequest token (audience `nats`) for a ServiceAccount. */
  token(namespace: string, name: string): Promise<string> {
    return this.kube.token(namespace, name, { audiences: ["nats"] });
  }

  /** Connect as a pod: the sentinel plus the token, to server `server` (0-based). */
  async connect(token: string, server = 0): Promise<NatsConnection> {
    const nc = await connect({
      servers: this.cluster.servers[server]!.url,
      authenticator: jwtAuthenticator(this.sentinelJwt),
      token,
      timeout: 5000,
      reconnect: false,
    });
    this.#clients.push(nc);
    return nc;
  }

  /** Write the sentinel as a creds file (for a leaf node's remote); returns its path. */
  async sentinelCreds(): Promise<string> {
    return await this.#dir.write("sentinel.creds", this.#sentinelCreds);
  }

  /** A system-account connection (closed with the stack). */
  async system(server = 0): Promise<NatsConnection> {
    const nc = await connect({
      servers: this.cluster.servers[server]!.url,
      authenticator: credsAuthenticator(this.#systemCreds),
    });
    this.#clients.push(nc);
    return nc;
  }

  /** The JWT each server's resolver holds for `account` ("" where it holds none), in server order. */
  async jwtsOnServers(account: string): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < this.cluster.servers.length; i++) {
      const nc = await connect({
        servers: this.cluster.servers[i]!.url,
        authenticator: credsAuthenticator(this.#systemCreds),
      });
      try {
        // Each server answers; the one we are connected to answers first.
        const reply = await nc.request(`$SYS.REQ.ACCOUNT.${account}.CLAIMS.LOOKUP`, "", {
          timeout: 2000,
        });
        out.push(reply.string());
      } finally {
        await nc.close();
      }
    }
    return out;
  }

  /** The user names connected in `account`, as the servers report them (`CONNZ`). */
  async usersIn(account: string): Promise<string[]> {
    const nc = await this.system();
    const inbox = `_INBOX.connz.${crypto.randomUUID()}`;
    const names: string[] = [];
    const sub = nc.subscribe(inbox, {
      callback: (_e, m) => {
        const { data } = m.json<{ data?: { connections?: { authorized_user?: string }[] } }>();
        for (const c of data?.connections ?? []) names.push(c.authorized_user ?? "");
      },
    });
    nc.publish(`$SYS.REQ.ACCOUNT.${account}.CONNZ`, '{"auth":true}', { reply: inbox });
    await new Promise((r) => setTimeout(r, 500));
    sub.unsubscribe();
    return names;
  }

  /** Stop clients, replicas, the apiserver and the cluster; remove the files. */
  async [Symbol.asyncDispose](): Promise<void> {
    for (const nc of this.#clients) await nc.close().catch(() => {});
    for (const r of this.replicas) await r.service.close().catch(() => {});
    await this.kube[Symbol.asyncDispose]().catch(() => {});
    await this.cluster[Symbol.asyncDispose]().catch(() => {});
    await this.#dir[Symbol.asyncDispose]();
  }
}
