#!/usr/bin/env python3
"""Downloads beside blocking handlers in the same workers, two `notsent-lowat` values
alternating per round (docs/static.md, "notsent-lowat: refills from the worker"):

    flock /tmp/herdd-bench.lock python3 bench/lowat_blocking.py BINARY [VALUE_A VALUE_B]

herdd (2 workers) serves a static listener (the 20 MB file of staticbench.make_root) and a
`debug` listener. SLEEPERS clients (2) each send `GET /sleep/MS` (20 ms) back to back on one
keep-alive connection, blocking a worker per request, while wrk -c CONNS (4) downloads the file
for SECS (6) s. Prints per round and value the files per second (wrk's bytes / the file's size)
and the sleeps done. VALUE_A and VALUE_B default to 16k and 0 (the kernel's buffer). Bounded:
every load stops at SECS; herdd is stopped by PID."""
import os, socket, subprocess, sys, threading, time
from pathlib import Path
sys.path[:0] = [str(Path(__file__).resolve().parent / "herdbench"), str(Path(__file__).resolve().parents[1] / "Tests" / "support")]
import staticbench as sb
from herdtest import free_port

binary = sys.argv[1]
values = sys.argv[2:4] if len(sys.argv) >= 4 else ["16k", "0"]
rounds, secs = int(os.environ.get("ROUNDS", "3")), int(os.environ.get("SECS", "6"))
ms, sleepers, conns = int(os.environ.get("MS", "20")), int(os.environ.get("SLEEPERS", "2")), int(os.environ.get("CONNS", "4"))
tmp, root = sb.make_root()


def sleeper(port, until, counts):
    n = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        while time.monotonic() < until:
            s.sendall(f"GET /sleep/{ms} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            buf = b""
            while not buf.endswith(f"slept {ms}\n".encode()):
                chunk = s.recv(4096)
                if not chunk:
                    raise RuntimeError("sleeper: connection closed")
                buf += chunk
            n += 1
    counts.append(n)


for rnd in range(rounds):
    for value in (values if rnd % 2 == 0 else values[::-1]):
        files, app = free_port(), free_port()
        p = subprocess.Popen([binary, "--workers", "2", "--listen", f"127.0.0.1:{files},name=files",
                              "--listen", f"127.0.0.1:{app},name=app", "--handler", f"files=static:{root}",
                              "--handler", "app=debug", "--notsent-lowat", value],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            sb.wait_port(files)
            sb.wait_port(app)
            time.sleep(0.5)  # the workers start after the listeners answer
            counts = []
            until = time.monotonic() + secs + 0.5
            ts = [threading.Thread(target=sleeper, args=(app, until, counts)) for _ in range(sleepers)]
            for t in ts:
                t.start()
            r = sb.wrk(files, "20m.bin", conns, secs, False)
            for t in ts:
                t.join()
            print(f"round {rnd + 1} notsent-lowat {value:>5}: downloads {r.bytes / r.seconds / sb.FILES['20m.bin']:7.1f} files/s,"
                  f" sleeps done {sum(counts)}" + (f"  ({r.err})" if r.err else ""), flush=True)
        finally:
            p.terminate()
            p.wait(timeout=30)
