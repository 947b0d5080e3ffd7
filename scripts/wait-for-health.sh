#!/usr/bin/env bash
# Wait until an HTTP health URL answers 2xx, or fail after a timeout.
# Usage: wait-for-health.sh URL [SECONDS]
set -euo pipefail
url=${1:?usage: wait-for-health.sh URL [SECONDS]}
deadline=$(( $(date +%s) + ${2:-60} ))
until curl -fsS -o /dev/null --max-time 2 "$url"; do
  if (( $(date +%s) >= deadline )); then
    echo "wait-for-health: $url not healthy after ${2:-60}s" >&2
    exit 1
  fi
  sleep 0.5
done
echo "healthy: $url"
