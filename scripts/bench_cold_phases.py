#!/usr/bin/env python3
"""Where a cold Key Vault load's time goes: process start to the first request, the requests
(challenge + ceil(N/16) round trips at the emulator's injected latency), and the last answer to
the exit (checks, the files written and fsynced, state and audit). Runs `load` with debug logs
(which cost a little themselves) and reads the timestamps of the first request and the last
answer against the process's start and end. Build first: scripts/bench.sh (or
cargo build --release --workspace --bins).

Usage: scripts/bench_cold_phases.py [N] [REPEAT]      (default 100 7; medians)
"""
import datetime, math, os, re, shutil, statistics, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench

n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 7
latency_ms = 20
stamp = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z")


def seconds(line):
    m = stamp.search(line)
    t = datetime.datetime.strptime(m.group(1)[:26], "%Y-%m-%dT%H:%M:%S.%f")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp()


emu = bench.Emulator(n, latency_ms)
project = tempfile.mkdtemp(prefix="cs-phases-")
try:
    names = [f"bench-{i:04d}" for i in range(n)]
    with open(os.path.join(project, "compose.yaml"), "w") as f:
        f.write("services:\n  app:\n    image: x\n    secrets: [" + ", ".join(names) + "]\nsecrets:\n")
        for name in names:
            f.write(f"  {name}:\n    file: ./.runtime/secrets/{name}\n")
    env = bench.clean_env()
    env.update(emu.env)
    env.update({"AZURE_USE_KEYVAULT": "true", "AZURE_CREDENTIAL": "managed-identity",
                "RUST_LOG": "debug", "NO_COLOR": "1"})
    time.sleep(1.1)
    phases = {"start": [], "requests": [], "finish": [], "total": []}
    for _ in range(repeat):
        shutil.rmtree(os.path.join(project, ".runtime"), ignore_errors=True)
        began = time.time()
        p = subprocess.run([bench.CS, "load"], env=env, cwd=project, capture_output=True, text=True)
        ended = time.time()
        if p.returncode != 0:
            raise SystemExit(f"load failed ({p.returncode})")
        lines = [re.sub(r"\x1b\[[0-9;]*m", "", l) for l in p.stderr.splitlines()]
        first = seconds(next(l for l in lines if "==> Request" in l))
        last = seconds([l for l in lines if "<== Response" in l][-1])
        phases["start"].append(first - began)
        phases["requests"].append(last - first)
        phases["finish"].append(ended - last)
        phases["total"].append(ended - began)
    rounds = 1 + math.ceil(n / 16)
    med = {k: statistics.median(v) * 1000 for k, v in phases.items()}
    print(f"| N | round trips | ideal | start → first request | requests | per round trip | last answer → exit | total (with debug logs) |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {n} | {rounds} | {rounds * latency_ms} ms | {med['start']:.0f} ms | {med['requests']:.0f} ms | "
          f"{med['requests'] / rounds:.1f} ms | {med['finish']:.0f} ms | {med['total']:.0f} ms |")
finally:
    emu.stop()
    shutil.rmtree(project, ignore_errors=True)
