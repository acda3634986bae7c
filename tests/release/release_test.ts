/**
 * Releases users can verify: tools/release/release.sh packages the chart and signs it with Helm's
 * provenance using a GPG key made here, at test time; `helm verify` (through verify.sh, the users'
 * commands) passes on it and fails on a changed package, a changed `.prov`, and a chart re-signed
 * with another key. The npm SBOM (syft) lists what main.ts is built from. The publishing steps,
 * which need a registry and Sigstore, run under --dry-run: every signature is made on a digest,
 * the image pushed is the one the chart pulls. docs/verify.md gives users the commands verify.sh
 * runs, and the workflow runs both scripts in the right order.
 */
import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import { findHelm } from "../support/chart.ts";
import { changelogSection, readFacts, releaseProblems } from "../../tools/release/facts.ts";
import { pruneLock, shippedPackages } from "../../tools/release/shipped_lock.ts";

const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const RELEASE = `${ROOT}/tools/release/release.sh`;
const VERIFY = `${ROOT}/tools/release/verify.sh`;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a program with extra environment; PATH gets helm's folder (the chart tests find it the same way). */
async function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  const helmDir = (await findHelm()).replace(/\/[^/]+$/, "");
  const out = await new Deno.Command(cmd, {
    args,
    cwd: ROOT,
    env: { PATH: `${helmDir}:${Deno.env.get("PATH") ?? ""}`, ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

function ok(result: Run, what: string): Run {
  assert.equal(
    result.code,
    0,
    `${what} failed (${result.code}):\n${result.stdout}\n${result.stderr}`,
  );
  return result;
}

/** A GPG key made for this test only, as a maintainer makes the release key (docs/releasing.md). */
interface TestKey extends AsyncDisposable {
  /** ASCII-armored secret key, protected by the passphrase. */
  secretFile: string;
  passphraseFile: string;
  fingerprint: string;
}

async function makeKey(name: string): Promise<TestKey> {
  const dir = await Deno.makeTempDir({ prefix: "release-key-" });
  const home = `${dir}/gnupg`;
  await Deno.mkdir(home, { mode: 0o700 });
  const passphraseFile = `${dir}/passphrase`;
  await Deno.writeTextFile(passphraseFile, `passphrase of ${name}\n`);
  const gpg = ["--homedir", home, "--batch", "--quiet", "--pinentry-mode", "loopback"];
  const dispose = async () => {
    await run("gpgconf", ["--homedir", home, "--kill", "all"]);
    await Deno.remove(dir, { recursive: true });
  };
  try {
    ok(
      await run("gpg", [
        ...gpg,
        "--passphrase-file",
        passphraseFile,
        "--quick-generate-key",
        `${name} <release@example.invalid>`,
        "rsa4096",
        "sign",
        "never",
      ]),
      "gpg --quick-generate-key",
    );
    const listing =
      ok(await run("gpg", [...gpg, "--with-colons", "--list-secret-keys"]), "list").stdout;
    const fingerprint = listing.split("\n").find((l) => l.startsWith("fpr:"))?.split(":")[9] ?? "";
    assert.match(fingerprint, /^[0-9A-F]{40}$/);
    const secret = ok(
      await run("gpg", [
        ...gpg,
        "--passphrase-file",
        passphraseFile,
        "--armor",
        "--export-secret-keys",
      ]),
      "export",
    ).stdout;
    assert.match(secret, /BEGIN PGP PRIVATE KEY BLOCK/);
    const secretFile = `${dir}/secret.asc`;
    await Deno.writeTextFile(secretFile, secret);
    return { secretFile, passphraseFile, fingerprint, [Symbol.asyncDispose]: dispose };
  } catch (err) {
    await dispose();
    throw err;
  }
}

function keyEnv(key: TestKey): Record<string, string> {
  return {
    HELM_SIGNING_KEY_FILE: key.secretFile,
    HELM_SIGNING_KEY_PASSPHRASE_FILE: key.passphraseFile,
    RELEASE_KEY_FINGERPRINT: key.fingerprint,
  };
}

async function tempDir(prefix: string): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempDir({ prefix });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

const facts = await readFacts(ROOT);
const VERSION = facts.chartVersion;
const TGZ = `nats-k8s-oidc-callout-${VERSION}.tgz`;
const KEY_ASC = "nats-k8s-oidc-callout-release-key.asc";

/** verify.sh's GPG check of the release files in `dir`, against `fingerprint`. */
function verifyGpg(dir: string, fingerprint: string): Promise<Run> {
  return run("bash", [VERIFY, dir, "gpg"], { FINGERPRINT: fingerprint, VERSION });
}

async function copyRelease(from: string, to: string): Promise<void> {
  for (const name of [TGZ, `${TGZ}.prov`, KEY_ASC]) {
    await Deno.copyFile(`${from}/${name}`, `${to}/${name}`);
  }
}

Deno.test("the repository is releasable as it stands: one version in deno.json, Chart.yaml, values.yaml and CHANGELOG.md", () => {
  assert.deepEqual(releaseProblems(facts), []);
  assert.deepEqual(releaseProblems(facts, `v${VERSION}`), []);
  assert.equal(facts.appVersion, VERSION);
});

Deno.test("a release that disagrees with itself is refused, naming the file to fix", () => {
  const good = {
    ...facts,
    chartVersion: "1.2.3",
    appVersion: "1.2.3",
    denoVersion: "1.2.3",
    changelogVersion: "1.2.3",
  };
  assert.deepEqual(releaseProblems(good, "v1.2.3"), []);
  const problems = (changes: Partial<typeof good>, tag?: string) =>
    releaseProblems({ ...good, ...changes }, tag).join("\n");
  assert.match(problems({}, "v1.2.4"), /tag v1\.2\.4 does not name version 1\.2\.3/);
  assert.match(problems({ appVersion: "1.2.2" }), /appVersion 1\.2\.2 differs/);
  assert.match(problems({ denoVersion: "1.2.2" }), /deno\.json version 1\.2\.2/);
  assert.match(
    problems({ changelogVersion: "1.2.2" }),
    /CHANGELOG\.md's newest section is 1\.2\.2/,
  );
  assert.match(problems({ imageTag: "latest" }), /image\.tag is "latest"/);
  assert.match(problems({ imageRepository: "ghcr.io/o/x;rm -rf /" }), /characters/);
  assert.equal(
    changelogSection("# C\n\n## [1.2.3] - 2027-01-01\n\n- new\n\n## [1.2.2]\n\n- old\n", "1.2.3"),
    "- new",
  );
});

Deno.test("the GPG round trip: helm package --sign, helm verify passes, and fails on a changed package, a changed .prov, another signer", async (t) => {
  await using key = await makeKey("nats-k8s-oidc-callout test release");
  await using out = await tempDir("release-out-");
  const made = ok(
    await run("bash", [RELEASE, "--out", out.path, "check", "chart"], keyEnv(key)),
    "release.sh chart",
  );
  assert.match(
    made.stderr,
    /Chart Hash Verified: sha256:[0-9a-f]{64}/,
    "release.sh verifies what it signed",
  );

  await t.step(
    "the package, its .prov and the public key are written; the .prov signs the package's hash",
    async () => {
      const prov = await Deno.readTextFile(`${out.path}/${TGZ}.prov`);
      assert.match(prov, /^-----BEGIN PGP SIGNED MESSAGE-----/);
      const digest = Array.from(
        new Uint8Array(
          await crypto.subtle.digest("SHA-256", await Deno.readFile(`${out.path}/${TGZ}`)),
        ),
        (b) => b.toString(16).padStart(2, "0"),
      ).join("");
      assert.ok(prov.includes(`${TGZ}: sha256:${digest}`), "the .prov names the package's sha256");
      assert.match(await Deno.readTextFile(`${out.path}/${KEY_ASC}`), /BEGIN PGP PUBLIC KEY BLOCK/);
      assert.doesNotMatch(await Deno.readTextFile(`${out.path}/${KEY_ASC}`), /PRIVATE/);
    },
  );

  await t.step("helm verify passes against the published fingerprint", async () => {
    const verified = ok(await verifyGpg(out.path, key.fingerprint), "verify.sh gpg");
    assert.match(verified.stdout, new RegExp(`Using Key With Fingerprint: ${key.fingerprint}`));
  });

  await t.step("a package whose chart was changed (another image repository) fails", async () => {
    await using bad = await tempDir("release-tampered-");
    await copyRelease(out.path, bad.path);
    const unpacked = `${bad.path}/unpacked`;
    await Deno.mkdir(unpacked);
    ok(await run("tar", ["-xzf", `${bad.path}/${TGZ}`, "-C", unpacked]), "untar");
    const values = `${unpacked}/nats-k8s-oidc-callout/values.yaml`;
    const text = await Deno.readTextFile(values);
    assert.ok(text.includes(facts.imageRepository));
    await Deno.writeTextFile(
      values,
      text.replace(facts.imageRepository, "registry.example.invalid/evil"),
    );
    ok(
      await run("tar", ["-czf", `${bad.path}/${TGZ}`, "-C", unpacked, "nats-k8s-oidc-callout"]),
      "tar",
    );
    const refused = await verifyGpg(bad.path, key.fingerprint);
    assert.notEqual(refused.code, 0, refused.stdout);
    assert.match(refused.stderr, /sha256 sum does not match/);
  });

  await t.step("a .prov whose signed hash was changed fails", async () => {
    await using bad = await tempDir("release-tampered-");
    await copyRelease(out.path, bad.path);
    const prov = await Deno.readTextFile(`${bad.path}/${TGZ}.prov`);
    await Deno.writeTextFile(
      `${bad.path}/${TGZ}.prov`,
      prov.replace(/sha256:([0-9a-f])/, (_, c) => `sha256:${c === "0" ? "1" : "0"}`),
    );
    const refused = await verifyGpg(bad.path, key.fingerprint);
    assert.notEqual(refused.code, 0, refused.stdout);
    assert.match(refused.stderr, /openpgp: invalid signature/);
  });

  await t.step(
    "a chart re-signed with another key, shipped with that key, fails on the published fingerprint",
    async () => {
      await using other = await makeKey("someone else");
      await using forged = await tempDir("release-forged-");
      ok(
        await run("bash", [RELEASE, "--out", forged.path, "chart"], keyEnv(other)),
        "forger's release.sh chart",
      );
      ok(
        await verifyGpg(forged.path, other.fingerprint),
        "the forgery verifies against its own key",
      );
      const refused = await verifyGpg(forged.path, key.fingerprint);
      assert.notEqual(refused.code, 0, refused.stdout);
      assert.match(
        refused.stderr,
        /verify\.sh: FAILED: gpg --show-keys/,
        "the shipped key is not the published one",
      );
      assert.doesNotMatch(refused.stdout, /Chart Hash Verified/);
      // And the genuine key does not verify the forger's .prov either.
      await Deno.copyFile(`${out.path}/${KEY_ASC}`, `${forged.path}/${KEY_ASC}`);
      const wrongSigner = await verifyGpg(forged.path, key.fingerprint);
      assert.notEqual(wrongSigner.code, 0);
      assert.match(wrongSigner.stderr, /openpgp: signature made by unknown entity/);
      // Nor does the genuine key with the forger's key added to the same file: the published
      // fingerprint is in it, but helm would trust every key of the keyring.
      const genuine = await Deno.readTextFile(`${out.path}/${KEY_ASC}`);
      const forgers = ok(
        await run("bash", [RELEASE, "--out", `${forged.path}/again`, "chart"], keyEnv(other)),
        "forger's key again",
      );
      assert.ok(forgers);
      await Deno.writeTextFile(
        `${forged.path}/${KEY_ASC}`,
        genuine + await Deno.readTextFile(`${forged.path}/again/${KEY_ASC}`),
      );
      const twoKeys = await verifyGpg(forged.path, key.fingerprint);
      assert.notEqual(twoKeys.code, 0, twoKeys.stdout);
      assert.match(twoKeys.stderr, /verify\.sh: FAILED: gpg --show-keys/);
      assert.doesNotMatch(twoKeys.stdout, /Chart Hash Verified/);
    },
  );

  await t.step(
    "release.sh refuses to sign with a key that is not RELEASE_KEY_FINGERPRINT",
    async () => {
      await using again = await tempDir("release-out-");
      const refused = await run("bash", [RELEASE, "--out", again.path, "chart"], {
        ...keyEnv(key),
        RELEASE_KEY_FINGERPRINT: "0".repeat(40),
      });
      assert.equal(refused.code, 1);
      assert.match(
        refused.stderr,
        new RegExp(`fingerprint is ${key.fingerprint}, not RELEASE_KEY_FINGERPRINT 0{40}`),
      );
      assert.deepEqual([...Deno.readDirSync(again.path)], [], "nothing is packaged");
    },
  );
});

Deno.test("release.sh without a signing key, or publishing without a tag, refuses before doing anything", async () => {
  await using out = await tempDir("release-out-");
  const noKey = await run("bash", [RELEASE, "--out", out.path, "chart"], {
    HELM_SIGNING_KEY_FILE: "",
  });
  assert.equal(noKey.code, 1);
  assert.match(noKey.stderr, /HELM_SIGNING_KEY_FILE is not set/);
  const noTag = await run("bash", [RELEASE, "--out", out.path, "image"], { RELEASE_TAG: "" });
  assert.equal(noTag.code, 1);
  assert.match(noTag.stderr, /RELEASE_TAG is not set: publish only from a tag/);
  const wrongTag = await run("bash", [RELEASE, "--out", out.path, "image"], {
    RELEASE_TAG: "v999.0.0",
  });
  assert.equal(wrongTag.code, 1);
  assert.match(
    wrongTag.stderr,
    new RegExp(`tag v999\\.0\\.0 does not name version ${VERSION.replaceAll(".", "\\.")}`),
  );
  assert.deepEqual([...Deno.readDirSync(out.path)], []);
});

Deno.test("the npm SBOM lists what main.ts is built from, at deno.lock's versions, and nothing only the tests use", async () => {
  await using out = await tempDir("release-sbom-");
  ok(await run("bash", [RELEASE, "--out", out.path, "sbom"]), "release.sh sbom");
  const sbom = JSON.parse(
    await Deno.readTextFile(`${out.path}/nats-k8s-oidc-callout-${VERSION}.npm.spdx.json`),
  );
  assert.equal(sbom.spdxVersion, "SPDX-2.3");
  assert.equal(sbom.name, "nats-k8s-oidc-callout");
  assert.ok(
    sbom.creationInfo.creators.includes("Tool: syft-1.57.2"),
    sbom.creationInfo.creators.join(),
  );
  const purls = new Set<string>(
    sbom.packages.flatMap((
      p: { externalRefs?: { referenceType: string; referenceLocator: string }[] },
    ) =>
      (p.externalRefs ?? []).filter((r) => r.referenceType === "purl").map((r) =>
        r.referenceLocator
      )
    ),
  );
  const purl = (name: string, version: string) => `pkg:npm/${name.replace("@", "%40")}@${version}`;
  const lock = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.lock`));
  const locked = new Set(
    Object.keys(lock.npm).map((id) => {
      const at = id.indexOf("@", 1);
      return purl(id.slice(0, at), id.slice(at + 1).split("_")[0] ?? "");
    }),
  );
  for (const p of purls) assert.ok(locked.has(p), `${p} is in the SBOM but not in deno.lock`);

  const info = JSON.parse(ok(await run("deno", ["info", "--json", "main.ts"]), "deno info").stdout);
  const direct = (info.modules as { kind?: string; npmPackage?: string }[])
    .flatMap((m) => m.kind === "npm" && m.npmPackage ? [m.npmPackage] : []);
  assert.ok(direct.length >= 3, `main.ts imports npm packages: ${direct}`);
  for (const id of direct) {
    const at = id.indexOf("@", 1);
    const p = purl(id.slice(0, at), id.slice(at + 1).split("_")[0] ?? "");
    assert.ok(purls.has(p), `main.ts imports ${id}, missing from the SBOM`);
  }
  assert.ok(
    locked.has(purl("mqtt", "5.16.0")),
    "mqtt (tests only) is in deno.lock: pick another test-only package",
  );
  assert.ok(
    ![...purls].some((p) => p.startsWith("pkg:npm/mqtt@")),
    "mqtt is only used by the tests",
  );
  assert.ok(
    purls.size < locked.size,
    `the SBOM (${purls.size}) lists fewer packages than deno.lock (${locked.size})`,
  );
});

Deno.test("shippedPackages follows dependencies from the graph's npm modules; pruneLock keeps only those", () => {
  const info = {
    modules: [{ kind: "esm" }, { kind: "npm", npmPackage: "a@1.0.0" }],
    npmPackages: {
      "a@1.0.0": { dependencies: ["b@2.0.0_c@3.0.0"] },
      "b@2.0.0_c@3.0.0": { dependencies: ["c@3.0.0"] },
      "c@3.0.0": { dependencies: ["a@1.0.0"] },
      "test-only@9.0.0": { dependencies: [] },
    },
  };
  const keep = shippedPackages(info);
  assert.deepEqual([...keep].sort(), ["a@1.0.0", "b@2.0.0_c@3.0.0", "c@3.0.0"]);
  const lock = {
    version: "5",
    specifiers: { "npm:a@1": "1.0.0" },
    npm: {
      "a@1.0.0": { integrity: "x" },
      "b@2.0.0_c@3.0.0": {},
      "c@3.0.0": {},
      "test-only@9.0.0": {},
    },
  };
  assert.deepEqual(pruneLock(lock, keep), {
    version: "5",
    npm: { "a@1.0.0": { integrity: "x" }, "b@2.0.0_c@3.0.0": {}, "c@3.0.0": {} },
  });
  assert.throws(() => pruneLock(lock, new Set(["d@1.0.0"])), /d@1\.0\.0 is not in the lock file/);
  assert.throws(() => shippedPackages({ ...info, npmPackages: {} }), /does not resolve it/);
});

Deno.test("a dry run signs and attests only digests, pushes the image the chart pulls, and writes the notes", async () => {
  await using key = await makeKey("nats-k8s-oidc-callout test release");
  await using out = await tempDir("release-dry-");
  const dry = ok(
    await run("bash", [RELEASE, "--dry-run", "--out", out.path], keyEnv(key)),
    "release.sh --dry-run",
  );
  const commands = dry.stdout.split("\n").filter((l) => l.startsWith("would run: ")).map((l) =>
    l.slice(11)
  );
  const image = `${facts.imageRepository}:${facts.appVersion}`;
  const build = commands.filter((c) => c.startsWith("docker buildx build "));
  assert.equal(build.length, 1, commands.join("\n"));
  const buildx = build[0] ?? "";
  assert.ok(buildx.includes(`--tag ${image} `) && buildx.includes(" --push "), buildx);
  assert.ok(buildx.includes("--platform linux/amd64") && buildx.includes("--file "), buildx);
  assert.ok(
    commands.includes(
      `helm push ${out.path}/${TGZ} oci://${facts.imageRepository.replace(/\/[^/]+$/, "")}/charts`,
    ),
  );
  const cosign = commands.filter((c) => c.startsWith("cosign "));
  assert.deepEqual(cosign.map((c) => c.split(" ").slice(0, 2).join(" ")), [
    "cosign sign",
    "cosign attest",
    "cosign attest",
    "cosign sign",
    "cosign sign-blob",
  ]);
  for (const c of cosign.filter((c) => !c.startsWith("cosign sign-blob"))) {
    assert.match(c, /@sha256:\S+$/, `signs a digest: ${c}`);
    assert.doesNotMatch(
      c,
      new RegExp(`:${facts.appVersion.replaceAll(".", "\\.")}$`),
      `never a tag: ${c}`,
    );
  }
  assert.ok(
    cosign.some((c) =>
      c.includes(`--predicate ${out.path}/nats-k8s-oidc-callout-${VERSION}.npm.spdx.json`)
    ),
  );
  assert.ok(
    cosign.some((c) =>
      c === `cosign sign-blob --yes --bundle ${out.path}/${TGZ}.sigstore.json ${out.path}/${TGZ}`
    ),
  );
  // What could be made here was made for real, and verifies.
  const files = [...Deno.readDirSync(out.path)].map((e) => e.name).sort();
  assert.deepEqual(
    files,
    [
      KEY_ASC,
      `nats-k8s-oidc-callout-${VERSION}.npm.spdx.json`,
      TGZ,
      `${TGZ}.prov`,
      "release-notes.md",
    ].sort(),
  );
  ok(await verifyGpg(out.path, key.fingerprint), "the dry run's package verifies");
  const notes = await Deno.readTextFile(`${out.path}/release-notes.md`);
  const section = changelogSection(await Deno.readTextFile(`${ROOT}/CHANGELOG.md`), VERSION) ?? "";
  assert.ok(
    section.length > 0 && notes.startsWith(section),
    "the notes start with the CHANGELOG section",
  );
  assert.ok(notes.includes(image), notes);

  const podman = ok(
    await run("bash", [RELEASE, "--dry-run", "--out", out.path, "image"], {
      CONTAINER_ENGINE: "podman",
    }),
    "release.sh --dry-run image (podman)",
  );
  assert.match(
    podman.stdout,
    new RegExp(`would run: podman push --digestfile \\S+\\.image\\.digest ${image}\\n`),
  );
});

Deno.test("docs/verify.md gives users the commands verify.sh runs, and the workflow runs verify.sh before publishing", async () => {
  const printed = ok(await run("bash", [VERIFY, "--print", "/nonexistent"]), "verify.sh --print")
    .stdout
    .split("\n").filter((l) => l.trim() !== "");
  assert.ok(printed.length >= 10, printed.join("\n"));
  const normalize = (s: string) => s.replace(/\\\n\s*/g, " ").replace(/[ \t]+/g, " ");
  const docs = normalize(await Deno.readTextFile(`${ROOT}/docs/verify.md`));
  for (const command of printed) {
    assert.ok(docs.includes(normalize(command)), `docs/verify.md lacks: ${command}`);
  }
  for (
    const tool of [
      "helm verify",
      "cosign verify-blob",
      "cosign verify ",
      "cosign verify-attestation",
      "slsa-verifier verify-image",
    ]
  ) {
    assert.ok(printed.some((c) => c.startsWith(tool)), `verify.sh runs ${tool}`);
  }

  type Step = { uses?: string; run?: string; with?: Record<string, unknown> };
  type Job = {
    needs?: string | string[];
    uses?: string;
    steps?: Step[];
    permissions?: Record<string, string>;
  };
  const workflow = parseYaml(await Deno.readTextFile(`${ROOT}/.github/workflows/release.yml`)) as {
    permissions: unknown;
    on: { push: { tags: string[] } };
    jobs: Record<string, Job>;
  };
  assert.deepEqual(workflow.permissions, {}, "no job gets a permission it does not name");
  assert.deepEqual(workflow.on.push.tags, ["v*"]);
  const { release, verify } = workflow.jobs;
  assert.ok(release?.steps?.some((s) => s.run?.includes("bash tools/release/release.sh")));
  assert.equal(release?.permissions?.["id-token"], "write", "keyless signing needs the OIDC token");
  const provenance = Object.entries(workflow.jobs).filter(([, j]) =>
    j.uses?.includes("generator_container_slsa3.yml")
  );
  assert.equal(provenance.length, 2, "SLSA provenance for the image and for the chart");
  for (const [, job] of provenance) assert.match(job.uses ?? "", /@v\d+\.\d+\.\d+$/);
  assert.deepEqual([verify?.needs].flat().sort(), [
    "provenance-chart",
    "provenance-image",
    "release",
  ]);
  const runs = (verify?.steps ?? []).map((s) => s.run ?? "");
  const verifying = runs.findIndex((r) => r.includes("bash tools/release/verify.sh"));
  const publishing = runs.findIndex((r) => r.includes("--draft=false"));
  assert.ok(
    verifying >= 0 && publishing > verifying,
    "the release is made public only after verify.sh passed",
  );
  for (const [name, job] of Object.entries(workflow.jobs)) {
    for (const step of job.steps ?? []) {
      if (step.uses) {
        assert.match(step.uses, /@[0-9a-f]{40}$/, `${name}: ${step.uses} is pinned to a commit`);
      }
    }
  }
});
