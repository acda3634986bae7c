/**
 * The benchmark's world: the test apiserver (ServiceAccounts + JWKS) and the token-signing key in
 * the load generator's process, a real nats-server with the config-mode auth callout
 * (`authorization.timeout` 2 s, as in production), and the service in its own process
 * ({@linkcode ServiceProcess}). Also the baseline: the same server configuration with plain token
 * auth instead of the callout.
 *
 * @module
 */
import { authCalloutConfig, type NatsConfig, NatsServer } from "../tests/support/nats_server.ts";
import { accountKey, KeyDir } from "../tests/support/nkeys.ts";
import {
  generateSigningKey,
  ISSUER,
  mintServiceAccountToken,
  publicJwks,
  type SigningKey,
} from "../tests/support/sa_tokens.ts";
import { createTestCertificates, TestApiServer } from "../tests/support/test_apiserver.ts";
import {
  type ServiceImplementation,
  ServiceProcess,
  type ServiceProcessOptions,
} from "./service_process.ts";

/** The issuer kubeadm and k3s clusters use. */
export { ISSUER };
/** Namespace of the benchmark's ServiceAccounts. */
export const NAMESPACE = "bench";
/** The server's `authorization.timeout` in seconds: nats-server's default. */
export const AUTH_TIMEOUT_SECONDS = 2;

/** Options of {@linkcode BenchFixture.start}. */
export interface BenchFixtureOptions {
  /** ServiceAccounts to create (`sa-0` …), one token each for returning logins. @default {64} */
  serviceAccounts?: number;
  /** Service `LOG_LEVEL`; `info` logs one line per decision, as in production. @default {"info"} */
  logLevel?: string;
  /** Extra top-level nats-server configuration (e.g. `prof_port` to profile the server). */
  natsConfig?: NatsConfig;
  /** Extra `deno run` flags for the service (e.g. `--cpu-prof`). @default {[]} */
  serviceDenoFlags?: readonly string[];
  /** Receives the service's log lines (for debugging). @default {discarded} */
  onServiceLine?: (line: string) => void;
  /**
   * How the service reaches the apiserver: a kubeconfig file (plain HTTP), or in-cluster as the
   * chart deploys it (HTTPS with the cluster CA and a bearer token file). @default {"kubeconfig"}
   */
  mode?: "kubeconfig" | "in-cluster";
  /** Live revocation on: the service gets the server's system user (`NATS_SYSTEM_*`). @default {false} */
  revocation?: boolean;
  /** The service to run: another checkout, or the Go reference's executable. @default {this checkout} */
  implementation?: ServiceImplementation;
}

/** The bearer token the in-cluster service presents to the apiserver. */
const POD_TOKEN = "bench-pod-token";

/** A running benchmark world; dispose to stop everything. */
export class BenchFixture implements AsyncDisposable {
  readonly nats: NatsServer;
  readonly api: TestApiServer;
  #service: ServiceProcess;
  readonly #serviceOptions: ServiceProcessOptions;
  readonly signingKey: SigningKey;
  /** One token per ServiceAccount: a returning client presents the same token every time. */
  readonly tokens: readonly string[];
  /** The service user's URL (bypasses the callout). */
  readonly serviceUrl: string;
  readonly #dir: KeyDir;
  readonly #uids: readonly string[];
  readonly #podUids: readonly string[];

  private constructor(init: {
    nats: NatsServer;
    api: TestApiServer;
    service: ServiceProcess;
    serviceOptions: ServiceProcessOptions;
    signingKey: SigningKey;
    tokens: string[];
    uids: string[];
    podUids: string[];
    serviceUrl: string;
    dir: KeyDir;
  }) {
    this.nats = init.nats;
    this.api = init.api;
    this.#service = init.service;
    this.#serviceOptions = init.serviceOptions;
    this.signingKey = init.signingKey;
    this.tokens = init.tokens;
    this.#uids = init.uids;
    this.#podUids = init.podUids;
    this.serviceUrl = init.serviceUrl;
    this.#dir = init.dir;
  }

  /** Start the apiserver, nats-server and the service process; resolves when `/readyz` is 200. */
  static async start(options: BenchFixtureOptions = {}): Promise<BenchFixture> {
    const { serviceAccounts = 64, logLevel = "info", onServiceLine } = options;
    const dir = await KeyDir.create();
    const cleanup: AsyncDisposableStack = new AsyncDisposableStack();
    cleanup.use(dir);
    try {
      const account = accountKey();
      const signingKey = await generateSigningKey("RS256");
      const inCluster = options.mode === "in-cluster";
      const tls = inCluster ? await createTestCertificates(dir.path) : undefined;
      const api = cleanup.use(
        await TestApiServer.start({
          jwks: publicJwks([signingKey]),
          issuer: ISSUER,
          ...(tls ? { tls, requireBearerToken: POD_TOKEN } : {}),
        }),
      );
      const uids: string[] = [];
      const podUids: string[] = [];
      for (let i = 0; i < serviceAccounts; i++) {
        uids.push(api.upsertServiceAccount(NAMESPACE, `sa-${i}`, {}).uid);
        // Tokens are bound to a Pod, as the kubelet's are, and the service checks it exists.
        podUids.push(api.upsertPod(NAMESPACE, `sa-${i}-pod`).uid);
      }
      const { config, service: serviceUser, system } = authCalloutConfig({
        issuer: account.publicKey,
        timeoutSeconds: AUTH_TIMEOUT_SECONDS,
        ...(options.natsConfig ? { extra: options.natsConfig } : {}),
      });
      const nats = cleanup.use(await NatsServer.start({ config }));
      const serviceUrl =
        `nats://${serviceUser.user}:${serviceUser.password}@127.0.0.1:${nats.port}`;
      const serviceOptions: ServiceProcessOptions = {
        env: {
          ...(tls
            ? {
              K8S_IN_CLUSTER: "true",
              KUBERNETES_SERVICE_HOST: "127.0.0.1",
              KUBERNETES_SERVICE_PORT: new URL(api.url).port,
              K8S_CA_FILE: tls.caFile,
              K8S_TOKEN_FILE: await dir.write("token", POD_TOKEN),
            }
            : {
              K8S_IN_CLUSTER: "false",
              KUBECONFIG: await dir.write("kubeconfig", api.kubeConfig().exportConfig()),
            }),
          JWKS_URL: `${api.url}/openid/v1/jwks`,
          JWT_ISSUER: ISSUER,
          NATS_URL: serviceUrl,
          NATS_ACCOUNT: "APP",
          NATS_SIGNING_KEY_FILE: await dir.write("account.seed", account.seed),
          LOG_LEVEL: logLevel,
          ...(options.revocation
            ? { NATS_SYSTEM_USER: system.user, NATS_SYSTEM_PASSWORD: system.password }
            : {}),
        },
        ...(onServiceLine ? { onLine: onServiceLine } : {}),
        ...(options.serviceDenoFlags ? { denoFlags: options.serviceDenoFlags } : {}),
        ...(options.implementation ? { implementation: options.implementation } : {}),
      };
      const service = cleanup.use(await ServiceProcess.start(serviceOptions));
      const tokens = await Promise.all(
        uids.map((uid, i) => mint(signingKey, signingKey, i, uid, podUids[i]!)),
      );
      cleanup.move();
      return new BenchFixture({
        nats,
        api,
        service,
        serviceOptions,
        signingKey,
        tokens,
        uids,
        podUids,
        serviceUrl,
        dir,
      });
    } catch (err) {
      await cleanup.disposeAsync();
      throw err;
    }
  }

  /** The service process (a new one after {@linkcode restartService}). */
  get service(): ServiceProcess {
    return this.#service;
  }

  /** Stop the service and start it again with the same options: a new process, empty caches. */
  async restartService(): Promise<void> {
    await this.#service.stop();
    this.#service = await ServiceProcess.start(this.#serviceOptions);
  }

  /** `n` tokens never presented before (fresh `jti`), spread over the ServiceAccounts. */
  freshTokens(n: number): Promise<string[]> {
    return Promise.all(
      Array.from({ length: n }, (_, i) => {
        const sa = i % this.#uids.length;
        return mint(this.signingKey, this.signingKey, sa, this.#uids[sa]!, this.#podUids[sa]!);
      }),
    );
  }

  /**
   * `n` forged tokens: signed by a look-alike key that claims the trusted key's `kid`, so only the
   * full signature check can refuse them (the expensive path, what an attacker would send).
   */
  async forgedTokens(n: number): Promise<string[]> {
    const impostor = await generateSigningKey("RS256", { kid: this.signingKey.kid });
    return Promise.all(
      Array.from({ length: n }, (_, i) => {
        const sa = i % this.#uids.length;
        return mint(impostor, this.signingKey, sa, this.#uids[sa]!, this.#podUids[sa]!);
      }),
    );
  }

  /** Stop the service, nats-server and the apiserver; remove the key directory. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.#service.stop();
    await this.nats.stop();
    await this.api.stop();
    await this.#dir[Symbol.asyncDispose]();
  }
}

function mint(
  key: SigningKey,
  trusted: SigningKey,
  sa: number,
  uid: string,
  podUid: string,
): Promise<string> {
  return mintServiceAccountToken({
    key,
    kid: trusted.kid,
    issuer: ISSUER,
    namespace: NAMESPACE,
    serviceAccount: `sa-${sa}`,
    uid,
    pod: { name: `sa-${sa}-pod`, uid: podUid },
  });
}

/**
 * The baseline server: the same accounts and system account, but `authorization { token }` instead
 * of the callout, so a login costs the server a string compare and nothing else.
 */
export function plainTokenConfig(token: string): NatsConfig {
  return {
    accounts: { APP: {}, SYS: {} },
    system_account: "SYS",
    authorization: { timeout: AUTH_TIMEOUT_SECONDS, token },
  };
}

/** A random token of `length` base64url characters (the baseline's, as long as a real one). */
export function randomToken(length: number): string {
  const bytes = crypto.getRandomValues(new Uint8Array(Math.ceil((length * 3) / 4) + 3));
  return bytes.toBase64({ alphabet: "base64url", omitPadding: true }).slice(0, length);
}
