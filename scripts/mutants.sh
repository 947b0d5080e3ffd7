#!/usr/bin/env bash
# Mutation testing of the safety-critical modules (`make mutants`): cargo-mutants with nextest,
# configured by .cargo/mutants.toml (which files, the reviewed exclusions). Installs
# cargo-mutants into target/tools when it is missing.
#
#   scripts/mutants.sh [MODULE...]   MODULE: secret-files audit dotenv rotation compose sync
#                                    (default: all of them)
#   MUTANTS_SHORT=1                  a shortened run for `make stress`: one module per run,
#                                    the one of the day, MUTANTS_SHARD of 8 shards of it
#   MUTANTS_OUT                      output directory (default target/mutants/<module>)
#
# Exit status: 0 when every mutant was caught or excluded, 2 when some were missed, 3 when a
# mutant timed out, 1 on any other failure (as cargo-mutants itself).
set -euo pipefail
cd "$(dirname "$0")/.."

tools="$PWD/target/tools"
export PATH="$tools/bin:$PATH"
if ! command -v cargo-mutants >/dev/null 2>&1; then
  echo "mutants: installing cargo-mutants into $tools"
  cargo install --locked --root "$tools" cargo-mutants@27.1.0
fi

files_of() {
  case "$1" in
    secret-files) echo "src/files/secret_dir.rs src/files/runtime_dir.rs" ;;
    audit) echo "src/audit.rs src/audit/chain.rs src/audit/key.rs" ;;
    dotenv) echo "src/dotenv.rs src/store/dotenv.rs" ;;
    rotation) echo "src/rotation.rs src/rotation/apply.rs src/rotation/plan.rs src/rotation/policy.rs src/rotation/preflight.rs src/rotation/rollback.rs src/rotation/select.rs src/rotation/sync.rs" ;;
    compose) echo "src/compose.rs src/compose/*.rs src/compose/loader/*.rs" ;;
    sync) echo "src/syncing.rs src/syncing/watch.rs" ;;
    *) echo "mutants: unknown module $1 (secret-files audit dotenv rotation compose sync)" >&2; return 1 ;;
  esac
}

modules=("$@")
((${#modules[@]})) || modules=(secret-files audit dotenv rotation compose sync)
shard=()
if [[ -n ${MUTANTS_SHORT:-} ]]; then
  all=(secret-files audit dotenv rotation compose sync)
  day=$(( $(date +%j | sed 's/^0*//') % ${#all[@]} ))
  modules=("${all[$day]}")
  shard=(--shard "${MUTANTS_SHARD:-$(( $(date +%j | sed 's/^0*//') % 8 ))}/8")
fi

status=0
for module in "${modules[@]}"; do
  args=()
  for f in $(files_of "$module"); do
    [[ $f == */tests.rs ]] && continue
    args+=(--file "$f")
  done
  out="${MUTANTS_OUT:-target/mutants/$module}"
  mkdir -p "$out"
  echo "==> mutants: $module (${args[*]} ${shard[*]})"
  set +e
  cargo mutants --no-shuffle --output "$out" "${args[@]}" "${shard[@]}"
  code=$?
  set -e
  echo "mutants: $module: $(wc -l < "$out/mutants.out/caught.txt" 2>/dev/null || echo 0) caught, \
$(wc -l < "$out/mutants.out/missed.txt" 2>/dev/null || echo 0) missed, \
$(wc -l < "$out/mutants.out/timeout.txt" 2>/dev/null || echo 0) timeout, \
$(wc -l < "$out/mutants.out/unviable.txt" 2>/dev/null || echo 0) unviable (exit $code)"
  if ((code != 0)) && ((status == 0 || code == 1)); then status=$code; fi
done
exit "$status"
