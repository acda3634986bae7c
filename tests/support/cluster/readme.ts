/**
 * README's "Install on Kubernetes" as a script a test runs as written. Only what a test cannot do
 * differs, through commands on `PATH` in front of the real ones:
 *
 * - `podman build` / `podman push`: the image is built by the harness (images.ts, the
 *   Containerfile's final stage minus `denort`) and already imported into the cluster; step 0's
 *   image variables are pointed at it.
 * - `helm repo add` and `helm install … nats/nats`: the NATS chart comes from the internet; the
 *   stand-in (nats.ts) renders the same configuration from the same values file. Every other
 *   `helm` command is the real helm.
 * - `kubectl`: the cluster's own (the multi-call binary).
 *
 * @module
 */
import { ROOT } from "../start_task.ts";

/** The fenced `sh` blocks of one README section, in order. */
export function shellBlocks(markdown: string, heading: string): string[] {
  const start = markdown.indexOf(`\n## ${heading}`);
  if (start < 0) throw new Error(`README has no section "## ${heading}"`);
  const end = markdown.indexOf("\n## ", start + 4);
  const section = markdown.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

/** Replace the value of `NAME=…` assignments at the start of a line (step 0's variables). */
export function setVariables(script: string, values: Readonly<Record<string, string>>): string {
  let out = script;
  for (const [name, value] of Object.entries(values)) {
    const re = new RegExp(`^${name}=\\S*`, "m");
    if (!re.test(out)) throw new Error(`README's install steps no longer set ${name}`);
    out = out.replace(re, `${name}=${value}`);
  }
  return out;
}

/** Write the stand-in commands into `dir` (put it first on `PATH`). */
export async function writeStandIns(dir: string, kubernetesBinary: string): Promise<void> {
  const helm = await new Deno.Command("sh", { args: ["-c", "command -v helm"], stdout: "piped" })
    .output();
  const realHelm = new TextDecoder().decode(helm.stdout).trim();
  if (!realHelm) throw new Error("helm is not on PATH");
  // The stand-in is this checkout's Deno code: it runs on the test's own module cache (the install
  // steps run with a HOME of their own, and nothing inside the cluster's namespace reaches npm).
  const info = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
  })
    .output();
  const denoDir =
    (JSON.parse(new TextDecoder().decode(info.stdout)) as { denoDir: string }).denoDir;
  const scripts: Record<string, string> = {
    kubectl: `exec "${kubernetesBinary}" kubectl "$@"\n`,
    podman: [
      'case "$1" in',
      '  build|push) echo "podman $1: the test harness built and imported the image" >&2 ;;',
      '  *) echo "podman stand-in: unexpected $*" >&2; exit 2 ;;',
      "esac",
      "",
    ].join("\n"),
    helm: [
      'case "$1 $2" in',
      '  "repo add"|"repo update") echo "helm $1 $2: no internet here; nats/nats is a stand-in" >&2; exit 0 ;;',
      "esac",
      'if [ "$1" = install ] && [ "$3" = nats/nats ]; then',
      `  DENO_DIR="${denoDir}" "${Deno.execPath()}" run -A --cached-only "${ROOT}tests/support/cluster/nats.ts" "$@" |`,
      "    kubectl apply -f -",
      "  exit $?",
      "fi",
      `exec "${realHelm}" "$@"`,
      "",
    ].join("\n"),
  };
  for (const [name, body] of Object.entries(scripts)) {
    await Deno.writeTextFile(`${dir}/${name}`, `#!/bin/sh\nset -e\n${body}`);
    await Deno.chmod(`${dir}/${name}`, 0o755);
  }
}
