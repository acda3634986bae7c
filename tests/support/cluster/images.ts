/**
 * The images a test cluster runs, built here from what is on the machine (no registry):
 *
 * - `localhost/pause:local`: the pod sandbox (pause.c, `gcc -static`).
 * - `localhost/coredns:local`: CoreDNS from `tools/coredns` (static).
 * - `localhost/nats-server:local`: nats-server, the host's version, built static from its Go module.
 * - `localhost/nats-box:local`: Debian's busybox-static and the `nats` CLI (static), for workloads and
 *   the chart's `helm test`. Like many `nats` CLI images it sets neither `USER` nor
 *   `XDG_CONFIG_HOME`, so whatever uses it must not rely on them.
 * - `localhost/nats-k8s-oidc-callout:<hash>`: the service as the Containerfile's final stage ships
 *   it, minus `denort` (which cannot be downloaded here): the same minified bundle
 *   (`deno task bundle`), run by the `deno` executable with exactly the compile task's permission
 *   and V8 flags, on a root file system of only what it needs (the C libraries `ldd` names, CA
 *   certificates, `/etc/passwd` with uid 65532), as uid 65532.
 *
 * @module
 */
import { imageCacheDir, type ImageSpec, lockFile } from "./oci_image.ts";
import { imageEntry, imageRunArgs, ROOT } from "../start_task.ts";

async function output(cmd: string, args: string[], env?: Record<string, string>): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args,
    ...(env ? { env } : {}),
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout).trim();
}

/** `tools/build.sh <name>`: a Go program of the repository, built once and cached. */
export async function toolBinary(name: string): Promise<string> {
  return await output("bash", [`${ROOT}tools/build.sh`, name]);
}

/** `go install module@version` built static (`CGO_ENABLED=0`) into the cache; the binary's path. */
async function staticGoBinary(module: string, version: string, binary: string): Promise<string> {
  const dir = `${imageCacheDir()}/go-${binary}-${version}`;
  const path = `${dir}/${binary}`;
  await Deno.mkdir(imageCacheDir(), { recursive: true });
  using _lock = await lockFile(`${dir}.lock`);
  try {
    await Deno.stat(path);
    return path;
  } catch { /* build it */ }
  await output("go", ["install", `${module}@${version}`], {
    ...Deno.env.toObject(),
    CGO_ENABLED: "0",
    GOBIN: dir,
    GOFLAGS: "-mod=mod",
  });
  return path;
}

/** The version of the host's nats-server (`v2.15.1`): the image runs the same release. */
async function hostNatsServerVersion(): Promise<string> {
  const text = await output("nats-server", ["--version"]);
  const m = text.match(/v\d+\.\d+\.\d+\S*/);
  if (!m) throw new Error(`nats-server --version: ${text}`);
  return m[0];
}

/** The version of the host's `nats` CLI (`v0.5.1`). */
async function hostNatsCliVersion(): Promise<string> {
  const text = await output("nats", ["--version"]);
  const m = text.match(/\d+\.\d+\.\d+\S*/);
  if (!m) throw new Error(`nats --version: ${text}`);
  return `v${m[0]}`;
}

const PASSWD = [
  "root:x:0:0:root:/root:/sbin/nologin",
  "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin",
  "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin",
  "",
].join("\n");
const GROUP = ["root:x:0:", "nobody:x:65534:", "nonroot:x:65532:", ""].join("\n");

const BASE_ENTRIES = [
  { path: "etc/passwd", text: PASSWD },
  { path: "etc/group", text: GROUP },
  { path: "tmp", dir: true as const, mode: 0o1777 },
  { path: "home/nonroot", dir: true as const },
] as const;

/** The pod sandbox image. */
export async function pauseImage(): Promise<ImageSpec> {
  const bin = `${imageCacheDir()}/pause`;
  const src = `${ROOT}tests/support/cluster/pause.c`;
  const fresh = await Deno.stat(bin).then(
    async (b) => (b.mtime?.getTime() ?? 0) >= ((await Deno.stat(src)).mtime?.getTime() ?? 0),
    () => false,
  );
  if (!fresh) {
    await Deno.mkdir(imageCacheDir(), { recursive: true });
    using _lock = await lockFile(`${bin}.lock`);
    await output("gcc", ["-static", "-Os", "-o", `${bin}.tmp`, src]);
    await Deno.rename(`${bin}.tmp`, bin);
  }
  return {
    ref: "localhost/pause:local",
    entries: [{ path: "pause", from: bin, mode: 0o755 }],
    entrypoint: ["/pause"],
  };
}

/** CoreDNS (tools/coredns). */
export async function corednsImage(): Promise<ImageSpec> {
  return {
    ref: "localhost/coredns:local",
    entries: [{ path: "coredns", from: await toolBinary("coredns"), mode: 0o755 }, ...BASE_ENTRIES],
    entrypoint: ["/coredns"],
  };
}

/** nats-server, the host's release, static. */
export async function natsServerImage(): Promise<ImageSpec> {
  const version = await hostNatsServerVersion();
  const bin = await staticGoBinary("github.com/nats-io/nats-server/v2", version, "nats-server");
  return {
    ref: "localhost/nats-server:local",
    entries: [{ path: "nats-server", from: bin, mode: 0o755 }, ...BASE_ENTRIES],
    entrypoint: ["/nats-server"],
  };
}

/** busybox-static and the `nats` CLI: a shell for workloads and `helm test`. */
export async function natsBoxImage(): Promise<ImageSpec> {
  const nats = await staticGoBinary(
    "github.com/nats-io/natscli/nats",
    await hostNatsCliVersion(),
    "nats",
  );
  const busybox = "/bin/busybox";
  const applets = (await output(busybox, ["--list"])).split("\n").filter((a) =>
    a && a !== "busybox"
  );
  return {
    ref: "localhost/nats-box:local",
    entries: [
      { path: "bin/busybox", from: busybox, mode: 0o755 },
      ...applets.map((a) => ({ path: `bin/${a}`, symlink: "busybox" })),
      { path: "usr/local/bin/nats", from: nats, mode: 0o755 },
      // No entry for uid 65532 and no USER/XDG_CONFIG_HOME: what runs here must not need them.
      { path: "etc/passwd", text: "root:x:0:0:root:/root:/bin/sh\n" },
      { path: "etc/group", text: "root:x:0:\n" },
      { path: "tmp", dir: true, mode: 0o1777 },
    ],
    cmd: ["sh"],
  };
}

/** The shared libraries `ldd` says `binary` loads (their real files, under the names it uses). */
async function sharedLibraries(binary: string): Promise<string[]> {
  const text = await output("ldd", [binary]);
  const paths = new Set<string>();
  for (const line of text.split("\n")) {
    const m = line.match(/(?:=>\s*)?(\/\S+)\s+\(0x/);
    if (m) paths.add(m[1]!);
  }
  return [...paths].sort();
}

/**
 * An image that runs one bundled program with the `deno` executable: the bundle at `/app/main.js`,
 * the C libraries `ldd` names, CA certificates, uid 65532; tagged by the bundle's hash.
 */
async function denoProgramImage(
  repository: string,
  bundle: string,
  runArgs: readonly string[],
): Promise<ImageSpec> {
  const deno = Deno.execPath();
  const libs = await sharedLibraries(deno);
  const bundleHash = (await output("sha256sum", [bundle])).slice(0, 12);
  return {
    ref: `${repository}:${bundleHash}`,
    entries: [
      { path: "usr/local/bin/deno", from: deno, mode: 0o755 },
      { path: "app/main.js", from: bundle, mode: 0o644 },
      ...libs.map((lib) => ({ path: lib.slice(1), from: lib })),
      { path: "etc/ssl/certs/ca-certificates.crt", from: "/etc/ssl/certs/ca-certificates.crt" },
      ...BASE_ENTRIES,
    ],
    entrypoint: ["/usr/local/bin/deno", ...runArgs, "/app/main.js"],
    env: ["HOME=/home/nonroot"],
    user: "65532:65532",
  };
}

/**
 * The service image (see the module doc): the bundle at `/app/main.js`, run as
 * `deno <the compile task's flags as deno run> /app/main.js`.
 */
export async function serviceImage(): Promise<ImageSpec> {
  // imageRunArgs ends with the local bundle's path; the image has it at /app/main.js.
  const args = (await imageRunArgs([])).slice(0, -1)
    .map((a) => a.startsWith("--allow-read=") ? a.replace(/,$/, "") : a);
  return await denoProgramImage("localhost/nats-k8s-oidc-callout", await imageEntry(), args);
}

/**
 * A workload image running `program` (a module of this repository, bundled with its npm imports)
 * with network, read and environment access: e.g. a client built on examples/deno_client.ts.
 */
export async function denoClientImage(program: string, repository: string): Promise<ImageSpec> {
  await Deno.mkdir(`${ROOT}dist`, { recursive: true });
  const dir = await Deno.makeTempDir({ dir: `${ROOT}dist`, prefix: "client-image-" });
  const bundle = `${dir}/main.js`;
  await output(Deno.execPath(), [
    "bundle",
    "--frozen",
    "--platform",
    "deno",
    "--minify",
    `--config=${ROOT}deno.json`,
    "--output",
    bundle,
    `${ROOT}${program}`,
  ]);
  globalThis.addEventListener("unload", () => {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch { /* already gone */ }
  });
  return await denoProgramImage(repository, bundle, [
    "run",
    "--allow-net",
    "--allow-read",
    "--allow-env",
  ]);
}
