#!/usr/bin/env python3
"""Hummingbird's router on herdd vs on Hummingbird's own server (issue 23, part 3).

    bench/hbrouter.py [--rounds 5] [--secs 5] [--conns 50] [--path /todos/7]

Builds Integrations/HerdHummingbird's example (hb-example) in release mode (its own .build; the
first build takes minutes), then runs the same binary, the same buildRouter() with its
middleware (LogRequests, CORS, FileMiddleware), two ways on 127.0.0.1:
  - herdd: `hb-example --listen ... --default-handler app --workers 2`
  - Hummingbird's Application: `hb-example hummingbird 127.0.0.1 PORT` (its NIO event loop
    group: one thread per core)
and measures a JSON route with wrk -t2 -cCONNS --latency, keep-alive, rounds interleaved (the
order alternates), median of the rounds. Both servers' logs (one line per request from
LogRequestsMiddleware on both) go to /dev/null. Target: herdd/Hummingbird req/s >= 1.0.
Every process started here is ended by PID (the servers' process groups), also on failure.
"""
import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(BENCH), str(ROOT / "Tests" / "support")]
from herdbench.load import parse_wrk  # noqa: E402
from herdtest import free_port, stop_process_tree  # noqa: E402

PACKAGE = ROOT / "Integrations" / "HerdHummingbird"


def build():
    subprocess.run(["swift", "build", "-c", "release", "--product", "hb-example", "--package-path", str(PACKAGE)],
                   check=True, timeout=3600)
    out = subprocess.run(["swift", "build", "-c", "release", "--package-path", str(PACKAGE), "--show-bin-path"],
                         check=True, capture_output=True, text=True).stdout.strip()
    return Path(out) / "hb-example"


def start(args, port, env):
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        if p.poll() is not None:
            raise RuntimeError(f"{args} exited with {p.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return p
        except OSError:
            if time.monotonic() > deadline:
                stop_process_tree(p, timeout=20)
                raise RuntimeError(f"{args} did not listen within 30 s")
            time.sleep(0.1)


def wrk(port, path, conns, secs):
    cmd = ["wrk", "-t2", f"-c{conns}", f"-d{secs}s", "--latency", f"http://127.0.0.1:{port}{path}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=secs + 30).stdout
    return parse_wrk(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--secs", type=int, default=5)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--path", default="/todos/7")
    ap.add_argument("--binary", help="a built hb-example (default: release build here)")
    a = ap.parse_args()
    binary = Path(a.binary) if a.binary else build()
    env = dict(os.environ, HB_EXAMPLE_PUBLIC=str(PACKAGE / "nonexistent-public"))
    ports = {"herdd": free_port(), "hummingbird": free_port()}
    procs = {}
    try:
        procs["herdd"] = start([str(binary), "--listen", f"127.0.0.1:{ports['herdd']}", "--default-handler", "app",
                                "--workers", "2"], ports["herdd"], env)
        procs["hummingbird"] = start([str(binary), "hummingbird", "127.0.0.1", str(ports["hummingbird"])],
                                     ports["hummingbird"], env)
        for name in procs:  # warm-up (each herdd worker builds its router on its first request)
            wrk(ports[name], a.path, a.conns, 2)
        runs = {name: [] for name in procs}
        for r in range(a.rounds):
            order = list(procs) if r % 2 == 0 else list(reversed(procs))
            for name in order:
                w = wrk(ports[name], a.path, a.conns, a.secs)
                print(f"round {r + 1} {name:12} {w['rps']:9.0f} req/s  p50 {w['p50_ms']} ms  p99 {w['p99_ms']} ms  "
                      f"errors {w['errors'] + w['non2xx']}", flush=True)
                runs[name].append(w)
    finally:
        for p in procs.values():
            stop_process_tree(p, timeout=20)
    print(f"\nGET {a.path}, wrk -t2 -c{a.conns} -d{a.secs}s keep-alive, median of {a.rounds} interleaved rounds")
    med = {}
    for name, lst in runs.items():
        med[name] = {k: statistics.median(x[k] for x in lst if x[k] is not None) for k in ("rps", "p50_ms", "p99_ms")}
        errors = sum(x["errors"] + x["non2xx"] for x in lst)
        print(f"{name:12} {med[name]['rps']:9.0f} req/s  p50 {med[name]['p50_ms']:.2f} ms  "
              f"p99 {med[name]['p99_ms']:.2f} ms  errors {errors}")
    print(f"herdd/hummingbird req/s: {med['herdd']['rps'] / med['hummingbird']['rps']:.2f} (target >= 1.0)")


if __name__ == "__main__":
    main()
