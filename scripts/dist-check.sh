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
aarch64="${DIST_AARCH64:-1}"
tars=("$dist"/*-x86_64-unknown-linux-gnu.tar.gz)
((${#tars[@]} == 1)) || die "expected one x86_64 tarball in ${dist}"
version="$(basename "${tars[0]}" -x86_64-unknown-linux-gnu.tar.gz)"
version="${version#compose-secrets-}"
triples=(x86_64-unknown-linux-gnu)
archs=(amd64)
if [[ "$aarch64" == 0 ]]; then
  echo "dist-check: SKIPPED (DIST_AARCH64=0): the aarch64 tarball, .deb and SBOM"
else
  triples+=(aarch64-unknown-linux-gnu)
  archs+=(arm64)
fi
for t in "${triples[@]}"; do
  [[ -f "$dist/compose-secrets-${version}-${t}.tar.gz" ]] || die "no ${t} tarball of ${version} in ${dist}"
  [[ -f "$dist/compose-secrets-${version}-${t}.cdx.json" ]] || die "no ${t} SBOM of ${version} in ${dist}"
  grep -q " compose-secrets-${version}-${t}.tar.gz\$" "$dist/SHA256SUMS" \
    && ok "SHA256SUMS lists the ${t} tarball" || bad "SHA256SUMS does not list the ${t} tarball"
done

for i in "${!archs[@]}"; do
  arch="${archs[$i]}"
  deb="$dist/compose-secrets_${version}_${arch}.deb"
  [[ -f "$deb" ]] || die "no ${arch} .deb of ${version} in ${dist}"
  listing="$(dpkg-deb -c "$deb")"
  for path in ./usr/bin/compose-secrets ./usr/share/man/man1/compose-secrets.1.gz \
    ./usr/share/bash-completion/completions/compose-secrets \
    ./usr/share/zsh/vendor-completions/_compose-secrets \
    ./usr/share/fish/vendor_completions.d/compose-secrets.fish \
    ./usr/share/doc/compose-secrets/copyright; do
    grep -q " ${path}\$" <<<"$listing" && ok "${arch} deb has ${path}" || bad "${arch} deb lacks ${path}"
  done
  grep -q ' root/root .* ./usr/bin/compose-secrets$' <<<"$listing" \
    && ok "${arch} deb's files are owned by root" || bad "${arch} deb's binary is not owned by root/root"
  for field in Package Version Architecture Maintainer Description; do
    [[ -n "$(dpkg-deb -f "$deb" "$field" 2>/dev/null)" ]] \
      && ok "${arch} control has ${field}" || bad "${arch} control lacks ${field}"
  done
  [[ "$(dpkg-deb -f "$deb" Architecture)" == "$arch" ]] \
    && ok "${arch} control says Architecture: ${arch}" || bad "${arch} control says Architecture: $(dpkg-deb -f "$deb" Architecture)"
  # The packaged binary is the tarball's, byte for byte.
  [[ "$(dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ./usr/bin/compose-secrets | sha256sum)" \
    == "$(tar -xzOf "$dist/compose-secrets-${version}-${triples[$i]}.tar.gz" \
      "compose-secrets-${version}-${triples[$i]}/compose-secrets" | sha256sum)" ]] \
    && ok "${arch} deb's binary is the ${triples[$i]} tarball's" || bad "${arch} deb's binary differs from the ${triples[$i]} tarball's"
done

for t in "${triples[@]}"; do
  for dep in bollard azure_security_keyvault_secrets; do
    python3 - "$dist/compose-secrets-${version}-${t}.cdx.json" "$dep" <<'PY' && ok "${t} SBOM names ${dep}" || bad "${t} SBOM does not name ${dep}"
import json, sys
bom = json.load(open(sys.argv[1]))
assert bom["bomFormat"] == "CycloneDX"
sys.exit(0 if any(c["name"] == sys.argv[2] and c["purl"].startswith("pkg:cargo/")
                  for c in bom["components"]) else 1)
PY
  done
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

# The dependency list cargo-auditable embedded (scripts/static-build.sh) in each binary.
audit_check() { # <binary> <label>
  "$repo_root/scripts/dist-audit-info.py" "$1" >"$work/audit.json" 2>"$work/audit.err" \
    || { bad "$2 binary has no embedded dependency list: $(cat "$work/audit.err")"; return; }
  for dep in compose-secrets bollard azure_security_keyvault_secrets ring; do
    python3 - "$work/audit.json" "$dep" <<'PY' && ok "$2 binary's embedded dependency list names ${dep}" \
      || bad "$2 binary's embedded dependency list does not name ${dep}"
import json, sys
sys.exit(0 if any(p["name"] == sys.argv[2] for p in json.load(open(sys.argv[1]))["packages"]) else 1)
PY
  done
}
audit_check "${bin[0]}" x86_64

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

# The aarch64 binary under qemu-user (no aarch64 machine here): --version, and ensure and load
# of the demo project, with no environment. Its man page must be the one packaged beside it,
# which scripts/dist.sh generated with the x86_64 binary.
if [[ "$aarch64" != 0 ]]; then
  qemu="$(command -v qemu-aarch64-static || true)"
  if [[ -z "$qemu" ]]; then
    ((EUID == 0)) || die "no qemu-aarch64-static: as root, apt-get install qemu-user-static (or DIST_AARCH64=0)"
    echo "dist-check: installing qemu-user-static with apt (to run the aarch64 binary)"
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
      --no-install-recommends qemu-user-static >/dev/null
    qemu="$(command -v qemu-aarch64-static)"
  fi
  name="compose-secrets-${version}-aarch64-unknown-linux-gnu"
  mkdir -p "$work/aarch64"
  tar -C "$work/aarch64" -xzf "$dist/${name}.tar.gz"
  abin="$work/aarch64/${name}/compose-secrets"
  [[ -x "$abin" ]] || die "the aarch64 tarball has no executable compose-secrets"
  file "$abin" | grep -q 'ARM aarch64' && ok "the aarch64 binary is an aarch64 ELF" \
    || bad "the aarch64 binary is not aarch64: $(file -b "$abin")"
  file "$abin" | grep -qE 'static-pie linked|statically linked' && ok "the aarch64 binary is statically linked" \
    || bad "the aarch64 binary is not statically linked: $(file -b "$abin")"
  audit_check "$abin" aarch64
  qrun() { (cd "$aproject" && env -i PATH=/usr/bin:/bin "$qemu" "$abin" "$@"); }
  aproject="$work/aarch64-project"
  mkdir -p "$aproject"
  cp "$repo_root/compose.yaml" "$repo_root/.env.demo" "$aproject/"
  version_out="$(qrun --version)" && [[ "$version_out" == "compose-secrets ${version}"* ]] \
    && ok "aarch64 --version under qemu: ${version_out}" || bad "aarch64 --version under qemu: ${version_out}"
  qrun debug man | cmp -s - "$work/aarch64/${name}/compose-secrets.1" \
    && ok "aarch64 man page under qemu is the packaged one" || bad "aarch64 binary's man page differs from the packaged one"
  qrun ensure >"$work/aensure.log" 2>&1 && [[ -f "$aproject/.env" ]] \
    && ok "aarch64 ensure under qemu wrote .env" || bad "aarch64 ensure under qemu failed: $(cat "$work/aensure.log")"
  qrun load >"$work/aload.log" 2>&1 && ok "aarch64 load under qemu exited 0" \
    || bad "aarch64 load under qemu failed: $(cat "$work/aload.log")"
  for secret in flask-secret-key keycloak-service-client-secret keycloak-admin-password audit-log-signing-key; do
    f="$aproject/.runtime/secrets/$secret"
    key="$(tr 'a-z-' 'A-Z_' <<<"$secret")"
    # The file holds what ensure put in .env (compared, never printed).
    value="$(sed -n "s/^${key}=//p" "$aproject/.env")"
    [[ -s "$f" && "$(stat -c %a "$f")" == 400 && -n "$value" ]] && printf '%s' "$value" | cmp -s - "$f" \
      && ok "aarch64 load wrote ${secret} (0400, the value in .env)" \
      || bad "aarch64 load did not write ${secret} as a 0400 file holding its .env value"
  done
fi

if ((fails)); then
  echo "dist-check: ${fails} check(s) failed" >&2
  exit 1
fi
echo "dist-check: all checks passed"
