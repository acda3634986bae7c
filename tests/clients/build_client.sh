#!/usr/bin/env bash
# Build (once) an example client the tests run, and print the path of a program that runs it.
#
#   tests/clients/build_client.sh go     examples/go (nats.go)  → a static binary
#   tests/clients/build_client.sh java   examples/java (jnats)  → a launcher script (java -cp … Client)
#   tests/clients/build_client.sh nack   NACK's jetstream-controller (docs/nack.md) from its Go module
#                                        → a directory with the binary and NACK's CRDs (crds.yml)
#
# Cached outside the repository, keyed by a hash of the example's inputs (go.mod, go.sum, *.go;
# pom.xml, *.java), so only a change of those rebuilds it; a cached run costs the hash. Go modules
# come from the Go module proxy into the Go module cache, jnats from Maven Central into a Maven
# repository in the cache directory: after the first build both build offline. One build at a time.
#   CLIENTS_CACHE=/dir tests/clients/build_client.sh …   cache somewhere else
set -euo pipefail
lang="${1:?usage: tests/clients/build_client.sh go|java|nack}"
NACK_VERSION=v0.23.0
root="$(cd "$(dirname "$0")/../.." && pwd)"
src="$root/examples/$lang"
cache="${CLIENTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nats-k8s-oidc-callout/clients}"
case "$lang" in
  go) key="$(cd "$src" && cat go.mod go.sum $(ls ./*.go | sort) | sha256sum | cut -c1-16)" ;;
  java) key="$(cd "$src" && cat pom.xml $(ls ./*.java | sort) | sha256sum | cut -c1-16)" ;;
  nack) key="$NACK_VERSION" ;;
  *) echo "build_client.sh: no client $lang (go, java, nack)" >&2; exit 2 ;;
esac
out="$cache/$lang-$key"
if [ -e "$out" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$cache"
exec 9>"$cache/build.lock"
flock 9
if [ ! -e "$out" ]; then
  echo "build_client.sh: building $lang (cached in $cache)" >&2
  case "$lang" in
    go)
      command -v go >/dev/null || { echo "build_client.sh: go not found (Go >= 1.26: https://go.dev/dl)" >&2; exit 1; }
      (cd "$src" && CGO_ENABLED=0 go build -trimpath -o "$out.tmp" .) >&2
      ;;
    java)
      for tool in java mvn; do
        command -v "$tool" >/dev/null ||
          { echo "build_client.sh: $tool not found (the Java client needs JDK >= 17 and Maven >= 3.8)" >&2; exit 1; }
      done
      # Built from a copy, so no target/ appears in the checkout.
      work="$(mktemp -d)"
      trap 'rm -rf "$work"' EXIT
      cp "$src/pom.xml" "$src"/*.java "$work/"
      dir="$out.d"
      rm -rf "$dir" && mkdir -p "$dir"
      mvn -q -B -Dstyle.color=never -f "$work/pom.xml" -Dmaven.repo.local="$cache/m2" \
        compile dependency:copy-dependencies -DoutputDirectory="$dir/lib" >&2
      cp -r "$work/target/classes" "$dir/classes"
      printf '%s\n' '#!/bin/sh' "exec java -cp '$dir/classes:$dir/lib/*' Client \"\$@\"" > "$out.tmp"
      chmod +x "$out.tmp"
      ;;
    nack)
      # A plain `go install …@version` fails here: it looks up deprecations in the proxy's version
      # list, which the proxy refuses for this module. Download the version, build from a copy.
      mod="$(cd /tmp && go mod download -json "github.com/nats-io/nack@$NACK_VERSION" |
        sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
      work="$(mktemp -d)"
      trap 'rm -rf "$work"' EXIT
      cp -r "$mod/." "$work" && chmod -R u+w "$work"
      mkdir -p "$out.tmp"
      (cd "$work" && CGO_ENABLED=0 go build -trimpath -o "$out.tmp/jetstream-controller" \
        ./cmd/jetstream-controller) >&2
      cp "$mod/deploy/crds.yml" "$out.tmp/crds.yml"
      ;;
  esac
  mv "$out.tmp" "$out"
fi
echo "$out"
