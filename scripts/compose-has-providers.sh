#!/usr/bin/env bash
# Exit 0 when the Compose given as arguments (`docker compose`, `docker-compose`) runs provider
# services (`provider:`, Compose 2.36+), 1 otherwise (older v2, v1, or no Compose at all).
set -euo pipefail
version="$("$@" version --short 2>/dev/null)" || exit 1
version="${version#v}"
IFS=. read -r major minor _ <<<"$version"
[[ "$major" =~ ^[0-9]+$ && "$minor" =~ ^[0-9]+$ ]] || exit 1
(( major > 2 || (major == 2 && minor >= 36) ))
