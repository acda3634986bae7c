/**
 * The nats-server configuration of dev mode: config-mode auth callout (DESIGN §2) on loopback.
 * Accounts AUTH (the service's own user, which bypasses the callout via `auth_users`), APP (where
 * logged-in clients land) and SYS (the system account the callout needs). Every other client is
 * sent to the callout: there is no `no_auth_user` and no other user.
 *
 * @module
 */

/** Options of {@linkcode devNatsConfig}. */
export interface DevNatsConfigOptions {
  /** Client port; `-1` lets nats-server pick a free one (read it from the ports file). */
  port: number;
  /** Monitoring port; `-1` picks a free one. @default {-1} */
  monitorPort?: number;
  /** Public `A…` key of the service's account seed (`auth_callout.issuer`). */
  issuer: string;
  /** Password of the service's user `auth` in account AUTH. */
  servicePassword: string;
  /** The account clients are placed in. @default {"APP"} */
  account?: string;
  /** Directory nats-server writes its `<name>_<pid>.ports` file to. */
  portsFileDir: string;
  /** `authorization.timeout` in seconds: how long the server waits for the service. @default {2} */
  timeoutSeconds?: number;
}

/** The service's user in account AUTH. */
export const DEV_SERVICE_USER = "auth";

/**
 * Render the dev nats-server configuration. The result contains the service's password: write it
 * with mode 0600.
 *
 * @example
 * ```ts
 * import { devNatsConfig } from "./nats_conf.ts";
 * const conf = devNatsConfig({
 *   port: -1,
 *   issuer: "ABJHLOVMPA4CI6R5KLNGOB4GSLNIY7IOUPAJC4YFNDLQVIOBYQGUWVLA",
 *   servicePassword: "s3cret",
 *   portsFileDir: "/tmp/run",
 * });
 * console.assert(conf.includes("auth_callout"));
 * ```
 */
export function devNatsConfig(options: DevNatsConfigOptions): string {
  const {
    port,
    monitorPort = -1,
    issuer,
    servicePassword,
    account = "APP",
    portsFileDir,
    timeoutSeconds = 2,
  } = options;
  const q = (s: string) => JSON.stringify(s);
  return `# Written by \`deno task dev\` on every start; edits are overwritten.
server_name: "nats-k8s-oidc-callout-dev"
host: "127.0.0.1"
port: ${port}
http_port: ${monitorPort}
ports_file_dir: ${q(portsFileDir)}

accounts {
  AUTH {
    users: [ { user: ${q(DEV_SERVICE_USER)}, password: ${q(servicePassword)} } ]
  }
  ${q(account)} {}
  SYS {}
}
system_account: SYS

authorization {
  timeout: ${timeoutSeconds}
  auth_callout {
    issuer: ${q(issuer)}
    auth_users: [ ${q(DEV_SERVICE_USER)} ]
    account: AUTH
  }
}
`;
}
