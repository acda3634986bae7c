/**
 * The permissions of the service process, in one place. Deno fixes them on the command line: the
 * `start` and `explain` tasks of deno.json run `main.ts` with them, and the `compile` task bakes
 * them into the image's binary. Those three command lines are written from this module by
 * `deno task permissions` (tools/permissions.ts), and tests/config/permissions_test.ts fails while
 * deno.json differs from it, so a new variable in lib/config/variables.ts cannot be forgotten in
 * one task. Nothing here runs in the service.
 *
 * @module
 */
import { CONFIG_ENV_VARS } from "./variables.ts";

/**
 * Every environment variable the process may read: the configuration's, which include what the
 * kubelet sets in every pod (`KUBERNETES_SERVICE_HOST`/`PORT`) and what locates a kubeconfig out of
 * cluster (`KUBECONFIG`, `HOME`). Nothing else reads the environment: `main.ts` hands it to
 * `loadConfig` once, and `--ignore-env` makes any other variable a dependency asks for read as
 * unset instead of failing.
 */
export const PROCESS_ENV_VARS: readonly string[] = CONFIG_ENV_VARS;

/**
 * What the image may read: the pod's ServiceAccount token and CA (`/var/run/secrets`), the chart's
 * secret mounts (`/etc/nats`, `/secrets`), and one directory for the files an operator mounts
 * (`/etc/nats-k8s-oidc-callout`: `JWKS_PATH`, `SERVICEACCOUNTS_FILE`, `POLICY_FILE`).
 */
export const IMAGE_READ_PATHS: readonly string[] = Object.freeze([
  "/var/run/secrets",
  "/etc/nats",
  "/secrets",
  "/etc/nats-k8s-oidc-callout",
]);

/**
 * The cloud metadata endpoints the image may never reach (AWS IPv4 and IPv6, GCP): its network
 * access is otherwise unscoped, because the NATS servers, the apiserver and the JWKS host are
 * chosen at deploy time and a compiled binary's permissions are fixed at build time.
 */
export const DENIED_METADATA_HOSTS: readonly string[] = Object.freeze([
  "169.254.169.254",
  "[fd00:ec2::254]",
  "metadata.google.internal",
]);

/** A task's scoped permission flags: flag name (`allow-env`) → the values it lists. */
export type TaskPermissions = Readonly<Record<string, readonly string[]>>;

/**
 * The scoped flags of each deno.json task that runs the service. `start` and `explain` run from
 * source, where the files and hosts are the developer's (their `--allow-read` and `--allow-net` are
 * unscoped); `compile` is the image, which reads only its mounts. Every other flag of these tasks
 * (V8 flags, `--ignore-env`, `--frozen`, output paths) is written in deno.json itself.
 */
export const TASK_PERMISSIONS: Readonly<Record<string, TaskPermissions>> = Object.freeze({
  start: Object.freeze({ "allow-env": PROCESS_ENV_VARS }),
  explain: Object.freeze({ "allow-env": PROCESS_ENV_VARS }),
  compile: Object.freeze({
    "deny-net": DENIED_METADATA_HOSTS,
    "allow-read": IMAGE_READ_PATHS,
    "allow-env": PROCESS_ENV_VARS,
  }),
});
