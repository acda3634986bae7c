/**
 * What a release is made of, read from the files that define it — `deno.json`'s version,
 * `chart/Chart.yaml`'s version and appVersion, the image the chart pulls by default
 * (`chart/values.yaml`), and the newest section of `CHANGELOG.md` — and the checks that they agree,
 * so a tag cannot publish a chart that pulls an image nobody pushed. `tools/release/release.sh`
 * runs it:
 *
 * ```sh
 * deno run --allow-read tools/release/facts.ts [--tag v0.1.0]   # KEY=value lines, or the problems
 * deno run --allow-read tools/release/facts.ts notes 0.1.0     # the CHANGELOG section of 0.1.0
 * ```
 *
 * @module
 */
import { parse as parseYaml } from "yaml";

/** The facts of one release, as the repository states them. */
export interface ReleaseFacts {
  /** `deno.json` `version`. */
  denoVersion: string;
  /** `chart/Chart.yaml` `name`. */
  chartName: string;
  /** `chart/Chart.yaml` `version`. */
  chartVersion: string;
  /** `chart/Chart.yaml` `appVersion`: the image tag the chart pulls by default. */
  appVersion: string;
  /** `chart/Chart.yaml` `home`: the source repository, for the image's labels. */
  home: string;
  /** `chart/values.yaml` `image.repository`: where the chart pulls the image from. */
  imageRepository: string;
  /** `chart/values.yaml` `image.tag`; empty means appVersion. */
  imageTag: string;
  /** The version the first `## ` heading of `CHANGELOG.md` names, or "" without one. */
  changelogVersion: string;
}

/** A version as Helm and OCI tags take it: semver, no leading `v`, no build metadata. */
const VERSION = /^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/;
/** The characters a fact may hold, so the shell can take `KEY=value` lines without quoting. */
const SAFE = /^[A-Za-z0-9._:/@+-]*$/;

function text(value: unknown, where: string): string {
  if (typeof value === "string") return value;
  if (value === undefined || value === null) return "";
  throw new TypeError(`${where} is not a string`);
}

function record(value: unknown, where: string): Record<string, unknown> {
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    return value as Record<string, unknown>;
  }
  throw new TypeError(`${where} is not a mapping`);
}

/**
 * The version named by the first `## ` heading of a changelog (`## [0.1.0] - 2026-12-06`,
 * `## 0.1.0`), or "" when it has none.
 *
 * @example
 * ```ts
 * import { newestChangelogVersion } from "./facts.ts";
 * console.assert(newestChangelogVersion("# Changelog\n\n## [0.2.0] - 2027-01-01\n\n## [0.1.0]\n") === "0.2.0");
 * ```
 */
export function newestChangelogVersion(changelog: string): string {
  const heading = changelog.match(/^## +\[?v?([^\]\s]+)\]?/m);
  return heading?.[1] ?? "";
}

/**
 * The body of the section of `version` in a changelog (between its `## ` heading and the next),
 * trimmed; `undefined` when there is no such section.
 *
 * @example
 * ```ts
 * import { changelogSection } from "./facts.ts";
 * console.assert(changelogSection("## [0.1.0]\n\n- first\n\n## [0.0.1]\n- old\n", "0.1.0") === "- first");
 * ```
 */
export function changelogSection(changelog: string, version: string): string | undefined {
  const lines = changelog.split("\n");
  const start = lines.findIndex((line) => {
    const m = line.match(/^## +\[?v?([^\]\s]+)\]?/);
    return m?.[1] === version;
  });
  if (start < 0) return undefined;
  const rest = lines.slice(start + 1);
  const end = rest.findIndex((line) => line.startsWith("## "));
  return (end < 0 ? rest : rest.slice(0, end)).join("\n").trim();
}

/** Read the facts of the release from the repository at `root`. */
export async function readFacts(root: string): Promise<ReleaseFacts> {
  const deno = record(JSON.parse(await Deno.readTextFile(`${root}/deno.json`)), "deno.json");
  const chart = record(
    parseYaml(await Deno.readTextFile(`${root}/chart/Chart.yaml`)),
    "Chart.yaml",
  );
  const values = record(
    parseYaml(await Deno.readTextFile(`${root}/chart/values.yaml`)),
    "values.yaml",
  );
  const image = record(values.image, "values.yaml image");
  let changelog = "";
  try {
    changelog = await Deno.readTextFile(`${root}/CHANGELOG.md`);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return {
    denoVersion: text(deno.version, "deno.json version"),
    chartName: text(chart.name, "Chart.yaml name"),
    chartVersion: text(chart.version, "Chart.yaml version"),
    appVersion: text(chart.appVersion, "Chart.yaml appVersion"),
    home: text(chart.home, "Chart.yaml home"),
    imageRepository: text(image.repository, "values.yaml image.repository"),
    imageTag: text(image.tag, "values.yaml image.tag"),
    changelogVersion: newestChangelogVersion(changelog),
  };
}

/**
 * Every way the facts disagree with each other, or with the tag being released (`v` + version),
 * as sentences that say which file to fix; empty when the release may go ahead.
 *
 * @example
 * ```ts
 * import { releaseProblems } from "./facts.ts";
 * const facts = {
 *   denoVersion: "0.1.0", chartName: "c", chartVersion: "0.1.0", appVersion: "0.1.0",
 *   home: "https://example.com/c", imageRepository: "ghcr.io/o/c", imageTag: "", changelogVersion: "0.1.0",
 * };
 * console.assert(releaseProblems(facts, "v0.1.0").length === 0);
 * console.assert(releaseProblems(facts, "v0.2.0").length === 1);
 * ```
 */
export function releaseProblems(facts: ReleaseFacts, tag?: string): string[] {
  const problems: string[] = [];
  const version = facts.chartVersion;
  if (!VERSION.test(version)) {
    problems.push(
      `chart/Chart.yaml version ${JSON.stringify(version)} is not a release version (x.y.z)`,
    );
  }
  if (facts.appVersion !== version) {
    problems.push(
      `chart/Chart.yaml appVersion ${facts.appVersion} differs from its version ${version}: the chart would pull another release's image`,
    );
  }
  if (facts.denoVersion !== version) {
    problems.push(
      `deno.json version ${facts.denoVersion} differs from chart/Chart.yaml version ${version}`,
    );
  }
  if (facts.imageTag !== "") {
    problems.push(
      `chart/values.yaml image.tag is ${
        JSON.stringify(facts.imageTag)
      }: leave it empty so the chart pulls its appVersion`,
    );
  }
  if (facts.imageRepository === "") problems.push("chart/values.yaml image.repository is empty");
  if (facts.changelogVersion !== version) {
    problems.push(
      facts.changelogVersion === ""
        ? `CHANGELOG.md has no section for ${version}: add "## [${version}]" at the top`
        : `CHANGELOG.md's newest section is ${facts.changelogVersion}, not ${version}: add "## [${version}]" at the top`,
    );
  }
  if (tag !== undefined && tag !== `v${version}`) {
    problems.push(`the tag ${tag} does not name version ${version} (expected v${version})`);
  }
  for (const [key, value] of Object.entries(facts)) {
    if (!SAFE.test(value)) {
      problems.push(`${key} ${JSON.stringify(value)} holds characters a release name cannot`);
    }
  }
  return problems;
}

/** The facts as `KEY=value` lines for the release script (values are checked by {@linkcode releaseProblems}). */
export function shellLines(facts: ReleaseFacts): string {
  return [
    `VERSION=${facts.chartVersion}`,
    `CHART_NAME=${facts.chartName}`,
    `SOURCE_URL=${facts.home}`,
    `CHART_IMAGE_REPOSITORY=${facts.imageRepository}`,
  ].join("\n") + "\n";
}

if (import.meta.main) {
  const root = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
  const [command, argument] = Deno.args;
  const out = (s: string) => Deno.stdout.write(new TextEncoder().encode(s));
  if (command === "notes") {
    if (argument === undefined) throw new TypeError("usage: facts.ts notes VERSION");
    const section = changelogSection(await Deno.readTextFile(`${root}/CHANGELOG.md`), argument);
    if (section === undefined) {
      await Deno.stderr.write(
        new TextEncoder().encode(`CHANGELOG.md has no section for ${argument}\n`),
      );
      Deno.exit(1);
    }
    await out(section + "\n");
  } else {
    const tag = command === "--tag" ? argument : undefined;
    const facts = await readFacts(root);
    const problems = releaseProblems(facts, tag || undefined);
    if (problems.length > 0) {
      await Deno.stderr.write(
        new TextEncoder().encode(
          `release: not releasable:\n${problems.map((p) => `  - ${p}\n`).join("")}`,
        ),
      );
      Deno.exit(1);
    }
    await out(shellLines(facts));
  }
}
