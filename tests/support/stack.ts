/**
 * The whole product on one machine for end-to-end tests and benchmarks: a real nats-server with a
 * config-mode auth callout, the in-process test apiserver (ServiceAccounts + JWKS), and the service
 * itself started from the same environment variables a deployment would set.
 *
 * @module
 */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { loadConfig } from "../../lib/config/config.ts";
import { createLogger, type Logger } from "../../lib/telemetry/log.ts";
import { type Service, startService } from "../../lib/service/service.ts";
import { authCalloutConfig, type ConfigUser, type NatsConfig, NatsServer } from "./nats_server.ts";
import { accountKey, curveKey, KeyDir, type TestKey } from "./nkeys.ts";
import { type ServerCertificate, tlsBlock } from "./server_certs.ts";
import {
  generateSigningKey,
  ISSUER,
  mintServiceAccountToken,
  publicJwks,
  type ServiceAccountTokenOptions,
  type SigningKey,
} from "./sa_tokens.ts";
import { TestApiServer } from "./test_apiserver.ts";
import { waitFor } from "./wait.ts";

export { ISSUER };

function randomPassword(): string {
  return crypto.getRandomValues(new Uint8Array(12)).toBase64({ alphabet: "base64url" });
}

/** Options of {@linkcode Stack.start}. */
export interface StackOptions {
  /** Seal callout requests with an xkey. @default {false} */
  xkey?: boolean;
  /** The server seals to an xkey, the service holds a different one (mismatch). @default {false} */
  wrongXkey?: boolean;
  /** nats-server `authorization.timeout` in seconds. @default {10} */
  timeoutSeconds?: number;
  /** Extra environment for the service (overrides the generated one). */
  env?: Record<string, string>;
  /** Collect the service's log lines in {@linkcode Stack.logs}. @default {true} */
  captureLogs?: boolean;
  /** Turn live revocation on (the system user's credentials in `NATS_SYSTEM_*`). @default {false} */
  revocation?: boolean;
  /** Accounts besides AUTH and SYS (see `authCalloutConfig`). @default {{ APP: {} }} */
  accounts?: NatsConfig;
  /** Extra top-level nats-server config (jetstream, websocket, mqtt…). @default {{}} */
  serverConfig?: NatsConfig;
  /** A cluster policy (YAML text): written next to the keys and passed as `POLICY_FILE`. */
  policy?: string;
  /** Shorter key source timings, so JWKS faults play out in seconds. @default {the defaults} */
  jwksTimings?: { cooldownMs?: number; refreshIntervalMs?: number; retryMs?: number };
  /** The service's clock in milliseconds (e.g. shifted, for clock skew). @default {Date.now} */
  now?: () => number;
  /**
   * `auth_callout.auth_users` as nats-server is configured (e.g. without the system user).
   * @default {[the service user, the system user]}
   */
  authUsers?: (users: { service: string; system: string }) => readonly string[];
  /** nats-server `permissions` of the service's own user. @default {none: everything} */
  servicePermissions?: NatsConfig;
  /**
   * TLS on nats-server (and `tls://` in `NATS_URL`): its certificate, the CA the service trusts,
   * and with `client` the service's own certificate, which `verify: true` requires.
   * @default {no TLS}
   */
  tls?: { caFile: string; server: ServerCertificate; client?: ServerCertificate; verify?: boolean };
}

/** A running stack; dispose to stop everything. */
export class Stack implements AsyncDisposable {
  readonly nats: NatsServer;
  readonly api: TestApiServer;
  readonly service: Service;
  readonly signingKey: SigningKey;
  readonly account: TestKey;
  readonly serviceUser: ConfigUser;
  readonly systemUser: ConfigUser;
  /** The environment the service was started with. */
  readonly env: Readonly<Record<string, string>>;
  /** Parsed JSON log lines of the service. */
  readonly logs: Record<string, unknown>[];
  readonly #dir: KeyDir;
  readonly #clients: NatsConnection[] = [];
  readonly #uids = new Map<string, string>();

  private constructor(init: {
    nats: NatsServer;
    api: TestApiServer;
    service: Service;
    signingKey: SigningKey;
    account: TestKey;
    serviceUser: ConfigUser;
    systemUser: ConfigUser;
    env: Record<string, string>;
    logs: Record<string, unknown>[];
    dir: KeyDir;
  }) {
    this.nats = init.nats;
    this.api = init.api;
    this.service = init.service;
    this.signingKey = init.signingKey;
    this.account = init.account;
    this.serviceUser = init.serviceUser;
    this.systemUser = init.systemUser;
    this.env = init.env;
    this.logs = init.logs;
    this.#dir = init.dir;
  }

  /** Start nats-server, the test apiserver and the service; resolves once `/readyz` would be 200. */
  static async start(options: StackOptions = {}): Promise<Stack> {
    const dir = await KeyDir.create();
    const account = accountKey();
    const signingKey = await generateSigningKey("RS256");
    const api = await TestApiServer.start({ jwks: publicJwks([signingKey]), issuer: ISSUER });
    const serverXkey = options.xkey || options.wrongXkey ? curveKey() : undefined;
    const serviceXkey = options.wrongXkey ? curveKey() : serverXkey;
    const tls = options.tls;
    const serviceCreds: ConfigUser = {
      user: "auth",
      password: randomPassword(),
      ...(options.servicePermissions ? { permissions: options.servicePermissions } : {}),
    };
    const systemCreds = { user: "sys", password: randomPassword() };
    const { config, service: serviceUser, system: systemUser } = authCalloutConfig({
      issuer: account.publicKey,
      timeoutSeconds: options.timeoutSeconds ?? 10,
      service: serviceCreds,
      system: systemCreds,
      ...(serverXkey ? { xkey: serverXkey.publicKey } : {}),
      ...(options.accounts ? { accounts: options.accounts } : {}),
      ...(options.authUsers
        ? { authUsers: options.authUsers({ service: serviceCreds.user, system: systemCreds.user }) }
        : {}),
      extra: {
        ...options.serverConfig,
        ...(tls
          ? {
            tls: {
              ...tlsBlock(tls.server),
              ca_file: tls.caFile,
              ...(tls.verify ? { verify: true } : {}),
            },
          }
          : {}),
      },
    });
    const nats = await NatsServer.start({ config });
    const env: Record<string, string> = {
      K8S_IN_CLUSTER: "false",
      KUBECONFIG: await dir.write("kubeconfig", api.kubeConfig().exportConfig()),
      JWKS_URL: `${api.url}/openid/v1/jwks`,
      JWT_ISSUER: ISSUER,
      NATS_URL: `${
        tls ? "tls" : "nats"
      }://${serviceUser.user}:${serviceUser.password}@127.0.0.1:${nats.port}`,
      ...(tls ? { NATS_TLS_CA_FILE: tls.caFile } : {}),
      ...(tls?.client
        ? { NATS_TLS_CERT_FILE: tls.client.certFile, NATS_TLS_KEY_FILE: tls.client.keyFile }
        : {}),
      NATS_ACCOUNT: "APP",
      NATS_SIGNING_KEY_FILE: await dir.write("account.seed", account.seed),
      LOG_LEVEL: "debug",
      ...(options.revocation
        ? { NATS_SYSTEM_USER: systemUser.user, NATS_SYSTEM_PASSWORD: systemUser.password }
        : {}),
      ...(serviceXkey
        ? { NATS_XKEY_SEED_FILE: await dir.write("xkey.seed", serviceXkey.seed) }
        : {}),
      ...(options.policy !== undefined
        ? { POLICY_FILE: await dir.write("policy.yaml", options.policy) }
        : {}),
      ...options.env,
    };
    const logs: Record<string, unknown>[] = [];
    const logger: Logger = createLogger({
      level: "debug",
      write: options.captureLogs === false ? () => {} : (line) => logs.push(JSON.parse(line)),
    });
    let service: Service;
    try {
      service = await startService({
        config: loadConfig(env),
        logger,
        ...(options.jwksTimings ? { jwksTimings: options.jwksTimings } : {}),
        ...(options.now ? { now: options.now } : {}),
      });
    } catch (err) {
      await nats.stop();
      await api.stop();
      await dir[Symbol.asyncDispose]();
      throw err;
    }
    await waitFor(() => service.ready, { timeoutMs: 15_000, what: "service ready" });
    return new Stack({
      nats,
      api,
      service,
      signingKey,
      account,
      serviceUser,
      systemUser,
      env,
      logs,
      dir,
    });
  }

  /** Replace the policy file's content (the service follows it). */
  async writePolicy(text: string): Promise<void> {
    const path = this.env.POLICY_FILE;
    if (path === undefined) throw new Error("the stack was started without a policy");
    await Deno.writeTextFile(`${path}.tmp`, text);
    await Deno.rename(`${path}.tmp`, path);
  }

  /** Create a ServiceAccount in the test apiserver; returns its uid. */
  addServiceAccount(
    namespace: string,
    name: string,
    annotations?: Record<string, string>,
  ): string {
    const { uid } = this.api.upsertServiceAccount(
      namespace,
      name,
      annotations ? { annotations } : {},
    );
    this.#uids.set(`${namespace}/${name}`, uid);
    return uid;
  }

  /**
   * Mint a token for a ServiceAccount made with {@linkcode addServiceAccount} (its uid), signed by
   * the cluster key. Like the kubelet's, it is bound to a Pod: unless `overrides.pod` says otherwise,
   * the Pod `<name>-pod` is created in the test apiserver if missing and named in the token.
   */
  async token(
    namespace: string,
    name: string,
    overrides: Partial<ServiceAccountTokenOptions> = {},
  ): Promise<string> {
    const uid = this.#uids.get(`${namespace}/${name}`) ?? crypto.randomUUID();
    let pod = overrides.pod;
    const ownPod = pod === undefined;
    if (pod === undefined) {
      const podName = `${name}-pod`;
      pod = { name: podName, uid: this.api.upsertPod(namespace, podName).uid };
    }
    const token = await mintServiceAccountToken({
      key: this.signingKey,
      issuer: ISSUER,
      namespace,
      serviceAccount: name,
      uid,
      ...overrides,
      pod,
    });
    // The Pod made here reaches the service through its Pod watch, like the ServiceAccount through
    // its own: wait until the service knows it, so a test's first login does not race the watch.
    const login = this.service.login;
    if (ownPod && login) {
      await waitFor(async () => (await login.explain({ token })).reason !== "pod_not_found", {
        timeoutMs: 5000,
        what: `Pod ${namespace}/${name}-pod in the service's Pod cache`,
      }).catch(() => {});
    }
    return token;
  }

  /** Connect a NATS client with `token` (no reconnects); closed when the stack stops. */
  async connect(token?: string, options: { inboxPrefix?: string } = {}): Promise<NatsConnection> {
    const nc = await connect({
      servers: this.nats.url,
      ...(token !== undefined ? { token } : {}),
      timeout: 3000,
      reconnect: false,
      ...options,
    });
    this.#clients.push(nc);
    return nc;
  }

  /** Stop the service, the clients and both servers; remove the key directory. */
  async [Symbol.asyncDispose](): Promise<void> {
    for (const nc of this.#clients) await nc.close().catch(() => {});
    await this.service.close();
    await this.nats.stop();
    await this.api.stop();
    await this.#dir[Symbol.asyncDispose]();
  }
}
