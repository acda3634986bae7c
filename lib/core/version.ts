/**
 * The service's version, in one place: `--version`, the `starting` log line, the health body and
 * the `nats_k8s_oidc_callout_build_info` metric read it. Kept equal to deno.json's `version` (a
 * test checks).
 *
 * @module
 */

/** The service's release version. */
export const VERSION = "0.1.0";

/** The program name, as `--help` and `--version` print it. */
export const PROGRAM = "nats-k8s-oidc-callout";
