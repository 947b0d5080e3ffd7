#!/usr/bin/env bash
# The port the demo app is published on (127.0.0.1), as docker compose resolves
# ${DEMO_APP_PORT:-8000} in compose.yaml: DEMO_APP_PORT from the environment, else from the
# project's .env, else 8000.
#
# Usage: scripts/demo-port.sh [ENV_FILE]     (default: .env in the repository root)
set -euo pipefail

if [[ -n "${DEMO_APP_PORT:-}" ]]; then
  echo "$DEMO_APP_PORT"
  exit 0
fi
repo_root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
env_file="${1:-$repo_root/.env}"
port=""
if [[ -f "$env_file" ]]; then
  # KEY=value, KEY="value", KEY='value', export KEY=value; the last one wins, as in Compose.
  port="$(sed -n -E "s/^[[:space:]]*(export[[:space:]]+)?DEMO_APP_PORT[[:space:]]*=[[:space:]]*[\"']?([^\"'#[:space:]]*).*/\\2/p" \
    "$env_file" | tail -n 1)"
fi
echo "${port:-8000}"
