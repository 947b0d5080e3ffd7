#!/usr/bin/env bash
# `make dist`: the release files in target/dist/ — a tarball and a .deb of the static x86_64
# binary (with README, licences, man page, completions), a CycloneDX SBOM and SHA256SUMS.
# Byte-identical across builds of one commit as far as the tools allow: every timestamp is the
# commit's (SOURCE_DATE_EPOCH), owners are 0:0, archive members are sorted, gzip drops names.
#
# Usage: scripts/dist.sh        (then: scripts/dist-check.sh)
set -euo pipefail

repo_root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
triple="x86_64-unknown-linux-gnu"
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

# The tarball.
name="compose-secrets-${version}-${triple}"
tdir="${stage}/tar/${name}"
mkdir -p "$tdir/completions"
install -m 0755 "$binary" "$tdir/compose-secrets"
install -m 0644 "$repo_root/README.md" "$repo_root/LICENSE-MIT" "$repo_root/LICENSE-APACHE" \
  "$gen/compose-secrets.1" "$tdir/"
install -m 0644 "$gen"/completions/* "$tdir/completions/"
reproducible_tar "${out}/${name}.tar.gz" "${stage}/tar" "$name"

# The .deb, from a staged tree (no cargo-deb needed).
deb_file="compose-secrets_${version}_amd64.deb"
root="${stage}/deb"
"$repo_root/scripts/dist-deb-tree.sh" "$root" "$binary" "$gen" "$version" "$repo_root"
find "$root" -exec touch -h -d "@${SOURCE_DATE_EPOCH}" {} +
dpkg-deb --root-owner-group -Zxz --build "$root" "${out}/${deb_file}" >/dev/null

# The SBOM: the product's normal dependency tree (what ships in the binary).
python3 "$repo_root/scripts/sbom.py" "$repo_root" "$triple" "$SOURCE_DATE_EPOCH" \
  >"${out}/compose-secrets-${version}.cdx.json"

(cd "$out" && sha256sum -- *.tar.gz *.deb *.cdx.json >SHA256SUMS)
echo "dist: wrote ${out}:" >&2
(cd "$out" && ls -l) >&2
