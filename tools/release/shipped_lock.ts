/**
 * The npm part of `deno.lock`, cut down to the packages that one entry point's module graph
 * reaches, so the release SBOM lists what the binary is built from and not what only the tests
 * and benchmarks use (`mqtt`, `pino`, …, which `deno.lock` also locks). The SBOM itself is made by
 * syft, which reads a `deno.lock`: this module only chooses which entries it sees.
 *
 * ```sh
 * deno info --json main.ts | deno run --allow-read=deno.lock tools/release/shipped_lock.ts deno.lock > scratch/deno.lock
 * ```
 *
 * @module
 */

/** The parts of `deno info --json` output this module reads. */
export interface DenoInfo {
  /** Every module of the graph; npm modules name their package (`name@version[_peer@version]`). */
  modules: ReadonlyArray<{ kind?: string; npmPackage?: string }>;
  /** The npm resolution: package id → the ids of its dependencies. */
  npmPackages: Readonly<Record<string, { dependencies: readonly string[] }>>;
}

/** The parts of a `deno.lock` (version 4 or 5) this module keeps. */
export interface DenoLock {
  version: string;
  npm?: Record<string, unknown>;
  [key: string]: unknown;
}

/**
 * The ids (`name@version`, with deno's `_peer@version` suffix where it has one) of every npm
 * package the graph of `info` reaches: the packages its modules import, and theirs, transitively.
 * Throws `TypeError` when `info` names a package its resolution does not hold.
 *
 * @example
 * ```ts
 * import { shippedPackages } from "./shipped_lock.ts";
 * const ids = shippedPackages({
 *   modules: [{ kind: "npm", npmPackage: "a@1.0.0" }],
 *   npmPackages: { "a@1.0.0": { dependencies: ["b@2.0.0"] }, "b@2.0.0": { dependencies: [] }, "c@3.0.0": { dependencies: [] } },
 * });
 * console.assert(ids.has("b@2.0.0") && !ids.has("c@3.0.0"));
 * ```
 */
export function shippedPackages(info: DenoInfo): Set<string> {
  const seen = new Set<string>();
  const pending = info.modules.flatMap((m) =>
    m.kind === "npm" && m.npmPackage ? [m.npmPackage] : []
  );
  for (let id = pending.pop(); id !== undefined; id = pending.pop()) {
    if (seen.has(id)) continue;
    const pkg = info.npmPackages[id];
    if (pkg === undefined) {
      throw new TypeError(`deno info names npm package ${id} but does not resolve it`);
    }
    seen.add(id);
    pending.push(...pkg.dependencies);
  }
  return seen;
}

/**
 * A copy of `lock` whose `npm` section holds only the packages in `keep`, and nothing else
 * (`specifiers`, `workspace`, `jsr`, `remote` are dropped: the copy is for an SBOM tool, not for
 * Deno). Throws `TypeError` when a kept package is missing from the lock: then the lock is not the
 * one the graph was resolved from.
 *
 * @example
 * ```ts
 * import { pruneLock } from "./shipped_lock.ts";
 * const lock = { version: "5", npm: { "a@1.0.0": {}, "c@3.0.0": {} }, specifiers: {} };
 * console.assert(Object.keys(pruneLock(lock, new Set(["a@1.0.0"])).npm ?? {}).join() === "a@1.0.0");
 * ```
 */
export function pruneLock(lock: DenoLock, keep: ReadonlySet<string>): DenoLock {
  const npm = lock.npm ?? {};
  const kept: Record<string, unknown> = {};
  for (const id of [...keep].sort()) {
    if (!(id in npm)) throw new TypeError(`npm package ${id} is not in the lock file`);
    kept[id] = npm[id];
  }
  return { version: lock.version, npm: kept };
}

if (import.meta.main) {
  const lockPath = Deno.args[0];
  if (lockPath === undefined) {
    throw new TypeError("usage: deno info --json main.ts | shipped_lock.ts deno.lock");
  }
  const info = JSON.parse(await new Response(Deno.stdin.readable).text()) as DenoInfo;
  const lock = JSON.parse(await Deno.readTextFile(lockPath)) as DenoLock;
  const pruned = pruneLock(lock, shippedPackages(info));
  await Deno.stdout.write(new TextEncoder().encode(JSON.stringify(pruned, null, 2) + "\n"));
}
