/**
 * Which name a NATS server's TLS certificate must carry, checked on every dial of the service's
 * connections (main and system).
 *
 * Why this exists (a runtime fact, nats-io/nats.js#303): nats.js's Node transport upgrades the
 * socket with `tls.connect({ socket, servername })` and no `host`; for an IP address it sends no
 * server name (SNI may not carry one), so under Deno the name checked is the default `localhost`.
 * A certificate for `IP:127.0.0.1` is then refused at `tls://127.0.0.1` ("Host: localhost. is not
 * cert's CN"), and any certificate of the trusted CA that names `localhost` is accepted for every
 * address. The chain is still verified by the TLS stack; only the name is checked here, with
 * `node:tls`'s own `checkServerIdentity` (IP SANs for an address, DNS names and wildcards for a
 * name), against the server being dialled — as nats.go does it: its `tlsName` when it has one (a
 * DNS name it was resolved from, or the name the first server was reached by, for addresses the
 * cluster announced), else the host of its URL. Proven against the `nats` CLI in
 * tests/nats/tls_identity_test.ts.
 *
 * @module
 */
import { checkServerIdentity, type PeerCertificate } from "node:tls";

/** The server nats.js is about to dial, as its `reconnectToServer` handler sees it. */
export interface DialTarget {
  /** The host of its URL: a DNS name or an address (IPv6 without brackets). */
  readonly hostname: string;
  /** The name to verify when it differs from `hostname`; empty when it does not. */
  readonly tlsName: string;
}

/**
 * The name `target`'s certificate must carry: its `tlsName`, else its host.
 *
 * @example
 * ```ts
 * import { expectedServerName } from "./tls_identity.ts";
 * console.assert(expectedServerName({ hostname: "127.0.0.1", tlsName: "" }) === "127.0.0.1");
 * console.assert(expectedServerName({ hostname: "10.0.0.7", tlsName: "nats" }) === "nats");
 * ```
 */
export function expectedServerName(target: DialTarget): string {
  return target.tlsName || target.hostname;
}

/** The name check of one connection: told which server is dialled, it checks that one's name. */
export interface ServerIdentity {
  /** Record the server about to be dialled (call from nats.js's `reconnectToServer`). */
  dialing(target: DialTarget): void;
  /**
   * `checkServerIdentity` for the TLS options: an error when the certificate does not name the
   * server being dialled. `host` is what the TLS stack would have checked; it is used only before
   * any dial was recorded.
   */
  readonly check: (host: string, cert: PeerCertificate) => Error | undefined;
}

/**
 * Create the name check of one connection. nats.js dials one server at a time per connection and
 * calls `reconnectToServer` right before each dial, so the last recorded target is the server
 * whose certificate is being checked.
 *
 * @example
 * ```ts
 * import { createServerIdentity } from "./tls_identity.ts";
 * const identity = createServerIdentity();
 * identity.dialing({ hostname: "127.0.0.1", tlsName: "" });
 * // then: connect({ tls: { caFile, checkServerIdentity: identity.check }, reconnectToServer… })
 * ```
 */
export function createServerIdentity(): ServerIdentity {
  let current: DialTarget | undefined;
  return {
    dialing(target) {
      current = { hostname: target.hostname, tlsName: target.tlsName };
    },
    check: (host, cert) => checkServerIdentity(current ? expectedServerName(current) : host, cert),
  };
}
