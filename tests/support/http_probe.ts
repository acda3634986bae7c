/**
 * Probing a service process from the outside, as a kubelet would: pick a free port for it, then
 * wait until its `/readyz` answers 200.
 *
 * @module
 */
import { waitFor } from "./wait.ts";

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): number {
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
