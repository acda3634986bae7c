/**
 * `deno bench` of one log line: lib/telemetry/log.ts against pino 9 (the evaluated replacement for the
 * design card's `@std/log`, which is on unreachable JSR), both writing to a sink that drops the
 * line, with the fields of a `login_allowed` line. pino is configured as close to ours as it
 * goes: ISO time, level names, message key `event`, and path redaction of the secret keys this
 * line could carry. Run with `deno bench -A bench/log_bench.ts`.
 *
 * Result (2-core machine, Deno 2.9.6, pino 9.14.0; avg / p75 per line): lib/telemetry/log.ts 12.5 / 3.8 µs,
 * pino with path redaction 30.6 / 12.0 µs, pino without redaction 10.6 / 4.5 µs; a skipped debug
 * line costs ~25 ns in both. Decision: keep lib/telemetry/log.ts. Cost is the smallest reason:
 * - pino does not load under the service's own flags: at import it reads `NODE_V8_COVERAGE`
 *   (on-exit-leak-free) and calls `os.hostname()`, so the `start` task and the compiled binary
 *   die with `NotCapable` unless `--allow-env=NODE_V8_COVERAGE --allow-sys=hostname` are added.
 * - Its redaction is by path (`token`, `*.token`): a secret key one level deeper
 *   (`deep.a.token`) is written in clear, a URL password inside a string value
 *   (`nats://u:pw@h`) is not masked, and an Error is serialized with its `stack`, which repeats
 *   the message (and any URL password in it) even when `err.message` is redacted. lib/telemetry/log.ts
 *   redacts secret-named keys at any depth up to 4, masks URL userinfo in every string, and writes
 *   errors as `{name, message, code}`; pino would need our redaction as a custom serializer, so
 *   our code again, plus pino.
 * - With the redaction it has, it is 2.4× slower per line than ours.
 *
 * @module
 */
import pino from "npm:pino@9.14.0";
import { createLogger } from "../lib/telemetry/log.ts";

const FIELDS = {
  server: "nats-0",
  server_id: "NCXJ6PKOEAWUXWMX3CGQ3R7CKS6GXCWM4L2TFKGVUOC7LRKMTFKLPQKS",
  client_host: "10.1.2.3",
  client_cid: 4242,
  client_kind: "Client",
  encrypted: true,
  user: "system:serviceaccount:team-a:orders",
  namespace: "team-a",
  serviceaccount: "orders",
  expires_at: 1_800_000_000,
  duration_ms: 0.42,
};

const ours = createLogger({ level: "info", write: () => {} });
const sink = { write: (_line: string) => {} };
const pinoOptions = {
  level: "info",
  messageKey: "event",
  base: null,
  timestamp: pino.stdTimeFunctions.isoTime,
  formatters: { level: (label: string) => ({ level: label }) },
};
const pinoRedacting = pino({
  ...pinoOptions,
  redact: {
    paths: ["token", "password", "seed", "jwt", "pass", "*.token", "*.password", "*.seed"],
    censor: "[redacted]",
  },
}, sink);
const pinoPlain = pino(pinoOptions, sink);

Deno.bench("lib/telemetry/log.ts: info line (redaction of every key and URL)", {
  group: "line",
  baseline: true,
}, () => {
  ours.info("login_allowed", FIELDS);
});

Deno.bench("pino: info line, path redaction", { group: "line" }, () => {
  pinoRedacting.info(FIELDS, "login_allowed");
});

Deno.bench("pino: info line, no redaction", { group: "line" }, () => {
  pinoPlain.info(FIELDS, "login_allowed");
});

Deno.bench("lib/telemetry/log.ts: debug line at info (skipped)", { group: "skipped" }, () => {
  ours.debug("login_granted", FIELDS);
});

Deno.bench("pino: debug line at info (skipped)", { group: "skipped" }, () => {
  pinoRedacting.debug(FIELDS, "login_granted");
});
