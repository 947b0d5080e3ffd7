#!/usr/bin/env python3
"""compose-secrets benchmarks, measured side by side with their peers in one run.

load (issue: Key Vault): N = 10, 100, 1000 secrets from the emulator with a fixed
injected latency. For each N it runs compose-secrets `load` cold and warm, the
official Python SDK in a sequential loop (the seeds' get_secrets.sh pattern) and
with its async client at the same concurrency, counts the cold load's requests at
the emulator, and computes the ideal (challenge + ceil(N / concurrency)) x latency:
a cold load lists nothing (issue 21), since each GET brings its version.

rotate (issue: rotate): the wall time of `rotate` for one secret used by one
service, minus the time of `docker restart` plus the first healthy answer for
the same service, measured alternately in the same run.

sync (issue 14): `sync` with nothing changed against a warm `load`, the steady
state of `sync --watch` (idle RSS, CPU and requests per poll) for 100 and 1000
secrets, and a rotation's propagation to a second host (scripts/bench_sync.py).

Everything runs on loopback and against containers this script starts. Results
go to stdout and target/bench/results.md. No number here is asserted by a test:
these machines are noisy, so the figures are reported, with ratios.

the project model: the cost of resolving a 50-service project (scripts/bench_model.py),
beside `docker compose config` on the same files.

Usage: scripts/bench.sh [--sizes 10,100,1000] [--latency-ms 20] [--repeat 3] [--skip-python] [--skip-rotate] [--skip-model]
                       [--skip-sync] [--sync-sizes 100,1000]
"""
import argparse
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import ssl
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, "target", "release")
CS = os.path.join(RELEASE, "compose-secrets")
EMULATOR = os.path.join(RELEASE, "kv-emulator")
CONCURRENCY = 16
PAGE_SIZE = 25


def clean_env():
    """The environment every measured process gets: nothing inherited that could reach Azure."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AZURE_", "COMPOSE_", "IDENTITY_", "MSI_", "IMDS_"))}
    env["COMPOSE_SECRETS_DISABLE_IMDS"] = "1"
    return env


class Emulator:
    def __init__(self, count, latency_ms):
        self.state = tempfile.mkdtemp(prefix="cs-bench-emu-")
        self.proc = subprocess.Popen(
            [EMULATOR, "--port", "0", "--state-dir", self.state, "--seed-count", str(count),
             "--latency-ms", str(latency_ms)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=clean_env())
        path = os.path.join(self.state, "emulator.env")
        deadline = time.time() + 30
        while not os.path.exists(path):
            if time.time() > deadline or self.proc.poll() is not None:
                raise SystemExit("kv-emulator did not start")
            time.sleep(0.05)
        self.env = {}
        for line in open(path):
            m = re.match(r"export (\w+)=(.*)", line.strip())
            if m:
                self.env[m.group(1)] = m.group(2).strip("'\"")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.state, ignore_errors=True)


def admin(emu, path, body=None):
    """The emulator's admin API (HTTPS, its own CA): stats and their reset."""
    ctx = ssl.create_default_context(cafile=emu.env["COMPOSE_SECRETS_CA_FILE"])
    url = emu.env["KV_EMULATOR_ADMIN_URL"].rstrip("/") + "/" + path
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
        return json.load(r)


def timed(cmd, env, cwd):
    """Wall seconds and peak RSS (KiB) of one command, via GNU time."""
    fd, out = tempfile.mkstemp()
    os.close(fd)
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out] + cmd, env=env, cwd=cwd,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    rss = int(open(out).read().strip().splitlines()[-1])
    os.unlink(out)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr.decode()}")
    return wall, rss


def bench_load(n, latency_ms, repeat, skip_python):
    emu = Emulator(n, latency_ms)
    project = tempfile.mkdtemp(prefix="cs-bench-proj-")
    try:
        names = [f"bench-{i:04d}" for i in range(n)]
        with open(os.path.join(project, "compose.yaml"), "w") as f:
            # Every secret mounted by a service: one no service uses is left out, as Compose does.
            f.write("services:\n  app:\n    image: x\n    secrets: [" + ", ".join(names) + "]\n")
            f.write("secrets:\n")
            for name in names:
                f.write(f"  {name}:\n    file: ./.runtime/secrets/{name}\n")
        env = clean_env()
        env.update(emu.env)
        env.update({"AZURE_USE_KEYVAULT": "true", "AZURE_CREDENTIAL": "managed-identity"})
        # Key Vault's `updated` has one-second resolution; let the seeded versions age past it.
        time.sleep(1.1)
        cold, warm, rss = [], [], []
        for _ in range(repeat):
            shutil.rmtree(os.path.join(project, ".runtime"), ignore_errors=True)
            admin(emu, "stats/reset", {})
            w, r = timed([CS, "-q", "load"], env, project)
            stats = admin(emu, "stats")
            ops = stats.get("by_operation", {})
            requests = {"401": stats.get("unauthenticated", 0), "list": ops.get("list", 0),
                        "get": ops.get("get", 0)}
            cold.append(w)
            rss.append(r)
            w, r = timed([CS, "-q", "load"], env, project)
            warm.append(w)
            rss.append(r)
        py, py_rss, py_async = None, None, None
        if not skip_python:
            py_runs, async_runs = [], []
            for _ in range(1 if n >= 1000 else repeat):
                for peer, runs in (("bench_python_peer.py", py_runs),
                                   ("bench_python_async_peer.py", async_runs)):
                    out_dir = tempfile.mkdtemp(prefix="cs-bench-py-")
                    runs.append(timed([sys.executable, os.path.join(ROOT, "scripts", peer), out_dir]
                                      + names, env, project))
                    shutil.rmtree(out_dir, ignore_errors=True)
            py = statistics.median(w for w, _ in py_runs)
            py_rss = max(r for _, r in py_runs)
            py_async = statistics.median(w for w, _ in async_runs)
        pages = math.ceil(n / PAGE_SIZE)
        ideal = (1 + math.ceil(n / CONCURRENCY)) * latency_ms / 1000
        warm_budget = pages * latency_ms / 1000 + 0.050
        return {
            "n": n, "cold": statistics.median(cold), "warm": statistics.median(warm),
            "rss_kib": max(rss), "python": py, "python_rss_kib": py_rss, "python_async": py_async,
            "requests": requests,
            "ideal": ideal, "warm_budget": warm_budget, "pages": pages,
        }
    finally:
        emu.stop()
        shutil.rmtree(project, ignore_errors=True)


def fmt_ms(s):
    return "—" if s is None else f"{s * 1000:.0f} ms"


def load_table(results, latency_ms):
    lines = [
        f"Load from the emulator, {latency_ms} ms injected latency per request, concurrency {CONCURRENCY}, "
        f"page size {PAGE_SIZE} (median of runs).",
        "",
        "| N | ideal | cold | cold / ideal | cold requests (401 / list / get) | warm | warm budget | "
        "Python SDK loop | Python async SDK | Python async / cold | peak RSS | Python RSS |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        async_ratio = "—" if r["python_async"] is None else f"{r['python_async'] / r['cold']:.1f}x"
        py_rss = "—" if r["python_rss_kib"] is None else f"{r['python_rss_kib'] / 1024:.1f} MB"
        q = r["requests"]
        lines.append(
            f"| {r['n']} | {fmt_ms(r['ideal'])} | {fmt_ms(r['cold'])} | {r['cold'] / r['ideal']:.2f}x | "
            f"{q['401']} / {q['list']} / {q['get']} | "
            f"{fmt_ms(r['warm'])} | {fmt_ms(r['warm_budget'])} | {fmt_ms(r['python'])} | "
            f"{fmt_ms(r['python_async'])} | {async_ratio} | {r['rss_kib'] / 1024:.1f} MB | {py_rss} |")
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--latency-ms", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-python", action="store_true")
    ap.add_argument("--skip-rotate", action="store_true")
    ap.add_argument("--skip-model", action="store_true")
    ap.add_argument("--skip-sync", action="store_true")
    ap.add_argument("--sync-sizes", default="100,1000")
    args = ap.parse_args()
    for binary in (CS, EMULATOR):
        if not os.path.exists(binary):
            raise SystemExit(f"{binary} missing: run scripts/bench.sh (it builds --release)")
    report = ["# compose-secrets benchmark run", "", f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
              f"- host: {os.uname().nodename}, {os.cpu_count()} CPUs", ""]
    results = []
    for n in [int(x) for x in args.sizes.split(",")]:
        r = bench_load(n, args.latency_ms, args.repeat, args.skip_python)
        results.append(r)
        print(json.dumps(r), flush=True)
    report += ["## load", ""] + load_table(results, args.latency_ms) + [""]
    if not args.skip_rotate:
        rotate_lines = bench_rotate(args.repeat)
        report += ["## rotate", ""] + rotate_lines + [""]
    if not args.skip_model:
        report += ["## the project model", ""] + bench_model() + [""]
    if not args.skip_sync:
        report += ["## sync", ""] + bench_sync(args) + [""]
    text = "\n".join(report)
    os.makedirs(os.path.join(ROOT, "target", "bench"), exist_ok=True)
    with open(os.path.join(ROOT, "target", "bench", "results.md"), "w") as f:
        f.write(text + "\n")
    print(text)


def bench_rotate(repeat):
    """Filled in once `rotate` lands; see BENCHMARKS.md."""
    path = os.path.join(ROOT, "scripts", "bench_rotate.py")
    if not os.path.exists(path):
        return ["(rotate benchmark not available yet)"]
    out = subprocess.run([sys.executable, path, "--repeat", str(repeat)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"rotate benchmark failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout.splitlines()


def bench_model():
    """The model's resolution cost beside `docker compose config` (scripts/bench_model.py)."""
    path = os.path.join(ROOT, "scripts", "bench_model.py")
    out = subprocess.run([sys.executable, path], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"model benchmark failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout.splitlines()


def bench_sync(args):
    """scripts/bench_sync.py's markdown lines (--skip-rotate also skips its Docker part)."""
    path = os.path.join(ROOT, "scripts", "bench_sync.py")
    cmd = [sys.executable, path, "--sizes", args.sync_sizes, "--latency-ms", str(args.latency_ms),
           "--repeat", str(args.repeat)]
    if args.skip_rotate:
        cmd.append("--skip-docker")
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"sync benchmark failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout.splitlines()


if __name__ == "__main__":
    main()
