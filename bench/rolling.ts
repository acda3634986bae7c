/**
 * Lost logins in a rolling restart (issue 9 §1): two replicas in one queue group under steady
 * login load; replica B starts while its apiserver is unreachable (for `outageMs`), then both are
 * restarted one after the other, `rounds` times, as a Deployment's RollingUpdate does. Every
 * refused or failed valid login is counted: a replica that cannot decide must stay out of the
 * group, so the figure should be 0. Replicas run in this process (the count, not speed, is
 * measured here).
 *
 * @module
 */
import { loadConfig } from "../lib/config/config.ts";
import { silentLogger } from "../lib/telemetry/log.ts";
import { type Service, startService } from "../lib/service/service.ts";
import { LoginLoad } from "../tests/support/login_load.ts";
import { tolerateClientResets } from "../tests/support/nats_server.ts";
import { Stack } from "../tests/support/stack.ts";
import { TcpProxy } from "../tests/support/tcp_proxy.ts";
import { waitFor } from "../tests/support/wait.ts";

/** Options of {@linkcode runRollingRestart}. */
export interface RollingOptions {
  /** Rolling restarts of both replicas. @default {2} */
  rounds?: number;
  /** How long replica B's apiserver stays unreachable after B starts. @default {3000} */
  outageMs?: number;
  /** Parallel login loops. @default {4} */
  workers?: number;
  /** Progress messages. @default {ignore} */
  progress?: (message: string) => void;
}

/** What one rolling-restart run measured. */
export interface RollingResult {
  readonly rounds: number;
  readonly outageSeconds: number;
  readonly seconds: number;
  readonly attempts: number;
  readonly ok: number;
  /** Valid logins answered `Authorization Violation` (refused, or unanswered). */
  readonly refused: number;
  /** Valid logins that failed otherwise (timeouts, connection errors). */
  readonly otherFailures: number;
}

/** Run the scenario once; see the module doc. */
export async function runRollingRestart(options: RollingOptions = {}): Promise<RollingResult> {
  const { rounds = 2, outageMs = 3000, workers = 4, progress = () => {} } = options;
  using _resets = tolerateClientResets(); // refused logins reset their sockets
  await using stack = await Stack.start({ captureLogs: false });
  stack.addServiceAccount("bench", "rolling");
  const token = await stack.token("bench", "rolling");
  await waitFor(
    () => stack.connect(token).then((nc) => nc.close().then(() => true), () => false),
    { timeoutMs: 10_000, what: "first login" },
  );
  const api = new URL(stack.api.url);
  await using proxy = TcpProxy.start(
    { hostname: api.hostname, port: Number(api.port) },
    { blocked: true },
  );
  const proxyUrl = `http://127.0.0.1:${proxy.port}`;
  const dir = await Deno.makeTempDir({ prefix: "bench-rolling-" });
  const kubeconfig = `${dir}/kubeconfig`;
  await Deno.writeTextFile(
    kubeconfig,
    stack.api.kubeConfig().exportConfig().replaceAll(stack.api.url, proxyUrl),
  );
  const envB = { ...stack.env, KUBECONFIG: kubeconfig, JWKS_URL: `${proxyUrl}/openid/v1/jwks` };
  const start = async (env: Record<string, string>): Promise<Service> => {
    const service = await startService({ config: loadConfig(env), logger: silentLogger() });
    return service;
  };
  const ready = (s: Service) => waitFor(() => s.ready, { timeoutMs: 30_000, what: "replica" });

  const started = performance.now();
  const load = LoginLoad.start(stack.nats.url, () => token, { workers });
  let a = stack.service;
  let b: Service | undefined;
  try {
    progress(`rolling: replica B starts during a ${outageMs} ms apiserver outage`);
    b = await start(envB);
    await new Promise((r) => setTimeout(r, outageMs));
    proxy.blocked = false;
    await ready(b);
    for (let round = 1; round <= rounds; round++) {
      progress(`rolling: restart round ${round}/${rounds}`);
      await a.close();
      a = await start(stack.env);
      await ready(a);
      await b.close();
      b = await start(envB);
      await ready(b);
    }
  } finally {
    await load.stop();
    await a.close();
    await b?.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  const { ok, refused, other } = load.counts;
  return {
    rounds,
    outageSeconds: outageMs / 1000,
    seconds: (performance.now() - started) / 1000,
    attempts: load.attempts,
    ok,
    refused,
    otherFailures: Object.values(other).reduce((x, y) => x + y, 0),
  };
}
