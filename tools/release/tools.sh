#!/usr/bin/env bash
# Build (once) one of the tools the release needs from its Go module, and print the binary's path.
#
#   tools/release/tools.sh actionlint   rhysd/actionlint, the GitHub Actions workflow linter (seconds)
#   tools/release/tools.sh syft         anchore/syft, the SBOM generator (~6 min cold on 2 cores)
#
# The versions are pinned here. Each binary is cached outside the repository, keyed by its module
# and version, so a cached run costs nothing; one build at a time (parallel callers may all ask).
#   RELEASE_TOOLS_CACHE=/dir tools/release/tools.sh …   (default ~/.cache/nats-k8s-oidc-callout/release-tools)
# .ci/run, `deno task check` (tools/release/lint.sh), the tests and .github/workflows/release.yml
# all take the tools from here, so a release runs the versions the tests ran.
set -euo pipefail
name="${1:?usage: tools/release/tools.sh actionlint|syft}"
case "$name" in
actionlint)
  module=github.com/rhysd/actionlint/cmd/actionlint
  version=v1.7.12
  ldflags="-s -w -X github.com/rhysd/actionlint.version=${version#v}"
  ;;
syft)
  module=github.com/anchore/syft/cmd/syft
  version=v1.57.2
  # The SBOM's creator field names the tool and this version ("Tool: syft-1.57.2").
  ldflags="-s -w -X main.version=${version#v}"
  ;;
*)
  echo "tools.sh: unknown tool $name (actionlint, syft)" >&2
  exit 2
  ;;
esac
cache="${RELEASE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nats-k8s-oidc-callout/release-tools}"
bin="$cache/$name-$version"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
if ! command -v go >/dev/null; then
  echo "tools.sh: go not found; $name $version is built from its Go module (Go >= 1.25: https://go.dev/dl or your distribution's golang package)" >&2
  exit 1
fi
mkdir -p "$cache"
exec 9>"$cache/build.lock"
flock 9
if [ ! -x "$bin" ]; then
  echo "tools.sh: building $name $version from its Go module (cached in $cache)" >&2
  gobin="$(mktemp -d)"
  trap 'rm -rf "$gobin"' EXIT
  (cd "$gobin" && CGO_ENABLED=0 GOBIN="$gobin" go install -ldflags "$ldflags" "$module@$version") >&2
  mv "$gobin/$name" "$bin"
fi
echo "$bin"
