#!/usr/bin/env python3
"""Start-first against stop-first rotation of a one-container service, in one run.

The same stack twice: one `app` container behind the demo proxy (`demo-app proxy`), the
first time with `deploy.update_config.order: start-first`, the second time without (today's
restart). A client polls /health through the proxy every 10 ms for the whole run; each
stack gets `--rotations` rotations, then one rotation to a value the service rejects
(`DEMO_REJECT_PREFIX`), which is rolled back. Reports requests and failed requests per
strategy, and the median rotation wall time (a stop-first rotation is a `docker restart`
plus its gates).

Prints markdown. Starts and removes its own containers (projects `cssf<pid>...`); talks only
to loopback and to them. Usage: scripts/bench_start_first.py [--rotations N] [--binary PATH]
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
IMAGE = os.environ.get("DEMO_IMAGE", "compose-secrets-demo:latest")
COMPOSE = shutil.which("docker-compose") and ["docker-compose"] or ["docker", "compose"]

STACK = """services:
  app:
    image: {image}
    user: "1000:1000"
    environment:
      DEMO_REQUIRED_SECRETS: s1
      DEMO_REJECT_PREFIX: bad-
    healthcheck:
      test: ["CMD", "/demo-app", "healthcheck"]
      interval: 100ms
      timeout: 1s
      retries: 3
    secrets: [s1]
{deploy}    x-compose-secrets:
      health-url: http://{{ip}}:8000/health
  proxy:
    image: {image}
    user: "1000:1000"
    command: ["proxy", "--listen", "0.0.0.0:8080", "--upstream", "app:8000"]
    ports: ["127.0.0.1:{port}:8080"]
    healthcheck: {{disable: true}}
secrets:
  s1:
    file: ./.runtime/secrets/s1
    x-compose-secrets: {{owner: "1000:1000"}}
"""
START_FIRST = "    deploy:\n      update_config:\n        order: start-first\n"


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


def healthy(url, timeout=2.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return 200 <= r.status < 300
    except Exception:
        return False


class Poller:
    """GET `url` every 10 ms on a thread; counts answers that are not 2xx as failed."""

    def __init__(self, url):
        self.url, self.ok, self.failed = url, 0, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self):
        while not self.stop.is_set():
            if healthy(self.url):
                self.ok += 1
            else:
                self.failed += 1
            time.sleep(0.01)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def measure(binary, start_first, rotations):
    port = free_port()
    url = f"http://127.0.0.1:{port}/health"
    project = f"cssf{os.getpid()}{'s' if start_first else 'r'}"
    env = clean_env(project)
    tmp = tempfile.mkdtemp(prefix="cs-bench-sf-")
    run = lambda cmd, **kw: subprocess.run(cmd, cwd=tmp, env=env, check=kw.pop("check", True),
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    with open(os.path.join(tmp, "compose.yaml"), "w") as f:
        f.write(STACK.format(image=IMAGE, port=port, deploy=START_FIRST if start_first else ""))
    with open(os.path.join(tmp, ".env.demo"), "w") as f:
        f.write("S1=\n")
    try:
        run([binary, "-q", "ensure"])
        run([binary, "-q", "load"])
        run(COMPOSE + ["-f", "compose.yaml", "up", "-d"])
        end = time.time() + 60
        while not healthy(url) and time.time() < end:
            time.sleep(0.05)
        walls = []
        with Poller(url) as poller:
            time.sleep(0.3)
            for _ in range(rotations):
                t0 = time.perf_counter()
                run([binary, "-q", "rotate", "s1"])
                walls.append(time.perf_counter() - t0)
            rejected = run([binary, "-q", "rotate", "s1", "--value-stdin", "--health-timeout", "5"],
                           input=b"bad-" + os.urandom(8).hex().encode(), check=False)
            time.sleep(0.3)
        if poller.failed:
            # What the proxy saw for the failed requests, for whoever reads the run.
            logs = run(COMPOSE + ["-f", "compose.yaml", "logs", "--no-color", "proxy"]).stdout.decode()
            for line in logs.splitlines():
                if " 200 " not in line and "proxy on" not in line:
                    print(f"[{project}] {line}", file=sys.stderr)
        containers = run(["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={project}",
                          "--filter", "label=com.docker.compose.service=app"]).stdout.split()
        return {
            "requests": poller.ok + poller.failed,
            "failed": poller.failed,
            "wall": statistics.median(walls),
            "rejected_exit": rejected.returncode,
            "containers": len(containers),
        }
    finally:
        subprocess.run(COMPOSE + ["-f", "compose.yaml", "down", "-v", "--remove-orphans", "-t", "1"],
                       cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rotations", type=int, default=20)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "compose-secrets"))
    args = ap.parse_args()
    rows = []
    for start_first in (True, False):
        r = measure(args.binary, start_first, args.rotations)
        name = "start-first (`deploy.update_config.order: start-first`)" if start_first else "stop-first (restart)"
        rows.append(f"| {name} | {args.rotations} + 1 rejected (exit {r['rejected_exit']}) | {r['requests']} "
                    f"| **{r['failed']}** | {r['wall'] * 1000:.0f} ms | {r['containers']} |")
    print(f"One `app` container behind the demo proxy; a client polls /health through the proxy every 10 ms "
          f"during {args.rotations} rotations and one rejected (rolled-back) rotation:")
    print()
    print("| strategy | rotations | requests | failed | median rotation wall time | app containers after |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
