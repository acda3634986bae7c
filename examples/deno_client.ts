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
 * It answers requests on `<namespace>.echo`, sends itself one request through the private inbox,
 * prints the reply and exits 0. Outside this repository import `npm:@nats-io/transport-node` (or
 * `jsr:@nats-io/transport-deno`) instead of the bare specifier, which comes from deno.json.
 *
 * @module
 */
// deno-lint-ignore-file no-console -- an example program talks to its user on the console
import { connect, type NatsConnection, tokenAuthenticator } from "@nats-io/transport-node";

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

/** Options of {@linkcode connectWithTokenFile}. */
export interface TokenFileConnectOptions {
  /** NATS server URL(s). */
  servers: string | string[];
  /** The projected token file; read again on every (re)connect. */
  tokenFile: string;
  /** Client name shown in the server's connz. @default {"deno-example"} */
  name?: string;
}

/**
 * Connect with the token file as the credential. `tokenAuthenticator` gets a function, which
 * nats.js calls on every connect and reconnect, so a rotated token is picked up without a restart.
 */
export async function connectWithTokenFile(
  options: TokenFileConnectOptions,
): Promise<NatsConnection> {
  const { servers, tokenFile, name = "deno-example" } = options;
  const readToken = () => Deno.readTextFileSync(tokenFile).trim();
  const owner = tokenOwner(readToken());
  return await connect({
    servers,
    name,
    authenticator: tokenAuthenticator(readToken),
    inboxPrefix: inboxPrefix(owner),
    // Keep trying forever, also after "Authorization Violation": nats.js otherwise stops after the
    // same auth error twice in a row, which turns a token being rotated into a dead client.
    maxReconnectAttempts: -1,
    ignoreAuthErrorAbort: true,
  });
}

/** Answer one request on `<namespace>.echo` and send it through the private inbox. */
export async function echoOnce(nc: NatsConnection, owner: TokenOwner): Promise<string> {
  const subject = `${owner.namespace}.echo`;
  const sub = nc.subscribe(subject, {
    max: 1,
    callback: (err, msg) => {
      if (!err) msg.respond(`echo: ${msg.string()}`);
    },
  });
  try {
    const reply = await nc.request(subject, "hello", { timeout: 5000 });
    return reply.string();
  } finally {
    sub.unsubscribe();
  }
}

if (import.meta.main) {
  const servers = Deno.env.get("NATS_URL") ?? "nats://127.0.0.1:4222";
  const tokenFile = Deno.env.get("NATS_TOKEN_FILE") ?? DEFAULT_TOKEN_FILE;
  const owner = tokenOwner(Deno.readTextFileSync(tokenFile).trim());
  const nc = await connectWithTokenFile({ servers, tokenFile });
  console.log(
    `connected as ${owner.namespace}/${owner.serviceAccount}, inbox prefix ${inboxPrefix(owner)}`,
  );
  try {
    console.log(`reply: ${await echoOnce(nc, owner)}`);
  } finally {
    await nc.drain();
  }
}
