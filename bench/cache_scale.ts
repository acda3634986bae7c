/**
 * The ServiceAccount cache at cluster scale: the test apiserver serves N ServiceAccounts (100,000 by
 * default), the service process starts against it, and we report the time of its first complete
 * list (the `sa_cache_synced` log line), its RSS once synced, and the same service's RSS with an
 * empty cluster for comparison. Then the Pod watch (K8S_WATCH_PODS, on by default): the same
 * ServiceAccounts plus M Pods (100,000 by default), read as `PartialObjectMetadata`, and the RSS
 * that adds.
 *
 * @module
 */
import { NatsServer } from "../tests/support/nats_server.ts";
import { accountKey, KeyDir } from "../tests/support/nkeys.ts";
import { generateSigningKey, publicJwks } from "../tests/support/sa_tokens.ts";
import { createTestCertificates, TestApiServer } from "../tests/support/test_apiserver.ts";
import { ISSUER } from "./fixture.ts";
import { ServiceProcess } from "./service_process.ts";

/** Options of {@linkcode runCacheScale}. */
export interface CacheScaleOptions {
  /** ServiceAccounts in the cluster. @default {100000} */
  serviceAccounts?: number;
  /** Namespaces they are spread over. @default {1000} */
  namespaces?: number;
  /** Pods in the cluster for the Pod-watch run; 0 skips it. @default {100000} */
  pods?: number;
  /** Give up waiting for the first sync after this long. @default {120000} */
  timeoutMs?: number;
  /** Progress messages. @default {ignore} */
  progress?: (message: string) => void;
}

/** What the cache benchmark measured. */
export interface CacheScaleResult {
  readonly serviceAccounts: number;
  readonly namespaces: number;
  /** The list itself (all pages), from the service's `sa_cache_synced` line. */
  readonly firstSyncSeconds: number;
  /** From spawning the process to `sa_cache_synced` (includes process start-up). */
  readonly startToSyncedSeconds: number;
  /** List pages the service fetched. */
  readonly pages: number;
  /** RSS once synced (after 1 s to settle), MiB. */
  readonly rssAfterSyncMiB: number;
  /** Peak RSS during start-up and sync, MiB. */
  readonly peakRssMiB: number;
  /** RSS of the same service with no ServiceAccounts, MiB: the part that is not the cache. */
  readonly emptyRssMiB: number;
  /** The Pod-watch run (same ServiceAccounts plus Pods), or null when skipped. */
  readonly podWatch: PodWatchResult | null;
}

/** What the Pod-watch run measured. */
export interface PodWatchResult {
  readonly pods: number;
  /** The Pod list itself (all pages), from the service's `pod_cache_synced` line. */
  readonly firstSyncSeconds: number;
  readonly pages: number;
  /** RSS once both caches synced (after 1 s to settle), MiB. */
  readonly rssAfterSyncMiB: number;
  /** Peak RSS during start-up and both syncs, MiB. */
  readonly peakRssMiB: number;
  /** `rssAfterSyncMiB` minus the ServiceAccount-only run's: what the Pods cost. */
  readonly podCacheMiB: number;
}

/** The bearer token the benchmark's "pod" presents to the apiserver. */
const POD_TOKEN = "bench-pod-token";

interface Synced {
  readonly at: number;
  readonly durationMs: number;
  readonly pages: number;
  readonly count: number;
}

async function startAndSync(
  api: TestApiServer,
  dir: KeyDir,
  natsUrl: string,
  timeoutMs: number,
  caFile: string,
): Promise<{ synced: Synced; podsSynced: Synced; started: number; service: ServiceProcess }> {
  const synced = Promise.withResolvers<Synced>();
  const podsSynced = Promise.withResolvers<Synced>();
  const started = performance.now();
  const service = await ServiceProcess.start({
    // In-cluster, as the Helm chart deploys it: apiserver from KUBERNETES_SERVICE_HOST/PORT over
    // HTTPS with the cluster CA and the pod's bearer token (no kubeconfig, no client-node import).
    env: {
      K8S_IN_CLUSTER: "true",
      KUBERNETES_SERVICE_HOST: "127.0.0.1",
      KUBERNETES_SERVICE_PORT: new URL(api.url).port,
      K8S_CA_FILE: caFile,
      K8S_TOKEN_FILE: await dir.write("token", POD_TOKEN),
      JWKS_URL: `${api.url}/openid/v1/jwks`,
      JWT_ISSUER: ISSUER,
      NATS_URL: natsUrl,
      NATS_ACCOUNT: "APP",
      NATS_SIGNING_KEY_FILE: await dir.write("account.seed", accountKey().seed),
      LOG_LEVEL: "info",
    },
    waitReady: false,
    onLine: (line) => {
      const sa = line.includes('"sa_cache_synced"');
      if (!sa && !line.includes('"pod_cache_synced"')) return;
      const fields = JSON.parse(line) as Record<string, number>;
      (sa ? synced : podsSynced).resolve({
        at: performance.now(),
        durationMs: Number(fields.duration_ms),
        pages: Number(fields.pages),
        count: Number(sa ? fields.serviceaccounts : fields.pods),
      });
    },
  });
  const timer = setTimeout(() => {
    synced.reject(new Error(`no sa_cache_synced within ${timeoutMs} ms`));
    podsSynced.reject(new Error(`no pod_cache_synced within ${timeoutMs} ms`));
  }, timeoutMs);
  try {
    const [sa, pods] = await Promise.all([synced.promise, podsSynced.promise]);
    return { synced: sa, podsSynced: pods, started, service };
  } catch (err) {
    await service.stop();
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** Run the cache benchmark: its own apiserver, nats-server and two service processes, in turn. */
export async function runCacheScale(options: CacheScaleOptions = {}): Promise<CacheScaleResult> {
  const {
    serviceAccounts = 100_000,
    namespaces = 1000,
    pods = 100_000,
    timeoutMs = 120_000,
    progress = () => {},
  } = options;
  await using dir = await KeyDir.create();
  const key = await generateSigningKey("RS256");
  const tls = await createTestCertificates(dir.path);
  await using api = await TestApiServer.start({
    jwks: publicJwks([key]),
    issuer: ISSUER,
    tls,
    requireBearerToken: POD_TOKEN,
  });
  await using nats = await NatsServer.start();
  const settle = () => new Promise((r) => setTimeout(r, 1000));

  progress("cache: empty cluster");
  let emptyRssMiB: number;
  {
    const { service } = await startAndSync(api, dir, nats.url, timeoutMs, tls.caFile);
    await using _ = service;
    await settle();
    emptyRssMiB = (await service.stats()).rssMiB;
  }

  progress(`cache: ${serviceAccounts} ServiceAccounts`);
  api.bulkLoad(serviceAccounts, { namespaces });
  const { synced, started, service } = await startAndSync(
    api,
    dir,
    nats.url,
    timeoutMs,
    tls.caFile,
  );
  await using _ = service;
  if (synced.count !== serviceAccounts) {
    throw new Error(`service synced ${synced.count} ServiceAccounts, expected ${serviceAccounts}`);
  }
  await settle();
  const stats = await service.stats();
  await service.stop();

  let podWatch: PodWatchResult | null = null;
  if (pods > 0) {
    progress(`cache: ${serviceAccounts} ServiceAccounts and ${pods} Pods`);
    api.bulkLoad(pods, { namespaces, resource: "pods" });
    const run = await startAndSync(api, dir, nats.url, timeoutMs, tls.caFile);
    await using _pods = run.service;
    if (run.podsSynced.count !== pods) {
      throw new Error(`service synced ${run.podsSynced.count} Pods, expected ${pods}`);
    }
    await settle();
    const podStats = await run.service.stats();
    podWatch = {
      pods,
      firstSyncSeconds: run.podsSynced.durationMs / 1000,
      pages: run.podsSynced.pages,
      rssAfterSyncMiB: podStats.rssMiB,
      peakRssMiB: podStats.peakRssMiB,
      podCacheMiB: podStats.rssMiB - stats.rssMiB,
    };
  }
  return {
    serviceAccounts,
    namespaces,
    firstSyncSeconds: synced.durationMs / 1000,
    startToSyncedSeconds: (synced.at - started) / 1000,
    pages: synced.pages,
    rssAfterSyncMiB: stats.rssMiB,
    peakRssMiB: stats.peakRssMiB,
    emptyRssMiB,
    podWatch,
  };
}
