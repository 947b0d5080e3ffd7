#!/usr/bin/env bash
# The staged root of compose-secrets' .deb, for scripts/dist.sh: binary, gzipped man page,
# completions where Debian's shells look, copyright, and DEBIAN/control.
#
# Usage: scripts/dist-deb-tree.sh <root> <binary> <generated-docs dir> <version> <repo root> \
#          <Debian architecture: amd64|arm64> <target triple>
set -euo pipefail

root="$1" binary="$2" gen="$3" version="$4" repo_root="$5" arch="$6" triple="$7"
umask 022
install -D -m 0755 "$binary" "$root/usr/bin/compose-secrets"
install -d "$root/usr/share/man/man1"
gzip -n -9 -c "$gen/compose-secrets.1" >"$root/usr/share/man/man1/compose-secrets.1.gz"
chmod 0644 "$root/usr/share/man/man1/compose-secrets.1.gz"
install -D -m 0644 "$gen/completions/compose-secrets.bash" \
  "$root/usr/share/bash-completion/completions/compose-secrets"
install -D -m 0644 "$gen/completions/_compose-secrets" \
  "$root/usr/share/zsh/vendor-completions/_compose-secrets"
install -D -m 0644 "$gen/completions/compose-secrets.fish" \
  "$root/usr/share/fish/vendor_completions.d/compose-secrets.fish"

doc="$root/usr/share/doc/compose-secrets"
install -d "$doc"
# Debian's machine-readable copyright format; Apache-2.0 is in common-licenses, MIT is not.
{
  cat <<HEAD
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: compose-secrets
Comment: Static binary; the bundled Rust crates and their licences are listed in the
 release's CycloneDX SBOM (compose-secrets-${version}-${triple}.cdx.json).

Files: *
Copyright: the compose-secrets developers
License: MIT or Apache-2.0

License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.

License: MIT
HEAD
  sed -e 's/^$/./' -e 's/^/ /' "$repo_root/LICENSE-MIT"
} >"$doc/copyright"
chmod 0644 "$doc/copyright"

install -d "$root/DEBIAN"
installed_kb="$(du -k -s --apparent-size --exclude=DEBIAN "$root" | cut -f1)"
cat >"$root/DEBIAN/control" <<CONTROL
Package: compose-secrets
Version: ${version}
Architecture: ${arch}
Maintainer: the compose-secrets developers <compose-secrets@invalid>
Installed-Size: ${installed_kb}
Section: admin
Priority: optional
Description: secrets for Docker Compose apps from .env or Azure Key Vault
 Loads secrets from a .env file (demo mode) or Azure Key Vault, writes them
 as 0400 files atomically, rotates them with health-gated restarts and
 rollback, and verifies the deployment. One static binary; needs no libraries.
CONTROL
chmod 0644 "$root/DEBIAN/control"
