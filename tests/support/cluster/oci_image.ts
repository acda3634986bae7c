/**
 * Container images without a registry: a directory tree becomes a one-layer OCI image archive that
 * `ctr -n k8s.io images import` takes, the way a test cluster gets its images here (no registry, no
 * podman, no Docker engine). Deterministic (files sorted, mtime 0, uid/gid 0), and cached outside
 * the repository by a key of everything that goes into it, so a second run imports the same file.
 *
 * The OCI image layout: `oci-layout`, `index.json` naming the manifest (annotated with the image
 * reference containerd files it under), `blobs/sha256/<digest>` for the manifest, the config and
 * the layer (an uncompressed tar). Spec: https://github.com/opencontainers/image-spec/blob/main/image-layout.md
 *
 * @module
 */
import { join } from "node:path";

/** One entry of an image's root file system. */
export type ImageEntry =
  /** A host file copied in (its mode kept unless `mode` is set). */
  | { readonly path: string; readonly from: string; readonly mode?: number }
  /** A file with this text. */
  | { readonly path: string; readonly text: string; readonly mode?: number }
  /** A symbolic link to `target`. */
  | { readonly path: string; readonly symlink: string }
  /** An empty directory (mode 0755, or 01777 for `tmp`-like directories with `mode`). */
  | { readonly path: string; readonly dir: true; readonly mode?: number };

/** What an image is made of; `ref` is how pods name it (`localhost/<name>:<tag>`). */
export interface ImageSpec {
  readonly ref: string;
  readonly entries: readonly ImageEntry[];
  readonly entrypoint?: readonly string[];
  readonly cmd?: readonly string[];
  readonly env?: readonly string[];
  /** `uid:gid` the image runs as unless the pod says otherwise. */
  readonly user?: string;
}

/** Where built archives are kept (`~/.cache/nats-k8s-oidc-callout/images`). */
export function imageCacheDir(): string {
  const base = Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME") ?? "/tmp"}/.cache`;
  return `${base}/nats-k8s-oidc-callout/images`;
}

async function sha256Hex(data: Uint8Array | string): Promise<string> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Host files up to this size are keyed by their content, larger ones by size and mtime. */
const HASHED_FILE_BYTES = 16 * 1024 * 1024;

/**
 * The cache key of a spec: its JSON with each copied host file replaced by its content hash (or,
 * for a large file such as the `deno` executable, its path, size and mtime).
 */
async function specKey(spec: ImageSpec): Promise<string> {
  const entries = [];
  for (const e of spec.entries) {
    if (!("from" in e)) {
      entries.push(e);
      continue;
    }
    const st = await Deno.stat(e.from);
    const source = st.size <= HASHED_FILE_BYTES
      ? await sha256Hex(await Deno.readFile(e.from))
      : `${e.from}:${st.size}:${st.mtime?.getTime()}`;
    entries.push({ path: e.path, mode: e.mode, source });
  }
  return (await sha256Hex(JSON.stringify({ ...spec, entries }))).slice(0, 16);
}

async function run(cmd: string, args: string[], cwd?: string): Promise<void> {
  const out = await new Deno.Command(cmd, {
    args,
    ...(cwd ? { cwd } : {}),
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/**
 * An exclusive lock on `path` (created if missing), released when disposed: one process at a time
 * builds a cached artefact.
 */
export async function lockFile(path: string): Promise<Disposable> {
  const file = await Deno.open(path, { create: true, write: true });
  await file.lock(true);
  return {
    [Symbol.dispose]() {
      file.unlockSync();
      file.close();
    },
  };
}

async function writeRootfs(dir: string, entries: readonly ImageEntry[]): Promise<void> {
  for (const e of entries) {
    const path = join(dir, e.path);
    await Deno.mkdir(join(path, ".."), { recursive: true });
    if ("dir" in e) {
      await Deno.mkdir(path, { recursive: true });
      await Deno.chmod(path, e.mode ?? 0o755);
    } else if ("symlink" in e) {
      await Deno.symlink(e.symlink, path);
    } else if ("from" in e) {
      await Deno.copyFile(e.from, path);
      if (e.mode !== undefined) await Deno.chmod(path, e.mode);
    } else {
      await Deno.writeTextFile(path, e.text);
      await Deno.chmod(path, e.mode ?? 0o644);
    }
  }
}

async function writeBlob(layout: string, bytes: Uint8Array): Promise<string> {
  const digest = await sha256Hex(bytes);
  await Deno.writeFile(`${layout}/blobs/sha256/${digest}`, bytes);
  return `sha256:${digest}`;
}

/**
 * Build `spec` into an OCI archive (or reuse the cached one) and return its path.
 *
 * @throws when `tar` fails or a host file is missing
 */
export async function buildImage(spec: ImageSpec): Promise<string> {
  const name = spec.ref.split("/").at(-1)!.split(":")[0]!;
  const out = `${imageCacheDir()}/${name}-${await specKey(spec)}.tar`;
  await Deno.mkdir(imageCacheDir(), { recursive: true });
  // One build of an image at a time: parallel test files may ask for the same one.
  using _lock = await lockFile(`${imageCacheDir()}/${name}.lock`);
  try {
    await Deno.stat(out);
    return out;
  } catch { /* build it */ }
  const work = await Deno.makeTempDir({ prefix: "oci-image-" });
  try {
    const rootfs = `${work}/rootfs`;
    await Deno.mkdir(rootfs);
    await writeRootfs(rootfs, spec.entries);
    const layout = `${work}/layout`;
    await Deno.mkdir(`${layout}/blobs/sha256`, { recursive: true });
    // GNU tar, deterministic: sorted names, mtime 0, root-owned.
    await run("tar", [
      "--sort=name",
      "--mtime=@0",
      "--owner=0",
      "--group=0",
      "--numeric-owner",
      "--format=posix",
      "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
      "-cf",
      `${work}/layer.tar`,
      "-C",
      rootfs,
      ".",
    ]);
    const layer = await Deno.readFile(`${work}/layer.tar`);
    const layerDigest = await writeBlob(layout, layer);
    const config = new TextEncoder().encode(JSON.stringify({
      architecture: "amd64",
      os: "linux",
      created: "1970-01-01T00:00:00Z",
      config: {
        Env: [
          "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
          ...spec.env ?? [],
        ],
        Entrypoint: spec.entrypoint ?? null,
        Cmd: spec.cmd ?? null,
        WorkingDir: "/",
        ...(spec.user ? { User: spec.user } : {}),
      },
      rootfs: { type: "layers", diff_ids: [layerDigest] },
      history: [{
        created: "1970-01-01T00:00:00Z",
        created_by: "tests/support/cluster/oci_image.ts",
      }],
    }));
    const configDigest = await writeBlob(layout, config);
    const manifest = new TextEncoder().encode(JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {
        mediaType: "application/vnd.oci.image.config.v1+json",
        digest: configDigest,
        size: config.length,
      },
      layers: [{
        mediaType: "application/vnd.oci.image.layer.v1.tar",
        digest: layerDigest,
        size: layer.length,
      }],
    }));
    const manifestDigest = await writeBlob(layout, manifest);
    const tag = spec.ref.split("/").at(-1)!.split(":")[1] ?? "latest";
    await Deno.writeTextFile(
      `${layout}/oci-layout`,
      JSON.stringify({ imageLayoutVersion: "1.0.0" }),
    );
    await Deno.writeTextFile(
      `${layout}/index.json`,
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: [{
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          digest: manifestDigest,
          size: manifest.length,
          platform: { architecture: "amd64", os: "linux" },
          annotations: {
            "io.containerd.image.name": spec.ref,
            "org.opencontainers.image.ref.name": tag,
          },
        }],
      }),
    );
    await run("tar", [
      "--sort=name",
      "--mtime=@0",
      "--owner=0",
      "--group=0",
      "-cf",
      `${out}.tmp`,
      "-C",
      layout,
      ".",
    ]);
    await Deno.rename(`${out}.tmp`, out);
    // Keep one archive per image name: older builds of it are never imported again.
    for await (const old of Deno.readDir(imageCacheDir())) {
      if (
        old.name.startsWith(`${name}-`) && old.name.endsWith(".tar") &&
        `${imageCacheDir()}/${old.name}` !== out
      ) {
        await Deno.remove(`${imageCacheDir()}/${old.name}`).catch(() => {});
      }
    }
    return out;
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}
