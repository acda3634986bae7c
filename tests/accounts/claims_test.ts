/** The pure parts of accounts that follow namespaces: derived keys, the plan, the JWT content. */
import assert from "node:assert/strict";
import { decode } from "@nats-io/jwt";
import { createOperator } from "@nats-io/nkeys";
import { accountContent, activationClaims, signAccount } from "../../lib/accounts/claims.ts";
import { deriveAccountKeys, KeyRing } from "../../lib/accounts/keys.ts";
import { type NamespaceFacts, planAccounts } from "../../lib/accounts/plan.ts";
import { nkeySignerFromSeed } from "../../lib/callout/nkey_jwt.ts";
import { parsePolicy } from "../../lib/decision/policy_file.ts";

const ROOT = new Uint8Array(32).fill(9);
const POLICY = parsePolicy(
  `
namespaces:
  - glob: "team-*"
    namespaceAccount:
      limits: { connections: 5, payload: 1MiB }
      jetstream: { disk: 1GiB, streams: 3 }
      exports:
        - service: "{namespace}.api.>"
          to: [team-b]
  - names: [shared]
    connectionTypes: [STANDARD]
`,
  { path: "policy.yaml", defaultAccount: "AAPP", namespaceAccountsUnavailable: undefined },
).policy;

function ns(name: string, uid: string, extra: Partial<NamespaceFacts> = {}): NamespaceFacts {
  return { name, uid, createdAt: 1_700_000_000, labels: {}, deleting: false, ...extra };
}

const NAMESPACES = [ns("team-a", "uid-a"), ns("team-b", "uid-b"), ns("shared", "uid-s")];

Deno.test("keys: the same root and uid give the same account; another uid or root another one", () => {
  const a = deriveAccountKeys(ROOT, "uid-a");
  assert.equal(a.account, deriveAccountKeys(ROOT, "uid-a").account);
  assert.equal(a.signer.publicKey, deriveAccountKeys(ROOT, "uid-a").signer.publicKey);
  assert.notEqual(a.account, deriveAccountKeys(ROOT, "uid-a2").account);
  assert.notEqual(a.account, deriveAccountKeys(new Uint8Array(32), "uid-a").account);
  assert.notEqual(a.account, a.signer.publicKey, "the identity key never signs users");
  assert.match(a.account, /^A[A-Z2-7]{55}$/);
});

Deno.test("plan: namespaces of a namespaceAccount rule get accounts; the importer gets the export", () => {
  const plans = planAccounts({
    policy: POLICY,
    namespaces: NAMESPACES,
    keysFor: (uid) => new KeyRing(ROOT).keysFor(uid),
  });
  assert.deepEqual([...plans.keys()], ["team-a", "team-b"], "shared stays in a shared account");
  const b = plans.get("team-b")!;
  assert.deepEqual(
    b.imports.map((i) => [i.kind, i.subject, i.exporter.namespace]),
    [["service", "team-a.api.>", "team-a"]],
  );
  assert.deepEqual(plans.get("team-a")!.imports, [], "team-a is not named in its own export");
  const deleting = planAccounts({
    policy: POLICY,
    namespaces: [ns("team-a", "uid-a", { deleting: true }), ns("team-b", "uid-b")],
    keysFor: (uid) => deriveAccountKeys(ROOT, uid),
  });
  assert.deepEqual([...deleting.keys()], ["team-b"], "a Namespace being deleted has no account");
  assert.deepEqual(deleting.get("team-b")!.imports, [], "nor exports to import");
});

Deno.test("content: pure (same plan, same claims, id and bytes), every limit written, valid for nats-io/jwt", async () => {
  const plan = () =>
    planAccounts({
      policy: POLICY,
      namespaces: NAMESPACES,
      keysFor: (u) => deriveAccountKeys(ROOT, u),
    })
      .get("team-b")!;
  const one = await accountContent(plan());
  const two = await accountContent(plan());
  assert.deepEqual(one, two);
  const operator = nkeySignerFromSeed(new TextDecoder().decode(createOperator().getSeed()));
  const jwt = await signAccount(one, 1_700_000_000, operator);
  assert.equal(jwt, await signAccount(two, 1_700_000_000, operator), "byte-identical JWTs");
  const limits = (one.claims.nats as { limits: Record<string, unknown> }).limits;
  assert.deepEqual(limits, {
    subs: -1,
    data: -1,
    payload: 1_048_576,
    imports: -1,
    exports: -1,
    wildcards: true,
    conn: 5,
    leaf: -1,
    mem_storage: 0,
    disk_storage: 1_073_741_824,
    streams: 3,
    consumer: -1,
  });
  // The reference decoder verifies the signature and reads it as an account JWT.
  const decoded = await decode<{ imports?: { token?: string }[] }>(jwt);
  assert.equal(decoded.iss, operator.publicKey);
  assert.equal(decoded.nats.imports?.length, 1);
  const activation = await decode<{ subject: string; issuer_account: string }>(
    decoded.nats.imports![0]!.token!,
  );
  assert.equal(activation.nats.subject, "team-a.api.>");
  assert.equal(activation.nats.issuer_account, deriveAccountKeys(ROOT, "uid-a").account);
  assert.ok(activation.iat > 0, "an activation without iat counts as revoked");
  assert.deepEqual(
    activationClaims(plan().keys.account, plan().imports[0]!),
    activationClaims(plan().keys.account, plan().imports[0]!),
  );
});

Deno.test("content: a policy edit changes the content id; an unrelated Namespace does not", async () => {
  const keysFor = (u: string) => deriveAccountKeys(ROOT, u);
  const before = await accountContent(
    planAccounts({ policy: POLICY, namespaces: NAMESPACES, keysFor }).get("team-a")!,
  );
  const more = planAccounts({
    policy: POLICY,
    namespaces: [...NAMESPACES, ns("other", "uid-o")],
    keysFor,
  }).get("team-a")!;
  assert.equal((await accountContent(more)).jti, before.jti);
  const edited = parsePolicy(
    `namespaces:\n  - glob: "team-*"\n    namespaceAccount: { limits: { connections: 6 } }\n`,
    { path: "p.yaml", defaultAccount: "AAPP", namespaceAccountsUnavailable: undefined },
  ).policy;
  const after = planAccounts({ policy: edited, namespaces: NAMESPACES, keysFor }).get("team-a")!;
  assert.notEqual((await accountContent(after)).jti, before.jti);
});
