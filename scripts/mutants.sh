#!/usr/bin/env bash
# Mutation testing of the safety-critical modules (`make mutants`): cargo-mutants with nextest,
# configured by .cargo/mutants.toml (the test filter, the profile, the reviewed exclusions).
# Installs cargo-mutants into target/tools when it is missing. One cargo-mutants run covers
# every module asked for (one baseline build), and the summary gives each module's figures.
#
#   scripts/mutants.sh [MODULE...]   MODULE: transaction sync rotation secret-files audit-chain dotenv audit
#                                    compose (default: all of them, in that order)
#   MUTANTS_SHARD=k/N                run only shard k (0-based) of N of the modules' mutants
#   MUTANTS_SHARD=next/N             the first shard of N that mutants/ledger.tsv has no row for
#                                    at these files' current contents (nothing run twice
#                                    without a reason: a changed file or test is a reason)
#   MUTANTS_SHORT=1                  `make stress`: one module by the day of the year, next/8
#   MUTANTS_OUT                      output directory (default target/mutants)
#   MUTANTS_JOBS                     mutants built and tested at once (default 1)
#   MUTANTS_NO_LEDGER=1              don't append the outcome to mutants/ledger.tsv
#
#   scripts/mutants.sh --diff [BASE] `make mutants-diff`: only the mutants in lines that differ
#                                    from BASE (default main), cargo-mutants --in-diff
#   scripts/mutants.sh --survivors FILTER
#                                    the last run's missed mutants again, each against the
#                                    integration crate's tests matching the nextest FILTER (the
#                                    real binary): shows which survivors the integration tests
#                                    catch, instead of asserting that they would
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
out="${MUTANTS_OUT:-target/mutants}"
mkdir -p "$out"
ledger="mutants/ledger.tsv"

all=(transaction sync rotation secret-files audit-chain dotenv audit compose)
files_of() {
  case "$1" in
    transaction) echo "src/transaction.rs src/transaction/load.rs src/transaction/rotate.rs" ;;
    dotenv) echo "src/dotenv.rs src/store/dotenv.rs" ;;
    audit) echo "src/audit.rs" ;;
    audit-chain) echo "src/audit/chain.rs src/audit/key.rs" ;;
    secret-files) echo "src/files/secret_dir.rs src/files/runtime_dir.rs" ;;
    rotation) (cd src && ls rotation.rs rotation/*.rs | grep -v -e '/tests.rs$' -e '^rotation/sync.rs$' | sed 's|^|src/|') | tr '\n' ' ' ;;
    sync) (cd src && ls rotation/sync.rs syncing.rs syncing/*.rs | grep -v '/tests.rs$' | sed 's|^|src/|') | tr '\n' ' ' ;;
    compose) (cd src && ls compose.rs compose/*.rs compose/loader/*.rs | grep -v '/tests.rs$' | sed 's|^|src/|') | tr '\n' ' ' ;;
    *) echo "mutants: unknown module $1 (${all[*]})" >&2; return 1 ;;
  esac
}

if [[ ${1:-} == --diff ]]; then
  base="${2:-main}"
  git diff --no-ext-diff "$(git merge-base "$base" HEAD)" -- src >"$out/in.diff"
  if [[ ! -s $out/in.diff ]]; then
    echo "mutants-diff: nothing in src/ differs from $base: no mutant to run"
    exit 0
  fi
  echo "==> mutants-diff: the lines of src/ that differ from $base ($(grep -c '^+[^+]' "$out/in.diff") added)"
  exec cargo mutants --no-shuffle --jobs "${MUTANTS_JOBS:-1}" --output "$out" --in-diff "$out/in.diff"
fi

if [[ ${1:-} == --survivors ]]; then
  filter="${2:?usage: scripts/mutants.sh --survivors 'test(/sync/)'}"
  missed="$out/mutants.out/missed.txt"
  [[ -s $missed ]] || { echo "mutants: no missed mutants in $missed: nothing to check"; exit 0; }
  # One --re per survivor, escaped: the names hold regex characters.
  args=()
  while IFS= read -r name; do
    args+=(--re "^$(python3 -c 'import re,sys; print(re.escape(sys.argv[1]))' "$name")\$")
  done <"$missed"
  # cargo-mutants builds the integration crate and its package's binary, not the emulator's
  # package: the tests take this one (it is not mutated).
  cargo build --quiet -p kv-emulator
  export KV_EMULATOR_BIN="$PWD/target/debug/kv-emulator"
  echo "==> mutants: $(wc -l <"$missed") survivors against the integration tests matching $filter"
  # Not .cargo/mutants.toml (`--lib` only): the whole workspace is built, so the integration
  # crate finds the real binary and kv-emulator beside it.
  # The `mutants` profile (no debug info), as the first pass: each build is shorter.
  exec cargo mutants --no-config --no-shuffle --jobs "${MUTANTS_JOBS:-1}" --output "$out/survivors" \
    --profile mutants --test-tool nextest --test-workspace true --minimum-test-timeout 300 "${args[@]}" \
    -- --test integration -E "$filter"
fi

modules=("$@")
((${#modules[@]})) || modules=("${all[@]}")
shard_spec="${MUTANTS_SHARD:-}"
if [[ -n ${MUTANTS_SHORT:-} ]]; then
  day=$((10#$(date +%j)))
  modules=("${all[$((day % ${#all[@]}))]}")
  shard_spec="${shard_spec:-next/8}"
fi

files=()
for module in "${modules[@]}"; do
  for f in $(files_of "$module"); do files+=("$f"); done
done
# What a shard's outcome depends on: the mutated files, the tests beside them (src/ holds the
# unit tests the mutants run against) and the exclusions. A row is reused while this holds.
digest="$(find src .cargo/mutants.toml -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)"
key="$(IFS=+; echo "${modules[*]}")"

shard=()
if [[ -n $shard_spec ]]; then
  k="${shard_spec%/*}" n="${shard_spec#*/}"
  if [[ $k == next ]]; then
    k=""
    for ((i = 0; i < n; i++)); do
      if ! [[ -f $ledger ]] || ! awk -F'\t' -v m="$key" -v s="$i/$n" -v d="$digest" \
        '$2 == m && $3 == s && $4 == d { found = 1 } END { exit !found }' "$ledger"; then
        k=$i
        break
      fi
    done
    if [[ -z $k ]]; then
      echo "mutants: every shard of $key (/$n) is in $ledger at these sources ($digest): nothing to run"
      exit 0
    fi
  fi
  shard_spec="$k/$n"
  shard=(--shard "$shard_spec")
fi

args=()
for f in "${files[@]}"; do args+=(--file "$f"); done
echo "==> mutants: ${modules[*]} ${shard_spec:+shard $shard_spec} (sources $digest)"
started=$SECONDS
record="$ledger"
[[ -z ${MUTANTS_NO_LEDGER:-} ]] || record=""
set +e
cargo mutants --no-shuffle --jobs "${MUTANTS_JOBS:-1}" --output "$out" "${args[@]}" "${shard[@]}"
code=$?
set -e

# Per file and in all: tested (caught + missed + timeout), caught, missed, timeout, unviable.
python3 - "$out/mutants.out/outcomes.json" "$((SECONDS - started))" "$code" "$key" \
  "${shard_spec:-all}" "$digest" "$(git rev-parse --short HEAD)" "$record" <<'PY'
import datetime, json, os, sys
path, seconds, code, key, shard, digest, commit, ledger = sys.argv[1:9]
kinds = {"CaughtMutant": "caught", "MissedMutant": "missed", "Timeout": "timeout", "Unviable": "unviable"}
rows = {}
for o in json.load(open(path))["outcomes"]:
    scenario = o["scenario"]
    mutant = scenario.get("Mutant") if isinstance(scenario, dict) else None
    kind = kinds.get(o["summary"])
    if not mutant or not kind:
        continue
    r = rows.setdefault(mutant["file"], dict.fromkeys(kinds.values(), 0))
    r[kind] += 1
total = dict.fromkeys(kinds.values(), 0)
print(f"mutants: {seconds} s in all")
for file, r in sorted(rows.items()):
    for k in total:
        total[k] += r[k]
    tested = r["caught"] + r["missed"] + r["timeout"]
    print(f"mutants: {file}: {tested} tested, {r['caught']} caught, {r['missed']} missed, "
          f"{r['timeout']} timeout, {r['unviable']} unviable")
# A run that did not finish (cargo-mutants' exit 1: the baseline failed, or interrupted) is
# not recorded: the next `next` must run it again.
if ledger and code in ("0", "2", "3"):
    os.makedirs(os.path.dirname(ledger), exist_ok=True)
    new = not os.path.exists(ledger)
    with open(ledger, "a") as f:
        if new:
            f.write("date\tmodules\tshard\tsources\tcommit\ttested\tcaught\tmissed\ttimeout\tunviable\tseconds\n")
        tested = total["caught"] + total["missed"] + total["timeout"]
        f.write(f"{datetime.date.today()}\t{key}\t{shard}\t{digest}\t{commit}\t{tested}\t"
                f"{total['caught']}\t{total['missed']}\t{total['timeout']}\t{total['unviable']}\t{seconds}\n")
    print(f"mutants: recorded in {ledger}")
PY
echo "mutants: missed: $out/mutants.out/missed.txt (exit $code)"
exit "$code"
