#!/usr/bin/env bash
# The commands below are written with the docs' variable names, expanded only when run (eval):
# shellcheck disable=SC2016
#
# Check a release of nats-k8s-oidc-callout with exactly the commands docs/verify.md gives users
# (tests/release/release_test.ts keeps the two the same). The release workflow runs it against
# every release before making it public; the release script runs its `gpg` check on each package.
#
#   tools/release/verify.sh [--print] DIR [CHECK...]     (default: every check)
#
# DIR holds the release's files (`gh release download v<version> --dir DIR`). Checks:
#   gpg     the chart package's Helm provenance (.prov, GPG) against the release key, whose
#           fingerprint must be FINGERPRINT (offline)
#   blob    the chart package's cosign signature (Sigstore bundle), made by the release workflow
#   image   the image's cosign signature, by the release workflow, on the released digest
#   sbom    the SBOMs attested to the image (cosign, SPDX)
#   chart   the chart in the OCI registry: its cosign signature, and `helm pull --verify` (GPG)
#   slsa    the SLSA provenance of the image and of the chart (slsa-verifier)
# --print prints the commands instead of running them.
#
# Environment (defaults from this checkout): VERSION, REPO (GitHub owner/name), IMAGE, CHART (the
# chart's OCI name, without oci://), FINGERPRINT (or RELEASE_KEY_FINGERPRINT).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"

print=0
if [ "${1:-}" = --print ]; then
  print=1
  shift
fi
DIR="${1:?usage: tools/release/verify.sh [--print] DIR [gpg|blob|image|sbom|chart|slsa]...}"
shift
checks=("$@")
[ ${#checks[@]} -gt 0 ] || checks=(gpg blob image sbom chart slsa)

if [ -z "${VERSION:-}" ] || [ -z "${REPO:-}" ] || [ -z "${IMAGE:-}" ]; then
  facts="$(cd "$root" && deno run --frozen --allow-read="$root" --allow-env=LOG_TOKENS,LOG_STREAM \
    "$root/tools/release/facts.ts")"
  SOURCE_URL="" CHART_IMAGE_REPOSITORY="" FACT_VERSION=""
  eval "${facts/VERSION=/FACT_VERSION=}"
  VERSION="${VERSION:-$FACT_VERSION}"
  REPO="${REPO:-${SOURCE_URL#https://github.com/}}"
  IMAGE="${IMAGE:-$CHART_IMAGE_REPOSITORY}"
fi
CHART="${CHART:-${IMAGE%/*}/charts/nats-k8s-oidc-callout}"
FINGERPRINT="${FINGERPRINT:-${RELEASE_KEY_FINGERPRINT:-}}"
FINGERPRINT="${FINGERPRINT// /}"
FINGERPRINT="${FINGERPRINT^^}"
IDENTITY="https://github.com/$REPO/.github/workflows/release.yml@refs/tags/v$VERSION"
ISSUER="https://token.actions.githubusercontent.com"
export VERSION REPO IMAGE CHART FINGERPRINT IDENTITY ISSUER DIR

# GnuPG and helm's downloads stay out of the user's home.
work="$(mktemp -d)"
export GNUPGHOME="$work/gnupg"
mkdir -m 700 "$GNUPGHOME"
trap 'gpgconf --kill all 2>/dev/null || true; rm -rf "$work"' EXIT
KEYRING="$work/release-key.gpg"
PULLED="$work/pulled"
mkdir "$PULLED"
export KEYRING PULLED

# One documented command: print it, or run it (it names the variables above, as the docs do).
run() {
  if [ "$print" = 1 ]; then
    printf '%s\n' "$1"
  else
    printf '+ %s\n' "$1" >&2
    eval "$1" || {
      printf 'verify.sh: FAILED: %s\n' "$1" >&2
      exit 1
    }
  fi
}

# The digests the release published (once, however many checks need them).
IMAGE_DIGEST="" CHART_DIGEST=""
export CHART_DIGEST
digests() {
  [ -z "$IMAGE_DIGEST" ] || return 0
  run 'IMAGE_DIGEST="$(cat "$DIR/nats-k8s-oidc-callout-$VERSION.image.digest")"'
  run 'CHART_DIGEST="$(cat "$DIR/nats-k8s-oidc-callout-$VERSION.chart.digest")"'
  IMAGE_DIGEST="${IMAGE_DIGEST:-printed}"
}

# The release key, checked against the published fingerprint, as a keyring helm reads (once).
have_keyring=0
keyring() {
  [ "$have_keyring" = 0 ] || return 0
  have_keyring=1
  if [ "$print" = 0 ] && [ -z "$FINGERPRINT" ]; then
    echo "verify.sh: set FINGERPRINT to the release key's fingerprint published in docs/verify.md" >&2
    exit 1
  fi
  # One key in the file, and it is the published one (a file with a second key would otherwise
  # pass, and helm trusts every key of the keyring).
  local key_check
  read -r key_check <<'CMD'
gpg --show-keys --with-colons "$DIR/nats-k8s-oidc-callout-release-key.asc" | awk -F: -v fp="$FINGERPRINT" '$1 == "pub" { n++ } $1 == "fpr" && !f { f = $10 } END { exit !(n == 1 && f != "" && f == fp) }'
CMD
  run "$key_check"
  run 'gpg --dearmor < "$DIR/nats-k8s-oidc-callout-release-key.asc" > "$KEYRING"'
}

for check in "${checks[@]}"; do
  case "$check" in
  gpg)
    keyring
    run 'helm verify --keyring "$KEYRING" "$DIR/nats-k8s-oidc-callout-$VERSION.tgz"'
    ;;
  blob)
    run 'cosign verify-blob --bundle "$DIR/nats-k8s-oidc-callout-$VERSION.tgz.sigstore.json" --certificate-identity "$IDENTITY" --certificate-oidc-issuer "$ISSUER" "$DIR/nats-k8s-oidc-callout-$VERSION.tgz"'
    ;;
  image)
    digests
    run 'cosign verify --certificate-identity "$IDENTITY" --certificate-oidc-issuer "$ISSUER" "$IMAGE@$IMAGE_DIGEST" > /dev/null'
    ;;
  sbom)
    digests
    run 'cosign verify-attestation --type spdxjson --certificate-identity "$IDENTITY" --certificate-oidc-issuer "$ISSUER" "$IMAGE@$IMAGE_DIGEST" > /dev/null'
    ;;
  chart)
    digests
    keyring
    run 'cosign verify --certificate-identity "$IDENTITY" --certificate-oidc-issuer "$ISSUER" "$CHART@$CHART_DIGEST" > /dev/null'
    run 'helm pull "oci://$CHART" --version "$VERSION" --verify --keyring "$KEYRING" --destination "$PULLED"'
    ;;
  slsa)
    digests
    run 'slsa-verifier verify-image "$IMAGE@$IMAGE_DIGEST" --source-uri "github.com/$REPO" --source-tag "v$VERSION"'
    run 'slsa-verifier verify-image "$CHART@$CHART_DIGEST" --source-uri "github.com/$REPO" --source-tag "v$VERSION"'
    ;;
  *)
    echo "verify.sh: unknown check $check (gpg, blob, image, sbom, chart, slsa)" >&2
    exit 2
    ;;
  esac
done
[ "$print" = 1 ] || echo "verify.sh: ${checks[*]}: verified" >&2
