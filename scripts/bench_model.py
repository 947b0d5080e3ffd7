#!/usr/bin/env python3
"""The cost of resolving the Compose project model, beside Docker Compose v2 itself.

A generated project of 50 services and 50 file secrets (a base file with an anchor and a
merge key per service, an override file, `${VAR:-default}` paths and an `.env`) is
resolved by:

- `docker compose config --format json` (Compose v2, the reference);
- `compose-secrets debug model` (the model alone);
- `compose-secrets verify --no-docker`, without Compose v2 on PATH (no cross-check) and
  with it (the cross-check runs `docker compose config` too);
- `compose-secrets load`, warm (nothing to write).

Medians of --repeat alternated runs; prints a Markdown table with ratios to Compose.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CS = os.path.join(ROOT, "target", "release", "compose-secrets")
SERVICES = 50


def project(dirname):
    base = ["x-common: &common", "  image: alpine", "  restart: unless-stopped", "", "services:"]
    for i in range(SERVICES):
        base += [f"  svc{i}:", "    <<: *common", "    environment:", f"      INDEX: \"{i}\"",
                 "    secrets:", f"      - s{i}", f"      - source: s{(i + 1) % SERVICES}",
                 f"        target: peer-{i}"]
    base += ["", "secrets:"]
    for i in range(SERVICES):
        base += [f"  s{i}:", f"    file: ${{SECRETS_DIR:-./secrets}}/s{i}.txt"]
    override = ["services:"] + [f"  svc{i}:\n    environment:\n      EXTRA: \"1\"" for i in range(0, SERVICES, 5)]
    with open(os.path.join(dirname, "compose.yaml"), "w") as f:
        f.write("\n".join(base) + "\n")
    with open(os.path.join(dirname, "compose.override.yaml"), "w") as f:
        f.write("\n".join(override) + "\n")
    with open(os.path.join(dirname, ".env"), "w") as f:
        f.write("".join(f"S{i}={'%064x' % (i + 1)}\n" for i in range(SERVICES)))
    os.chmod(os.path.join(dirname, ".env"), 0o600)


def run(cmd, cwd, env):
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    # verify exits 1 on findings (no git repository here is a warning, not a failure).
    if out.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr.decode()}")
    return elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    compose = shutil.which("docker-compose", path=os.path.join(ROOT, "target", "tools", "bin"))
    if not compose:
        raise SystemExit("target/tools/bin/docker-compose missing: run scripts/bootstrap.sh")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "COMPOSE_"))}
    env["COMPOSE_SECRETS_DISABLE_IMDS"] = "1"
    tools = os.path.join(ROOT, "target", "tools", "bin")
    plain_path = ":".join(p for p in env.get("PATH", "").split(":") if p and os.path.realpath(p) != os.path.realpath(tools))
    with_compose = dict(env, PATH=f"{tools}:{env.get('PATH', '')}")
    without_compose = dict(env, PATH=plain_path)
    d = tempfile.mkdtemp(prefix="cs-bench-model-")
    try:
        project(d)
        subprocess.run([CS, "load"], cwd=d, env=without_compose, check=True, stdout=subprocess.DEVNULL)
        cases = [
            ("docker compose config --format json", [compose, "config", "--format", "json"], without_compose),
            ("compose-secrets debug model", [CS, "debug", "model"], without_compose),
            ("compose-secrets verify --no-docker (no Compose v2 on PATH)", [CS, "verify", "--no-docker"], without_compose),
            ("compose-secrets verify --no-docker (cross-check with Compose v2)", [CS, "verify", "--no-docker"], with_compose),
            ("compose-secrets load (warm)", [CS, "load"], without_compose),
        ]
        times = {name: [] for name, _, _ in cases}
        for _ in range(args.repeat):
            for name, cmd, e in cases:
                times[name].append(run(cmd, d, e))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    reference = statistics.median(times[cases[0][0]])
    print(f"{SERVICES} services, {SERVICES} file secrets, an override file, a merge key per service; "
          f"medians of {args.repeat} alternated runs.")
    print()
    print("| command | median | / `docker compose config` |")
    print("|---|---|---|")
    for name, _, _ in cases:
        m = statistics.median(times[name])
        print(f"| {name} | {m * 1000:.1f} ms | {m / reference:.2f}× |")


if __name__ == "__main__":
    main()
