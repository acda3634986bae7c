import assert from "node:assert/strict";
import { createLogger } from "../../lib/telemetry/log.ts";
import { createServiceMetrics } from "../../lib/telemetry/service_metrics.ts";
import {
  loadServiceAccountsFile,
  parseServiceAccounts,
  ServiceAccountsFileError,
  stableServiceAccountUid,
  startServiceAccountsFile,
} from "../../lib/cache/serviceaccounts_file.ts";
import { waitFor } from "../support/wait.ts";
import { assertEquals } from "../support/assert.ts";

/** The error `fn` throws, checked to be a `ServiceAccountsFileError`. */
function fileError(fn: () => unknown): ServiceAccountsFileError {
  try {
    fn();
  } catch (err) {
    assert(err instanceof ServiceAccountsFileError, String(err));
    return err;
  }
  throw new assert.AssertionError({ message: "expected a ServiceAccountsFileError" });
}

/** The rejection of `p`, checked to be an Error whose message includes `text`. */
async function rejection(p: Promise<unknown>, text: string): Promise<Error> {
  try {
    await p;
  } catch (err) {
    assert(err instanceof Error && err.message.includes(text), String(err));
    return err;
  }
  throw new assert.AssertionError({ message: `expected a rejection with "${text}"` });
}

const opts = { path: "sa.yaml", annotationPrefix: "nats.io/" };

Deno.test("a v1 List yields its ServiceAccounts with only the prefixed annotations", () => {
  const text = `apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: ServiceAccount
    metadata:
      name: orders
      namespace: team-a
      uid: 11111111-2222-3333-4444-555555555555
      annotations:
        nats.io/allowed-pub-subjects: "shared.orders.>"
        kubectl.kubernetes.io/last-applied-configuration: "{}"
  - apiVersion: v1
    kind: ServiceAccount
    metadata: {name: billing.worker, namespace: team-b}
`;
  const { records, skippedKinds } = parseServiceAccounts(text, opts);
  assertEquals(records, [
    {
      namespace: "team-a",
      name: "orders",
      uid: "11111111-2222-3333-4444-555555555555",
      annotations: { "nats.io/allowed-pub-subjects": "shared.orders.>" },
    },
    {
      namespace: "team-b",
      name: "billing.worker",
      uid: stableServiceAccountUid("team-b", "billing.worker"),
      annotations: {},
    },
  ]);
  assertEquals(skippedKinds, []);
});

Deno.test("multi-document YAML skips other kinds and empty documents, namespace defaults to default", () => {
  const text = `---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: app
---
# only a comment
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: app, namespace: other}
`;
  const { records, skippedKinds } = parseServiceAccounts(text, opts);
  assertEquals(records.map((r) => `${r.namespace}/${r.name}`), ["default/app", "other/app"]);
  assertEquals(skippedKinds, ["Deployment"]);
});

Deno.test("a single object and an empty file are both valid", () => {
  const one = parseServiceAccounts(
    "kind: ServiceAccount\nmetadata: {name: a, namespace: b}\n",
    opts,
  );
  assertEquals(one.records.length, 1);
  assertEquals(parseServiceAccounts("", opts).records, []);
  assertEquals(parseServiceAccounts("# nothing yet\n", opts).records, []);
});

Deno.test("JSON ServiceAccountList as the API returns it (items without kind) is accepted", () => {
  const json = JSON.stringify(
    {
      kind: "ServiceAccountList",
      apiVersion: "v1",
      items: [
        { metadata: { name: "a", namespace: "n1", uid: "u-1", annotations: { "nats.io/x": "y" } } },
        { metadata: { name: "b", namespace: "n2", uid: "u-2" } },
      ],
    },
    null,
    2,
  );
  const { records } = parseServiceAccounts(json, { ...opts, path: "sa.json" });
  assertEquals(records.map((r) => [r.namespace, r.name, r.uid, r.annotations]), [
    ["n1", "a", "u-1", { "nats.io/x": "y" }],
    ["n2", "b", "u-2", {}],
  ]);
});

Deno.test("derived UIDs are stable UUIDs that differ per ServiceAccount", () => {
  const a = stableServiceAccountUid("team-a", "orders");
  assertEquals(a, stableServiceAccountUid("team-a", "orders"));
  assert(a !== stableServiceAccountUid("team-b", "orders"));
  assert(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(a), a);
});

Deno.test("broken YAML is an error naming the file, line and column", () => {
  const text = "kind: ServiceAccount\nmetadata:\n  name: a: b\n";
  const err = fileError(() => parseServiceAccounts(text, opts));
  assertEquals([err.path, err.line, err.column], ["sa.yaml", 3, 9]);
  assertEquals(err.message, "sa.yaml:3:9: Nested mappings are not allowed in compact mappings");

  const unclosed = fileError(() =>
    parseServiceAccounts("kind: ServiceAccount\nmetadata:\n  annotations: {x: [1\n", opts)
  );
  assert(unclosed.message.startsWith(`sa.yaml:${unclosed.line}:${unclosed.column}: `));
  assert(!unclosed.message.includes("\n"), "one line, fit for a log field");
});

Deno.test("content problems name the line of the offending object", () => {
  const list = `kind: List
items:
  - kind: ServiceAccount
    metadata: {name: ok, namespace: a}
  - kind: ServiceAccount
    metadata: {namespace: a}
`;
  const missingName = fileError(() => parseServiceAccounts(list, opts));
  assertEquals(missingName.line, 5);
  assert(missingName.message.includes("metadata.name"), missingName.message);

  const noKind = fileError(() =>
    parseServiceAccounts(
      "kind: ServiceAccount\nmetadata: {name: a}\n---\nmetadata: {name: b}\n",
      opts,
    )
  );
  assertEquals(noKind.line, 4);
  assert(noKind.message.includes("no kind"), noKind.message);

  const twice = fileError(() =>
    parseServiceAccounts(
      "kind: ServiceAccount\nmetadata: {name: a}\n---\nkind: ServiceAccount\nmetadata: {name: a, namespace: default}\n",
      opts,
    )
  );
  assert(twice.message.includes("default/a is listed twice (first at line 1)"), twice.message);

  const wildcard = fileError(() =>
    parseServiceAccounts("kind: ServiceAccount\nmetadata: {name: a, namespace: '>'}\n", opts)
  );
  assert(wildcard.message.includes("invalid metadata.namespace"), wildcard.message);

  const numeric = fileError(() =>
    parseServiceAccounts(
      "kind: ServiceAccount\nmetadata:\n  name: a\n  annotations: {nats.io/x: 1}\n",
      opts,
    )
  );
  assert(numeric.message.includes(`annotation "nats.io/x" must be a string`), numeric.message);
});

Deno.test("loadServiceAccountsFile names a missing file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/nope.yaml`;
    const err = await rejection(
      loadServiceAccountsFile(path, { annotationPrefix: "nats.io/" }),
      "file not found",
    );
    assert(err instanceof ServiceAccountsFileError);
    assert(err.message.startsWith(`${path}: file not found`), err.message);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

function sa(namespace: string, name: string, annotations: Record<string, string> = {}): string {
  return JSON.stringify({ kind: "ServiceAccount", metadata: { name, namespace, annotations } });
}

function harness() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ level: "debug", write: (l) => lines.push(JSON.parse(l)) });
  const metrics = createServiceMetrics();
  return { lines, logger, metrics };
}

Deno.test("the live source follows writes and rename-over edits", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/serviceaccounts.yaml`;
  await Deno.writeTextFile(path, sa("team-a", "orders"));
  const { lines, logger, metrics } = harness();
  try {
    await using source = startServiceAccountsFile({
      path,
      annotationPrefix: "nats.io/",
      logger,
      metrics,
      debounceMs: 10,
    });
    await source.waitSynced();
    assert(source.synced);
    assertEquals(
      source.lookup("team-a", "orders")?.uid,
      stableServiceAccountUid("team-a", "orders"),
    );
    assertEquals(metrics.cacheSynced.value(), 1);
    assertEquals(metrics.cacheSize.value(), 1);

    // In-place write.
    await Deno.writeTextFile(path, `${sa("team-a", "orders")}\n---\n${sa("team-b", "billing")}\n`);
    await waitFor(() => source.lookup("team-b", "billing"), { what: "in-place edit" });
    assertEquals(source.size, 2);
    assertEquals(metrics.cacheSize.value(), 2);

    // Editor-style save: write a temp file, rename it over the original.
    await Deno.writeTextFile(`${dir}/.tmp-save`, sa("team-b", "billing", { "nats.io/x": "y" }));
    await Deno.rename(`${dir}/.tmp-save`, path);
    await waitFor(() => source.lookup("team-a", "orders") === undefined, { what: "rename-over" });
    assertEquals(source.lookup("team-b", "billing")?.annotations, { "nats.io/x": "y" });
    assert(lines.some((l) => l.event === "serviceaccounts_file_loaded" && l.serviceaccounts === 1));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a bad edit is logged with file and line and the previous snapshot stays", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/sa.yaml`;
  await Deno.writeTextFile(path, sa("team-a", "orders"));
  const { lines, logger, metrics } = harness();
  try {
    await using source = startServiceAccountsFile({
      path,
      annotationPrefix: "nats.io/",
      logger,
      metrics,
      debounceMs: 10,
    });
    await source.waitSynced();
    await Deno.writeTextFile(path, "kind: ServiceAccount\nmetadata:\n  name: [oops\n");
    const logged = await waitFor(
      () => lines.find((l) => l.event === "serviceaccounts_file_invalid"),
      { what: "invalid-file log line" },
    );
    assertEquals(logged.level, "error");
    assertEquals(logged.path, path);
    assertEquals(typeof logged.line, "number");
    assert(String(logged.error).startsWith(`${path}:${logged.line}:`), String(logged.error));
    assertEquals(logged.kept, 1);
    assert(source.lookup("team-a", "orders"), "old snapshot still answers");
    assertEquals(source.size, 1);
    assertEquals(metrics.cacheSynced.value(), 1);

    // Fixing the file is picked up again.
    await Deno.writeTextFile(path, sa("team-c", "fixed"));
    await waitFor(() => source.lookup("team-c", "fixed"), { what: "fixed file" });
    assertEquals(source.lookup("team-a", "orders"), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a file that does not exist yet keeps the source unsynced until it appears", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/later.yaml`;
  const { lines, logger, metrics } = harness();
  try {
    await using source = startServiceAccountsFile({
      path,
      annotationPrefix: "nats.io/",
      logger,
      metrics,
      debounceMs: 10,
    });
    await waitFor(() => lines.find((l) => l.event === "serviceaccounts_file_unreadable"));
    assertEquals(source.synced, false);
    assertEquals(metrics.cacheSynced.value(), 0);

    const aborted = new AbortController();
    const gaveUp = source.waitSynced(aborted.signal);
    aborted.abort(new Error("deadline"));
    await rejection(gaveUp, "deadline");

    const synced = source.waitSynced();
    await Deno.writeTextFile(path, sa("team-a", "orders"));
    await synced;
    assert(source.lookup("team-a", "orders"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("close() rejects pending waiters and stops watching", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const source = startServiceAccountsFile({
      path: `${dir}/missing.yaml`,
      annotationPrefix: "nats.io/",
      logger: createLogger({ write: () => {} }),
      metrics: createServiceMetrics(),
    });
    const pending = source.waitSynced();
    await source.close();
    await rejection(pending, "closed");
    await source.close(); // idempotent
    await rejection(source.waitSynced(), "closed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("every reload is counted in sa_file_reloads_total by result", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/sa.yaml`;
  const { lines, logger, metrics } = harness();
  const reloads = (result: string) => metrics.fileReloads.value({ result });
  try {
    await using source = startServiceAccountsFile({
      path,
      annotationPrefix: "nats.io/",
      logger,
      metrics,
      debounceMs: 10,
    });
    await waitFor(() => lines.some((l) => l.event === "serviceaccounts_file_unreadable"));
    assertEquals([reloads("ok"), reloads("error")], [0, 1]);

    await Deno.writeTextFile(path, sa("team-a", "orders"));
    await source.waitSynced();
    await waitFor(() => reloads("ok") >= 1, { what: "first good load counted" });

    await Deno.writeTextFile(path, "kind: ServiceAccount\nmetadata:\n  name: [oops\n");
    await waitFor(() => lines.some((l) => l.event === "serviceaccounts_file_invalid"));
    assert(reloads("error") >= 2, "the bad edit counts as an error");

    const okBefore = reloads("ok");
    await Deno.writeTextFile(path, sa("team-b", "billing"));
    await waitFor(() => source.lookup("team-b", "billing"), { what: "fixed file" });
    assert(reloads("ok") > okBefore, "the fix counts as ok");
    assert(
      metrics.registry.render().includes('sa_file_reloads_total{result="ok"}'),
      "exposed on /metrics",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
