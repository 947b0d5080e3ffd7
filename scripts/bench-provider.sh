#!/usr/bin/env bash
# The cost of the provider service on `docker compose up -d` when nothing changed: the demo
# stack already running, `up -d` with compose.yaml (its `secrets` provider service runs
# `compose-secrets compose up`) and with compose.legacy.yaml (the same stack without it), the
# two alternated in one run so that load on the machine falls on both alike.
#
#   scripts/bench-provider.sh [RUNS]        # default 21; prints a Markdown table
#
# COMPOSE_SECRETS_BIN picks the binary (default target/release/compose-secrets if built, else
# target/debug); COMPOSE_V2 the Compose v2 command (default target/tools/bin/docker-compose,
# else `docker compose`). Needs the demo image (make demo-image). The stack is a copy of the
# demo under its own project name and port, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
runs="${1:-21}"

bin="${COMPOSE_SECRETS_BIN:-}"
if [[ -z "$bin" ]]; then
  bin="$root/target/release/compose-secrets"
  [[ -x "$bin" ]] || bin="$root/target/debug/compose-secrets"
fi
[[ -x "$bin" ]] || { echo "bench-provider: no compose-secrets binary; run make build" >&2; exit 2; }
bin="$(realpath "$bin")" # the PATH link below must not depend on the working directory
if [[ -n "${COMPOSE_V2:-}" ]]; then
  read -r -a compose <<<"$COMPOSE_V2"
elif [[ -x "$root/target/tools/bin/docker-compose" ]]; then
  compose=("$root/target/tools/bin/docker-compose")
else
  compose=(docker compose)
fi
scripts/compose-has-providers.sh "${compose[@]}" ||
  { echo "bench-provider: ${compose[*]} has no provider services (needs Compose 2.36+)" >&2; exit 2; }

work="$(mktemp -d)"
name="csbenchprov$$"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
sed "s/^name: compose-secrets-demo$/name: $name/" compose.yaml >"$work/compose.yaml"
cp compose.legacy.yaml .env.demo "$work/"
bindir="$(mktemp -d)"
ln -s "$bin" "$bindir/compose-secrets"
export PATH="$bindir:$PATH" DEMO_APP_PORT="$port"
export DEMO_UID="${DEMO_UID:-1000}" DEMO_GID="${DEMO_GID:-1000}"
cd "$work"
cleanup() {
  "${compose[@]}" down --volumes --timeout 1 >/dev/null 2>&1 || true
  rm -rf "$work" "$bindir"
}
trap cleanup EXIT

"${compose[@]}" --progress quiet up -d
"$root/scripts/wait-for-health.sh" "http://127.0.0.1:$port/health" 60 >/dev/null

with_provider=(); without=(); provider_alone=()
now() { date +%s%N; }
once() { # prints the milliseconds one command took
  local start end
  start="$(now)"
  "$@" >/dev/null 2>&1
  end="$(now)"
  echo $(((end - start) / 1000))
}
up_with() { once "${compose[@]}" --progress quiet up -d; }
up_without() { once "${compose[@]}" -p "$name" -f compose.legacy.yaml --progress quiet up -d; }
for ((i = 0; i < runs; i++)); do
  # Alternate which goes first, so neither always follows the other.
  if ((i % 2)); then
    b="$(up_without)"; a="$(up_with)"
  else
    a="$(up_with)"; b="$(up_without)"
  fi
  with_provider+=("$a"); without+=("$b")
  provider_alone+=("$(once compose-secrets compose --project-name="$name" up secrets)")
done
[[ "$(docker ps -q --filter "label=com.docker.compose.project=$name" | wc -l)" == 1 ]] ||
  { echo "bench-provider: the app is not the one running container" >&2; exit 1; }

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ms() { awk -v us="$1" 'BEGIN {printf "%.1f", us / 1000}'; }
m_with="$(median "${with_provider[@]}")"
m_without="$(median "${without[@]}")"
m_alone="$(median "${provider_alone[@]}")"
echo "| \`docker compose up -d\`, demo running, nothing changed ($runs runs each, alternated) | median |"
echo "| --- | ---: |"
echo "| without the provider service (compose.legacy.yaml) | $(ms "$m_without") ms |"
echo "| with the provider service (compose.yaml) | $(ms "$m_with") ms |"
echo "| difference | $(ms $((m_with - m_without))) ms |"
echo "| \`compose-secrets compose up\` alone | $(ms "$m_alone") ms |"
echo
echo "binary: $bin ($(compose-secrets --version)); Compose: $("${compose[@]}" version --short)"
