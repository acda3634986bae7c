/**
 * `deno bench` of xkey sealing on the login path: opening one request and sealing one reply to the
 * same server key, with our per-peer shared-key cache (lib/callout/xkey.ts) and with `@nats-io/nkeys`'
 * curve key pair, which runs the X25519 step of a full NaCl box on every call. Run with
 * `deno bench -A bench/xkey_bench.ts`.
 *
 * @module
 */
import { createCurve, fromCurveSeed } from "@nats-io/nkeys";
import { createXkey } from "../lib/callout/xkey.ts";

const ours = createCurve();
const server = createCurve();
const ourSeed = new TextDecoder().decode(ours.getSeed());
const request = new TextEncoder().encode("eyJ".padEnd(1200, "x")); // a request JWT's size
const reply = new TextEncoder().encode("eyJ".padEnd(900, "y"));
const sealedRequest = server.seal(request, ours.getPublicKey());
const serverKey = server.getPublicKey();

const cached = createXkey(ourSeed);
const nkeysPair = fromCurveSeed(ours.getSeed());

Deno.bench("open request + seal reply, shared key cached (lib/callout/xkey.ts)", {
  group: "xkey",
  baseline: true,
}, () => {
  if (!cached.open(sealedRequest, serverKey)) throw new Error("open failed");
  cached.seal(reply, serverKey);
});

Deno.bench("open request + seal reply, @nats-io/nkeys curve pair", { group: "xkey" }, () => {
  if (!nkeysPair.open(sealedRequest, serverKey)) throw new Error("open failed");
  nkeysPair.seal(reply, serverKey);
});
