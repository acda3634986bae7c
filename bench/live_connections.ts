/**
 * 100,000 live connections through a real nats-server cluster with 3 service replicas and live
 * revocation on (issue 18): how much memory each replica keeps, how much CPU it burns while
 * nothing changes, and how long it takes from deleting the ServiceAccount that 10,000 of the
 * connections log in with to the last of them being kicked.
 *
 * Everything is on loopback. The clients are raw-protocol clients held open by
 * bench/hold_clients.ts processes, one per server: a process may hold at most 20,000 file
 * descriptors on this machine (RLIMIT_NOFILE's hard limit, which only CAP_SYS_RESOURCE could
 * raise), so 100,000 clients need at least 6 nats-servers and 6 generator processes (a 3-server
 * cluster holds at most about 59,000). Bounded: logins retry at most 5 times each, every wait
 * has a deadline, and everything stops at the end. Not part of `deno task test` or of the default
 * `deno task bench`: run with `deno run -A bench/live_connections.ts` (flags below).
 *
 * With `--before=DIR` another checkout's replicas join the same queue group (3 more), so the idle
 * CPU of the code before and after a change is measured in one run on the same connections'
 * share.
 *
 * @module
 */
import { NatsCluster } from "../tests/support/nats_cluster.ts";
import { authCalloutConfig } from "../tests/support/nats_server.ts";
import { accountKey, KeyDir } from "../tests/support/nkeys.ts";
import {
  generateSigningKey,
  ISSUER,
  mintServiceAccountToken,
  publicJwks,
} from "../tests/support/sa_tokens.ts";
import { TestApiServer } from "../tests/support/test_apiserver.ts";
import { findNatsServerPid, readProcStats } from "./proc.ts";
import { type ServiceImplementation, ServiceProcess } from "./service_process.ts";

/** Options of {@linkcode runLiveConnections}. */
export interface LiveConnectionsOptions {
  /** Client connections held open. @default {100000} */
  connections?: number;
  /** nats-servers in the cluster (at least connections / 19,000 here). @default {6} */
  servers?: number;
  /** Replicas of this checkout. @default {3} */
  replicas?: number;
  /** Connections of the one ServiceAccount that is deleted. @default {10000} */
  fleet?: number;
  /** Connections per other ServiceAccount (one bound Pod each). @default {100} */
  perServiceAccount?: number;
  /** Idle window over which CPU is measured. @default {30} */
  idleSeconds?: number;
  /** Another checkout whose replicas (as many) join the same queue group. @default {none} */
  before?: string;
  /** Logins in flight per generator process. @default {32} */
  concurrency?: number;
  /** Progress messages. @default {ignore} */
  progress?: (message: string) => void;
}

/** One replica's figures. */
export interface ReplicaFigures {
  readonly implementation: "now" | "before";
  /** Connections it remembers (`nats_auth_live_connections`) once every client is in. */
  readonly remembered: number;
  readonly rssMiB: number;
  readonly peakRssMiB: number;
  /** CPU over the idle window, as a share of one core, in per cent. */
  readonly idleCpuPercent: number;
  /** CPU during the login phase, in seconds. */
  readonly loginCpuSeconds: number;
  /** Kicks it sent for the deletion. */
  readonly kicks: number;
}

/** What {@linkcode runLiveConnections} measured. */
export interface LiveConnectionsResult {
  readonly connections: number;
  readonly servers: number;
  readonly serviceAccounts: number;
  readonly loadAverageAtStart: string;
  /** Clients in; clients that gave up after 5 attempts. */
  readonly connected: number;
  readonly gaveUp: number;
  readonly loginSeconds: number;
  readonly idleSeconds: number;
  readonly replicas: readonly ReplicaFigures[];
  /** nats-server RSS, summed over the cluster, with every client in. */
  readonly natsServersRssMiB: number;
  /** ServiceAccount deletion → the last of its connections closed. */
  readonly deletion: {
    readonly connections: number;
    readonly closed: number;
    /** Closes of other ServiceAccounts' connections meanwhile (should be 0). */
    readonly othersClosed: number;
    readonly lastKickSeconds: number;
  };
}

interface Generator {
  readonly child: Deno.ChildProcess;
  readonly lines: AsyncIterator<string>;
  readonly writer: WritableStreamDefaultWriter<Uint8Array>;
}

const encoder = new TextEncoder();

async function* linesOf(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    rest += chunk;
    let nl;
    while ((nl = rest.indexOf("\n")) >= 0) {
      yield rest.slice(0, nl);
      rest = rest.slice(nl + 1);
    }
  }
}

/** Read lines until one of `type` arrives (others go to `onOther`). */
async function expect(
  g: Generator,
  type: string,
  onOther: (line: Record<string, unknown>) => void = () => {},
): Promise<Record<string, unknown>> {
  for (;;) {
    const next = await g.lines.next();
    if (next.done) throw new Error(`generator ended before "${type}"`);
    const line = JSON.parse(next.value) as Record<string, unknown>;
    if (line.type === type) return line;
    onOther(line);
  }
}

/**
 * Start the world, log every client in, measure idle, delete the fleet's ServiceAccount, measure
 * until its last connection is closed, stop everything.
 */
export async function runLiveConnections(
  options: LiveConnectionsOptions = {},
): Promise<LiveConnectionsResult> {
  const {
    connections = 100_000,
    servers = 6,
    replicas = 3,
    fleet = 10_000,
    perServiceAccount = 100,
    idleSeconds = 30,
    before,
    concurrency = 32,
    progress = () => {},
  } = options;
  const loadAverageAtStart = Deno.loadavg().map((l) => l.toFixed(2)).join(" ");
  await using stack = new AsyncDisposableStack();
  const dir = stack.use(await KeyDir.create());

  // The cluster's ServiceAccounts: the fleet, then the rest in groups of perServiceAccount, ten
  // ServiceAccounts per namespace; one bound Pod and one token per ServiceAccount.
  const signingKey = await generateSigningKey("RS256");
  const api = stack.use(
    await TestApiServer.start({ jwks: publicJwks([signingKey]), issuer: ISSUER }),
  );
  const groups: { group: string; token: string; count: number }[] = [];
  const addGroup = async (namespace: string, name: string, count: number) => {
    const { uid } = api.upsertServiceAccount(namespace, name, {});
    const pod = api.upsertPod(namespace, `${name}-pod`);
    const token = await mintServiceAccountToken({
      key: signingKey,
      issuer: ISSUER,
      namespace,
      serviceAccount: name,
      uid,
      pod: { name: `${name}-pod`, uid: pod.uid },
    });
    groups.push({ group: `${namespace}/${name}`, token, count });
  };
  await addGroup("fleet", "worker", fleet);
  for (let i = 0, left = connections - fleet; left > 0; i++, left -= perServiceAccount) {
    await addGroup(`ns-${Math.floor(i / 10)}`, `sa-${i % 10}`, Math.min(perServiceAccount, left));
  }
  progress(`${groups.length} ServiceAccounts and Pods, tokens minted`);

  const account = accountKey();
  const { config, service: serviceUser, system } = authCalloutConfig({
    issuer: account.publicKey,
    timeoutSeconds: 2,
  });
  const cluster = stack.use(await NatsCluster.start({ config, probeUser: system, size: servers }));
  progress(`${servers}-server cluster up`);

  const seedFile = await dir.write("account.seed", account.seed);
  const kubeconfig = await dir.write("kubeconfig", api.kubeConfig().exportConfig());
  const startReplica = (i: number, implementation?: ServiceImplementation) => {
    const server = cluster.servers[i % servers]!;
    return ServiceProcess.start({
      env: {
        K8S_IN_CLUSTER: "false",
        KUBECONFIG: kubeconfig,
        JWKS_URL: `${api.url}/openid/v1/jwks`,
        JWT_ISSUER: ISSUER,
        NATS_URL: `nats://${serviceUser.user}:${serviceUser.password}@127.0.0.1:${server.port}`,
        NATS_ACCOUNT: "APP",
        NATS_SIGNING_KEY_FILE: seedFile,
        NATS_SYSTEM_USER: system.user,
        NATS_SYSTEM_PASSWORD: system.password,
        LOG_LEVEL: "warn",
      },
      readyTimeoutMs: 60_000,
      ...(implementation ? { implementation } : {}),
    });
  };
  const services: { implementation: "now" | "before"; process: ServiceProcess }[] = [];
  for (let i = 0; i < replicas; i++) {
    services.push({ implementation: "now", process: stack.use(await startReplica(i)) });
    if (before) {
      const root = before.endsWith("/") ? before : `${before}/`;
      services.push({
        implementation: "before",
        process: stack.use(await startReplica(i + replicas, { kind: "checkout", root })),
      });
    }
  }
  progress(`${services.length} replicas ready`);
  // A replica adopts what the servers already hold at its first check after it is ready; let that
  // pass with nothing to adopt, so each replica remembers what it approved itself.
  await new Promise((r) => setTimeout(r, 2000));

  // One generator per server, each client of a group on the next server in turn.
  const perGenerator = Array.from({ length: servers }, () => new Map<string, number>());
  const tokenOf = new Map(groups.map((g) => [g.group, g.token]));
  let n = 0;
  for (const g of groups) {
    for (let i = 0; i < g.count; i++, n++) {
      const share = perGenerator[n % servers]!;
      share.set(g.group, (share.get(g.group) ?? 0) + 1);
    }
  }
  const generators: Generator[] = [];
  for (const [i, share] of perGenerator.entries()) {
    const planFile = await dir.write(
      `plan-${i}.json`,
      JSON.stringify({
        port: cluster.servers[i]!.port,
        concurrency,
        groups: [...share].map(([group, count]) => ({ group, token: tokenOf.get(group)!, count })),
      }),
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net=127.0.0.1",
        "--allow-read",
        new URL("./hold_clients.ts", import.meta.url).pathname,
        planFile,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const writer = child.stdin.getWriter();
    stack.defer(async () => {
      await writer.write(encoder.encode("stop\n")).catch(() => {});
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await child.status;
      clearTimeout(timer);
    });
    generators.push({ child, lines: linesOf(child.stdout)[Symbol.asyncIterator](), writer });
  }

  const cpuBefore = await Promise.all(services.map((s) => s.process.stats()));
  const loginStarted = performance.now();
  const connectedLines = await Promise.all(
    generators.map((g, i) =>
      expect(g, "connected", (l) => {
        if (i === 0) progress(`generator 0: ${l.open} of ${l.of} in, ${l.failed} failed attempts`);
      })
    ),
  );
  const loginSeconds = (performance.now() - loginStarted) / 1000;
  const connected = connectedLines.reduce((sum, l) => sum + Number(l.open), 0);
  const gaveUp = connectedLines.reduce((sum, l) => sum + Number(l.gaveUp), 0);
  progress(`${connected} clients in after ${loginSeconds.toFixed(1)} s (${gaveUp} gave up)`);
  const cpuAfterLogins = await Promise.all(services.map((s) => s.process.stats()));

  // Let the last approvals and disconnect events settle, then the idle window.
  const remembered = async () =>
    await Promise.all(services.map((s) => s.process.metric("nats_auth_live_connections")));
  const deadline = Date.now() + 60_000;
  while ((await remembered()).reduce((a, b) => a + b, 0) < connected && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
  }
  await new Promise((r) => setTimeout(r, 5000));
  const idleStart = await Promise.all(services.map((s) => s.process.stats()));
  const idleStarted = performance.now();
  await new Promise((r) => setTimeout(r, idleSeconds * 1000));
  const idleEnd = await Promise.all(services.map((s) => s.process.stats()));
  const idleWall = (performance.now() - idleStarted) / 1000;
  const rememberedNow = await remembered();
  let natsServersRssMiB = 0;
  for (const s of cluster.servers) {
    const pid = await findNatsServerPid(s.port);
    if (pid !== undefined) natsServersRssMiB += (await readProcStats(pid)).rssMiB;
  }
  progress(`idle ${idleWall.toFixed(1)} s measured`);

  // Delete the fleet's ServiceAccount; follow the closes the generators see.
  const report = async () => {
    const lines = await Promise.all(generators.map(async (g) => {
      await g.writer.write(encoder.encode("report\n"));
      return await expect(g, "report");
    }));
    const closedBy = new Map<string, { count: number; lastAt: number }>();
    for (const l of lines) {
      for (
        const [group, c] of Object.entries(
          l.closed as Record<string, { count: number; lastAt: number }>,
        )
      ) {
        const sum = closedBy.get(group) ?? { count: 0, lastAt: 0 };
        closedBy.set(group, { count: sum.count + c.count, lastAt: Math.max(sum.lastAt, c.lastAt) });
      }
    }
    return closedBy;
  };
  const kicksBefore = await Promise.all(
    services.map((s) => s.process.metric("nats_auth_kicks_total")),
  );
  const fleetConnections = Math.min(fleet, connected);
  const deletedAt = Date.now();
  api.deleteServiceAccount("fleet", "worker");
  let closedBy = await report();
  const deleteDeadline = Date.now() + 120_000;
  while (
    (closedBy.get("fleet/worker")?.count ?? 0) < fleetConnections && Date.now() < deleteDeadline
  ) {
    await new Promise((r) => setTimeout(r, 250));
    closedBy = await report();
  }
  const fleetClosed = closedBy.get("fleet/worker") ?? { count: 0, lastAt: deletedAt };
  let othersClosed = 0;
  for (const [group, c] of closedBy) if (group !== "fleet/worker") othersClosed += c.count;
  await new Promise((r) => setTimeout(r, 2000));
  const kicksAfter = await Promise.all(
    services.map((s) => s.process.metric("nats_auth_kicks_total")),
  );
  progress(
    `deletion: ${fleetClosed.count} closed, last after ${
      (fleetClosed.lastAt - deletedAt) / 1000
    } s`,
  );

  const replicaFigures = services.map((s, i): ReplicaFigures => ({
    implementation: s.implementation,
    remembered: rememberedNow[i]!,
    rssMiB: idleEnd[i]!.rssMiB,
    peakRssMiB: idleEnd[i]!.peakRssMiB,
    idleCpuPercent: ((idleEnd[i]!.cpuSeconds - idleStart[i]!.cpuSeconds) / idleWall) * 100,
    loginCpuSeconds: cpuAfterLogins[i]!.cpuSeconds - cpuBefore[i]!.cpuSeconds,
    kicks: kicksAfter[i]! - kicksBefore[i]!,
  }));
  return {
    connections,
    servers,
    serviceAccounts: groups.length,
    loadAverageAtStart,
    connected,
    gaveUp,
    loginSeconds,
    idleSeconds: idleWall,
    replicas: replicaFigures,
    natsServersRssMiB,
    deletion: {
      connections: fleetConnections,
      closed: fleetClosed.count,
      othersClosed,
      lastKickSeconds: (fleetClosed.lastAt - deletedAt) / 1000,
    },
  };
}

/** The result as Markdown tables. */
export function renderLiveConnections(r: LiveConnectionsResult): string {
  const f = (x: number, d = 2) => x.toLocaleString("en-US", { maximumFractionDigits: d });
  const lines = [
    `| ${
      f(r.connections)
    } live connections, ${r.servers}-server cluster, ${r.serviceAccounts} ServiceAccounts (load ${r.loadAverageAtStart}) | |`,
    "|---|---:|",
    `| clients in / gave up after 5 attempts | ${f(r.connected)} / ${r.gaveUp} |`,
    `| login phase | ${f(r.loginSeconds, 1)} s |`,
    `| nats-servers' RSS, all together | ${f(r.natsServersRssMiB, 0)} MiB |`,
    `| ServiceAccount with ${f(r.deletion.connections)} connections deleted → last kick | ${
      f(r.deletion.lastKickSeconds)
    } s |`,
    `| its connections closed / other connections closed meanwhile | ${
      f(r.deletion.closed)
    } / ${r.deletion.othersClosed} |`,
    "",
    `| replica | connections remembered | RSS MiB (peak) | idle CPU over ${
      f(r.idleSeconds, 0)
    } s, % of a core | CPU s during logins | kicks sent |`,
    "|---|---:|---:|---:|---:|---:|",
  ];
  for (const x of r.replicas) {
    lines.push(
      `| ${x.implementation} | ${f(x.remembered)} | ${f(x.rssMiB, 1)} (${f(x.peakRssMiB, 1)}) | ${
        f(x.idleCpuPercent, 3)
      } | ${f(x.loginCpuSeconds, 1)} | ${f(x.kicks)} |`,
    );
  }
  return lines.join("\n") + "\n";
}

if (import.meta.main) {
  const { parseArgs } = await import("node:util");
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      connections: { type: "string" },
      servers: { type: "string" },
      replicas: { type: "string" },
      fleet: { type: "string" },
      "idle-seconds": { type: "string" },
      before: { type: "string" },
      out: { type: "string" },
    },
    strict: true,
  });
  const int = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  const opts: LiveConnectionsOptions = {
    progress: (m) => Deno.stderr.writeSync(encoder.encode(`[live] ${m}\n`)),
  };
  if (values.connections) opts.connections = int(values.connections)!;
  if (values.servers) opts.servers = int(values.servers)!;
  if (values.replicas) opts.replicas = int(values.replicas)!;
  if (values.fleet) opts.fleet = int(values.fleet)!;
  if (values["idle-seconds"]) opts.idleSeconds = int(values["idle-seconds"])!;
  if (values.before) opts.before = values.before;
  const result = await runLiveConnections(opts);
  const out = values.out ??
    new URL("./results/live-connections-latest.json", import.meta.url).pathname;
  await Deno.writeTextFile(out, JSON.stringify(result, null, 2) + "\n");
  Deno.stdout.writeSync(encoder.encode(renderLiveConnections(result)));
}
