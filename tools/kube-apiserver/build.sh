#!/usr/bin/env bash
# Build (once) the real kube-apiserver the test suite runs, and print the binary's path.
#
# The binary is k8s.io/kubernetes v1.37.2's kube-apiserver with an embedded etcd v3.7.0, plus
# kubectl (same binary, `kubectl` as first argument), from Go modules (see main.go). It is cached
# outside the repository, keyed by a hash of go.mod, go.sum and main.go, so only a change of those
# rebuilds it: cold ~10 min on 2 cores (linker peak 2.4 GiB, GOCACHE ~3 GiB), warm seconds.
#
#   tools/kube-apiserver/build.sh            build if needed, print the path
#   KUBE_APISERVER_CACHE=/dir build.sh       cache somewhere else (default ~/.cache/nats-k8s-oidc-callout)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${KUBE_APISERVER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nats-k8s-oidc-callout}"
hash="$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" | sha256sum | cut -c1-16)"
bin="$cache/kube-apiserver-$hash"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
if ! command -v go >/dev/null; then
  echo "build.sh: go not found; the test suite builds the real kube-apiserver from Go modules (Go >= 1.25: https://go.dev/dl or your distribution's golang package)" >&2
  exit 1
fi
mkdir -p "$cache"
# One build at a time (parallel test files may all ask).
exec 9>"$cache/build.lock"
flock 9
if [ ! -x "$bin" ]; then
  echo "build.sh: building kube-apiserver v1.37.2 + etcd v3.7.0 (cold: ~10 min, once; cached in $cache)" >&2
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v1.37.2 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 -X k8s.io/component-base/version.gitTreeState=clean"
  (cd "$here" && GOFLAGS=-mod=mod go build -ldflags "$ldflags" -o "$bin.tmp" .) >&2
  mv "$bin.tmp" "$bin"
fi
echo "$bin"
