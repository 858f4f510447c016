#!/usr/bin/env python3
"""Where a p99 comes from (issues 22/23): herd-notes at several worker counts / options against
hb-notes, one route, alternating rounds, wrk --latency (p50/p90/p99) plus how wrk's connections
are spread over herdd's workers (ss, sampled mid-run). Not a test; wrap it in the bench lock:

    flock /tmp/herdd-bench.lock bench/tailprobe.py --bindir bench/app/.build/release \
        --variant w2= --variant w1=--workers,1 --path /json20 --conns 50

A variant is NAME=ARGS (comma-separated extra herdd arguments; --workers defaults to 2);
--variant-bindir NAME=DIR takes that variant's binary from another build (an A/B of two builds
in one run). Each herd row also gives the workers' voluntary context switches per request: their
loop threads, and their other threads (the dispatch watchers).
Every process is started in its own session and ended by its PID's group.
"""
import argparse
import collections
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(port, path, proc, seconds=30):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no answer on {port}")


def ms(v):
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", v)
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]


def spread(port):
    """Established server-side sockets on `port`, counted by owning pid."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True).stdout
    c = collections.Counter(re.findall(r"pid=(\d+)", out))
    return sorted(c.values(), reverse=True)


def thread_switches(master_pid):
    """(workers' loop threads, their other threads: the dispatch watchers): voluntary context
    switches summed over the worker processes of a herdd master (its children)."""
    loop = other = cpu = 0
    try:
        with open(f"/proc/{master_pid}/task/{master_pid}/children") as f:
            workers = [int(x) for x in f.read().split()]
    except OSError:
        return 0, 0
    for w in workers:
        try:
            tids = os.listdir(f"/proc/{w}/task")
            with open(f"/proc/{w}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu += int(fields[11]) + int(fields[12])  # utime + stime, clock ticks
        except (OSError, IndexError, ValueError):
            continue
        for tid in tids:
            try:
                with open(f"/proc/{w}/task/{tid}/status") as f:
                    v = int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", f.read(), re.M).group(1))
            except (OSError, AttributeError):
                continue
            if int(tid) == w:
                loop += v
            else:
                other += v
    return loop, other, cpu


def wrk(port, path, conns, secs, script, master_pid=None):
    cmd = ["wrk", "-t2", f"-c{conns}", f"-d{secs}s", "--latency"] + (["-s", script] if script else []) + [f"http://127.0.0.1:{port}{path}"]
    before = thread_switches(master_pid) if master_pid else (0, 0, 0)
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    time.sleep(min(1.5, secs / 2))
    dist = spread(port)
    out, _ = p.communicate(timeout=secs + 30)
    after = thread_switches(master_pid) if master_pid else (0, 0, 0)
    wall = time.monotonic() - t0
    r = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "spread": dist}
    reqs = max(1, int(re.search(r"(\d+) requests in", out).group(1)))
    r["loop_cs"] = (after[0] - before[0]) / reqs
    r["other_cs"] = (after[1] - before[1]) / reqs
    # The workers' CPU: microseconds per request, and cores used on average over the run.
    ticks = (after[2] - before[2]) / os.sysconf("SC_CLK_TCK")
    r["cpu_us"] = ticks * 1e6 / reqs
    r["cores"] = ticks / wall
    for pct in ("50", "75", "90", "99"):
        r[f"p{pct}"] = ms(re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", out, re.M).group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["bad"] = int(m.group(1)) if m else 0
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bindir", required=True)
    ap.add_argument("--variant", action="append", default=[])
    ap.add_argument("--path", default="/json20")
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--secs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--script")
    ap.add_argument("--no-hb", action="store_true")
    ap.add_argument("--herd-cmd", default="herd-notes:{db}", help="herd binary and --handler spec")
    ap.add_argument("--variant-bindir", action="append", default=[],
                    help="NAME=DIR: variant NAME's herd binary from DIR (an A/B of two builds)")
    a = ap.parse_args()
    bindirs = dict(x.split("=", 1) for x in a.variant_bindir)
    db = tempfile.mkdtemp(prefix="tailprobe-", dir="/dev/shm")
    procs = []
    servers = {}
    try:
        variants = a.variant or ["w2="]
        for v in variants:
            name, _, extra = v.partition("=")
            extra = [x for x in extra.split(",") if x]
            if "--workers" not in extra:
                extra = ["--workers", "2"] + extra
            port = free_port()
            binary, _, spec = a.herd_cmd.partition(":")
            bindir = a.bindir
            if name in bindirs:  # --variant-bindir: this variant's binary from another build
                bindir = bindirs[name]
            cmd = [os.path.join(bindir, binary), "--listen", f"127.0.0.1:{port}", "--log-level", "warning",
                   "--handler", f"http={binary}:{spec.format(db=db)}/{name}.sqlite"] + extra
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            procs.append(p)
            servers[name] = (port, p)
        if not a.no_hb:
            port = free_port()
            p = subprocess.Popen([os.path.join(a.bindir, "hb-notes"), str(port), f"{db}/hb.sqlite"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            procs.append(p)
            servers["hb"] = (port, p)
        for name, (port, p) in servers.items():
            answers(port, "/json20", p)
            req = urllib.request.Request(f"http://127.0.0.1:{port}/notes", data=b'{"title":"first"}',
                                         headers={"Content-Type": "application/json"}, method="POST")
            urllib.request.urlopen(req, timeout=5).read()
            wrk(port, a.path, a.conns, 2, a.script)  # warm-up
        res = collections.defaultdict(list)
        names = list(servers)
        for r in range(a.rounds):
            for name in (names if r % 2 == 0 else names[::-1]):
                x = wrk(servers[name][0], a.path, a.conns, a.secs, a.script, None if name == "hb" else servers[name][1].pid)
                res[name].append(x)
                print(f"round {r + 1} {name:10s} {x['rps']:8.0f} req/s  p50 {x['p50']:6.2f}  p75 {x['p75']:6.2f}  "
                      f"p90 {x['p90']:6.2f}  p99 {x['p99']:6.2f} ms  spread {x['spread']}  "
                      f"vcs/req loop {x['loop_cs']:.3f} other {x['other_cs']:.3f}  cpu {x['cpu_us']:.0f} us/req {x['cores']:.2f} cores  load {open('/proc/loadavg').read().split()[0]}",
                      flush=True)
        print("median:")
        hb = res.get("hb")
        for name, lst in res.items():
            m = {k: statistics.median(x[k] for x in lst) for k in ("rps", "p50", "p90", "p99", "loop_cs", "other_cs", "cpu_us", "cores")}
            q = ""
            if hb and name != "hb":
                mh = {k: statistics.median(x[k] for x in hb) for k in ("rps", "p50", "p99")}
                q = f"  vs hb: req/s {m['rps'] / mh['rps']:.2f}  p50 {m['p50'] / mh['p50']:.2f}  p99 {m['p99'] / mh['p99']:.2f}"
            cs = "" if name == "hb" else f"  vcs/req loop {m['loop_cs']:.3f} other {m['other_cs']:.3f}  cpu {m['cpu_us']:.0f} us/req {m['cores']:.2f} cores"
            print(f"  {name:10s} {m['rps']:8.0f} req/s  p50 {m['p50']:6.2f}  p90 {m['p90']:6.2f}  p99 {m['p99']:6.2f} ms{cs}{q}")
    finally:
        for p in procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                    p.wait(timeout=15)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
        subprocess.run(["rm", "-rf", db])


if __name__ == "__main__":
    sys.exit(main())
