#!/usr/bin/env bash
# Build a real Debian image from Debian's own packages (no registry needed) and cache it by
# tag: scripts/debian-image.sh TAG PACKAGE[,PACKAGE...]
# e.g. scripts/debian-image.sh compose-secrets-test/nginx:bookworm nginx-light,openssl
# Exit 0 with the image present; exit 3 (and a printed line) when Debian's mirror or
# mmdebstrap cannot be had, so callers can skip with a reason instead of failing obscurely.
set -euo pipefail
tag="${1:?usage: $0 TAG PACKAGES}"
packages="${2:?usage: $0 TAG PACKAGES}"

if docker image inspect "$tag" >/dev/null 2>&1; then
  exit 0
fi
if ! command -v mmdebstrap >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
  fi
fi
if ! command -v mmdebstrap >/dev/null 2>&1; then
  echo "debian-image: mmdebstrap is not installed and cannot be (not root, or no apt)" >&2
  exit 3
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# One build at a time per tag: two tests asking at once would both debootstrap.
exec 9>"/tmp/compose-secrets-debian-image.$(echo "$tag" | tr '/:' '__').lock"
flock 9
if docker image inspect "$tag" >/dev/null 2>&1; then
  exit 0
fi
if ! mmdebstrap --quiet --variant=apt --include="$packages" bookworm "$work/rootfs.tar" >"$work/log" 2>&1; then
  echo "debian-image: mmdebstrap failed (is Debian's mirror reachable?):" >&2
  tail -5 "$work/log" >&2
  exit 3
fi
docker import "$work/rootfs.tar" "$tag" >/dev/null
echo "debian-image: built $tag with $packages" >&2
