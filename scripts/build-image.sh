#!/usr/bin/env bash
# Build the compose-secrets image compose-secrets:latest (or $COMPOSE_SECRETS_IMAGE) without a
# registry: a fully static compose-secrets copied into a FROM scratch image by the legacy
# builder, as scripts/build-demo-image.sh builds the demo app's.
#
# Usage: scripts/build-image.sh        (COMPOSE_SECRETS_IMAGE=name:tag to override the tag)
set -euo pipefail

repo_root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
image="${COMPOSE_SECRETS_IMAGE:-compose-secrets:latest}"
target="x86_64-unknown-linux-gnu"

die() {
  echo "build-image: $*" >&2
  exit 1
}

command -v docker >/dev/null 2>&1 || die "the docker CLI is not installed"
# Fail before a long compile when the engine is not there.
if ! docker_error="$(docker version --format '{{.Server.Version}}' 2>&1 >/dev/null)"; then
  die "Docker engine not reachable (DOCKER_HOST=${DOCKER_HOST:-unix:///var/run/docker.sock}): ${docker_error%.}. Start Docker or set DOCKER_HOST."
fi

echo "build-image: building a static compose-secrets for ${target} (release; several minutes on 2 cores)" >&2
# +crt-static links glibc statically: the binary needs nothing from the (empty) image. With
# --target the flag reaches only the target's code, not build scripts or proc macros.
(cd "$repo_root" && RUSTFLAGS='-C target-feature=+crt-static' \
  cargo build --release -p compose-secrets --bin compose-secrets --target "$target")

# Where cargo put it (CARGO_TARGET_DIR or a config may move target/).
if command -v python3 >/dev/null 2>&1; then
  target_dir="$(cd "$repo_root" && cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
else
  target_dir="${CARGO_TARGET_DIR:-$repo_root/target}"
fi
binary="${target_dir}/${target}/release/compose-secrets"
[[ -x "$binary" ]] || die "no binary at ${binary}"
if command -v file >/dev/null 2>&1 && file "$binary" | grep -q 'dynamically linked'; then
  die "${binary} is dynamically linked; it would not run in a FROM scratch image"
fi

context="$(mktemp -d "${TMPDIR:-/tmp}/compose-secrets-image.XXXXXX")"
trap 'rm -rf "$context"' EXIT
cp "$binary" "$context/compose-secrets"
cp "$repo_root/compose/sidecar/Dockerfile" "$context/Dockerfile"

echo "build-image: docker build -t ${image}" >&2
DOCKER_BUILDKIT=0 docker build --quiet -t "$image" "$context" >/dev/null
echo "build-image: built ${image}" >&2
