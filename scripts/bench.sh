#!/usr/bin/env bash
# Benchmarks, side by side with the peers, in one run. See BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# The Python peer needs the official SDK: scripts/bootstrap.sh puts it in target/tools (a second
# run only checks), and target/tools/bin goes first on PATH as `make bench` does.
scripts/bootstrap.sh
export PATH="$PWD/target/tools/bin:$PATH"
if [[ -n ${COMPOSE_SECRETS_PYTHON:-} ]]; then
    python="$COMPOSE_SECRETS_PYTHON"
elif [[ -x target/tools/bin/python ]]; then
    python=target/tools/bin/python
else
    python=python3 # COMPOSE_SECRETS_SKIP_PYTHON_TOOLS=1: use --skip-python, or a python3 with the SDK
fi
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
cargo build --release --workspace --bins
exec "$python" scripts/bench.py "$@"
