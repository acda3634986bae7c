/**
 * The workload of the token-rotation run (bench/token_rotation.ts), bundled into an image and run in
 * a pod: it connects with examples/deno_client.ts's `connectWithTokenFile` (the token file read on
 * every (re)connect, never giving up, the private inbox), answers requests on `<namespace>.echo` and
 * sends one request there every second, printing one JSON line per request and per connection event
 * and one when the token file's content changes (the kubelet's rotation).
 *
 * @module
 */
// deno-lint-ignore-file no-console -- a workload's output is its log
import { connectWithTokenFile, DEFAULT_TOKEN_FILE, tokenOwner } from "../examples/deno_client.ts";

function claimsOf(token: string): { iat?: number; exp?: number } {
  const payload = token.split(".")[1] ?? "";
  return JSON.parse(atob(payload.replaceAll("-", "+").replaceAll("_", "/")));
}

const log = (line: Record<string, unknown>) =>
  console.log(JSON.stringify({ t: Date.now(), ...line }));
const tokenFile = Deno.env.get("NATS_TOKEN_FILE") ?? DEFAULT_TOKEN_FILE;
const servers = Deno.env.get("NATS_URL") ?? "nats://nats:4222";
let token = Deno.readTextFileSync(tokenFile).trim();
const owner = tokenOwner(token);
log({ event: "token", ...claimsOf(token) });
const nc = await connectWithTokenFile({ servers, tokenFile, name: "rotation-client" });
log({ event: "connected" });
(async () => {
  for await (const s of nc.status()) {
    const detail = "error" in s ? (s.error as Error)?.message : "data" in s ? s.data : "";
    log({ event: s.type, data: String(detail ?? "") });
  }
})();
nc.subscribe(`${owner.namespace}.echo`, {
  callback: (_e, m) => {
    m.respond("pong");
  },
});
let n = 0;
setInterval(() => {
  const now = Deno.readTextFileSync(tokenFile).trim();
  if (now !== token) {
    token = now;
    log({ event: "token", ...claimsOf(token) });
  }
}, 1000);
setInterval(async () => {
  const i = ++n;
  try {
    const reply = await nc.request(`${owner.namespace}.echo`, String(i), { timeout: 3000 });
    log({ event: "request", i, ok: reply.string() === "pong" });
  } catch (err) {
    log({ event: "request", i, ok: false, error: (err as Error).message });
  }
}, 1000);
