import assert from "node:assert/strict";
import { formatDuration, parseDuration } from "../../lib/core/duration.ts";

Deno.test("parseDuration reads every Go unit and combination", () => {
  const cases: [string, number][] = [
    ["15m", 900_000],
    ["1h30m", 5_400_000],
    ["90s", 90_000],
    ["500ms", 500],
    ["1.5h", 5_400_000],
    [".5s", 500],
    ["5.s", 5000],
    ["1h2m3s4ms", 3_723_004],
    ["100us", 0.1],
    ["100µs", 0.1],
    ["100μs", 0.1],
    ["2000000ns", 2],
    ["0", 0],
    ["+5s", 5000],
    ["-5s", -5000],
    ["0s", 0],
  ];
  for (const [text, ms] of cases) {
    assert.ok(Math.abs(parseDuration(text) - ms) < 1e-9, `${text} → ${parseDuration(text)}`);
  }
});

Deno.test("parseDuration rejects what Go rejects, quoting the input", () => {
  for (
    const text of ["", "soon", "15", "1x", "1 h", " 1h", "1h ", ".s", "h", "1.2.3s", "-", "1d"]
  ) {
    assert.throws(() => parseDuration(text), (err: unknown) => {
      assert.ok(err instanceof TypeError, `${JSON.stringify(text)} threw ${err}`);
      assert.ok(err.message.includes(`"${text}"`), err.message);
      return true;
    }, `accepted ${JSON.stringify(text)}`);
  }
});

Deno.test("parseDuration names an unknown unit", () => {
  assert.throws(() => parseDuration("3d"), /unknown unit "d"/);
});

Deno.test("parseDuration rejects values beyond Go's int64 range", () => {
  assert.throws(() => parseDuration("3000000h"), /out of range/);
});

Deno.test("formatDuration prints compact values that parse back", () => {
  const cases: [number, string][] = [
    [0, "0s"],
    [500, "500ms"],
    [90_000, "1m30s"],
    [5_400_000, "1h30m"],
    [900_000, "15m"],
    [86_400_000, "24h"],
    [1500, "1s500ms"],
    [-5000, "-5s"],
  ];
  for (const [ms, text] of cases) {
    assert.equal(formatDuration(ms), text);
    assert.equal(parseDuration(text), ms);
  }
});
