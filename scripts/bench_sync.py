#!/usr/bin/env python3
"""`sync` benchmarks against the emulator (and, for propagation, the real Docker engine).

1. Warm path: for N secrets, `sync` with nothing changed against a warm `load` of the same
   project, alternated `--repeat` times: wall time (median) and the emulator's request
   counts (list pages, GETs). The claim: the same requests, 0 GETs.
2. Steady state of `sync --watch --interval I`: idle RSS of the watcher, CPU per poll
   (utime + stime from /proc over the window, divided by the polls the emulator saw),
   requests, GETs and tokens per poll.
3. Propagation (Docker, skipped with --skip-docker): host A (a plain project) runs
   `rotate --no-restart`; host B runs the demo service and `sync --watch --interval I`.
   Time from A's rotate returning until B's /health reports the new value, against the
   interval plus `docker restart` + first healthy answer of the same service.

Prints markdown lines (used by scripts/bench.py). Talks only to loopback, the emulator it
starts and the containers it starts; removes them.

Usage: scripts/bench_sync.py [--sizes 100,1000] [--latency-ms 20] [--repeat 3]
                             [--interval 2] [--window 30] [--skip-docker]
"""
import argparse
import hashlib
import json
import math
import os
import random
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import CS, EMULATOR, PAGE_SIZE, Emulator, clean_env  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = os.environ.get("DEMO_IMAGE", "compose-secrets-demo:latest")
COMPOSE = shutil.which("docker-compose") and ["docker-compose"] or ["docker", "compose"]
TICKS = os.sysconf("SC_CLK_TCK")


def admin(emu, path, body=None):
    """The emulator's admin API (HTTPS, its own CA)."""
    ctx = ssl.create_default_context(cafile=emu.env["COMPOSE_SECRETS_CA_FILE"])
    url = emu.env["KV_EMULATOR_ADMIN_URL"].rstrip("/") + "/" + path
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
        return json.load(r)


def stats(emu):
    return admin(emu, "stats")


def reset(emu):
    admin(emu, "stats/reset", {})


def kv_env(emu, extra=None):
    env = clean_env()
    env.update(emu.env)
    env.update({"AZURE_USE_KEYVAULT": "true", "AZURE_CREDENTIAL": "managed-identity"})
    env.update(extra or {})
    return env


def project_with(n, directory=None):
    project = directory or tempfile.mkdtemp(prefix="cs-bench-sync-")
    with open(os.path.join(project, "compose.yaml"), "w") as f:
        # One service (not running) uses them: a secret no service uses is skipped.
        names = ", ".join(f"bench-{i:04d}" for i in range(n))
        f.write(f"services:\n  app:\n    image: x\n    secrets: [{names}]\nsecrets:\n")
        for i in range(n):
            f.write(f"  bench-{i:04d}:\n    file: ./.runtime/secrets/bench-{i:04d}\n")
    return project


def run(cmd, env, cwd):
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr.decode()}")
    return wall


def ops(s):
    return s["by_operation"].get("list", 0), s["by_operation"].get("get", 0), s["requests"]


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        values = dict(line.split(":", 1) for line in f if ":" in line)
    return int(values["VmRSS"].split()[0]), int(values["VmHWM"].split()[0])


def bench_size(n, latency_ms, repeat, interval, window):
    emu = Emulator(n, latency_ms)
    project = project_with(n)
    try:
        env = kv_env(emu)
        time.sleep(1.1)  # `updated` has one-second resolution
        run([CS, "-q", "load"], env, project)
        loads, syncs = [], []
        load_ops = sync_ops = None
        for _ in range(repeat):
            reset(emu)
            loads.append(run([CS, "-q", "load"], env, project))
            load_ops = ops(stats(emu))
            reset(emu)
            syncs.append(run([CS, "-q", "sync"], env, project))
            sync_ops = ops(stats(emu))
        # Steady state of the watcher.
        reset(emu)
        watcher = subprocess.Popen([CS, "-q", "sync", "--watch", "--interval", f"{interval}s"],
                                   env=env, cwd=project, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        time.sleep(interval * 2)  # started, first reconcile done
        s0, t0 = stats(emu), cpu_ticks(watcher.pid)
        time.sleep(window)
        s1, t1 = stats(emu), cpu_ticks(watcher.pid)
        rss, hwm = rss_kib(watcher.pid)
        watcher.send_signal(signal.SIGTERM)
        code = watcher.wait(timeout=120)
        if code != 0:
            raise SystemExit(f"sync --watch exited {code}: {watcher.stderr.read().decode()}")
        pages = math.ceil(n / PAGE_SIZE)
        lists = s1["by_operation"].get("list", 0) - s0["by_operation"].get("list", 0)
        polls = lists / pages
        return {
            "n": n, "pages": pages,
            "load_warm": statistics.median(loads), "sync": statistics.median(syncs),
            "load_ops": load_ops, "sync_ops": sync_ops,
            "polls": polls,
            "cpu_ms_per_poll": (t1 - t0) * 1000 / TICKS / polls if polls else None,
            "requests_per_poll": (s1["requests"] - s0["requests"]) / polls if polls else None,
            "gets_per_poll": (s1["by_operation"].get("get", 0) - s0["by_operation"].get("get", 0)) / polls if polls else None,
            "tokens_per_poll": (s1.get("tokens_issued", 0) - s0.get("tokens_issued", 0)) / polls if polls else None,
            "rss_kib": rss, "hwm_kib": hwm,
        }
    finally:
        emu.stop()
        shutil.rmtree(project, ignore_errors=True)


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def health(port, timeout=1.0):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=timeout) as r:
            return r.status, json.load(r)
    except Exception:
        return None, None


def fingerprint(value):
    return "sha256:" + hashlib.sha256(value).hexdigest()[:16]


def bench_propagation(latency_ms, repeat, interval):
    """Rotate on host A, until host B's service answers with the new value."""
    emu = Emulator(0, latency_ms)
    host_a = tempfile.mkdtemp(prefix="cs-bench-host-a-")
    host_b = tempfile.mkdtemp(prefix="cs-bench-host-b-")
    port = free_port()
    name = f"csbenchsync{os.getpid()}"
    env_a = kv_env(emu)
    env_b = kv_env(emu, {"COMPOSE_PROJECT_NAME": name})
    compose_env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    watcher = None
    try:
        with open(os.path.join(host_a, "compose.yaml"), "w") as f:
            f.write("services:\n  app:\n    image: x\n    secrets: [s1]\n"
                    "secrets:\n  s1:\n    file: ./.runtime/secrets/s1\n    x-compose-secrets: {generator: 'hex:24'}\n")
        with open(os.path.join(host_b, "compose.yaml"), "w") as f:
            f.write(f"""services:
  app:
    image: {IMAGE}
    user: "1000:1000"
    ports: ["127.0.0.1:{port}:8000"]
    environment:
      DEMO_REQUIRED_SECRETS: s1
    healthcheck:
      test: ["CMD", "/demo-app", "healthcheck"]
      interval: 100ms
      timeout: 1s
      retries: 3
    secrets: [s1]
    x-compose-secrets:
      health-url: http://127.0.0.1:{port}/health
secrets:
  s1:
    file: ./.runtime/secrets/s1
    x-compose-secrets: {{owner: "1000:1000", generator: 'hex:24'}}
""")
        # The first version, set by host A, loaded by both.
        run([CS, "-q", "rotate", "s1", "--no-restart"], env_a, host_a)
        run([CS, "-q", "load"], env_b, host_b)
        subprocess.run(COMPOSE + ["-p", name, "-f", "compose.yaml", "up", "-d"], cwd=host_b,
                       env=compose_env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while health(port)[0] != 200:
            if time.time() > deadline:
                raise SystemExit("host B's service never became healthy")
            time.sleep(0.05)
        # The restart alone, for comparison: docker restart + first healthy answer.
        cid = subprocess.run(["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={name}"],
                             capture_output=True, text=True, check=True).stdout.strip()
        restarts = []
        for _ in range(repeat):
            start = time.perf_counter()
            subprocess.run(["docker", "restart", cid], check=True, stdout=subprocess.DEVNULL)
            while health(port, timeout=0.1)[0] != 200:
                time.sleep(0.01)
            restarts.append(time.perf_counter() - start)
        watcher = subprocess.Popen([CS, "-q", "sync", "--watch", "--interval", f"{interval}s"],
                                   env=env_b, cwd=host_b, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        time.sleep(interval * 2)
        delays = []
        for _ in range(max(repeat, 5)):
            run([CS, "-q", "rotate", "s1", "--no-restart"], env_a, host_a)
            start = time.perf_counter()
            with open(os.path.join(host_a, ".runtime", "secrets", "s1"), "rb") as f:
                wanted = fingerprint(f.read())
            while True:
                # A short timeout: during the restart Docker's proxy accepts connections that
                # go nowhere, and a long one would hide the moment the new value is served.
                status, body = health(port, timeout=0.1)
                if status == 200 and body["secrets"]["s1"] == wanted:
                    break
                if time.perf_counter() - start > interval * 4 + 120:
                    raise SystemExit("host B never reported the new value")
                time.sleep(0.01)
            delays.append(time.perf_counter() - start)
            # A random pause, so rotations do not fall at the same point of the poll cycle.
            time.sleep(interval * (1 + random.random()))
        return {"interval": interval, "restart": statistics.median(restarts),
                "median": statistics.median(delays), "max": max(delays), "runs": len(delays)}
    finally:
        if watcher:
            watcher.send_signal(signal.SIGTERM)
            watcher.wait(timeout=120)
        subprocess.run(COMPOSE + ["-p", name, "-f", "compose.yaml", "down", "-v", "-t", "1"],
                       cwd=host_b, env=compose_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        emu.stop()
        shutil.rmtree(host_a, ignore_errors=True)
        shutil.rmtree(host_b, ignore_errors=True)


def ms(s):
    return "—" if s is None else f"{s * 1000:.0f} ms"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100,1000")
    ap.add_argument("--latency-ms", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--interval", type=int, default=2)
    ap.add_argument("--window", type=int, default=30)
    ap.add_argument("--skip-docker", action="store_true")
    args = ap.parse_args()
    for binary in (CS, EMULATOR):
        if not os.path.exists(binary):
            raise SystemExit(f"{binary} missing: run scripts/bench.sh (it builds --release)")
    results = []
    for n in [int(x) for x in args.sizes.split(",")]:
        r = bench_size(n, args.latency_ms, args.repeat, args.interval, args.window)
        print(json.dumps(r), file=sys.stderr, flush=True)
        results.append(r)
    print(f"Emulator with {args.latency_ms} ms injected latency per request, page size {PAGE_SIZE}; "
          f"medians of {args.repeat} alternated runs; the watcher polled every {args.interval}s "
          f"for {args.window}s.")
    print()
    print("| N | warm `load` | `sync`, nothing changed | requests (list pages, GETs): load / sync "
          "| watcher idle RSS | CPU per poll | requests per poll | GETs per poll | tokens per poll |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        lo, so = r["load_ops"], r["sync_ops"]
        print(f"| {r['n']} | {ms(r['load_warm'])} | {ms(r['sync'])} | {lo[2]} ({lo[0]}, {lo[1]}) / "
              f"{so[2]} ({so[0]}, {so[1]}) | {r['rss_kib'] / 1024:.1f} MB | "
              f"{r['cpu_ms_per_poll']:.1f} ms | {r['requests_per_poll']:.1f} | {r['gets_per_poll']:.1f} | "
              f"{r['tokens_per_poll']:.2f} |")
    if not args.skip_docker:
        p = bench_propagation(args.latency_ms, args.repeat, args.interval)
        print()
        print(f"Propagation: `rotate` on host A, `sync --watch --interval {p['interval']}s` on host B "
              f"(one service, Docker HEALTHCHECK every 100 ms); time until B's /health reports the new "
              f"value, {p['runs']} runs.")
        print()
        print("| interval | `docker restart` + first healthy | propagation median | propagation max "
              "| one interval (+10 % jitter) + the restart |")
        print("|---|---|---|---|---|")
        bound = p["interval"] * 1.1 + p["restart"]
        print(f"| {p['interval']} s | {ms(p['restart'])} | {ms(p['median'])} | {ms(p['max'])} | {ms(bound)} |")


if __name__ == "__main__":
    main()
