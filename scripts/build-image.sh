#!/usr/bin/env bash
# Build the compose-secrets image compose-secrets:latest (or $COMPOSE_SECRETS_IMAGE) without a
# registry: a fully static compose-secrets copied into a FROM scratch image by the legacy
# builder, as scripts/build-demo-image.sh builds the demo app's.
#
# Usage: scripts/build-image.sh        (COMPOSE_SECRETS_IMAGE=name:tag to override the tag)
set -euo pipefail

repo_root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
image="${COMPOSE_SECRETS_IMAGE:-compose-secrets:latest}"

die() {
  echo "build-image: $*" >&2
  exit 1
}

command -v docker >/dev/null 2>&1 || die "the docker CLI is not installed"
# Fail before a long compile when the engine is not there.
if ! docker_error="$(docker version --format '{{.Server.Version}}' 2>&1 >/dev/null)"; then
  die "Docker engine not reachable (DOCKER_HOST=${DOCKER_HOST:-unix:///var/run/docker.sock}): ${docker_error%.}. Start Docker or set DOCKER_HOST."
fi

# The same static build as `make dist` (scripts/static-build.sh): one compile serves both.
binary="$("$repo_root/scripts/static-build.sh")" || die "the static build failed"

context="$(mktemp -d "${TMPDIR:-/tmp}/compose-secrets-image.XXXXXX")"
trap 'rm -rf "$context"' EXIT
cp "$binary" "$context/compose-secrets"
cp "$repo_root/compose/sidecar/Dockerfile" "$context/Dockerfile"

echo "build-image: docker build -t ${image}" >&2
DOCKER_BUILDKIT=0 docker build --quiet -t "$image" "$context" >/dev/null
echo "build-image: built ${image}" >&2
