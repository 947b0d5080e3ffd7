#!/usr/bin/env bash
# `make dist`: the release files in target/dist/ — for x86_64 and aarch64 each a tarball and a
# .deb of the static binary (with README, licences, man page, completions) and a CycloneDX SBOM
# of what that target compiles in; then SHA256SUMS over all of them.
# Byte-identical across builds of one commit as far as the tools allow: every timestamp is the
# commit's (SOURCE_DATE_EPOCH), owners are 0:0, archive members are sorted, gzip drops names.
#
# Usage: scripts/dist.sh        (then: scripts/dist-check.sh)
#        DIST_AARCH64=0 scripts/dist.sh   x86_64 only (the aarch64 cross toolchain is Debian's:
#                                         see scripts/dist-aarch64-build.sh)
set -euo pipefail

repo_root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
out="${repo_root}/target/dist"

die() {
  echo "dist: $*" >&2
  exit 1
}
for tool in dpkg-deb gzip tar sha256sum python3; do
  command -v "$tool" >/dev/null 2>&1 || die "${tool} is not installed"
done

SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "$repo_root" log -1 --format=%ct)}"
export SOURCE_DATE_EPOCH
version="$(cd "$repo_root" && cargo metadata --format-version 1 --no-deps --locked \
  | python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "compose-secrets"))')"
binary="$("$repo_root/scripts/static-build.sh")" || die "the static build failed"
if [[ "${DIST_AARCH64:-1}" == 0 ]]; then
  echo "dist: SKIPPED (DIST_AARCH64=0): no aarch64 tarball, .deb or SBOM" >&2
  binary_aarch64=""
else
  binary_aarch64="$("$repo_root/scripts/dist-aarch64-build.sh")" \
    || die "the aarch64 build failed (DIST_AARCH64=0 builds x86_64 only)"
fi

rm -rf "$out"
mkdir -p "$out"
stage="$(mktemp -d "${TMPDIR:-/tmp}/compose-secrets-dist.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
# Modes come from here, not from whoever runs the script.
umask 022

# Generated docs come from the binary itself, run with no environment and an empty directory
# so nothing of this checkout (a .env, a config) can change them.
gen="${stage}/gen"
mkdir -p "$gen/completions" "$gen/run"
run_bin() { (cd "$gen/run" && env -i PATH=/usr/bin:/bin "$binary" "$@"); }
run_bin debug man >"$gen/compose-secrets.1"
run_bin completions bash >"$gen/completions/compose-secrets.bash"
run_bin completions zsh >"$gen/completions/_compose-secrets"
run_bin completions fish >"$gen/completions/compose-secrets.fish"
for f in "$gen/compose-secrets.1" "$gen"/completions/*; do
  [[ -s "$f" ]] || die "the binary printed nothing for $(basename "$f")"
done

# Archive members get the commit's time, owner 0:0 and a sorted order: nothing of this run.
reproducible_tar() { # <output.tar.gz> <dir> <member>
  tar --sort=name --mtime="@${SOURCE_DATE_EPOCH}" --owner=0 --group=0 --numeric-owner \
    --format=gnu -C "$2" -cf - "$3" | gzip -n -9 >"$1"
}

# One target's tarball, .deb and SBOM. The man page and completions are the x86_64 binary's:
# one source, and dist-check compares them with what the aarch64 binary prints under qemu.
package() { # <triple> <Debian architecture> <binary>
  local triple="$1" arch="$2" bin="$3"
  local name="compose-secrets-${version}-${triple}"
  local tdir="${stage}/tar-${arch}/${name}"
  mkdir -p "$tdir/completions"
  install -m 0755 "$bin" "$tdir/compose-secrets"
  install -m 0644 "$repo_root/README.md" "$repo_root/LICENSE-MIT" "$repo_root/LICENSE-APACHE" \
    "$gen/compose-secrets.1" "$tdir/"
  install -m 0644 "$gen"/completions/* "$tdir/completions/"
  reproducible_tar "${out}/${name}.tar.gz" "${stage}/tar-${arch}" "$name"

  # The .deb, from a staged tree (no cargo-deb needed).
  local root="${stage}/deb-${arch}"
  "$repo_root/scripts/dist-deb-tree.sh" "$root" "$bin" "$gen" "$version" "$repo_root" "$arch" "$triple"
  find "$root" -exec touch -h -d "@${SOURCE_DATE_EPOCH}" {} +
  dpkg-deb --root-owner-group -Zxz --build "$root" "${out}/compose-secrets_${version}_${arch}.deb" >/dev/null

  # The SBOM: the product's normal dependency tree for this target (what ships in the binary;
  # x86_64's has cpufeatures, aarch64's does not).
  python3 "$repo_root/scripts/sbom.py" "$repo_root" "$triple" "$SOURCE_DATE_EPOCH" >"${out}/${name}.cdx.json"
}
package x86_64-unknown-linux-gnu amd64 "$binary"
[[ -z "$binary_aarch64" ]] || package aarch64-unknown-linux-gnu arm64 "$binary_aarch64"

(cd "$out" && sha256sum -- *.tar.gz *.deb *.cdx.json >SHA256SUMS)
echo "dist: wrote ${out}:" >&2
(cd "$out" && ls -l) >&2
