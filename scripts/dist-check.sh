#!/usr/bin/env bash
# Check what `make dist` wrote to target/dist: the checksums, the .deb's contents, the tarball's
# binary running --version, ensure and load of the demo project in a FROM-scratch container
# (nothing pulled: the image is the binary alone), and the SBOM's dependencies.
# Not part of `make test`: it needs the release build that `make dist` makes.
#
# Usage: scripts/dist-check.sh        (after scripts/dist.sh; uses the Docker engine)
set -euo pipefail

repo_root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
dist="${repo_root}/target/dist"
fails=0

ok() { echo "dist-check: ok: $*"; }
bad() {
  echo "dist-check: FAIL: $*" >&2
  fails=$((fails + 1))
}
die() {
  echo "dist-check: $*" >&2
  exit 1
}

[[ -f "$dist/SHA256SUMS" ]] || die "no ${dist}/SHA256SUMS: run make dist first"
(cd "$dist" && sha256sum -c --quiet SHA256SUMS) && ok "sha256sum -c SHA256SUMS" || bad "sha256sum -c SHA256SUMS"

shopt -s nullglob
debs=("$dist"/*_amd64.deb)
tars=("$dist"/*-x86_64-unknown-linux-gnu.tar.gz)
sboms=("$dist"/*.cdx.json)
((${#debs[@]} == 1 && ${#tars[@]} == 1 && ${#sboms[@]} == 1)) \
  || die "expected one .deb, one x86_64 tarball and one SBOM in ${dist}"

listing="$(dpkg-deb -c "${debs[0]}")"
for path in ./usr/bin/compose-secrets ./usr/share/man/man1/compose-secrets.1.gz \
  ./usr/share/bash-completion/completions/compose-secrets \
  ./usr/share/zsh/vendor-completions/_compose-secrets \
  ./usr/share/fish/vendor_completions.d/compose-secrets.fish \
  ./usr/share/doc/compose-secrets/copyright; do
  grep -q " ${path}\$" <<<"$listing" && ok "deb has ${path}" || bad "deb lacks ${path}"
done
grep -q ' root/root .* ./usr/bin/compose-secrets$' <<<"$listing" \
  && ok "deb's files are owned by root" || bad "deb's binary is not owned by root/root"
for field in Package Version Architecture Maintainer Description; do
  dpkg-deb -f "${debs[0]}" "$field" >/dev/null 2>&1 && [[ -n "$(dpkg-deb -f "${debs[0]}" "$field")" ]] \
    && ok "control has ${field}" || bad "control lacks ${field}"
done

for dep in bollard azure_security_keyvault_secrets; do
  python3 - "${sboms[0]}" "$dep" <<'PY' && ok "SBOM names ${dep}" || bad "SBOM does not name ${dep}"
import json, sys
bom = json.load(open(sys.argv[1]))
assert bom["bomFormat"] == "CycloneDX"
sys.exit(0 if any(c["name"] == sys.argv[2] and c["purl"].startswith("pkg:cargo/")
                  for c in bom["components"]) else 1)
PY
done

work="$(mktemp -d "${TMPDIR:-/tmp}/compose-secrets-dist-check.XXXXXX")"
image="compose-secrets-dist-check:$$"
cleanup() {
  docker image rm -f "$image" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
tar -C "$work" -xzf "${tars[0]}"
bin=("$work"/compose-secrets-*/compose-secrets)
[[ -x "${bin[0]}" ]] || die "the tarball has no executable compose-secrets"
# file(1) says "static-pie linked" for glibc's +crt-static PIE, "statically linked" otherwise.
file "${bin[0]}" | grep -qE 'static-pie linked|statically linked' && ok "the binary is statically linked" \
  || bad "the binary is not statically linked: $(file -b "${bin[0]}")"

# scripts/install.sh from these files: a good copy installs, a tampered one installs nothing.
prefix="$work/prefix"
PREFIX="$prefix" "$repo_root/scripts/install.sh" "$dist" >"$work/install.log" 2>&1 \
  && "$prefix/bin/compose-secrets" --version >/dev/null && ok "install.sh installs into a PREFIX and --version runs" \
  || bad "install.sh: $(cat "$work/install.log")"
tampered="$work/tampered"
mkdir -p "$tampered"
cp "$dist/SHA256SUMS" "${tars[0]}" "$tampered/"
printf 'x' >>"$tampered/$(basename "${tars[0]}")"
if PREFIX="$work/prefix-tampered" "$repo_root/scripts/install.sh" "$tampered" >"$work/tampered.log" 2>&1; then
  bad "install.sh accepted a tampered tarball"
elif [[ -e "$work/prefix-tampered" ]]; then
  bad "install.sh refused a tampered tarball but wrote to its PREFIX"
else
  ok "install.sh refuses a tampered tarball: $(tail -1 "$work/tampered.log")"
fi

# A FROM-scratch image holding only the binary: if it runs there, it needs nothing of the host.
ctx="$work/ctx"
mkdir -p "$ctx"
cp "${bin[0]}" "$ctx/compose-secrets"
printf 'FROM scratch\nCOPY compose-secrets /compose-secrets\nENTRYPOINT ["/compose-secrets"]\n' >"$ctx/Dockerfile"
DOCKER_BUILDKIT=0 docker build --quiet --pull=false -t "$image" "$ctx" >"$work/build.log" 2>&1 \
  || die "docker build of ${image} failed: $(cat "$work/build.log")"

# The demo project, mounted at its own path as compose.sidecar.yaml does.
project="$work/project"
mkdir -p "$project"
cp "$repo_root/compose.yaml" "$repo_root/.env.demo" "$project/"
run() { docker run --rm --network none -v "$project:$project" -w "$project" "$image" "$@"; }
version_out="$(run --version)" && grep -q '^compose-secrets ' <<<"$version_out" \
  && ok "--version in FROM scratch: ${version_out}" || bad "--version failed: ${version_out}"
run ensure >"$work/ensure.log" 2>&1 && [[ -f "$project/.env" ]] \
  && ok "ensure in FROM scratch wrote .env" || bad "ensure failed: $(cat "$work/ensure.log")"
run load >"$work/load.log" 2>&1 && ok "load in FROM scratch exited 0" || bad "load failed: $(cat "$work/load.log")"
for secret in flask-secret-key keycloak-service-client-secret keycloak-admin-password audit-log-signing-key; do
  f="$project/.runtime/secrets/$secret"
  [[ -s "$f" && "$(stat -c %a "$f")" == 400 ]] && ok "load wrote ${secret} (0400)" \
    || bad "load did not write ${secret} as a non-empty 0400 file"
done

if ((fails)); then
  echo "dist-check: ${fails} check(s) failed" >&2
  exit 1
fi
echo "dist-check: all checks passed"
