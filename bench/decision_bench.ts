/**
 * `deno bench` micro-benchmarks of one login decision, in-process (no server, no sockets): the
 * steps one by one and the whole callout handler, for a returning token (verified-token cache hit)
 * and a first-seen one (full RS256 verification). Run with `deno task bench:micro`.
 *
 * @module
 */
import { decodeAndVerifyNatsJwt, NkeyKeyCache } from "../lib/callout/nkey_jwt.ts";
import { parsePolicy } from "../lib/decision/policy_file.ts";
import { permissionsFor, resolveSettings } from "../lib/decision/policy.ts";
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

// A cluster policy as docs/policy.md shows it, behind 100 namespace rules the lookup walks first.
const CLUSTER = parsePolicy(
  `defaults:
  annotations:
    allow: { pub: ["{namespace}.>", "shared.>"], sub: ["{namespace}.>", "shared.>"] }
    deny: [">", "$SYS.>", "$JS.API.>"]
  deny: { pub: ["{namespace}.internal.>"] }
  maxTokenLifetime: 24h
namespaces:
${
    Array.from({ length: 100 }, (_, n) => `  - names: [other-${n}]\n    connectionTypes: [MQTT]`)
      .join("\n")
  }
  - glob: "*"
    jetstream: { streams: ["{namespace}"], kv: ["{namespace}-config"] }
`,
  { path: "bench-policy.yaml", defaultAccount: "APP" },
).policy;

Deno.bench("policy with a cluster policy (resolve over 101 rules + bound + deny + JetStream)", {
  group: "steps",
}, () => {
  const { settings } = resolveSettings(CLUSTER, p.serviceAccount.namespace, p.serviceAccount.name);
  permissionsFor(p.serviceAccount, { ...POLICY, settings });
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
