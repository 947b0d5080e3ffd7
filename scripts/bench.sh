#!/usr/bin/env bash
# Benchmarks, side by side with the peers, in one run. See BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c 'import azure.keyvault.secrets, azure.identity' 2>/dev/null || \
  python3 -m pip install --quiet --disable-pip-version-check azure-keyvault-secrets azure-identity
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
cargo build --release --workspace --bins
exec python3 scripts/bench.py "$@"
