#!/usr/bin/env bash
# Build the demo service image compose-secrets-demo:latest (or $DEMO_IMAGE) without a registry:
# a fully static demo-app binary copied into a FROM scratch image, with BuildKit when the docker
# CLI has its buildx plugin, else with the legacy builder (see below).
#
# Usage: scripts/build-demo-image.sh        (DEMO_IMAGE=name:tag to override the tag)
set -euo pipefail

repo_root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
image="${DEMO_IMAGE:-compose-secrets-demo:latest}"

die() {
  echo "build-demo-image: $*" >&2
  exit 1
}

command -v docker >/dev/null 2>&1 || die "the docker CLI is not installed"
# Fail before a long compile when the engine is not there.
if ! docker_error="$(docker version --format '{{.Server.Version}}' 2>&1 >/dev/null)"; then
  die "Docker engine not reachable (DOCKER_HOST=${DOCKER_HOST:-unix:///var/run/docker.sock}): ${docker_error%.}. Start Docker or set DOCKER_HOST."
fi

# The same flags as compose-secrets' static build (scripts/static-build.sh): with other
# RUSTFLAGS the crates both use would be rebuilt each time `make test` builds both images.
binary="$("$repo_root/scripts/static-build.sh" demo-app)" || die "the static build of demo-app failed"

context="$(mktemp -d "${TMPDIR:-/tmp}/demo-image.XXXXXX")"
trap 'rm -rf "$context"' EXIT
cp "$binary" "$context/demo-app"
cp "$repo_root/compose/demo-app/Dockerfile" "$context/Dockerfile"

if docker buildx version >/dev/null 2>&1; then
  # BuildKit: every engine since 18.09 has it; a docker CLI reaches it through buildx.
  echo "build-demo-image: docker build -t ${image} (BuildKit)" >&2
  DOCKER_BUILDKIT=1 docker build --quiet -t "$image" "$context" >/dev/null
else
  # No buildx plugin (as on Debian's docker.io CLI): there, DOCKER_BUILDKIT=1 docker build
  # fails ("BuildKit is enabled but the buildx component is missing or broken"), so the legacy
  # builder it is. It works with every engine and builds the same image from this Dockerfile
  # (one COPY into scratch), but the docker 23+ CLI prints a deprecation banner for it that the
  # user cannot act on here: that banner is dropped, anything else the build says is kept.
  echo "build-demo-image: docker build -t ${image} (legacy builder: no buildx plugin for BuildKit)" >&2
  build_log="$(mktemp "${TMPDIR:-/tmp}/demo-image-build.XXXXXX")"
  trap 'rm -rf "$context" "$build_log"' EXIT
  status=0
  DOCKER_BUILDKIT=0 docker build --quiet -t "$image" "$context" >/dev/null 2>"$build_log" || status=$?
  grep -v -e '^DEPRECATED: The legacy builder is deprecated' \
    -e '^ *BuildKit is currently disabled; enable it by removing the DOCKER_BUILDKIT=0' \
    -e '^ *environment-variable\.$' -e '^$' "$build_log" >&2 || true
  [[ "$status" -eq 0 ]] || die "docker build failed (exit ${status})"
fi
echo "build-demo-image: built ${image}" >&2
