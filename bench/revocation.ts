/**
 * Revocation latency (issue 9 §4): `clients` connections, each of its own ServiceAccount; the
 * ServiceAccounts are deleted one at a time and the time from the deletion (the apiserver's
 * answer) to the client seeing its connection closed is measured. Without live revocation a
 * deletion reached an open connection only when its user JWT expired (5 minutes with the old
 * default).
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { percentile } from "./login_client.ts";
import { tolerateClientResets } from "../tests/support/nats_server.ts";
import { Stack } from "../tests/support/stack.ts";
import { waitFor } from "../tests/support/wait.ts";

/** Options of {@linkcode runRevocation}. */
export interface RevocationBenchOptions {
  /** Connections (and ServiceAccounts) to revoke. @default {100} */
  clients?: number;
  /** Progress messages. @default {ignore} */
  progress?: (message: string) => void;
}

/** What one revocation run measured. */
export interface RevocationResult {
  readonly clients: number;
  /** Connections closed by a kick. */
  readonly revoked: number;
  /** Connections still open 10 s after their ServiceAccount was deleted. */
  readonly notRevoked: number;
  /** Milliseconds from the deletion to the client's close, p50/p90/p99/max. */
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** Run the scenario once; see the module doc. */
export async function runRevocation(
  options: RevocationBenchOptions = {},
): Promise<RevocationResult> {
  const { clients = 100, progress = () => {} } = options;
  using _resets = tolerateClientResets();
  await using stack = await Stack.start({ captureLogs: false, revocation: true });
  const conns: NatsConnection[] = [];
  progress(`revocation: connecting ${clients} clients, one ServiceAccount each`);
  for (let i = 0; i < clients; i++) {
    stack.addServiceAccount("bench-revoke", `sa-${i}`);
  }
  for (let i = 0; i < clients; i++) {
    const token = await stack.token("bench-revoke", `sa-${i}`);
    conns.push(
      await waitFor(() => stack.connect(token).catch(() => undefined), {
        timeoutMs: 10_000,
        what: `client ${i}`,
      }),
    );
  }
  const latencies: number[] = [];
  let notRevoked = 0;
  progress(`revocation: deleting ${clients} ServiceAccounts one at a time`);
  for (let i = 0; i < clients; i++) {
    // A random pause, so deletions fall at every phase of the service's 500 ms check.
    await new Promise((r) => setTimeout(r, Math.random() * 600));
    const nc = conns[i]!;
    const closed = nc.closed().then(() => performance.now());
    const start = performance.now();
    stack.api.deleteServiceAccount("bench-revoke", `sa-${i}`);
    const timeout = new Promise<undefined>((r) => setTimeout(r, 10_000, undefined));
    const end = await Promise.race([closed, timeout]);
    if (end === undefined) notRevoked++;
    else latencies.push(end - start);
  }
  latencies.sort((a, b) => a - b);
  return {
    clients,
    revoked: latencies.length,
    notRevoked,
    p50Ms: percentile(latencies, 50),
    p90Ms: percentile(latencies, 90),
    p99Ms: percentile(latencies, 99),
    maxMs: latencies.length ? Math.max(...latencies) : 0,
  };
}
