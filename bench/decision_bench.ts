/**
 * `deno bench` micro-benchmarks of one login decision, in-process (no server, no sockets): the
 * steps one by one and the whole callout handler, for a returning token (verified-token cache hit)
 * and a first-seen one (full RS256 verification). Run with `deno task bench:micro`.
 *
 * @module
 */
import { decodeAndVerifyNatsJwt, NkeyKeyCache } from "../lib/nkey_jwt.ts";
import { permissionsFor } from "../lib/policy.ts";
import { assertAllowed, createDecisionPipeline, POLICY } from "./inprocess.ts";

const p = await createDecisionPipeline();
assertAllowed(await p.cached(p.requests[0]!, undefined));
assertAllowed(await p.uncached(p.requests[0]!, undefined));
const keyCache = new NkeyKeyCache();
let i = 0;
const nextRequest = () => p.requests[i++ % p.requests.length]!;

Deno.bench("verify request JWT (ed25519, server key)", { group: "steps" }, async () => {
  await decodeAndVerifyNatsJwt(p.requestJwt, { keyCache });
});

Deno.bench("verify token, seen before (cache hit)", { group: "steps" }, async () => {
  await p.verifyCached(p.token);
});

Deno.bench("verify token, first seen (RS256)", { group: "steps" }, async () => {
  await p.verifyUncached(p.token);
});

Deno.bench("policy (permissions from annotations)", { group: "steps" }, () => {
  permissionsFor(p.serviceAccount, POLICY);
});

Deno.bench("sign user JWT + response JWT (2x ed25519)", { group: "steps" }, async () => {
  await p.signTwo();
});

Deno.bench("decision, token seen before", { group: "decision", baseline: true }, async () => {
  await p.cached(nextRequest(), undefined);
});

Deno.bench("decision, first-seen token", { group: "decision" }, async () => {
  await p.uncached(nextRequest(), undefined);
});
