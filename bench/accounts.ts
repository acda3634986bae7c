/**
 * The cost of accounts that follow namespaces, on real parts (tests/support/provisioning_stack.ts:
 * a 3-server operator-mode cluster with a full resolver, the real kube-apiserver, one replica):
 * - the first login in a new Namespace, provisioning included: the Namespace, its ServiceAccount
 *   and a token are made, then the client connects at once (before the replica's next tick, the
 *   login itself usually pushes the account), against a second login in the same Namespace;
 * - `namespaces` Namespaces created at once: how long until every account is on the resolver;
 * - a replica started beside them: how long its reconcile takes when every account is already
 *   there (looked up, not pushed);
 * - a Namespace deleted: how long until its connection is closed (the account deleted on the
 *   resolver, which disconnects its clients), one connected Namespace at a time.
 *
 * Part of `deno task bench` (section `accounts`); alone: `deno run -A bench/accounts.ts`.
 *
 * @module
 */
import { ProvisioningStack } from "../tests/support/provisioning_stack.ts";
import { waitFor } from "../tests/support/wait.ts";

/** Options of {@linkcode runAccountsBench}. */
export interface AccountsBenchOptions {
  /** First logins measured, one new Namespace each. @default {20} */
  firstLogins?: number;
  /** Namespaces provisioned at once. @default {1000} */
  namespaces?: number;
  /** Namespaces deleted one at a time, each with one connection. @default {10} */
  deletions?: number;
  progress?: (message: string) => void;
}

/** What {@linkcode runAccountsBench} measured (milliseconds unless named otherwise). */
export interface AccountsBenchResult {
  readonly firstLogins: number;
  readonly firstLoginP50Ms: number;
  readonly firstLoginP90Ms: number;
  readonly firstLoginMaxMs: number;
  /** Of the first logins, how many pushed their account themselves (the rest found it pushed). */
  readonly firstLoginsThatPushed: number;
  readonly secondLoginP50Ms: number;
  readonly namespaces: number;
  /** From the first Namespace created to every account confirmed on the resolver. */
  readonly provisionAllSeconds: number;
  readonly provisionedPerSecond: number;
  /** A second replica's start-up reconcile of the same accounts (lookups, no pushes). */
  readonly reconcileExistingSeconds: number;
  readonly pushesByRestartedReplica: number;
  readonly deletions: number;
  /** From the Namespace's DELETE to its connection closed. */
  readonly deletionClosedP50Ms: number;
  readonly deletionClosedMaxMs: number;
}

const POLICY = `
namespaces:
  - glob: "b-*"
    namespaceAccount:
      limits: { connections: 100, subscriptions: 1000, payload: 1MiB }
      jetstream: { memory: 64MiB, disk: 1GiB, streams: 10, consumers: 100 }
`;

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

function metric(text: string, name: string): number {
  let total = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, "gm"))) {
    total += Number(m[1]);
  }
  return total;
}

/** Run the accounts section. */
export async function runAccountsBench(
  options: AccountsBenchOptions = {},
): Promise<AccountsBenchResult> {
  const { firstLogins = 20, namespaces = 1000, deletions = 10, progress = () => {} } = options;
  progress("accounts: starting a 3-server operator-mode cluster, kube-apiserver, one replica");
  await using stack = await ProvisioningStack.start({ policy: POLICY, jetstream: true });
  const metrics = async (i: number) =>
    await (await stack.replicas[i]!.service.handler(new Request("http://x/metrics"))).text();

  progress(`accounts: ${firstLogins} first logins in new Namespaces`);
  const first: number[] = [];
  const second: number[] = [];
  let pushedByLogin = 0;
  for (let i = 0; i < firstLogins; i++) {
    const ns = `b-first-${i}`;
    await stack.createNamespace(ns);
    await stack.kube.createServiceAccount(ns, "app");
    const token = await stack.token(ns, "app");
    const logs = stack.replicas[0]!.logs.length;
    const started = performance.now();
    // The caches hear of the ServiceAccount within milliseconds; until then a login is refused.
    const nc = await waitFor(() => stack.connect(token).catch(() => undefined), {
      intervalMs: 5,
      what: "first login",
    });
    first.push(performance.now() - started);
    const provisioned = stack.replicas[0]!.logs.slice(logs).find((l) =>
      l.event === "account_provisioned" && l.namespace === ns
    );
    const login = stack.replicas[0]!.logs.slice(logs).find((l) =>
      l.event === "login_allowed" && l.namespace === ns
    );
    if (provisioned && login && String(provisioned.ts) <= String(login.ts)) pushedByLogin++;
    await nc.close();
    const again = performance.now();
    const nc2 = await stack.connect(token);
    second.push(performance.now() - again);
    await nc2.close();
  }

  progress(`accounts: ${namespaces} Namespaces at once`);
  const started = performance.now();
  const names = Array.from({ length: namespaces }, (_, i) => `b-many-${i}`);
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < names.length) await stack.createNamespace(names[next++]!);
  }));
  const total = namespaces + firstLogins;
  await waitFor(async () => {
    const m = await metrics(0);
    return metric(m, "nats_auth_accounts") === total &&
      metric(m, "nats_auth_accounts_pending") === 0;
  }, { timeoutMs: 600_000, intervalMs: 200, what: `${total} accounts on the resolver` });
  const provisionAllSeconds = (performance.now() - started) / 1000;

  progress("accounts: a second replica reconciles the existing accounts");
  const restartStarted = performance.now();
  await stack.startReplica();
  await waitFor(async () => {
    const m = await metrics(1);
    return metric(m, "nats_auth_accounts") === total &&
      metric(m, "nats_auth_accounts_pending") === 0;
  }, { timeoutMs: 600_000, intervalMs: 200, what: "the second replica reconciled" });
  const reconcileExistingSeconds = (performance.now() - restartStarted) / 1000;
  const m1 = await metrics(1);

  const deleted = Math.min(deletions, firstLogins);
  progress(`accounts: ${deleted} Namespaces deleted, one connection each`);
  const closedAfter: number[] = [];
  for (let i = 0; i < deleted; i++) {
    const ns = `b-first-${i}`;
    const nc = await waitFor(
      async () => stack.connect(await stack.token(ns, "app")).catch(() => undefined),
      { what: `login before deleting ${ns}` },
    );
    const closed = nc.closed().then(() => performance.now());
    const started = performance.now();
    await stack.deleteNamespace(ns);
    closedAfter.push(await closed - started);
  }

  const round = (n: number, d = 1) => Math.round(n * 10 ** d) / 10 ** d;
  return {
    firstLogins,
    firstLoginP50Ms: round(percentile(first, 50)),
    firstLoginP90Ms: round(percentile(first, 90)),
    firstLoginMaxMs: round(Math.max(...first)),
    firstLoginsThatPushed: pushedByLogin,
    secondLoginP50Ms: round(percentile(second, 50)),
    namespaces,
    provisionAllSeconds: round(provisionAllSeconds, 2),
    provisionedPerSecond: round(namespaces / provisionAllSeconds, 0),
    reconcileExistingSeconds: round(reconcileExistingSeconds, 2),
    pushesByRestartedReplica: metric(m1, "nats_auth_accounts_provisioned_total") +
      metric(m1, "nats_auth_accounts_updated_total"),
    deletions: deleted,
    deletionClosedP50Ms: round(percentile(closedAfter, 50)),
    deletionClosedMaxMs: round(Math.max(...closedAfter)),
  };
}

if (import.meta.main) {
  const result = await runAccountsBench({
    progress: (m) => Deno.stderr.writeSync(new TextEncoder().encode(`[bench] ${m}\n`)),
  });
  const out = new URL("./results/accounts.json", import.meta.url).pathname;
  await Deno.writeTextFile(
    out,
    JSON.stringify(
      { date: new Date().toISOString(), deno: Deno.version.deno, ...result },
      null,
      2,
    ) +
      "\n",
  );
  // deno-lint-ignore no-console
  console.log(JSON.stringify(result, null, 2));
}
