/**
 * A NATS client that logs in with its Kubernetes ServiceAccount token — the pattern every client of
 * nats-k8s-oidc-callout should follow:
 *
 * 1. Read the token **file** on every connect and reconnect, never once at start: the kubelet
 *    rewrites the projected token before it expires, and the server closes a connection when its
 *    user JWT runs out; the reconnect must present the new token.
 * 2. Never give up reconnecting, also not after authorization errors (a rotated token or a
 *    ServiceAccount that is being recreated heals by itself).
 * 3. Use the private inbox prefix `_INBOX_<namespace>_<serviceaccount with . → _>` for
 *    request/reply, so replies to you cannot be read by other ServiceAccounts.
 *
 * Run it (dev mode prints a token file path; in a pod the defaults fit a projected token mounted
 * at /var/run/secrets/nats/token):
 *
 * ```sh
 * NATS_URL=nats://127.0.0.1:4222 NATS_TOKEN_FILE=.dev/tokens/team-a_orders.jwt \
 *   deno run --allow-net --allow-env --allow-read examples/deno_client.ts
 * ```
 *
 * It answers requests on `<namespace>.echo` and sends itself one request a second through the
 * private inbox, printing each reply, until SIGTERM or SIGINT. Outside this repository import
 * `npm:@nats-io/transport-node` (or `jsr:@nats-io/transport-deno`) instead of the bare specifier,
 * which comes from deno.json.
 *
 * @module
 */
// deno-lint-ignore-file no-console -- an example program talks to its user on the console
import { connect, delay, tokenAuthenticator } from "@nats-io/transport-node";

/** Where Kubernetes puts the projected token in the Deployment shown in docs/client-usage.md. */
export const DEFAULT_TOKEN_FILE = "/var/run/secrets/nats/token";

/** The ServiceAccount a token belongs to, read from its (unverified) claims. */
export interface TokenOwner {
  namespace: string;
  serviceAccount: string;
}

/**
 * Read namespace and ServiceAccount from a token's `kubernetes.io` claim. No verification: the
 * server-side service verifies; the client only needs the names to build its inbox prefix.
 */
export function tokenOwner(token: string): TokenOwner {
  const payload = token.split(".")[1];
  if (!payload) throw new TypeError("token is not a JWT");
  const json = atob(payload.replaceAll("-", "+").replaceAll("_", "/"));
  const claims = JSON.parse(json) as {
    "kubernetes.io"?: { namespace?: string; serviceaccount?: { name?: string } };
  };
  const namespace = claims["kubernetes.io"]?.namespace;
  const serviceAccount = claims["kubernetes.io"]?.serviceaccount?.name;
  if (!namespace || !serviceAccount) {
    throw new TypeError("token has no kubernetes.io namespace/serviceaccount claims");
  }
  return { namespace, serviceAccount };
}

/**
 * The private inbox prefix the service grants to this ServiceAccount. Dots in the name become
 * underscores, so SA `foo`'s prefix is not a prefix of SA `foo.bar`'s.
 */
export function inboxPrefix(owner: TokenOwner): string {
  return `_INBOX_${owner.namespace}_${owner.serviceAccount.replaceAll(".", "_")}`;
}

if (import.meta.main) {
  const servers = Deno.env.get("NATS_URL") ?? "nats://127.0.0.1:4222";
  const tokenFile = Deno.env.get("NATS_TOKEN_FILE") ?? DEFAULT_TOKEN_FILE;

  // docs:start connect
  // Under Deno, nats.js's Node transport can raise the socket reset of a refused reconnect as an
  // uncaught error after it has handled it; absorb exactly that, or the process ends.
  globalThis.addEventListener("error", (event) => {
    if (event.error?.code === "ECONNRESET") event.preventDefault();
  });
  // On every connect and reconnect. It must not throw: nats.js closes the connection for good when
  // the authenticator throws (a token file missing for a moment would end the client).
  const readToken = () => {
    try {
      return Deno.readTextFileSync(tokenFile).trim();
    } catch (err) {
      console.error(`reading NATS token: ${err}`);
      return ""; // refused, and tried again
    }
  };
  const owner = tokenOwner(readToken());
  const nc = await connect({
    servers,
    name: `${owner.namespace}/${owner.serviceAccount}`,
    authenticator: tokenAuthenticator(readToken),
    inboxPrefix: inboxPrefix(owner),
    // Never give up: nats.js otherwise stops after the same authorization error twice in a row,
    // which turns a token being rotated into a dead client, and after a refused first connect.
    maxReconnectAttempts: -1,
    ignoreAuthErrorAbort: true,
    waitOnFirstConnect: true,
  });
  // docs:end connect
  console.log(
    `starting as ${owner.namespace}/${owner.serviceAccount}, inbox prefix ${inboxPrefix(owner)}`,
  );
  (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect" || s.type === "reconnect" || s.type === "error") {
        console.error(`${s.type}: ${"error" in s ? s.error : s.server}`);
      }
    }
  })();

  const stop = new AbortController();
  const onSignal = () => stop.abort();
  Deno.addSignalListener("SIGTERM", onSignal);
  Deno.addSignalListener("SIGINT", onSignal);
  const subject = `${owner.namespace}.echo`;
  nc.subscribe(subject, {
    callback: (err, msg) => {
      if (!err) msg.respond(`echo: ${msg.string()}`);
    },
  });
  for (let n = 1; !stop.signal.aborted; n++) {
    try {
      const reply = await nc.request(subject, `ping ${n}`, { timeout: 2000 });
      console.log(`reply: ${reply.string()}`);
    } catch (err) {
      console.error(`request failed: ${err}`);
    }
    await delay(1000);
  }
  await nc.drain();
  Deno.removeSignalListener("SIGTERM", onSignal);
  Deno.removeSignalListener("SIGINT", onSignal);
  console.log("stopped");
}
