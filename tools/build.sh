#!/usr/bin/env bash
# Build (once) one of the Go programs the test suite runs, and print the binary's path.
#
#   tools/build.sh kubernetes    Kubernetes v1.37.2 as one multi-call binary (tools/kubernetes/main.go):
#                                kube-apiserver + embedded etcd v3.7.0 by default; kubectl, kubelet,
#                                kube-controller-manager, kube-scheduler, kube-proxy as first argument.
#                                Cold ~13 min on 2 cores (linker peak ~2.5 GiB, GOCACHE ~3.5 GiB).
#   tools/build.sh coredns       CoreDNS v1.15.0 with the plugins a test cluster needs, static (~2 min cold)
#   tools/build.sh netns-relay   a TCP relay across network namespaces, static (seconds)
#
# Each binary is cached outside the repository, keyed by a hash of its folder's go.mod, go.sum and
# *.go files, so only a change of those rebuilds it; a cached run costs the hash. One build at a
# time (parallel test files may all ask).
#   KUBE_APISERVER_CACHE=/dir tools/build.sh …   cache somewhere else (default ~/.cache/nats-k8s-oidc-callout)
set -euo pipefail
name="${1:?usage: tools/build.sh kubernetes|coredns|netns-relay}"
here="$(cd "$(dirname "$0")" && pwd)/$name"
[ -f "$here/go.mod" ] || { echo "build.sh: no Go program tools/$name" >&2; exit 2; }
cache="${KUBE_APISERVER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nats-k8s-oidc-callout}"
hash="$(cd "$here" && cat go.mod go.sum $(ls ./*.go | sort) | sha256sum | cut -c1-16)"
bin="$cache/$name-$hash"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
if ! command -v go >/dev/null; then
  echo "build.sh: go not found; the test suite builds tools/$name from Go modules (Go >= 1.25: https://go.dev/dl or your distribution's golang package)" >&2
  exit 1
fi
mkdir -p "$cache"
exec 9>"$cache/build.lock"
flock 9
if [ ! -x "$bin" ]; then
  echo "build.sh: building tools/$name (cached in $cache)" >&2
  ldflags="-s -w"
  cgo=0 # static: the programs run inside minimal images
  if [ "$name" = kubernetes ]; then
    # Runs on the host only; the Go toolchain's default (cgo on) shares its build cache with earlier builds.
    cgo="${CGO_ENABLED:-1}"
    ldflags="$ldflags -X k8s.io/component-base/version.gitVersion=v1.37.2 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 -X k8s.io/component-base/version.gitTreeState=clean"
  fi
  (cd "$here" && CGO_ENABLED="$cgo" GOFLAGS=-mod=mod go build -ldflags "$ldflags" -o "$bin.tmp" .) >&2
  mv "$bin.tmp" "$bin"
fi
echo "$bin"
