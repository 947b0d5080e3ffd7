#!/usr/bin/env python3
"""Rotation benchmarks on the real Docker engine, side by side in one run.

1. Overhead: `compose-secrets rotate` for one secret used by one service, against
   the same service's `docker restart` plus its first healthy answer, alternated
   `--repeat` times. Overhead = median(rotate) - median(restart + first healthy).
2. Zero downtime: a 3-replica service behind the demo proxy; a client polls
   /health every 50 ms for the whole rotation and counts failed requests.

Prints markdown lines (used by scripts/bench.py). Starts and removes its own
containers; talks only to loopback and to them.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CS = os.path.join(ROOT, "target", "release", "compose-secrets")
IMAGE = os.environ.get("DEMO_IMAGE", "compose-secrets-demo:latest")
COMPOSE = shutil.which("docker-compose") and ["docker-compose"] or ["docker", "compose"]


def clean_env(project):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AZURE_", "COMPOSE_", "IDENTITY_", "MSI_", "IMDS_"))}
    env["COMPOSE_SECRETS_DISABLE_IMDS"] = "1"
    env["COMPOSE_PROJECT_NAME"] = project
    return env


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def healthy(url, timeout=0.5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return 200 <= r.status < 300
    except Exception:
        return False


def wait_healthy(url, deadline_s=60):
    end = time.time() + deadline_s
    while time.time() < end:
        if healthy(url):
            return
        time.sleep(0.01)
    raise SystemExit(f"{url} never became healthy")


class Stack:
    def __init__(self, compose_yaml, scale=None):
        self.dir = tempfile.mkdtemp(prefix="cs-bench-rot-")
        self.project = f"csbench{os.getpid()}{int(time.time() * 1000) % 100000}"
        self.env = clean_env(self.project)
        with open(os.path.join(self.dir, "compose.yaml"), "w") as f:
            f.write(compose_yaml)
        with open(os.path.join(self.dir, ".env.demo"), "w") as f:
            f.write("S1=\n")
        self.run([CS, "-q", "ensure"])
        self.run([CS, "-q", "load"])
        up = COMPOSE + ["-f", "compose.yaml", "up", "-d"]
        if scale:
            up += ["--scale", scale]
        self.run(up)

    def run(self, cmd, **kw):
        return subprocess.run(cmd, cwd=self.dir, env=self.env, check=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)

    def container(self, service):
        out = subprocess.run(["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={self.project}",
                              "--filter", f"label=com.docker.compose.service={service}"],
                             capture_output=True, text=True, check=True).stdout.split()
        return out

    def down(self):
        subprocess.run(COMPOSE + ["-f", "compose.yaml", "down", "-v", "--remove-orphans"], cwd=self.dir,
                       env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)


def overhead(repeat):
    port = free_port()
    url = f"http://127.0.0.1:{port}/health"
    stack = Stack(f"""services:
  app:
    image: {IMAGE}
    user: "1000:1000"
    ports: ["127.0.0.1:{port}:8000"]
    environment: {{DEMO_REQUIRED_SECRETS: s1}}
    secrets: [s1]
    # Docker runs the first health probe one interval after a start; the gate waits for it,
    # so the interval bounds what the gate adds. 100 ms keeps that visible but small.
    healthcheck:
      test: ["CMD", "/demo-app", "healthcheck"]
      interval: 100ms
      timeout: 1s
      retries: 3
    x-compose-secrets:
      health-url: {url}
secrets:
  s1:
    file: ./.runtime/secrets/s1
    x-compose-secrets: {{owner: "1000:1000"}}
""")
    try:
        wait_healthy(url)
        (cid,) = stack.container("app")
        restart, rotate = [], []
        for _ in range(repeat):
            t0 = time.perf_counter()
            subprocess.run(["docker", "restart", "-t", "10", cid], check=True, stdout=subprocess.DEVNULL)
            wait_healthy(url)
            restart.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            stack.run([CS, "-q", "rotate", "s1"])
            rotate.append(time.perf_counter() - t0)
            wait_healthy(url)
        r, b = statistics.median(rotate), statistics.median(restart)
        return [
            f"One secret used by one service ({repeat} alternating runs, medians):",
            "",
            "| `docker restart` + first healthy answer | `compose-secrets rotate` | overhead | target |",
            "|---|---|---|---|",
            f"| {b * 1000:.0f} ms | {r * 1000:.0f} ms | {(r - b) * 1000:.0f} ms | ≤ 300 ms |",
        ]
    finally:
        stack.down()


def zero_downtime():
    port = free_port()
    lb = f"http://127.0.0.1:{port}/health"
    stack = Stack(f"""services:
  web:
    image: {IMAGE}
    user: "1000:1000"
    environment: {{DEMO_REQUIRED_SECRETS: s1}}
    secrets: [s1]
  lb:
    image: {IMAGE}
    user: "1000:1000"
    command: ["proxy", "--listen", "0.0.0.0:8080", "--upstream", "web:8000"]
    ports: ["127.0.0.1:{port}:8080"]
    healthcheck: {{disable: true}}
secrets:
  s1:
    file: ./.runtime/secrets/s1
    x-compose-secrets: {{owner: "1000:1000"}}
""", scale="web=3")
    try:
        wait_healthy(lb)
        counts = {"ok": 0, "failed": 0}
        stop = threading.Event()

        def poll():
            while not stop.is_set():
                if healthy(lb, timeout=2):
                    counts["ok"] += 1
                else:
                    counts["failed"] += 1
                time.sleep(0.05)

        t = threading.Thread(target=poll)
        t.start()
        time.sleep(0.5)
        t0 = time.perf_counter()
        stack.run([CS, "-q", "rotate", "s1"])
        wall = time.perf_counter() - t0
        time.sleep(0.5)
        stop.set()
        t.join()
        return [
            "Three replicas behind the demo proxy, a client polling /health every 50 ms during the rotation:",
            "",
            "| rotation wall time | requests | failed |",
            "|---|---|---|",
            f"| {wall * 1000:.0f} ms | {counts['ok'] + counts['failed']} | {counts['failed']} |",
        ]
    finally:
        stack.down()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode != 0:
        subprocess.run([os.path.join(ROOT, "scripts", "build-demo-image.sh")], check=True)
    lines = overhead(args.repeat) + [""] + zero_downtime()
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
