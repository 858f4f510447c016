"""Static files, herdd against nginx (issue 25): 1 KB, 16 KB and 1 MB files, keep-alive and
Connection: close, a 20 MB file keep-alive with 4 and with 64 connections, 2 workers each (nginx: sendfile on; tcp_nopush on; open_file_cache, as
PLATFORM-NOTES says is fair), alternating runs; req/s and CPU (user+system of the server's
processes) per request, from 1 MB on counted by the bytes served (`rate`). Also runnable alone:
    python3 bench/herdbench/staticbench.py HERDD [HERDD_BEFORE] [--secs S] [--rounds N]"""

import os
import random
import statistics
import shutil
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections import namedtuple
from typing import NamedTuple
from pathlib import Path

if __name__ == "__main__":  # run alone: herdtest is in Tests/support
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "Tests" / "support"))
from herdtest import free_port, proc_cpu_ticks, process_group_pids, stop_process_tree  # noqa: E402

try:
    from . import slowreaders
except ImportError:  # run as a script
    import slowreaders

FILES = {"1k.bin": 1024, "16k.bin": 16 * 1024, "1m.bin": 1 << 20, "20m.bin": 20 << 20}
# (file, connections, Connection: close, client): the small files both ways, the big one
# keep-alive only, few and many clients (issue 25's cases). The 20 MB cases run twice: with wrk,
# which copies every byte into user space and at 64 connections takes ~90 % of a 2-CPU host with
# either server (then the run measures wrk), and with `sink` (sink.c), which discards the bodies
# in the kernel (recv MSG_TRUNC), so that the servers bound the run. (1 MB `Connection: close`
# with sink is not here: bound by neither side's CPU, its per-round ratios ran 0.73-1.33
# (docs/static.md); `bench/static_ab.py CLIENT=sink CLOSE=1` runs it.)
CASES = [("1k.bin", 50, False, "wrk"), ("1k.bin", 50, True, "wrk"), ("16k.bin", 50, False, "wrk"),
         ("16k.bin", 50, True, "wrk"), ("1m.bin", 8, False, "wrk"), ("1m.bin", 8, True, "wrk"),
         ("20m.bin", 4, False, "wrk"), ("20m.bin", 64, False, "wrk"),
         ("20m.bin", 4, False, "sink"), ("20m.bin", 64, False, "sink")]
TICK = os.sysconf("SC_CLK_TCK")


def wait_port(port, deadline=10.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} not answering")


def group_cpu(pgid):
    """user+system seconds of every live process in the process group `pgid`."""
    return sum(proc_cpu_ticks(pid) for pid in process_group_pids(pgid)) / TICK


def start(kind, spec, root, port, tmp):
    """Starts nginx or herdd on 127.0.0.1:port serving `root`. `spec` is herdd's binary, or
    nginx's extra `listen` parameters ("deferred": TCP_DEFER_ACCEPT, which herdd's
    `defer-accept` sets by default; None: staticbench's config as it is)."""
    if kind == "nginx":
        nginx_listen = spec or ""
        conf = os.path.join(tmp, f"nginx-{port}.conf")
        with open(conf, "w") as f:
            f.write(f"""worker_processes 2; daemon off; pid {tmp}/nginx-{port}.pid; error_log stderr error;
events {{ worker_connections 4096; }}
http {{ access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;
  open_file_cache max=1000 inactive=20s; open_file_cache_valid 1s;
  server {{ listen 127.0.0.1:{port}{" " + nginx_listen if nginx_listen else ""}; root {root}; }} }}
""")
        cmd = ["/usr/sbin/nginx", "-c", conf, "-p", tmp]
    else:
        cmd = [spec, "--workers", "2", "--listen", f"127.0.0.1:{port}", "--handler", f"http=static:{root}"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_port(port)
    return p


def stop(p):
    stop_process_tree(p, timeout=15)


WRK_SUMMARY = str(Path(__file__).resolve().parent / "wrk_summary.lua")
# From this size on, a case's rate is counted in bytes (below).
BYTES_COUNTED = 1 << 20

WrkRun = namedtuple("WrkRun", "requests bytes seconds err")


def wrk(port, path, conns, secs, close):
    """One wrk run: a WrkRun of the completed responses, every byte read (partial responses
    included), the run's measured duration and wrk's error line (None without errors)."""
    # --timeout 30s: with 64 clients on a 20 MB file a response takes seconds, and wrk's default
    # (2 s) would count those as errors.
    cmd = ["wrk", "-t2", f"-c{conns}", f"-d{secs}s", "--timeout", "30s", "-s", WRK_SUMMARY] + (["-H", "Connection: close"] if close else [])
    out = subprocess.run(cmd + [f"http://127.0.0.1:{port}/{path}"], capture_output=True, text=True,
                         timeout=secs + 30).stdout
    m = re.search(r"wrk-summary bytes=(\d+) requests=(\d+) duration_us=(\d+)", out)
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    err = errs.group(0) if errs else (None if m else "no wrk summary: " + out[-200:])
    if not m:
        return WrkRun(0, 0, float(secs), err)
    return WrkRun(int(m.group(2)), int(m.group(1)), int(m.group(3)) / 1e6, err)


SINK_SOURCE = str(Path(__file__).resolve().parent / "sink.c")


def build_sink(tmp):
    """Compiles sink.c into `tmp` with the system's C compiler; returns the binary's path."""
    cc = shutil.which("cc") or shutil.which("clang") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("no C compiler (cc, clang or gcc) to build bench/herdbench/sink.c")
    out = os.path.join(tmp, "sink")
    subprocess.run([cc, "-O2", "-Wall", "-Werror", "-o", out, SINK_SOURCE], check=True)
    return out


def sink(binary, port, path, conns, secs, close=False):
    """One run of the sink client (keep-alive, or `Connection: close` and a new connection per
    request): a WrkRun like wrk()'s."""
    p = subprocess.run([binary, str(port), path, str(conns), str(secs)] + (["close"] if close else []),
                       capture_output=True, text=True, timeout=secs + 30)
    m = re.search(r"sink-summary bytes=(\d+) requests=(\d+) duration_us=(\d+) errors=(\d+)", p.stdout)
    if p.returncode != 0 or not m:
        return WrkRun(0, 0, float(secs), f"sink failed ({p.returncode}): {p.stderr.strip()[-200:]}")
    err = f"sink errors: {m.group(4)} ({p.stderr.strip()[:200]})" if int(m.group(4)) else None
    return WrkRun(int(m.group(2)), int(m.group(1)), int(m.group(3)) / 1e6, err)


def load(client, sink_binary, port, path, conns, secs, close):
    """A run of the case's client: wrk, or sink."""
    if client == "sink":
        return sink(sink_binary, port, path, conns, secs, close)
    return wrk(port, path, conns, secs, close)


def case_key(name, conns, close, client):
    return f"{name} {'close' if close else 'keep-alive'} c{conns}" + (" sink" if client == "sink" else "")


def rate(run, size):
    """Responses per second of `run` on a file of `size` bytes. A small file's are counted as
    completed. From BYTES_COUNTED on they are the bytes read divided by the file's size: 64
    clients downloading 20 MB each in about a second all start together and, served fairly,
    finish together, so the responses completed in a 3-5 s run step by 64 with the phase of the
    run's end (one run: 82 completed per second, 86 by the bytes; the next 91 and 92; the
    next 82 and 81), where the bytes measure what was served. The head's bytes are counted
    too: under 0.03 % of a 1 MB response."""
    if size >= BYTES_COUNTED:
        return run.bytes / size / run.seconds
    return run.requests / run.seconds


def make_root():
    """A temporary document root with FILES in it; returns (tmp, root)."""
    tmp = tempfile.mkdtemp(prefix="herdd-static-bench-")
    os.chmod(tmp, 0o755)  # nginx's workers (nobody) must read it
    root = os.path.join(tmp, "www")
    os.mkdir(root)
    os.chmod(root, 0o755)
    for name, size in FILES.items():
        with open(os.path.join(root, name), "wb") as f:
            f.write(os.urandom(size))
        os.chmod(os.path.join(root, name), 0o644)
    return tmp, root


def section(servers, secs=3, rounds=3, log=print, cases=CASES, slow=True):
    """servers: [(label, kind, binary)]; returns {case: {label: [(req/s, cpu µs/req)]}}, and under
    "slow readers" the slow-reader run's figures per server (slowreaders.py)."""
    if rounds > 1 and rounds % 2:
        # The order alternates per round, and the server that runs second in a pair was measured
        # slower in some cases (1 MB close, 2026-12-03: the first of the pair won 9 of 9 rounds,
        # whichever it was): with an odd count one order would run once more than the other.
        rounds += 1
        log(f"static: {rounds} rounds, so that each server runs first in half of them")
    tmp, root = make_root()
    try:
        return _rounds(servers, tmp, root, secs, rounds, log, cases, slow)
    finally:
        # The root holds a 20 MB file and the servers' logs: not left behind in /tmp.
        shutil.rmtree(tmp, ignore_errors=True)


def _rounds(servers, tmp, root, secs, rounds, log, cases, slow):
    results = {}
    sink_binary = build_sink(tmp) if any(c[3] == "sink" for c in cases) else None
    for r in range(rounds):
        for name, conns, close, client in cases:
            key = case_key(name, conns, close, client)
            for label, kind, binary in (servers if r % 2 == 0 else servers[::-1]):  # alternate
                port = free_port()
                p = start(kind, binary, root, port, tmp)
                try:
                    load(client, sink_binary, port, name, conns, 1, close)  # warm-up
                    cpu0 = group_cpu(p.pid)
                    run = load(client, sink_binary, port, name, conns, secs, close)
                    cpu = group_cpu(p.pid) - cpu0
                finally:
                    stop(p)
                rps = rate(run, FILES[name])
                served = rps * run.seconds  # responses (or their worth in bytes) served in the run
                results.setdefault(key, {}).setdefault(label, []).append(
                    (rps, cpu / served * 1e6 if served else None))
                log(f"round {r + 1} {key:31} {label:13} {rps:9.0f} req/s "
                    f"{(cpu / served * 1e6) if served else 0:7.1f} µs CPU/req"
                    f"{' (by bytes; ' + str(run.requests) + ' completed)' if FILES[name] >= BYTES_COUNTED else ''}"
                    f"{' ' + run.err if run.err else ''}")
    if slow:
        results["slow readers"] = slowreaders.section(servers, root, tmp, start, stop, free_port, log=log)
    return results


def median(xs):
    """The median (of an even count, the mean of the middle two), ignoring None; None if empty."""
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def round_ratios(per, label, ref, i):
    """label's figure i divided by ref's, round by round (rounds where either is missing or 0
    left out)."""
    return [a[i] / b[i] for a, b in zip(per[label], per[ref]) if a[i] and b[i]]


def paired(per, label, ref, i):
    """Median over the rounds of label's figure i divided by ref's in the same round. The two
    ran back to back (the order alternating), so a swing of the host's speed between rounds
    (this bench's VMs swung 2x within minutes) cancels out of each ratio; the ratio of the
    medians does not cancel it."""
    return median(round_ratios(per, label, ref, i))


class PairedSummary(NamedTuple):
    """Per-round ratios of two servers' figure: their median, the 95 % bootstrap interval of that
    median, the rounds where the first was ahead (ratio above 1) and the rounds counted."""
    median: float
    low: float
    high: float
    ahead: int
    rounds: int

    def __str__(self):
        return f"{self.median:.2f} ({self.low:.2f}-{self.high:.2f}), {self.ahead}/{self.rounds} ahead"


def paired_summary(ratios, resamples=2000, seed=0):
    """PairedSummary of per-round ratios, or None without any. The interval comes from resampling
    the rounds with replacement (a seeded generator: the same rounds give the same interval), so
    a median that one or two rounds carry shows a wide one: 0.99 (0.96-1.10) is parity, not a
    lead. With one round the interval is that round."""
    ratios = [r for r in ratios if r is not None]
    if not ratios:
        return None
    rng = random.Random(seed)
    meds = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(resamples))
    return PairedSummary(statistics.median(ratios), meds[int(0.025 * resamples)],
                         meds[min(resamples - 1, int(0.975 * resamples))], sum(r > 1 for r in ratios), len(ratios))


# nginx with TCP_DEFER_ACCEPT, as herdd's default `defer-accept = on` (bench/run --nginx-deferred).
NGINX_DEFERRED = ("nginx-deferred", "nginx", "deferred")


def tables(results, labels):
    """table() against nginx; with nginx-deferred in the run, a second one against it."""
    out = table(results, labels)
    if NGINX_DEFERRED[0] in labels:
        out += "\n\nAgainst nginx with `deferred`:\n\n" + table(
            {k: v for k, v in results.items() if k != "slow readers"},
            [NGINX_DEFERRED[0]] + [l for l in labels if l not in ("nginx", NGINX_DEFERRED[0])], ref=NGINX_DEFERRED[0])
    return out


def table(results, labels, ref="nginx"):
    """Markdown tables of a section: per case the medians, their ratio, and the paired ratio of
    req/s (with its interval and the rounds ahead, paired_summary) and of CPU per request."""
    others = [l for l in labels if l != ref]
    lines = ["| case | " + " | ".join(f"{l} req/s | µs CPU/req" for l in labels) + " | "
             + " | ".join(f"{l}/{ref}" for l in others) + " | "
             + " | ".join(f"{l}/{ref} paired req/s (95 % interval), rounds ahead | CPU" for l in others) + " |"]
    lines.append("|" + "---|" * (1 + 2 * len(labels) + 3 * len(others)))
    for key, per in results.items():
        if key == "slow readers":
            continue
        cells = []
        for l in labels:
            cells += [f"{median([a for a, _ in per[l]]):.0f}", f"{median([b for _, b in per[l]]):.1f}"]
        ratios = [f"{median([a for a, _ in per[l]]) / median([a for a, _ in per[ref]]):.2f}" for l in others]
        pairs = [f"{paired_summary(round_ratios(per, l, ref, 0))} | {paired(per, l, ref, 1):.2f}" for l in others]
        lines.append(f"| {key} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " | " + " | ".join(pairs) + " |")
    out = "\n".join(lines)
    if "slow readers" in results:
        out += "\n\n" + slowreaders.table(results["slow readers"])
    return out


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description="herdd vs nginx, static files")
    ap.add_argument("herdd")
    ap.add_argument("herdd_before", nargs="?")
    ap.add_argument("--secs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cases", help="comma list of files (1k.bin,16k.bin,1m.bin,20m.bin): only their cases")
    ap.add_argument("--no-slow", action="store_true", help="skip the slow-reader run")
    ap.add_argument("--nginx-deferred", action="store_true",
                    help="a third server: nginx with `listen ... deferred` (TCP_DEFER_ACCEPT, herdd's default)")
    a = ap.parse_args()
    servers = [("nginx", "nginx", None), ("herdd", "herdd", os.path.abspath(a.herdd))]
    if a.herdd_before:
        servers.append(("herdd-before", "herdd", os.path.abspath(a.herdd_before)))
    if a.nginx_deferred:
        servers.append(NGINX_DEFERRED)
    cases = [c for c in CASES if not a.cases or c[0] in a.cases.split(",")]
    print(f"loadavg at start: {open('/proc/loadavg').read().strip()}")
    res = section(servers, secs=a.secs, rounds=a.rounds, cases=cases, slow=not a.no_slow)
    print(f"loadavg at end: {open('/proc/loadavg').read().strip()}")
    print(tables(res, [s[0] for s in servers]))
