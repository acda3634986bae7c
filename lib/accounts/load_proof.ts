/**
 * Proof that the servers load the accounts the service pushes, for readiness. A full resolver
 * stores any well-formed account JWT it is sent; whether a server then *loads* the account is
 * decided later, when it validates the JWT against its trusted operators. nats-server 2.15.1
 * answers a push signed by an operator signing key its operator JWT does not list with
 * `jwt updated`, and then never loads the account: without this proof such a replica reported
 * ready and refused every namespace's login (`account_unavailable`) for good.
 *
 * The proof is a settle (lib/accounts/settle.ts) of one pushed account: loaded on some server, the
 * pushes work; `not_loaded` on every server, they do not, and the likely cause is named.
 *
 * @module
 */
import type { SettleResult } from "./settle.ts";

/** The proof's state; fed every settle outcome. */
export interface LoadProof {
  /** Why pushed accounts do not load, for readiness; `undefined` when proven or not yet known. */
  readonly problem: string | undefined;
  /** True while no settle has shown that a pushed account loads (a proof is worth running). */
  readonly unproven: boolean;
  /** Record the outcome of settling `account`. */
  observe(account: string, result: SettleResult): void;
}

/**
 * A proof for accounts signed by `operatorSigningKey` (its public key, named in the message).
 *
 * @example
 * ```ts
 * import { createLoadProof } from "./load_proof.ts";
 * const proof = createLoadProof("OABC");
 * proof.observe("AXYZ", { ok: false, message: "", missing: [{ server: "n1", gap: "not_loaded", importsIncomplete: false }] });
 * console.assert(proof.problem?.includes("OABC"));
 * proof.observe("AXYZ", { ok: true, servers: 1, rounds: 1, importsIncompleteOn: [] });
 * console.assert(proof.problem === undefined && !proof.unproven);
 * ```
 */
export function createLoadProof(operatorSigningKey: string): LoadProof {
  let proven = false;
  let problem: string | undefined;
  return {
    get problem() {
      return problem;
    },
    get unproven() {
      return !proven;
    },
    observe(account, result) {
      if (result.ok) {
        proven = true;
        problem = undefined;
        return;
      }
      // Loading on some server, or a server that did not answer: not this fault.
      if (result.missing.length === 0 || result.missing.some((m) => m.gap !== "not_loaded")) return;
      proven = false;
      problem = `the pushed account ${account} is on the resolver but ` +
        `${result.missing.map((m) => m.server).join(", ")} do not load it (not_loaded); most ` +
        "likely their " +
        `operator JWT does not list the operator signing key ${operatorSigningKey} ` +
        "(NATS_OPERATOR_SIGNING_KEY_FILE): add it (nsc edit operator --sk) and restart every " +
        "server with the new operator JWT — servers learn signing keys only from their operator " +
        "configuration";
    },
  };
}
