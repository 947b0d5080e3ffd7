#!/usr/bin/env bash
# The owner-related tests as an unprivileged user (`make test-nonroot`; .ci/run runs it as
# root). Everything else runs as root, where chown always succeeds: without this job the paths
# a non-root operator takes (no right to chown, owners refused before anything is written,
# files kept as the user's own) would never run.
#
#   NONROOT_UID   the user to run as (default 65534, nobody)
#   NONROOT_TESTS libtest filters (default: the owner, mode and non-root tests below)
set -euo pipefail
cd "$(dirname "$0")/.."

filters=(${NONROOT_TESTS:-owner non_root chown secret_dir:: runtime_dir:: layout:: checks::files ensure:: load:: verify::})

# The test binaries, built as `make test` builds them (no rebuild when it ran first).
mapfile -t binaries < <(cargo test --workspace --no-run --message-format=json 2>/dev/null |
  python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("profile", {}).get("test") and m.get("executable"):
        name = m["target"]["name"]
        if name in ("compose_secrets", "integration"):
            print(m["executable"])
')
((${#binaries[@]} == 2)) || { echo "test-nonroot: expected the unit and integration test binaries, got: ${binaries[*]}" >&2; exit 1; }

run_as=()
if [[ $(id -u) == 0 ]]; then
  uid="${NONROOT_UID:-65534}"
  run_as=(setpriv "--reuid=$uid" "--regid=$uid" --clear-groups)
  # The binaries, compose-secrets beside them and the test data are read by that user: every
  # directory above the checkout must let it through.
  if ! "${run_as[@]}" test -x "${binaries[0]}"; then
    if [[ -n ${CI:-} ]]; then
      dir="$PWD"
      while [[ $dir != / ]]; do chmod o+x "$dir"; dir=$(dirname "$dir"); done
      echo "test-nonroot: CI: gave others search (o+x) on the checkout's parent directories"
    else
      echo "test-nonroot: uid $uid cannot reach ${binaries[0]}; give others search permission (chmod o+x) on the checkout's parent directories, or run from a checkout under /tmp" >&2
      exit 1
    fi
  fi
  echo "== the owner-related tests as uid $uid (setpriv --clear-groups)"
else
  echo "== the owner-related tests as uid $(id -u) (not root already)"
fi

# Cases that set up a file owned by another user, which only root can do.
needs_root=(hostile::corpus::secrets_dir_foreign_owner)
echo "test-nonroot: SKIPPED (their setup needs root; they run as root in make test): ${needs_root[*]}"
skips=()
for t in "${needs_root[@]}"; do skips+=(--skip "$t"); done

home=$(mktemp -d)
chmod 777 "$home"
trap 'rm -rf "$home"' EXIT
status=0
for binary in "${binaries[@]}"; do
  # Docker needs root's socket, so those tests say they skip; everything listed runs.
  "${run_as[@]}" env -i PATH="$PATH" HOME="$home" TMPDIR="$home" COMPOSE_SECRETS_SKIP_DOCKER=1 \
    KV_EMULATOR_SKIP_PYTHON=1 "$binary" --test-threads=2 "${filters[@]}" "${skips[@]}" || status=1
done
exit "$status"
