/**
 * `deno task bench:rotation` (issue 21, scenario g; ~14 minutes, not in `deno task test`): a
 * workload pod on a real kubelet with a projected token of `expirationSeconds: 600` stays connected
 * across the kubelet's rotation of its token file (at 80 %, ~480 s) and its user JWT's expiry (at the
 * token's `exp`, 600 s, where nats-server closes the connection with "User Authentication Expired"
 * and the client reconnects with the rotated token), doing a request/reply every second. Writes
 * `bench/results/token-rotation.json`: requests made and failed, connection events, token rotations
 * seen by the client.
 *
 *     deno task bench:rotation [--minutes=12] [--out=bench/results/token-rotation.json]
 *
 * @module
 */
// deno-lint-ignore-file no-console -- a benchmark reports on the console
import { parseArgs } from "node:util";
import { KubeCluster } from "../tests/support/cluster/cluster.ts";
import { clusterUnavailable } from "../tests/support/cluster/host.ts";
import { denoClientImage } from "../tests/support/cluster/images.ts";
import { installStack, rolledOut, stackImages, workload } from "../tests/support/cluster/stack.ts";

/** One line the workload printed (bench/rotation_client.ts). */
interface ClientLine {
  t: number;
  event: string;
  ok?: boolean;
  error?: string;
  iat?: number;
  exp?: number;
  data?: string;
}

/** What the run measured. */
export interface RotationResult {
  readonly minutes: number;
  readonly requests: number;
  readonly failed: number;
  readonly failures: readonly string[];
  readonly tokens: readonly {
    readonly at_s: number;
    readonly iat?: number;
    readonly exp?: number;
  }[];
  readonly events: readonly {
    readonly at_s: number;
    readonly event: string;
    readonly data?: string;
  }[];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      minutes: { type: "string", default: "12" },
      out: {
        type: "string",
        default: new URL("./results/token-rotation.json", import.meta.url).pathname,
      },
    },
  });
  const why = clusterUnavailable();
  if (why) throw new Error(`the rotation run needs a test cluster: ${why}`);
  const minutes = Number(values.minutes);
  const client = await denoClientImage("bench/rotation_client.ts", "localhost/rotation-client");
  await using cluster = await KubeCluster.start({ images: [...await stackImages(), client] });
  await installStack(cluster);
  await cluster.apply(workload({
    namespace: "team-a",
    name: "rotation",
    expirationSeconds: 600,
    image: client.ref,
  }));
  const [pod] = await rolledOut(cluster, "team-a", "rotation");
  const started = Date.now();
  console.log(`rotation client ${pod} running; waiting ${minutes} min`);
  while (Date.now() - started < minutes * 60_000) {
    await new Promise((r) => setTimeout(r, 30_000));
    const seen = await cluster.kubectl(["-n", "team-a", "logs", pod!, "--tail=1"]);
    console.log(`${Math.round((Date.now() - started) / 1000)} s: ${seen.trim()}`);
  }
  const lines = (await cluster.kubectl(["-n", "team-a", "logs", pod!, "--tail=-1"]))
    .split("\n").filter(Boolean).map((l) => {
      try {
        return JSON.parse(l) as ClientLine;
      } catch {
        return { t: 0, event: "output", data: l };
      }
    });
  const t0 = lines.find((l) => l.t > 0)?.t ?? started;
  const at = (t: number) => Math.round((t - t0) / 100) / 10;
  const requests = lines.filter((l) => l.event === "request");
  const result: RotationResult = {
    minutes,
    requests: requests.length,
    failed: requests.filter((l) => !l.ok).length,
    failures: requests.filter((l) => !l.ok).map((l) => `${at(l.t)} s: ${l.error ?? "wrong reply"}`),
    tokens: lines.filter((l) => l.event === "token").map((l) => ({
      at_s: at(l.t),
      ...(l.iat === undefined ? {} : { iat: l.iat }),
      ...(l.exp === undefined ? {} : { exp: l.exp }),
    })),
    events: lines.filter((l) => l.event !== "request" && l.event !== "token").map((l) => ({
      at_s: at(l.t),
      event: l.event,
      ...(l.data ? { data: l.data } : {}),
    })),
  };
  await Deno.writeTextFile(values.out!, JSON.stringify(result, null, 2) + "\n");
  console.log(JSON.stringify({ ...result, events: result.events.length }, null, 2));
}

if (import.meta.main) await main();
