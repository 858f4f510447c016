"""bench/run section "app" (only with --only app): your own server against Hummingbird 2 (issue 22).

The same JSON API, notes-api's router over its NoteStore (GRDB, WAL, the short-back-off busy
handler), on herdd (`herd-notes`, 2 workers) and on Hummingbird 2.28.1's own server with its
defaults (`hb-notes`), both from bench/app, built here in release mode from the package mirror:

  GET /notes/1   a GRDB read,                 16 connections
  POST /notes    a SQLite write (post.lua),   16 connections
  GET /json20    a 20-item array encoded,     50 connections (CPU only)

wrk -t2 --latency, keep-alive; per round each route on each server, the servers' order
alternating from round to round; medians of the rounds. Printed: req/s, p99 and CPU per request
(all the server's processes and threads, /proc) of each, and herdd/Hummingbird ratios (targets:
req/s >= 1.0 and p99 <= Hummingbird's on each route). Each server has a database of its own, on
tmpfs (/dev/shm) when there is one: WAL with synchronous=FULL fsyncs each commit, and on a disk
shared with other work those fsyncs put the disk's noise into the write's p99 (39-826 ms for
the same server within one run); on tmpfs an fsync costs nothing and the write measures the
servers and SQLite's locking.
"""

import http.client
import os
import shutil
import signal
import tempfile

from herdtest import free_port

from . import BENCH_DIR
from .common import f, http_ok, log, median_of as med, swift_release_build
from .load import run_wrk, tree_cpu_s
from .servers import Server

APP_DIR = BENCH_DIR / "app"
ROUTES = [("GET /notes/1", "/notes/1", 16, None),
          ("POST /notes", "/notes", 16, APP_DIR / "post.lua"),
          ("GET /json20", "/json20", 50, None)]


def answering(srv, port, timeout=30.0):
    """Waits (bounded) until `port` answers GET /json20 with 200, then seeds note 1."""
    srv.tree.wait_until(lambda: http_ok(port, "/json20"), timeout, "GET /json20 answering")
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("POST", "/notes", body=b'{"title":"first"}', headers={"Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    if r.status != 201:
        raise RuntimeError(f"{srv.name}: seeding POST /notes answered {r.status}")
    return srv



def section(peers, cfg):
    out = {"workers": 2, "rows": {}}
    bindir = swift_release_build(APP_DIR, "app")
    if bindir is None:
        out["skipped"] = "bench/app did not build"
        return out
    srvs = {}
    runs = {}
    dbdir = tempfile.mkdtemp(prefix="herdd-app-db-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    out["database_dir"] = dbdir
    try:
        d = peers.workdir("herd-notes")
        port = free_port()
        srvs["herdd"] = Server.herdd(str(bindir / "herd-notes"),
                                     ["--listen", f"127.0.0.1:{port}", "--workers", "2",
                                      "--handler", f"http=herd-notes:{dbdir}/herd-notes.sqlite", "--log-level", "warning"],
                                     2, [], d, "herd-notes").wait_ready()
        answering(srvs["herdd"], port)
        srvs["herdd"].ports = [port]
        d = peers.workdir("hb-notes")
        port = free_port()
        srvs["hummingbird"] = Server.process("hb-notes", [str(bindir / "hb-notes"), str(port), f"{dbdir}/hb-notes.sqlite"],
                                             0, [], d, signal.SIGTERM).wait_ready()
        answering(srvs["hummingbird"], port)
        srvs["hummingbird"].ports = [port]
        names = list(srvs)
        for r in range(cfg.app_rounds):
            order = names if r % 2 == 0 else names[::-1]
            for label, path, conns, script in ROUTES:
                for name in order:
                    s = srvs[name]
                    cmd = (["wrk", "-t2", f"-c{conns}", f"-d{cfg.app_secs}s", "--latency"]
                           + (["-s", str(script)] if script else []) + [f"http://127.0.0.1:{s.ports[0]}{path}"])
                    log(f"  [app] round {r + 1}/{cfg.app_rounds} {label} {name}")
                    cpu0 = tree_cpu_s(s)
                    w = run_wrk([cmd], cfg.app_secs, f"app {label} {name}")[0]
                    w["cpu_us_per_req"] = (tree_cpu_s(s) - cpu0) * 1e6 / max(w["requests"], 1)
                    runs.setdefault(label, {}).setdefault(name, []).append(w)
    finally:
        for s in srvs.values():
            s.stop()
        shutil.rmtree(dbdir, ignore_errors=True)

    for label, path, conns, _ in ROUTES:
        row = {"conns": conns}
        for name, lst in runs.get(label, {}).items():
            row[name] = {k: med(lst, k) for k in ("rps", "p50_ms", "p99_ms", "cpu_us_per_req")}
            row[name]["errors"] = sum(x["errors"] + x["non2xx"] for x in lst)
            row[name]["rounds_rps"] = [x["rps"] for x in lst]
        h, hb = row.get("herdd"), row.get("hummingbird")
        if h and hb:
            row["herdd/hummingbird"] = {k: (h[k] / hb[k] if h[k] and hb[k] else None) for k in ("rps", "p99_ms", "cpu_us_per_req")}
        out["rows"][label] = row
    return out


def report(res, cfg):
    a = res["app"]
    print(f"\n## App: notes-api's routes, herdd (herd-notes, --workers {a['workers']}) vs Hummingbird 2 (hb-notes, its "
          f"defaults), wrk -t2 -d{cfg.app_secs}s keep-alive, median of {cfg.app_rounds} alternating round(s)")
    if a.get("skipped"):
        print(f"   skipped: {a['skipped']}")
        return
    hdr = (f"{'route':14} {'conns':>5} {'herdd req/s':>11} {'HB req/s':>9} {'ratio':>6} {'p99 herdd':>9} {'p99 HB':>7}"
           f" {'p99 ratio':>9} {'CPU µs/req herdd':>16} {'HB':>5} {'errors':>6}")
    print(hdr)
    print("-" * len(hdr))
    for label, row in a["rows"].items():
        h, hb, q = row.get("herdd") or {}, row.get("hummingbird") or {}, row.get("herdd/hummingbird") or {}
        errors = h.get("errors", 0) + hb.get("errors", 0)
        print(f"{label:14} {row['conns']:>5} {f(h.get('rps'), '.0f'):>11} {f(hb.get('rps'), '.0f'):>9} {f(q.get('rps')):>6} "
              f"{f(h.get('p99_ms'), '.1f'):>9} {f(hb.get('p99_ms'), '.1f'):>7} {f(q.get('p99_ms')):>9} "
              f"{f(h.get('cpu_us_per_req'), '.0f'):>16} {f(hb.get('cpu_us_per_req'), '.0f'):>5} {errors:>6}")
    print("   targets (issue 22): req/s ratio >= 1.0 and p99 ratio <= 1.0 on each route")
