#!/usr/bin/env python3
# The resolver blow-ups of issue 19 (item 4), one project directory each, for measuring time
# and peak memory by hand (the integration tests in tests/resolver_hostile.rs assert the
# outcome, never a time):
#
#   python3 scripts/resolver-bombs.py /tmp/bombs
#   for d in /tmp/bombs/*/; do (cd "$d" && ulimit -v 3145728 &&
#     /usr/bin/time -f "$(basename "$d") %e s %M KB" timeout 30 compose-secrets load >/dev/null 2>&1; echo "rc=$?"); done
import os, sys
base = sys.argv[1]
HEAD = "services:\n  app:\n    image: x\n    secrets: [a]\n"
TAIL = "secrets:\n  a:\n    file: ./.runtime/secrets/a\n"
def proj(name, compose, extra={}):
    d = os.path.join(base, name); os.makedirs(d, exist_ok=True)
    open(os.path.join(d, "compose.yaml"), "w").write(compose)
    open(os.path.join(d, ".env"), "w").write("A=1\n")
    for k, v in extra.items(): open(os.path.join(d, k), "w").write(v)
proj("chain40k", HEAD + '    labels: {x: "' + "${A:-x}" * 40000 + '"}\n' + TAIL)
for n in (20000, 100000):
    proj(f"nest{n}", HEAD + '    labels: {x: "' + "${B:-" * n + "x" + "}" * n + '"}\n' + TAIL)
for k in (3000, 10000):
    proj(f"alias{k}", HEAD + TAIL + "x-a: &a [" + ",".join(["1"] * k) + "]\nx-b: [" + ",".join(["*a"] * k) + "]\n")
proj("flow1m", HEAD + TAIL + "x-a: " + "[" * 1000000 + "\n")
proj("block100k", HEAD + TAIL + "x-a:\n" + "- " * 100000 + "x\n")
files = {}
for i in range(23):
    nxt = f"f{i+1}.yaml"
    body = f"include:\n  - {nxt}\n  - path: {nxt}\n" if i < 22 else "services: {}\n"
    files[f"f{i}.yaml"] = body
proj("include23", HEAD + TAIL.replace("secrets:\n", "include: [f0.yaml]\nsecrets:\n",1), files)
