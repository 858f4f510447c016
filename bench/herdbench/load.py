"""Load and what it costs: the sequential connection-per-request client, wrk (command lines,
concurrent runs, output parsing), and snapshots of the servers' context switches, CPU time and
/metrics with their deltas over one measurement. Every load is bounded in count and time."""

import os
import re
import socket
import subprocess
import time

from herdtest import proc_cpu_ticks, proc_ctx_switches

from .common import STARTED, anomaly, mby, msum, record

CLK_TCK = os.sysconf("SC_CLK_TCK")
REQ_CLOSE = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def seq_client(ports, n, max_seconds=120.0):
    """n sequential connections (fewer if max_seconds pass first), one GET each (Connection:
    close), alternating ports; reads each response to EOF. Returns (ok, errors, seconds)."""
    ok = err = 0
    t0 = time.perf_counter()
    for i in range(n):
        if time.perf_counter() - t0 > max_seconds:
            break
        try:
            with socket.create_connection(("127.0.0.1", ports[i % len(ports)]), timeout=5) as s:
                s.sendall(REQ_CLOSE)
                buf = b""
                while True:
                    b = s.recv(4096)
                    if not b:
                        break
                    buf += b
            if buf.startswith(b"HTTP/1.1 200") or buf.startswith(b"HTTP/1.0 200"):
                ok += 1
            else:
                err += 1
        except OSError:
            err += 1
    return ok, err, time.perf_counter() - t0


# ----------------------------------------------------------------------------- wrk

def to_ms(v):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", v)
    if not m:
        return None
    x = float(m.group(1))
    return x * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}[m.group(2)]


def parse_wrk(out):
    r = {"requests": 0, "rps": 0.0, "p50_ms": None, "p99_ms": None, "errors": 0, "non2xx": 0}
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if m:
        r["requests"] = int(m.group(1))
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        r["rps"] = float(m.group(1))
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", out, re.M)
        if m:
            r[key] = to_ms(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["errors"] = sum(int(x) for x in m.groups())
        r["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups())))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    # A Lua script's done() may print "served COUNT SUM" (bench section "blocking").
    m = re.search(r"^served (\d+) (\d+)$", out, re.M)
    if m:
        r["served"] = (int(m.group(1)), int(m.group(2)))
    return r


def wrk_cmd(port, threads, conns, secs, close):
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{secs}s", "--latency"]
    if close:
        cmd += ["-H", "Connection: close"]
    return cmd + [f"http://127.0.0.1:{port}/"]


def run_wrk(cmds, secs, label):
    """Runs the wrk command lines (each -d`secs`) concurrently, each killed by PID if it is
    not done 20 s after `secs`; returns their parsed results."""
    procs = []
    for c in cmds:
        record("load", c, label=label)
        procs.append(STARTED.add(subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
    outs = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=secs + 20)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
        STARTED.discard(p)
        outs.append(parse_wrk(out) | {"raw": out if p.returncode else None})
    return outs


# ----------------------------------------------------------------------------- measurements

def tree_cpu_s(srv):
    """CPU seconds used so far by a server's master and workers (all their threads)."""
    return sum(proc_cpu_ticks(p) for p in [srv.pid] + srv.workers()) / CLK_TCK


def snapshot(srv):
    w = srv.workers()
    v, n = proc_ctx_switches(w)
    mv, mn = proc_ctx_switches([srv.pid])
    per = {pid: proc_ctx_switches([pid])[0] for pid in w}
    cpu = {pid: proc_cpu_ticks(pid) for pid in w}
    return {"workers": w, "v": v, "n": n, "mv": mv, "mn": mn, "per": per, "cpu": cpu,
            "metrics": srv.metrics()}


def delta(a, b, requests):
    d = {"requests": requests,
         "vcsw": b["v"] - a["v"], "nvcsw": b["n"] - a["n"],
         "master_vcsw": b["mv"] - a["mv"], "master_nvcsw": b["mn"] - a["mn"],
         "workers_changed": sorted(a["workers"]) != sorted(b["workers"]),
         "per_worker_vcsw": [b["per"].get(p, 0) - a["per"].get(p, 0) for p in sorted(b["per"])],
         "per_worker_cpu_ticks": [b["cpu"].get(p, 0) - a["cpu"].get(p, 0) for p in sorted(b["cpu"])]}
    if d["workers_changed"]:
        anomaly(what="worker set changed during a measurement", before=sorted(a["workers"]), after=sorted(b["workers"]))
    r = max(requests, 1)
    d["vcsw_per_req"] = d["vcsw"] / r
    d["nvcsw_per_req"] = d["nvcsw"] / r
    d["master_vcsw_per_req"] = d["master_vcsw"] / r
    d["worker_cpu_us_per_req"] = sum(d["per_worker_cpu_ticks"]) * 1e6 / CLK_TCK / r
    if a["metrics"] is not None and b["metrics"] is not None:
        ma, mb = a["metrics"], b["metrics"]

        def dd(name):
            return msum(mb, name) - msum(ma, name)
        acc = dd("herdd_connections_accepted_total")
        d["accepted"] = acc
        d["wakeups"] = dd("herdd_epoll_wakeups_total")
        d["empty_wakeups"] = dd("herdd_accept_empty_wakeups_total")
        d["drain_eagain"] = dd("herdd_accept_drain_eagain_total")
        d["wakeups_per_accepted"] = d["wakeups"] / acc if acc else None
        d["empty_per_accepted"] = d["empty_wakeups"] / acc if acc else None
        for key, name in (("per_worker_requests", "herdd_worker_requests"),
                          ("per_worker_accepted", "herdd_worker_accepted")):
            wa, wb = mby(ma, name, "worker"), mby(mb, name, "worker")
            d[key] = {k: wb[k] - wa.get(k, 0) for k in sorted(wb, key=lambda x: int(x) if x.isdigit() else x)}
    return d


def distribution(vec):
    vals = list(vec.values()) if isinstance(vec, dict) else list(vec)
    tot = sum(vals)
    if not vals or tot <= 0:
        return {"values": vals}
    mx, mn = max(vals), min(vals)
    return {"values": vals, "max_min": (mx / mn) if mn > 0 else None, "top_share": mx / tot,
            "even_share": 1 / len(vals)}
