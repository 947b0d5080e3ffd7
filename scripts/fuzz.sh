#!/usr/bin/env bash
# Coverage-guided fuzzing of the `.env` reader/writer, the Compose manifest parser, the
# resolver's blow-up shapes (resolver) and the `.env` error paths' value hygiene
# (dotenv_errors) with cargo-fuzz (libFuzzer), each for a bounded time. Run by `make stress`.
#
#   FUZZ_SECONDS   time per target        (default 120)
#   FUZZ_TARGETS   targets to run         (default "dotenv manifest resolver dotenv_errors")
#
# Seeds: fuzz/regressions/<target>/ and the hostile corpus (tests/corpus/*/.env or
# compose.yaml). A crash is saved under fuzz/artifacts/<target>/: copy it into
# fuzz/regressions/<target>/ and `make test` replays it from then on
# (properties::fuzz_regressions_and_the_corpus_hold_the_fuzz_invariants).
#
# cargo-fuzz is installed into target/tools/bin if missing. The sanitizer is left off
# (-s none), which lets the stable toolchain build the targets (AddressSanitizer needs
# nightly's -Z flags): the invariants in fuzz/checks.rs are what is checked, and the code
# under test is safe Rust.
set -euo pipefail

cd "$(dirname "$0")/.."
FUZZ_SECONDS="${FUZZ_SECONDS:-120}"
FUZZ_TARGETS="${FUZZ_TARGETS:-dotenv manifest resolver dotenv_errors}"

# Like scripts/bootstrap.sh's tools: into target/tools/bin, nothing global.
export PATH="$PWD/target/tools/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz into target/tools/bin" >&2
    cargo install cargo-fuzz --locked --root target/tools
fi

declare -a failed=()
for target in $FUZZ_TARGETS; do
    case "$target" in
        dotenv) seed_name=".env" ;;
        manifest) seed_name="compose.yaml" ;;
        # The first byte picks a shape; the corpus adds nothing a generated shape lacks.
        resolver) seed_name="none" ;;
        dotenv_errors) seed_name=".env" ;;
        *) echo "fuzz: unknown target $target" >&2; exit 2 ;;
    esac
    corpus="fuzz/corpus/$target"
    mkdir -p "$corpus" "fuzz/artifacts/$target"
    cp fuzz/regressions/"$target"/* "$corpus"/
    for seed in tests/corpus/*/"$seed_name"; do
        [[ -f "$seed" ]] && cp "$seed" "$corpus/corpus-$(basename "$(dirname "$seed")")"
    done
    echo "==> fuzz $target for ${FUZZ_SECONDS}s (seeds: $(find "$corpus" -type f | wc -l))"
    log="fuzz/artifacts/$target/last-run.log"
    # -timeout: an input that takes over 10 s (an alias bomb that got through) is a finding.
    if cargo fuzz run -s none --release "$target" "$corpus" -- \
        -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb|^#[0-9]+.*DONE' "$log" || true
        echo "fuzz $target: no crash ($(find "$corpus" -type f | wc -l) inputs in the corpus)"
    else
        failed+=("$target")
        grep -E 'panicked at|ERROR: libFuzzer|Test unit written to|^SUMMARY' "$log" | head -20 || true
    fi
done

if ((${#failed[@]})); then
    echo "fuzz: FAILED: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
    exit 1
fi
