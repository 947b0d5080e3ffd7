#!/usr/bin/env bash
# nextest run-wrapper (.config/nextest.toml) for the tests whose passing output is shown: runs
# the test binary with its arguments and, when the test passed, drops libtest's own lines
# ("running 1 test", "test … ok", "test result: ok…") from its stdout. What the test itself
# wrote is kept: a Docker test skipped without an engine shows its SKIPPED line, nothing else.
# A failing test's output is passed on untouched.
set -u
out="$(mktemp "${TMPDIR:-/tmp}/nextest-stdout.XXXXXX")"
trap 'rm -f "$out"' EXIT
"$@" >"$out"
status=$?
if [[ $status -eq 0 ]]; then
  grep -v -x -E 'running [0-9]+ tests?|test .* \.\.\. ok|test result: ok\. .*|' "$out" || true
else
  cat "$out"
fi
exit "$status"
