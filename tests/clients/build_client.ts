/**
 * The example clients that need a build (Go, Java), and NACK for docs/nack.md, built once and cached outside the repository by
 * tests/clients/build_client.sh, which .ci/run runs before the tests.
 *
 * @module
 */

/**
 * The path of a program that runs `examples/<lang>`, building it first if its inputs changed; for
 * `nack`, the directory with NACK's jetstream-controller and its CRDs (`crds.yml`). Throws with
 * the build's output when the build fails (no toolchain, no network on a first build).
 */
export async function buildClient(lang: "go" | "java" | "nack"): Promise<string> {
  const script = new URL("./build_client.sh", import.meta.url).pathname;
  const { code, stdout, stderr } = await new Deno.Command("bash", {
    args: [script, lang],
    stdin: "null",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b).trim();
  if (code !== 0) {
    throw new Error(`building examples/${lang} failed:\n${text(stderr).slice(-3000)}`);
  }
  return text(stdout);
}
