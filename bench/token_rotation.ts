/**
 * `deno task bench:rotation` (issue 21, scenario g; ~14 minutes, not in `deno task test`): the
 * Deno client of docs/client-usage.md (`examples/deno_client.ts`, bundled into an image) runs in a
 * pod on a real kubelet with a projected token of `expirationSeconds: 600`, doing a request/reply
 * through its private inbox every second, across the kubelet's rotation of its token file (at 80 %,
 * ~480 s) and its user JWT's expiry (at the token's `exp`, 600 s, where nats-server closes the
 * connection with "User Authentication Expired" and the client reconnects with the rotated token).
 * Writes `bench/results/token-rotation.json`: requests answered and failed, the client's connection
 * events, and the token the pod held over time (read every 30 s).
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

/** What the run measured. */
export interface RotationResult {
  readonly minutes: number;
  /** Requests the client made (answered + failed). */
  readonly requests: number;
  readonly failed: number;
  readonly failures: readonly string[];
  /** The token in the pod, read every 30 s: when it changed (seconds since start) and its claims. */
  readonly tokens: readonly { readonly at_s: number; readonly iat: number; readonly exp: number }[];
  /** The client's connection events (`disconnect`, `reconnect`, `error`) with their detail. */
  readonly events: readonly { readonly at_s: number; readonly line: string }[];
}

function claimsOf(token: string): { iat: number; exp: number } {
  const payload = token.split(".")[1] ?? "";
  return JSON.parse(atob(payload.replaceAll("-", "+").replaceAll("_", "/")));
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
  const client = await denoClientImage("examples/deno_client.ts", "localhost/deno-client");
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
  const readToken = () =>
    cluster.kubectl([
      "-n",
      "team-a",
      "exec",
      pod!,
      "--",
      "/usr/local/bin/deno",
      "eval",
      "console.log(Deno.readTextFileSync('/var/run/secrets/nats/token'))",
    ]).then((t) => t.trim());
  const tokens: { at_s: number; iat: number; exp: number }[] = [];
  let last = "";
  console.log(`the Deno example client ${pod} is running; ${minutes} min`);
  while (Date.now() - started < minutes * 60_000) {
    const token = await readToken();
    if (token !== last) {
      last = token;
      tokens.push({ at_s: Math.round((Date.now() - started) / 1000), ...claimsOf(token) });
    }
    const seen = await cluster.kubectl(["-n", "team-a", "logs", pod!, "--tail=1"]);
    console.log(`${Math.round((Date.now() - started) / 1000)} s: ${seen.trim()}`);
    await new Promise((r) => setTimeout(r, 30_000));
  }
  // The client's stdout and stderr, each line with the kubelet's timestamp.
  const lines = (await cluster.kubectl(["-n", "team-a", "logs", pod!, "--tail=-1", "--timestamps"]))
    .split("\n").filter(Boolean).map((l) => {
      const space = l.indexOf(" ");
      return { t: Date.parse(l.slice(0, space)), text: l.slice(space + 1) };
    });
  const at = (t: number) => Math.round((t - started) / 100) / 10;
  const answered = lines.filter((l) => l.text.startsWith("reply: "));
  const failed = lines.filter((l) => l.text.startsWith("request failed"));
  const result: RotationResult = {
    minutes,
    requests: answered.length + failed.length,
    failed: failed.length,
    failures: failed.map((l) => `${at(l.t)} s: ${l.text}`),
    tokens,
    events: lines.filter((l) => /^(disconnect|reconnect|error):/.test(l.text))
      .map((l) => ({ at_s: at(l.t), line: l.text })),
  };
  await Deno.writeTextFile(values.out!, JSON.stringify(result, null, 2) + "\n");
  console.log(JSON.stringify(result, null, 2));
}

if (import.meta.main) await main();
