/**
 * Probing a service process from the outside, as a kubelet would: pick a free port for it, then
 * wait until its `/readyz` answers 200.
 *
 * @module
 */
import { waitFor } from "./wait.ts";

/** The kernel's ephemeral range: what `port: 0` binds and outgoing connections take. */
function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = Deno.readTextFileSync("/proc/sys/net/ipv4/ip_local_port_range").trim()
      .split(/\s+/).map(Number);
    if (Number.isInteger(lo) && Number.isInteger(hi)) return [lo!, hi!];
  } catch {
    // not Linux, or /proc hidden: the IANA range
  }
  return [49152, 65535];
}

/**
 * A TCP port on 127.0.0.1 that was free a moment ago, for a process to bind later. Drawn at random
 * from below the kernel's ephemeral range: a port the kernel handed out for `port: 0` and released
 * at once was the next one it handed to some other test's server or outgoing connection in
 * between (a nats-server of a cluster then died with "address already in use"); below the range
 * only another caller of this function can collide, by drawing the same number.
 */
export function freePort(): number {
  const [ephemeralLow] = ephemeralRange();
  const low = 10_000;
  const high = Math.max(low + 1_000, ephemeralLow) - 1;
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low + 1));
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
      return port;
    } catch {
      // taken: draw again
    }
  }
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Wait until `http://127.0.0.1:<port>/readyz` answers 200. */
export async function waitReady(port: number, timeoutMs = 20_000): Promise<void> {
  await waitFor(async () => {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`);
    await res.body?.cancel();
    return res.status === 200;
  }, { timeoutMs, what: `/readyz 200 on port ${port}` });
}
