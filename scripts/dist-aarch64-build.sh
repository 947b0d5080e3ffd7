#!/usr/bin/env bash
# The static aarch64 build of compose-secrets for `make dist`, cross-compiled on an x86_64
# Debian 12 host. Prints the binary's path on stdout.
#
# rustup has only x86_64's standard library here and cannot download others, so the compiler
# and the aarch64 std are Debian's (bookworm-security's rustc-web and, with the arm64
# architecture added, libstd-rust-web-dev:arm64, same version); ring's C and the final link use
# Debian's aarch64 gcc, and glibc's static libraries come from libc6-dev-arm64-cross. As root
# the script installs what is missing with apt (and says so); otherwise it names the command.
#
# Like scripts/static-build.sh's, the build goes through cargo-auditable (installed by that
# script into target/tools/auditable), so the binary carries its dependency list.
#
# The build has its own target dir (<target>/cross-aarch64): another rustc with other flags in
# the shared one would rebuild the build scripts and proc macros of scripts/static-build.sh's
# x86_64 build, whose flags must stay identical (see there).
#
# Usage: scripts/dist-aarch64-build.sh        (binary path on stdout, progress on stderr)
set -euo pipefail

repo_root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
target="aarch64-unknown-linux-gnu"
package="compose-secrets"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
rustc=/usr/bin/rustc
cc=aarch64-linux-gnu-gcc
# What Debian calls each piece; rustc-web and its amd64 std come in together.
packages=(rustc-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
# The project's rust-version: an older Debian compiler would fail late and less clearly.
min_rust=1.88

say() { echo "dist-aarch64: $*" >&2; }
die() {
  say "$*"
  exit 1
}

[[ "$(uname -m)" == x86_64 ]] || die "cross-builds from x86_64 only; this machine is $(uname -m)"
installed() { # <package[:arch]>
  [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" == "ii " ]]
}
command -v dpkg-query >/dev/null 2>&1 || die "needs Debian's packages (dpkg); set DIST_AARCH64=0 to build x86_64 only"
missing=()
for p in "${packages[@]}"; do installed "$p" || missing+=("$p"); done
if ((${#missing[@]})); then
  how="dpkg --add-architecture arm64 && apt-get update && apt-get install --no-install-recommends ${missing[*]}"
  ((EUID == 0)) || die "missing ${missing[*]}: as root, ${how} (or DIST_AARCH64=0 for x86_64 only)"
  grep -qx arm64 < <(dpkg --print-foreign-architectures) || {
    say "adding the arm64 architecture to dpkg (for libstd-rust-web-dev:arm64)"
    dpkg --add-architecture arm64
  }
  say "installing with apt: ${missing[*]} (the rustc-web and libstd-rust-web-dev come from bookworm-security)"
  apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
    --no-install-recommends "${missing[@]}" >&2
fi

# rustc-web and its arm64 std must be one version: Multi-Arch: same makes apt keep them so,
# and rustc refuses a std from another compiler ("found crate `std` compiled by an incompatible
# version of rustc").
[[ -x "$rustc" ]] || die "no ${rustc} (rustc-web installs it)"
rust_version="$("$rustc" --version)"
[[ "$(printf '%s\n' "$min_rust" "$(cut -d' ' -f2 <<<"$rust_version")" | sort -V | head -1)" == "$min_rust" ]] \
  || die "${rust_version} is older than ${min_rust}; bookworm-security's rustc-web is newer"
[[ -d "$("$rustc" --print sysroot)/lib/rustlib/${target}/lib" ]] \
  || die "${rust_version} has no ${target} standard library (libstd-rust-web-dev:arm64)"
command -v "$cc" >/dev/null 2>&1 || die "no ${cc} (gcc-aarch64-linux-gnu)"

if command -v python3 >/dev/null 2>&1; then
  target_dir="$(cd "$repo_root" && cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
else
  target_dir="${CARGO_TARGET_DIR:-$repo_root/target}"
fi
cross_dir="${target_dir}/cross-aarch64"
"$repo_root/scripts/static-build.sh" --install-auditable || die "cargo-auditable is not installed"
export PATH="${repo_root}/target/tools/auditable/bin:${PATH}"

# The same flags as scripts/static-build.sh's, for the same reasons: glibc linked statically,
# this machine's paths out of the binary. The linker and ring's C compiler are the cross gcc.
export RUSTC="$rustc" CARGO_TARGET_DIR="$cross_dir"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER="$cc"
export CC_aarch64_unknown_linux_gnu="$cc" AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export RUSTFLAGS="-C target-feature=+crt-static --remap-path-prefix=${cargo_home}=/cargo --remap-path-prefix=${repo_root}=/src"
say "static release build of ${package} for ${target} with ${rust_version} and $("$cc" --version | head -1) (about as long as the x86_64 one when not up to date)"
# No SOURCE_DATE_EPOCH, as in scripts/static-build.sh: it would rebuild ring at every commit.
# Not `cargo auditable build`: that names cargo-auditable in RUSTC_WORKSPACE_WRAPPER by its
# absolute path, and cargo hashes the wrapper's path into the workspace crates' -C metadata (so
# into every symbol): two checkouts of one commit gave different binaries. The same wrapper
# found on PATH by name hashes the same everywhere; CARGO_AUDITABLE_ORIG_ARGS is what
# `cargo auditable` would pass it (the cargo flags it re-reads: --locked here).
(cd "$repo_root" && env -u SOURCE_DATE_EPOCH -u RUSTC_WRAPPER -u RUSTC_WORKSPACE_WRAPPER \
  RUSTC_WORKSPACE_WRAPPER=cargo-auditable \
  CARGO_AUDITABLE_ORIG_ARGS='{"offline":false,"locked":true,"frozen":false,"config":[]}' \
  cargo build --locked --release -p "$package" --bin "$package" --target "$target" >&2)

binary="${cross_dir}/${target}/release/${package}"
[[ -x "$binary" ]] || die "no binary at ${binary}"
if command -v file >/dev/null 2>&1; then
  file "$binary" | grep -q 'ARM aarch64' || die "${binary} is not an aarch64 binary: $(file -b "$binary")"
  file "$binary" | grep -q 'dynamically linked' && die "${binary} is dynamically linked"
fi
echo "$binary"
