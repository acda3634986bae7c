#!/usr/bin/env bash
# Make a release of nats-k8s-oidc-callout: the Helm chart, packaged and signed with Helm's own
# provenance (GPG) and pushed to an OCI registry; the image, built from the Containerfile and pushed;
# an SBOM (SPDX) of each; cosign signatures on the image, the chart and the chart package (keyless in
# CI). A maintainer runs it, and .github/workflows/release.yml runs the same script on a tag; SLSA
# provenance for the image and the chart is added by that workflow (docs/releasing.md says why).
# How a user checks each artifact: docs/verify.md (the same commands as tools/release/verify.sh).
#
#   tools/release/release.sh [--dry-run] [--out DIR] [STEP...]      (default: every step, in order)
#
# Steps that only need this machine (they run for real, even with --dry-run, and write only to DIR):
#   check       deno.json, chart/Chart.yaml (version, appVersion), chart/values.yaml (image) and
#               CHANGELOG.md agree on one version, and the tag (RELEASE_TAG) names it
#   chart       helm package --sign: DIR/<chart>-<version>.tgz and .tgz.prov, signed with the GPG
#               key in HELM_SIGNING_KEY_FILE; its public key to DIR/<chart>-release-key.asc; then
#               the package is verified against that public key as a user would (verify.sh gpg)
#   sbom        DIR/<chart>-<version>.npm.spdx.json: SPDX SBOM (syft) of the npm packages the
#               binary is built from (deno.lock, cut down to main.ts's module graph)
# Steps that publish (they need a container engine, registry logins and, for keyless signing, an
# OIDC identity such as GitHub Actions'; --dry-run prints each command instead of running it):
#   image       build the Containerfile for linux/amd64, push <image>:<version>; its digest to
#               DIR/<chart>-<version>.image.digest
#   image-sbom  DIR/<chart>-<version>.image.spdx.json: SPDX SBOM (syft) of the pushed image
#   push-chart  helm push the package (its .prov goes along) to CHART_REPOSITORY; its digest to
#               DIR/<chart>-<version>.chart.digest
#   sign        cosign: sign the image and the chart by digest, attest both SBOMs to the image,
#               sign-blob the package (DIR/<chart>-<version>.tgz.sigstore.json)
# And last, on this machine again:
#   notes       DIR/release-notes.md: the CHANGELOG section, the digests, where to verify
# Aliases: `local` = check chart sbom; `publish` = image image-sbom push-chart sign notes.
#
# Environment:
#   HELM_SIGNING_KEY_FILE              the release's GPG secret key, ASCII-armored (chart step)
#   HELM_SIGNING_KEY_PASSPHRASE_FILE   its passphrase, if it has one
#   RELEASE_KEY_FINGERPRINT            the fingerprint the key must have; required to publish
#   RELEASE_TAG                        the git tag being released (v<version>); checked when set
#   CHART_REPOSITORY                   default oci://<registry>/<owner>/charts, beside the image
#   CONTAINER_ENGINE                   docker (buildx) or podman; default: the first one found
#   COSIGN_KEY                         sign with this cosign key instead of keyless
# The image repository is the chart's default `image.repository` (chart/values.yaml), so the
# published chart pulls exactly the published image.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/tools/release"

dry_run=0
out="$root/dist/release"
steps=()
while [ $# -gt 0 ]; do
  case "$1" in
  --dry-run) dry_run=1 ;;
  --out)
    out="${2:?--out needs a directory}"
    shift
    ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
  local) steps+=(check chart sbom) ;;
  publish) steps+=(image image-sbom push-chart sign notes) ;;
  check | chart | sbom | image | image-sbom | push-chart | sign | notes) steps+=("$1") ;;
  *)
    echo "release.sh: unknown step or option $1 (see --help)" >&2
    exit 2
    ;;
  esac
  shift
done
[ ${#steps[@]} -gt 0 ] || steps=(check chart sbom image image-sbom push-chart sign notes)

log() { printf '==> %s\n' "$*" >&2; }
die() {
  printf 'release.sh: %s\n' "$*" >&2
  exit 1
}

# A command that reaches a registry or the signing services: run it, or under --dry-run print it.
online() {
  if [ "$dry_run" = 1 ]; then
    printf 'would run:'
    printf ' %q' "$@"
    printf '\n'
  else
    "$@"
  fi
}

cleanup_dirs=()
cleanup() {
  for dir in "${cleanup_dirs[@]}"; do
    # A GnuPG home leaves an agent running; stop it before the folder goes.
    if [ -d "$dir/gnupg" ]; then gpgconf --homedir "$dir/gnupg" --kill all 2>/dev/null || true; fi
    rm -rf "$dir"
  done
}
trap cleanup EXIT
# A folder removed at exit, in $scratch (not a command substitution: that would be a subshell,
# and the folder would not be remembered for cleanup).
scratch=""
new_scratch() {
  scratch="$(mktemp -d)"
  cleanup_dirs+=("$scratch")
}

publishing=0
if [ "$dry_run" = 0 ]; then
  for step in "${steps[@]}"; do
    case "$step" in image | image-sbom | push-chart | sign) publishing=1 ;; esac
  done
fi

# The release's facts, checked (facts.ts prints KEY=value lines of safe characters only).
facts="$(cd "$root" && deno run --frozen --allow-read="$root" --allow-env=LOG_TOKENS,LOG_STREAM \
  "$here/facts.ts" ${RELEASE_TAG:+--tag "$RELEASE_TAG"})" || die "see above; nothing was released"
VERSION="" CHART_NAME="" SOURCE_URL="" CHART_IMAGE_REPOSITORY=""
eval "$facts"
IMAGE="$CHART_IMAGE_REPOSITORY"
CHART_REPOSITORY="${CHART_REPOSITORY:-oci://${IMAGE%/*}/charts}"
case "$CHART_REPOSITORY" in oci://*) ;; *) die "CHART_REPOSITORY must be an oci:// URL, not $CHART_REPOSITORY" ;; esac
CHART_REF="${CHART_REPOSITORY#oci://}/$CHART_NAME"

base="$out/$CHART_NAME-$VERSION"
TGZ="$base.tgz"
KEY_ASC="$out/$CHART_NAME-release-key.asc"
NPM_SBOM="$base.npm.spdx.json"
IMAGE_SBOM="$base.image.spdx.json"
IMAGE_DIGEST_FILE="$base.image.digest"
CHART_DIGEST_FILE="$base.chart.digest"
mkdir -p "$out"

# Publishing is from a tag, and only from a clean checkout of it.
if [ "$publishing" = 1 ]; then
  [ -n "${RELEASE_TAG:-}" ] || die "RELEASE_TAG is not set: publish only from a tag (v$VERSION)"
  [ -z "$(git -C "$root" status --porcelain)" ] || die "the work tree has changes: publish only a clean checkout of the tag"
  [ "$(git -C "$root" rev-parse HEAD)" = "$(git -C "$root" rev-parse "refs/tags/$RELEASE_TAG^{commit}" 2>/dev/null)" ] ||
    die "HEAD is not the commit of tag $RELEASE_TAG"
fi

# What a step before this one (now or in an earlier run) recorded.
digest_of() {
  local file="$1" what="$2"
  if [ -s "$file" ]; then
    cat "$file"
  elif [ "$dry_run" = 1 ]; then
    printf 'sha256:%s-digest-after-push\n' "$what"
  else
    die "$file is missing: run the $what step first"
  fi
}

github_output() {
  if [ -n "${GITHUB_OUTPUT:-}" ] && [ "$dry_run" = 0 ]; then printf '%s\n' "$@" >>"$GITHUB_OUTPUT"; fi
}

step_check() {
  # The facts were checked above, before any step; this step says what will be released.
  log "release $VERSION: chart $CHART_NAME, image $IMAGE:$VERSION, chart to $CHART_REPOSITORY"
}

step_chart() {
  local key="${HELM_SIGNING_KEY_FILE:-}" passphrase="${HELM_SIGNING_KEY_PASSPHRASE_FILE:-}"
  [ -n "$key" ] || die "HELM_SIGNING_KEY_FILE is not set: the chart is signed with the release's GPG key (docs/releasing.md)"
  [ -r "$key" ] || die "HELM_SIGNING_KEY_FILE $key cannot be read"
  new_scratch
  local work="$scratch" gnupg="$scratch/gnupg"
  mkdir -m 700 "$gnupg"
  local gpg=(gpg --homedir "$gnupg" --batch --quiet --no-tty)
  local unlock=()
  if [ -n "$passphrase" ]; then unlock=(--pinentry-mode loopback --passphrase-file "$passphrase"); fi
  "${gpg[@]}" "${unlock[@]}" --import "$key" 2>"$work/import.log" ||
    die "cannot import HELM_SIGNING_KEY_FILE: $(cat "$work/import.log")"

  local fingerprints uid
  fingerprints="$("${gpg[@]}" --with-colons --list-secret-keys | awk -F: '$1 == "sec" { want = 1; next } want && $1 == "fpr" { print $10; want = 0 }')"
  [ -n "$fingerprints" ] || die "HELM_SIGNING_KEY_FILE holds no secret key"
  [ "$(printf '%s\n' "$fingerprints" | wc -l)" = 1 ] || die "HELM_SIGNING_KEY_FILE holds more than one secret key"
  local expected="${RELEASE_KEY_FINGERPRINT:-}"
  expected="${expected// /}"
  if [ -n "$expected" ]; then
    [ "${fingerprints^^}" = "${expected^^}" ] ||
      die "the signing key's fingerprint is $fingerprints, not RELEASE_KEY_FINGERPRINT $expected"
  elif [ "$publishing" = 1 ]; then
    die "RELEASE_KEY_FINGERPRINT is not set: users check the key against the published fingerprint (docs/verify.md)"
  fi
  # Helm finds the key by a substring of its user ID, in a keyring of the old format (GnuPG ≥ 2.1
  # keeps keys elsewhere), hence the exports.
  uid="$("${gpg[@]}" --with-colons --list-secret-keys | awk -F: '$1 == "uid" { print $10; exit }')"
  "${gpg[@]}" "${unlock[@]}" --export-secret-keys >"$work/secring.gpg"
  "${gpg[@]}" --armor --export >"$KEY_ASC"

  log "helm package --sign (key $fingerprints, \"$uid\")"
  rm -f "$TGZ" "$TGZ.prov"
  local sign_unlock=()
  if [ -n "$passphrase" ]; then sign_unlock=(--passphrase-file "$passphrase"); fi
  helm package "$root/chart" --destination "$out" --sign --key "$uid" --keyring "$work/secring.gpg" \
    "${sign_unlock[@]}" >&2
  if [ ! -s "$TGZ" ] || [ ! -s "$TGZ.prov" ]; then die "helm package did not write $TGZ and its .prov"; fi

  log "verifying the package against the exported public key, as a user would"
  RELEASE_KEY_FINGERPRINT="$fingerprints" VERSION="$VERSION" bash "$here/verify.sh" "$out" gpg >&2
}

step_sbom() {
  local syft
  syft="$(bash "$here/tools.sh" syft)"
  new_scratch
  local work="$scratch"
  log "SBOM of the npm packages main.ts's graph reaches (deno.lock)"
  (cd "$root" && deno install --frozen --entrypoint main.ts >/dev/null 2>&1)
  (cd "$root" && deno info --json main.ts) |
    deno run --allow-read="$root/deno.lock" "$here/shipped_lock.ts" "$root/deno.lock" >"$work/deno.lock"
  "$syft" scan "dir:$work" --quiet --source-name "$CHART_NAME" --source-version "$VERSION" \
    --output "spdx-json=$NPM_SBOM"
  [ -s "$NPM_SBOM" ] || die "syft wrote no SBOM"
}

container_engine() {
  local engine="${CONTAINER_ENGINE:-}"
  if [ -z "$engine" ]; then
    if command -v docker >/dev/null; then engine=docker; elif command -v podman >/dev/null; then engine=podman; fi
  fi
  if [ -z "$engine" ]; then
    [ "$dry_run" = 1 ] || die "no container engine: install docker (with buildx) or podman, or set CONTAINER_ENGINE"
    engine=docker
  fi
  case "$engine" in docker | podman) printf '%s\n' "$engine" ;; *) die "CONTAINER_ENGINE must be docker or podman" ;; esac
}

step_image() {
  local engine revision
  engine="$(container_engine)"
  revision="$(git -C "$root" rev-parse HEAD)"
  local labels=(
    --label "org.opencontainers.image.title=$CHART_NAME"
    --label "org.opencontainers.image.version=$VERSION"
    --label "org.opencontainers.image.revision=$revision"
    --label "org.opencontainers.image.source=$SOURCE_URL"
  )
  log "image $IMAGE:$VERSION with $engine"
  rm -f "$IMAGE_DIGEST_FILE"
  if [ "$engine" = docker ]; then
    # One manifest, no BuildKit attestations: the provenance is SLSA's, the SBOMs are attested by cosign.
    online docker buildx build --file "$root/Containerfile" --platform linux/amd64 --provenance=false \
      --sbom=false --tag "$IMAGE:$VERSION" "${labels[@]}" --metadata-file "$base.image-build.json" \
      --push "$root"
    if [ "$dry_run" = 0 ]; then
      sed -n 's/.*"containerimage.digest": *"\(sha256:[0-9a-f]*\)".*/\1/p' "$base.image-build.json" >"$IMAGE_DIGEST_FILE"
      rm -f "$base.image-build.json"
    fi
  else
    online podman build --file "$root/Containerfile" --platform linux/amd64 --tag "$IMAGE:$VERSION" \
      "${labels[@]}" "$root"
    online podman push --digestfile "$IMAGE_DIGEST_FILE" "$IMAGE:$VERSION"
  fi
  local digest
  digest="$(digest_of "$IMAGE_DIGEST_FILE" image)"
  if [ "$dry_run" = 0 ]; then
    [[ "$digest" =~ ^sha256:[0-9a-f]{64}$ ]] || die "no image digest after the push (got '$digest')"
  fi
  github_output "image=$IMAGE" "image-digest=$digest"
}

step_image_sbom() {
  local syft digest
  syft="$(bash "$here/tools.sh" syft)"
  digest="$(digest_of "$IMAGE_DIGEST_FILE" image)"
  log "SBOM of the image $IMAGE@$digest"
  online "$syft" scan "registry:$IMAGE@$digest" --quiet --source-name "$CHART_NAME" \
    --source-version "$VERSION" --output "spdx-json=$IMAGE_SBOM"
}

step_push_chart() {
  if [ ! -s "$TGZ" ] || [ ! -s "$TGZ.prov" ]; then die "$TGZ and its .prov are missing: run the chart step first"; fi
  log "helm push $TGZ (with its provenance) to $CHART_REPOSITORY"
  rm -f "$CHART_DIGEST_FILE"
  if [ "$dry_run" = 1 ]; then
    online helm push "$TGZ" "$CHART_REPOSITORY"
  else
    local pushed
    pushed="$(helm push "$TGZ" "$CHART_REPOSITORY" 2>&1)" || die "helm push failed: $pushed"
    printf '%s\n' "$pushed" >&2
    printf '%s\n' "$pushed" | sed -n 's/^Digest: *\(sha256:[0-9a-f]\{64\}\)$/\1/p' >"$CHART_DIGEST_FILE"
    [ -s "$CHART_DIGEST_FILE" ] || die "helm push printed no digest"
  fi
  github_output "chart=$CHART_REF" "chart-digest=$(digest_of "$CHART_DIGEST_FILE" chart)"
}

step_sign() {
  local image_digest chart_digest key=()
  image_digest="$(digest_of "$IMAGE_DIGEST_FILE" image)"
  chart_digest="$(digest_of "$CHART_DIGEST_FILE" chart)"
  if [ -n "${COSIGN_KEY:-}" ]; then key=(--key "$COSIGN_KEY"); fi
  [ -s "$NPM_SBOM" ] || die "$NPM_SBOM is missing: run the sbom step first"
  [ "$dry_run" = 1 ] || [ -s "$IMAGE_SBOM" ] || die "$IMAGE_SBOM is missing: run the image-sbom step first"
  log "cosign: the image and the chart by digest, both SBOMs, the chart package"
  # Always by digest: a tag can be moved after it was signed.
  online cosign sign --yes "${key[@]}" "$IMAGE@$image_digest"
  online cosign attest --yes "${key[@]}" --type spdxjson --predicate "$NPM_SBOM" "$IMAGE@$image_digest"
  online cosign attest --yes "${key[@]}" --type spdxjson --predicate "$IMAGE_SBOM" "$IMAGE@$image_digest"
  online cosign sign --yes "${key[@]}" "$CHART_REF@$chart_digest"
  online cosign sign-blob --yes "${key[@]}" --bundle "$TGZ.sigstore.json" "$TGZ"
}

step_notes() {
  local notes="$out/release-notes.md" changelog
  changelog="$(cd "$root" && deno run --frozen --allow-read="$root" --allow-env=LOG_TOKENS,LOG_STREAM \
    "$here/facts.ts" notes "$VERSION")"
  {
    printf '%s\n\n' "$changelog"
    printf '## Artifacts\n\n'
    printf -- "- image: \`%s:%s\` (\`%s@%s\`)\n" "$IMAGE" "$VERSION" "$IMAGE" "$(digest_of "$IMAGE_DIGEST_FILE" image)"
    printf -- "- chart: \`helm install <release> %s --version %s\` (\`%s@%s\`)\n" \
      "$CHART_REPOSITORY/$CHART_NAME" "$VERSION" "$CHART_REF" "$(digest_of "$CHART_DIGEST_FILE" chart)"
    printf '\nEvery artifact is signed; how to check each one: %s/blob/v%s/docs/verify.md\n' "$SOURCE_URL" "$VERSION"
  } >"$notes"
  log "release notes: $notes"
}

for step in "${steps[@]}"; do
  case "$step" in
  check) step_check ;;
  chart) step_chart ;;
  sbom) step_sbom ;;
  image) step_image ;;
  image-sbom) step_image_sbom ;;
  push-chart) step_push_chart ;;
  sign) step_sign ;;
  notes) step_notes ;;
  esac
done
log "done: $(find "$out" -maxdepth 1 -type f -printf '%f ')"
