#!/usr/bin/env bash
# Mutation testing of the safety-critical modules (`make mutants`): cargo-mutants with nextest,
# configured by .cargo/mutants.toml (the test filter, the profile, the reviewed exclusions).
# Installs cargo-mutants into target/tools when it is missing. One cargo-mutants run covers
# every module asked for (one baseline build), and the summary gives each module's figures.
#
#   scripts/mutants.sh [MODULE...]   MODULE: dotenv audit secret-files rotation sync compose
#                                    (default: all of them, in that order)
#   MUTANTS_SHORT=1                  a shortened run for `make stress`: one module, chosen by
#                                    the day of the year, and one of 8 shards of it
#   MUTANTS_SHARD                    that shard (0-7; default: by the day of the year)
#   MUTANTS_OUT                      output directory (default target/mutants)
#   MUTANTS_JOBS                     mutants built and tested at once (default 1)
#
# Exit status: as cargo-mutants: 0 when every mutant was caught, unviable or excluded, 2 when
# some were missed, 3 when one timed out, 1 on any other failure.
set -euo pipefail
cd "$(dirname "$0")/.."

tools="$PWD/target/tools"
export PATH="$tools/bin:$PATH"
if ! command -v cargo-mutants >/dev/null 2>&1; then
  echo "mutants: installing cargo-mutants 27.1.0 into $tools"
  cargo install --locked --root "$tools" cargo-mutants@27.1.0
fi

all=(dotenv audit secret-files rotation sync compose)
files_of() {
  case "$1" in
    dotenv) echo "src/dotenv.rs src/store/dotenv.rs" ;;
    audit) echo "src/audit.rs src/audit/chain.rs src/audit/key.rs" ;;
    secret-files) echo "src/files/secret_dir.rs src/files/runtime_dir.rs" ;;
    rotation) echo "src/rotation.rs src/rotation/apply.rs src/rotation/plan.rs src/rotation/policy.rs src/rotation/preflight.rs src/rotation/rollback.rs src/rotation/select.rs" ;;
    sync) echo "src/rotation/sync.rs src/syncing.rs src/syncing/watch.rs" ;;
    compose) (cd src && ls compose.rs compose/*.rs compose/loader/*.rs | grep -v '/tests.rs$' | sed 's|^|src/|') | tr '\n' ' ' ;;
    *) echo "mutants: unknown module $1 (${all[*]})" >&2; return 1 ;;
  esac
}

modules=("$@")
((${#modules[@]})) || modules=("${all[@]}")
shard=()
if [[ -n ${MUTANTS_SHORT:-} ]]; then
  day=$((10#$(date +%j)))
  modules=("${all[$((day % ${#all[@]}))]}")
  shard=(--shard "${MUTANTS_SHARD:-$((day % 8))}/8")
fi

args=()
for module in "${modules[@]}"; do
  for f in $(files_of "$module"); do args+=(--file "$f"); done
done
out="${MUTANTS_OUT:-target/mutants}"
mkdir -p "$out"
echo "==> mutants: ${modules[*]} ${shard[*]}"
started=$SECONDS
set +e
cargo mutants --no-shuffle --jobs "${MUTANTS_JOBS:-1}" --output "$out" "${args[@]}" "${shard[@]}"
code=$?
set -e

# Per module: tested (caught + missed + timeout), caught, missed, timeout, unviable.
mapping=()
for module in "${modules[@]}"; do mapping+=("$module=$(files_of "$module" | tr ' ' ',')"); done
python3 - "$out/mutants.out/outcomes.json" "$((SECONDS - started))" "${mapping[@]}" <<'PY'
import json, sys
path, seconds, mapping = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
modules = {}
for entry in mapping:
    name, files = entry.split("=", 1)
    modules[name] = set(f for f in files.split(",") if f)
rows = {name: {"caught": 0, "missed": 0, "timeout": 0, "unviable": 0} for name in modules}
kinds = {"CaughtMutant": "caught", "MissedMutant": "missed", "Timeout": "timeout", "Unviable": "unviable"}
for o in json.load(open(path))["outcomes"]:
    scenario = o["scenario"]
    mutant = scenario.get("Mutant") if isinstance(scenario, dict) else None
    kind = kinds.get(o["summary"])
    if not mutant or not kind:
        continue
    for name, files in modules.items():
        if mutant["file"] in files:
            rows[name][kind] += 1
print(f"mutants: {seconds} s in all")
for name, r in rows.items():
    tested = r["caught"] + r["missed"] + r["timeout"]
    print(f"mutants: {name}: {tested} tested, {r['caught']} caught, {r['missed']} missed, "
          f"{r['timeout']} timeout, {r['unviable']} unviable")
PY
echo "mutants: missed: $out/mutants.out/missed.txt (exit $code)"
exit "$code"
