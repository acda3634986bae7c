#!/usr/bin/env bash
# The release's lint, part of `deno task check`: actionlint on the GitHub Actions workflows, which
# runs ShellCheck on every `run:` script, and ShellCheck on the release scripts. Both are required,
# not skipped when missing, so the check means the same everywhere: actionlint is built from its Go
# module by tools/release/tools.sh; shellcheck is Debian's package (.ci/run installs it).
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v shellcheck >/dev/null; then
  echo "lint.sh: shellcheck not found; install it (Debian/Ubuntu: apt-get install shellcheck; .ci/run does)" >&2
  exit 1
fi
actionlint="$(bash tools/release/tools.sh actionlint)"
"$actionlint" -no-color -oneline -shellcheck="$(command -v shellcheck)" -pyflakes= .github/workflows/*.yml
shellcheck tools/release/*.sh
