#!/usr/bin/env bash
# Install compose-secrets from a release's files: this machine's tarball (x86_64 or aarch64)
# and SHA256SUMS, in a local directory or under a URL. The tarball's checksum is verified
# before anything is extracted or installed; on a mismatch nothing is written under PREFIX.
#
# Usage: scripts/install.sh <directory or URL base> [version]
#        PREFIX=/usr/local (default; the binary goes to $PREFIX/bin)
set -euo pipefail

source_base="${1:?usage: install.sh <directory or URL base> [version]}"
version="${2:-}"
prefix="${PREFIX:-/usr/local}"

die() {
  echo "install: $*" >&2
  exit 1
}
case "$(uname -m)" in
  x86_64 | amd64) triple="x86_64-unknown-linux-gnu" ;;
  aarch64 | arm64) triple="aarch64-unknown-linux-gnu" ;;
  *) die "releases are built for x86_64 and aarch64 Linux; this machine is $(uname -m)" ;;
esac
for tool in sha256sum tar install; do
  command -v "$tool" >/dev/null 2>&1 || die "${tool} is not installed"
done

work="$(mktemp -d "${TMPDIR:-/tmp}/compose-secrets-install.XXXXXX")"
trap 'rm -rf "$work"' EXIT

fetch() { # <name>: copy or download one release file into $work
  case "$source_base" in
    http://* | https://*)
      command -v curl >/dev/null 2>&1 || die "curl is needed to download from ${source_base}"
      curl -fsSL --proto '=https,http' -o "$work/$1" "${source_base%/}/$1" \
        || die "could not download ${source_base%/}/$1"
      ;;
    *)
      [[ -f "$source_base/$1" ]] || die "no $1 in ${source_base}"
      cp "$source_base/$1" "$work/$1"
      ;;
  esac
}

fetch SHA256SUMS
# The tarball's name comes from SHA256SUMS unless a version is given: one per target and release.
if [[ -n "$version" ]]; then
  tarball="compose-secrets-${version}-${triple}.tar.gz"
else
  mapfile -t names < <(awk -v t="-${triple}.tar.gz" 'substr($2, length($2) - length(t) + 1) == t { sub(/^\*/, "", $2); print $2 }' "$work/SHA256SUMS")
  ((${#names[@]} == 1)) || die "SHA256SUMS lists ${#names[@]} ${triple} tarballs; name the version"
  tarball="${names[0]}"
fi
[[ "$tarball" =~ ^compose-secrets-[0-9A-Za-z.+~-]+-${triple}\.tar\.gz$ ]] || die "unexpected tarball name: ${tarball}"
grep -q "[ *]${tarball}\$" "$work/SHA256SUMS" || die "SHA256SUMS has no line for ${tarball}"
fetch "$tarball"

# Verify first: nothing from the tarball is read before its checksum matches.
if ! (cd "$work" && sha256sum -c --ignore-missing --quiet SHA256SUMS) >&2; then
  die "checksum mismatch for ${tarball}: refusing to install (nothing was installed)"
fi
echo "install: ${tarball}: checksum OK" >&2

mkdir "$work/x"
tar -C "$work/x" --no-same-owner -xzf "$work/$tarball"
dir="$work/x/${tarball%.tar.gz}"
[[ -f "$dir/compose-secrets" ]] || die "${tarball} holds no compose-secrets binary"
"$dir/compose-secrets" --version >/dev/null || die "the binary in ${tarball} does not run here"

install -d "$prefix/bin"
install -m 0755 "$dir/compose-secrets" "$prefix/bin/compose-secrets"
install -D -m 0644 "$dir/compose-secrets.1" "$prefix/share/man/man1/compose-secrets.1"
install -D -m 0644 "$dir/completions/compose-secrets.bash" \
  "$prefix/share/bash-completion/completions/compose-secrets"
install -D -m 0644 "$dir/completions/_compose-secrets" "$prefix/share/zsh/site-functions/_compose-secrets"
install -D -m 0644 "$dir/completions/compose-secrets.fish" \
  "$prefix/share/fish/vendor_completions.d/compose-secrets.fish"
echo "install: installed $("$prefix/bin/compose-secrets" --version) to ${prefix}/bin/compose-secrets" >&2
case ":$PATH:" in
  *":$prefix/bin:"*) ;;
  *) echo "install: ${prefix}/bin is not on your PATH; add it (export PATH=\"${prefix}/bin:\$PATH\")" >&2 ;;
esac
