#!/usr/bin/env bash
# The one static release build of compose-secrets that `make image` and `make dist` share (and
# of demo-app for `make demo-image`): every caller gets the same flags, so the second finds
# cargo's output up to date instead of compiling again, and the crates both binaries use are
# not rebuilt back and forth. Prints the binary's path on stdout.
#
# The build goes through cargo-auditable, which embeds the dependency list (crate names,
# versions, sources; no paths) in the binary's `.dep-v0` section for `cargo audit bin` and
# the like (scripts/dist-audit-info.py reads it). It is installed on first use into
# target/tools/auditable (cargo install --locked, ~34 crates).
#
# Usage: scripts/static-build.sh [package]        (default compose-secrets; or demo-app)
#        scripts/static-build.sh --install-auditable   only install cargo-auditable (for
#                                                      scripts/dist-aarch64-build.sh)
set -euo pipefail

repo_root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
target="x86_64-unknown-linux-gnu"
package="${1:-compose-secrets}"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"

die() {
  echo "static-build: $*" >&2
  exit 1
}

# cargo-auditable, pinned, into its own cargo install root (the version is in its .crates.toml:
# the binary itself forwards --version to cargo).
auditable_version=0.7.7
auditable_root="${repo_root}/target/tools/auditable"
if ! grep -qF "\"cargo-auditable ${auditable_version} " "${auditable_root}/.crates.toml" 2>/dev/null \
  || [[ ! -x "${auditable_root}/bin/cargo-auditable" ]]; then
  echo "static-build: installing cargo-auditable ${auditable_version} into target/tools/auditable (cargo install --locked; a few minutes on 2 cores)" >&2
  cargo install cargo-auditable --version "=${auditable_version}" --locked --quiet \
    --root "$auditable_root" >&2 || die "cargo install cargo-auditable ${auditable_version} failed"
fi
export PATH="${auditable_root}/bin:${PATH}"
if [[ "$package" == --install-auditable ]]; then
  exit 0
fi

# +crt-static links glibc statically: the binary needs nothing from a FROM-scratch image or the
# host. With --target the flags reach only the target's code, not build scripts or proc macros.
# The remaps keep this machine's paths (the checkout, the registry) out of the binary's panic
# locations, so two checkouts of one commit can give the same bytes. Any change here rebuilds
# everything: keep the flags identical for every caller.
export RUSTFLAGS="-C target-feature=+crt-static --remap-path-prefix=${cargo_home}=/cargo --remap-path-prefix=${repo_root}=/src"
echo "static-build: static release build of ${package} for ${target} (several minutes on 2 cores when not up to date)" >&2
# Not SOURCE_DATE_EPOCH (scripts/dist.sh sets it for the archives): the cc crate asks cargo to
# rerun ring's build script when it changes, so each commit's time would rebuild ring and all
# above it. Nothing compiled here reads it (no __DATE__/__TIME__ in ring's C).
# Not `cargo auditable build`: that names cargo-auditable in RUSTC_WORKSPACE_WRAPPER by its
# absolute path, and cargo hashes the wrapper's path into the workspace crates' -C metadata (so
# into every symbol): two checkouts of one commit gave different binaries. The same wrapper
# found on PATH by name hashes the same everywhere; CARGO_AUDITABLE_ORIG_ARGS is what
# `cargo auditable` would pass it (the cargo flags it re-reads: --locked here).
(cd "$repo_root" && env -u SOURCE_DATE_EPOCH \
  RUSTC_WORKSPACE_WRAPPER=cargo-auditable \
  CARGO_AUDITABLE_ORIG_ARGS='{"offline":false,"locked":true,"frozen":false,"config":[]}' \
  cargo build --locked --release -p "$package" --bin "$package" --target "$target" >&2)

# Where cargo put it (CARGO_TARGET_DIR or a config may move target/).
if command -v python3 >/dev/null 2>&1; then
  target_dir="$(cd "$repo_root" && cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
else
  target_dir="${CARGO_TARGET_DIR:-$repo_root/target}"
fi
binary="${target_dir}/${target}/release/${package}"
[[ -x "$binary" ]] || die "no binary at ${binary}"
if command -v file >/dev/null 2>&1 && file "$binary" | grep -q 'dynamically linked'; then
  die "${binary} is dynamically linked; it would not run in a FROM scratch image"
fi
echo "$binary"
