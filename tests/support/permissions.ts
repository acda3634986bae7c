/**
 * Probing what a connected NATS client may do, as a user would find out: publish and see whether
 * the server reports a permissions violation.
 *
 * @module
 */
import type { NatsConnection, Status } from "@nats-io/transport-node";
import { waitFor } from "./wait.ts";

/** Collect the asynchronous errors (permission violations) a connection reports from now on. */
export function errorsOf(nc: NatsConnection): Error[] {
  const errors: Error[] = [];
  void (async () => {
    for await (const s of nc.status() as AsyncIterable<Status>) {
      if (s.type === "error") errors.push(s.error);
    }
  })();
  return errors;
}

/** Publish on `subject` and return the permissions violation the server reports for it. */
export async function publishRefused(nc: NatsConnection, subject: string): Promise<string> {
  const errors = errorsOf(nc);
  nc.publish(subject, "no");
  await nc.flush();
  const err = await waitFor(() => errors.find((e) => e.name === "PermissionViolationError"), {
    timeoutMs: 2000,
    what: `permissions violation for ${subject}`,
  });
  return err.message;
}
