#!/usr/bin/env bash
# Long reliability runs (`make stress`): crash consistency with many SIGKILLs, the property
# tests with many cases, the hostile corpus, the Docker fault tests and the fuzz targets. Every phase runs even
# if an earlier one fails; the summary names the failures and the exit status is non-zero.
#
#   CRASH_ITERATIONS   kills per crash test        (default 500)
#   PROPTEST_CASES     cases per property          (default 20000)
#   CRASH_SEED         replay one crash run        (printed by each crash test)
#   COMPOSE_SECRETS_RACES  rounds per race test    (default 200)
#   FUZZ_SECONDS       fuzzing time per target     (default 120)
#   MUTANTS_SHARD      which shard of the day's mutation module (default: next/8, the first
#                      not in mutants/ledger.tsv)
set -euo pipefail

cd "$(dirname "$0")/.."

export CRASH_ITERATIONS="${CRASH_ITERATIONS:-500}"
export PROPTEST_CASES="${PROPTEST_CASES:-20000}"
export COMPOSE_SECRETS_RACES="${COMPOSE_SECRETS_RACES:-200}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-0}"
CARGO="${CARGO:-cargo}"
LOG_DIR="${STRESS_LOG_DIR:-target/stress}"
mkdir -p "$LOG_DIR"

# The test binary needs kv-emulator next to compose-secrets.
"$CARGO" build --workspace --bins
"$CARGO" test --test integration --no-run

declare -a failed=()
declare -a summary=()

# phase NAME FILTER...: run the integration tests matching FILTER, log to $LOG_DIR/NAME.log.
phase() {
    local name="$1"
    shift
    local log="$LOG_DIR/$name.log"
    local started=$SECONDS
    echo "==> $name ($*)"
    if "$CARGO" test --test integration -- "$@" --nocapture --test-threads=2 >"$log" 2>&1; then
        status=ok
    else
        status=FAILED
        failed+=("$name")
    fi
    local passed
    passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed; [0-9]+ failed' "$log" | tail -1 || true)
    summary+=("$(printf '%-10s %-7s %5ss  %s' "$name" "$status" "$((SECONDS - started))" "$passed")")
    grep -E '^crash-summary' "$log" || true
    if [[ $status == FAILED ]]; then
        grep -E "^    [a-z_:]+$|panicked at|CRASH_SEED|minimal failing input" "$log" | head -40 || true
    fi
}

phase crash crash::
phase properties properties::
phase hostile hostile::
phase races races::
phase docker-faults docker_faults::

# Coverage-guided fuzzing: bounded time per target (FUZZ_SECONDS), its own log.
started=$SECONDS
echo "==> fuzz (scripts/fuzz.sh, FUZZ_SECONDS=${FUZZ_SECONDS:-120})"
if scripts/fuzz.sh >"$LOG_DIR/fuzz.log" 2>&1; then status=ok; else status=FAILED; failed+=(fuzz); fi
summary+=("$(printf '%-10s %-7s %5ss  %s' fuzz "$status" "$((SECONDS - started))" "$(grep -c 'no crash' "$LOG_DIR/fuzz.log" || true) targets without a crash")")
grep -E '^fuzz |^stat::number_of_executed_units' "$LOG_DIR/fuzz.log" || true

# A shortened mutation run: one module's shard of the day (scripts/mutants.sh, MUTANTS_SHORT).
started=$SECONDS
echo "==> mutants (scripts/mutants.sh, MUTANTS_SHORT=1)"
if MUTANTS_SHORT=1 MUTANTS_OUT="$LOG_DIR/mutants" scripts/mutants.sh >"$LOG_DIR/mutants.log" 2>&1; then status=ok; else status=FAILED; failed+=(mutants); fi
summary+=("$(printf '%-10s %-7s %5ss  %s' mutants "$status" "$((SECONDS - started))" "$(grep '^mutants: ' "$LOG_DIR/mutants.log" | tail -1)")")

# The mutants in what this branch changed against main (make mutants-diff): here, not in CI,
# because CI runs on main itself, where the diff is empty, and a branch's diff can hold
# hundreds of mutants (about 12 s each on 2 cores).
started=$SECONDS
echo "==> mutants-diff (scripts/mutants.sh --diff main)"
if MUTANTS_OUT="$LOG_DIR/mutants-diff" scripts/mutants.sh --diff main >"$LOG_DIR/mutants-diff.log" 2>&1; then status=ok; else status=FAILED; failed+=(mutants-diff); fi
summary+=("$(printf '%-10s %-7s %5ss  %s' mutants-diff "$status" "$((SECONDS - started))" "$(grep -E '^(mutants-diff: |[0-9]+ mutants tested)' "$LOG_DIR/mutants-diff.log" | tail -1)")")

echo
echo "== stress summary (CRASH_ITERATIONS=$CRASH_ITERATIONS PROPTEST_CASES=$PROPTEST_CASES)"
printf '%s\n' "${summary[@]}"
grep -h '^crash-summary' "$LOG_DIR"/crash.log || true
echo "logs: $LOG_DIR/"
if ((${#failed[@]})); then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "all phases passed"
