#!/usr/bin/env bash
# Check every case of tests/corpus/compose against the real Docker Compose v2:
# a success case (no "error" in case.json) must make `config --format json` exit 0; an
# error case must fail with the "error" substring in stderr.
#
# Each case runs the way tests/compose_differential.rs runs it: copied to a fresh temp
# dir, in its "cwd", with an empty environment plus PATH, HOME (a temp dir), PWD (the
# absolute cwd), COMPOSE_SECRETS_DISABLE_IMDS=1 and the case's "env".
#
# usage: scripts/compose-corpus-check.sh [--show] [CASE-NAME-SUBSTRING...]
#   --show   also print each success case's normalized view (what the test compares)
# The Compose v2 binary comes from $COMPOSE_V2, else target/tools/bin/docker-compose.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
compose=${COMPOSE_V2:-$root/target/tools/bin/docker-compose}
if [[ ! -x $compose ]]; then
    echo "compose-corpus-check: no Compose v2 binary at $compose (run \`make bootstrap\`, or set COMPOSE_V2)" >&2
    exit 2
fi
version=$("$compose" version --short 2>/dev/null || true)
if [[ $version != 2.* && $version != v2.* ]]; then
    echo "compose-corpus-check: $compose is not Compose v2 (version --short: ${version:-nothing})" >&2
    exit 2
fi

exec python3 - "$compose" "$root/tests/corpus/compose" "$@" <<'PY'
import json, os, re, shutil, subprocess, sys, tempfile

compose, corpus, *rest = sys.argv[1:]
show = "--show" in rest
filters = [a for a in rest if a != "--show"]

KEYS = {"about", "cwd", "args", "env", "error"}
VALUE_FLAGS = {"-f", "--file", "-p", "--project-name", "--project-directory", "--env-file", "--profile"}

def check_args(args):
    i = 0
    while i < len(args):
        a = args[i]
        if a in VALUE_FLAGS:
            if i + 1 >= len(args):
                return f"{a} without a value"
            i += 2
        elif a.split("=", 1)[0] in VALUE_FLAGS and "=" in a and a.startswith("--"):
            i += 1
        else:
            return f"flag not allowed in a case: {a!r}"
    return None

def undollar(v):
    if isinstance(v, str):
        return v.replace("$$", "$")
    if isinstance(v, list):
        return [undollar(x) for x in v]
    if isinstance(v, dict):
        return {undollar(k): undollar(x) for k, x in v.items()}
    return v

def normalize(doc):
    doc = undollar(doc)
    secrets = {}
    for key, s in (doc.get("secrets") or {}).items():
        if s.get("external") is True:
            secrets[key] = {"external": True, "name": s.get("name")}
        elif "file" in s:
            secrets[key] = {"file": s["file"]}
        elif "environment" in s:
            secrets[key] = {"environment": s["environment"]}
        else:
            secrets[key] = {"?": s}
    services = {}
    for name, svc in (doc.get("services") or {}).items():
        services[name] = [
            {k: m[k] for k in ("source", "target", "uid", "gid", "mode") if k in m}
            for m in (svc.get("secrets") or [])
        ]
    return {"name": doc.get("name"), "secrets": secrets, "services": services}

failures, ran, errors = [], 0, 0
for name in sorted(os.listdir(corpus)):
    src = os.path.join(corpus, name)
    if not os.path.isdir(src) or (filters and not any(f in name for f in filters)):
        continue
    try:
        with open(os.path.join(src, "case.json")) as f:
            case = json.load(f)
    except (OSError, ValueError) as e:
        failures.append(f"{name}: case.json: {e}")
        continue
    bad = set(case) - KEYS
    problem = None
    if bad:
        problem = f"unknown keys in case.json: {sorted(bad)}"
    elif not case.get("about"):
        problem = "case.json has no \"about\""
    elif not re.fullmatch(r"\d{3}-[a-z0-9-]+", name):
        problem = "case directory names are NNN-short-name"
    else:
        problem = check_args(case.get("args", []))
    if problem:
        failures.append(f"{name}: {problem}")
        continue
    ran += 1
    with tempfile.TemporaryDirectory(prefix="cs-corpus-") as tmp:
        tmp = os.path.realpath(tmp)
        proj = os.path.join(tmp, name)
        shutil.copytree(src, proj, symlinks=True)
        home = os.path.join(tmp, "home")
        os.mkdir(home)
        cwd = os.path.join(proj, case.get("cwd", "."))
        cwd = os.path.normpath(cwd)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "PWD": cwd,
               "COMPOSE_SECRETS_DISABLE_IMDS": "1"}
        env.update(case.get("env", {}))
        p = subprocess.run([compose, *case.get("args", []), "config", "--format", "json"],
                           cwd=cwd, env=env, capture_output=True, text=True)
        want = case.get("error")
        if want is not None:
            errors += 1
            if p.returncode == 0:
                failures.append(f"{name}: expected failure containing {want!r}, but Compose succeeded")
            elif want not in p.stderr:
                failures.append(f"{name}: stderr lacks {want!r}:\n{p.stderr.strip()}")
            elif show:
                print(f"== {name} (error)\n{p.stderr.strip()}")
        else:
            if p.returncode != 0:
                failures.append(f"{name}: Compose failed (rc {p.returncode}):\n{p.stderr.strip()}")
            elif show:
                view = normalize(json.loads(p.stdout))
                text = json.dumps(view, indent=1, sort_keys=True).replace(tmp + "/", "<tmp>/")
                print(f"== {name}\n{text}")

for f in failures:
    print(f"FAIL {f}", file=sys.stderr)
print(f"compose-corpus-check: {ran} cases ({errors} error cases), {len(failures)} failures",
      file=sys.stderr)
sys.exit(1 if failures or ran == 0 else 0)
PY
