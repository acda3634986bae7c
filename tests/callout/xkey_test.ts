import assert from "node:assert/strict";
import { createXkey } from "../../lib/callout/xkey.ts";
import { accountKey, curveKey } from "../support/nkeys.ts";

const te = new TextEncoder();
const td = new TextDecoder();

Deno.test("createXkey derives the same public key as @nats-io/nkeys", () => {
  const key = curveKey();
  assert.equal(createXkey(key.seed).publicKey, key.publicKey);
});

Deno.test("what we seal, @nats-io/nkeys' curve open() reads", () => {
  const ours = curveKey();
  const server = curveKey();
  const sealed = createXkey(ours.seed).seal(te.encode("eyJ response"), server.publicKey);
  assert.deepEqual(td.decode(sealed.subarray(0, 4)), "xkv1");
  const opened = server.pair.open(sealed, ours.publicKey);
  assert.ok(opened);
  assert.equal(td.decode(opened), "eyJ response");
});

Deno.test("what @nats-io/nkeys' curve seal() produces, we open", () => {
  const ours = curveKey();
  const server = curveKey();
  const xkey = createXkey(ours.seed, { maxPeers: 1 });
  for (const text of ["eyJ request", "another", ""]) {
    const sealed = server.pair.seal(te.encode(text), ours.publicKey);
    const opened = xkey.open(sealed, server.publicKey);
    assert.ok(opened, text);
    assert.equal(td.decode(opened), text);
  }
  // A second peer evicts the first from the bounded cache; both still work.
  const other = curveKey();
  assert.equal(
    td.decode(xkey.open(other.pair.seal(te.encode("b"), ours.publicKey), other.publicKey)!),
    "b",
  );
  assert.equal(
    td.decode(xkey.open(server.pair.seal(te.encode("a"), ours.publicKey), server.publicKey)!),
    "a",
  );
});

Deno.test("open() returns undefined for tampered, truncated, foreign or non-xkv1 input", () => {
  const ours = curveKey();
  const server = curveKey();
  const xkey = createXkey(ours.seed);
  const sealed = server.pair.seal(te.encode("eyJ request"), ours.publicKey);

  const tampered = sealed.slice();
  tampered[tampered.length - 1]! ^= 1;
  assert.equal(xkey.open(tampered, server.publicKey), undefined);
  assert.equal(xkey.open(sealed.subarray(0, 30), server.publicKey), undefined);
  assert.equal(xkey.open(new Uint8Array(0), server.publicKey), undefined);
  assert.equal(
    xkey.open(te.encode("eyJhbGciOi.not.sealed-but-long-enough-to-pass"), server.publicKey),
    undefined,
  );
  assert.equal(xkey.open(sealed, curveKey().publicKey), undefined, "wrong sender key");
  assert.equal(xkey.open(sealed, accountKey().publicKey), undefined, "not a curve key");
  assert.equal(xkey.open(sealed, "garbage"), undefined);
  assert.equal(td.decode(xkey.open(sealed, server.publicKey)!), "eyJ request", "still opens");
});

Deno.test("seal() to a non-curve key and a non-curve seed are TypeErrors", () => {
  const xkey = createXkey(curveKey().seed);
  assert.throws(() => xkey.seal(te.encode("x"), accountKey().publicKey), TypeError);
  assert.throws(() => createXkey(accountKey().seed), TypeError);
  assert.throws(() => createXkey("SXnonsense"), TypeError);
});
