#!/usr/bin/env python3
"""Two compose-secrets binaries' cold Key Vault loads, alternated against one emulator
(20 ms latency), with the async Python SDK peer in the same run, and each load's requests
(401 / list / get) counted at the emulator. Build the emulator first (scripts/bench.sh does).

Usage: scripts/bench_cold_ab.py OLD_BINARY NEW_BINARY N REPEAT
"""
import os, sys, statistics, time, shutil, tempfile
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench
OLD, NEW = sys.argv[1], sys.argv[2]
n, lat, rep = int(sys.argv[3]), 20, int(sys.argv[4])
emu = bench.Emulator(n, lat)
proj = tempfile.mkdtemp(prefix="cs-ab-")
names = [f"bench-{i:04d}" for i in range(n)]
with open(os.path.join(proj, "compose.yaml"), "w") as f:
    f.write("services:\n  app:\n    image: x\n    secrets: [" + ", ".join(names) + "]\nsecrets:\n")
    for nm in names: f.write(f"  {nm}:\n    file: ./.runtime/secrets/{nm}\n")
env = bench.clean_env(); env.update(emu.env); env.update({"AZURE_USE_KEYVAULT": "true", "AZURE_CREDENTIAL": "managed-identity"})
time.sleep(1.1)
res = {"old": [], "new": [], "async": []}; reqs = {}
try:
    for _ in range(rep):
        for label, b in (("old", OLD), ("new", NEW)):
            shutil.rmtree(os.path.join(proj, ".runtime"), ignore_errors=True)
            bench.admin(emu, "stats/reset", {})
            w, _ = bench.timed([b, "-q", "load"], env, proj)
            s = bench.admin(emu, "stats"); o = s.get("by_operation", {})
            reqs[label] = (s.get("unauthenticated"), o.get("list", 0), o.get("get", 0))
            res[label].append(w)
        out = tempfile.mkdtemp()
        w, _ = bench.timed([sys.executable, os.path.join(bench.ROOT, "scripts", "bench_python_async_peer.py"), out] + names, env, proj)
        shutil.rmtree(out); res["async"].append(w)
finally:
    emu.stop(); shutil.rmtree(proj, ignore_errors=True)
for k, v in res.items():
    print(k, f"median {statistics.median(v)*1000:.0f} ms", [f"{x*1000:.0f}" for x in v], reqs.get(k, ""))
