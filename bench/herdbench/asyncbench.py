"""bench/run section "async": async handlers (issue 23).

`/async-sleep/20` (a 20 ms `Task.sleep`, standing in for a database or HTTP call), 64
keep-alive connections (wrk -t2 --latency), herdd --workers 2 with the debug handler, against
Hummingbird 2's own server (bench/hummingbird-peer, built here in release mode from the local
package mirror; skipped if the build fails), rounds interleaved, median of the rounds.

The bound is connections / service time = 64 / 20 ms = 3,200 req/s (each connection has one
request in flight). Targets: herdd >= 0.85 of the bound, p99 <= 40 ms, >= Hummingbird's req/s.
Also reported: the servers' CPU time per request (all their processes and threads, /proc).
With --herdd-before, a second herdd binary (`herdd-before`) is measured in the same rounds and
the ratios herdd/herdd-before are printed (an A/B of a change to the async path).
"""

import signal

from herdtest import free_port

from . import BENCH_DIR
from .common import f, log, median_of as med, msum, swift_release_build
from .load import run_wrk, tree_cpu_s
from .servers import Server

PATH = "/async-sleep/20"
SERVICE_S = 0.020
PEER_DIR = BENCH_DIR / "hummingbird-peer"


def build_hummingbird():
    """Release build of bench/hummingbird-peer (its own .build); the binary, or None (then
    herdd is measured alone)."""
    bindir = swift_release_build(PEER_DIR, "async")
    binary = bindir / "HummingbirdPeer" if bindir else None
    return binary if binary and binary.is_file() else None



def section(peers, cfg):
    out = {"path": PATH, "conns": cfg.async_conns, "workers": 2, "bound_rps": cfg.async_conns / SERVICE_S, "rows": {}}
    srvs = {"herdd": peers.start_herdd("herdd", 2, [("web", "debug")], dirname="herdd-async").wait_ready()}
    try:
        if cfg.herdd_before:
            srvs["herdd-before"] = peers.start_herdd("herdd-before", 2, [("web", "debug")], dirname="herdd-before-async",
                                                     binary=cfg.herdd_before).wait_ready()
        hb = build_hummingbird() if not cfg.no_hummingbird else None
        if hb:
            d = peers.workdir("hummingbird")
            port = free_port()
            srvs["hummingbird"] = Server.process("hummingbird", [str(hb), str(port)], 0, [port], d, signal.SIGTERM).wait_ready()
        names = list(srvs)
        for s in srvs.values():  # warm-up
            run_wrk([["wrk", "-t2", f"-c{cfg.async_conns}", "-d1s", f"http://127.0.0.1:{s.ports[0]}{PATH}"]], 1, "warm-up")
        runs = {}
        for r in range(cfg.async_rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for pname in order:
                s = srvs[pname]
                cmd = ["wrk", "-t2", f"-c{cfg.async_conns}", f"-d{cfg.async_secs}s", "--latency",
                       f"http://127.0.0.1:{s.ports[0]}{PATH}"]
                log(f"  [async] round {r + 1}/{cfg.async_rounds} {pname}")
                cpu0 = tree_cpu_s(s)
                w = run_wrk([cmd], cfg.async_secs, f"async {pname}")[0]
                w["cpu_us_per_req"] = (tree_cpu_s(s) - cpu0) * 1e6 / max(w["requests"], 1)
                runs.setdefault(pname, []).append(w)
        m = srvs["herdd"].metrics()
        if m:
            out["herdd_metrics"] = {"async_started": msum(m, "herdd_async_requests_total"),
                                    "async_cancelled": msum(m, "herdd_async_cancelled_total")}
    finally:
        for s in srvs.values():
            s.stop()

    for pname, lst in runs.items():
        row = {k: med(lst, k) for k in ("rps", "p50_ms", "p99_ms", "cpu_us_per_req")}
        row["errors"] = sum(x["errors"] + x["non2xx"] for x in lst)
        row["rounds_rps"] = [x["rps"] for x in lst]
        row["of_bound"] = row["rps"] / out["bound_rps"] if row["rps"] else None
        out["rows"][pname] = row
    h, hb = out["rows"].get("herdd"), out["rows"].get("hummingbird")
    for peer in ("hummingbird", "herdd-before"):
        p = out["rows"].get(peer)
        if h and p and h["rps"] and p["rps"]:
            out[f"herdd/{peer}"] = {k: (h[k] / p[k] if h[k] and p[k] else None) for k in ("rps", "p99_ms", "cpu_us_per_req")}
    return out


def report(res, cfg):
    a = res["async"]
    print(f"\n## 6. Async handlers: GET {a['path']}, wrk -t2 -c{a['conns']} -d{cfg.async_secs}s keep-alive, "
          f"herdd --workers {a['workers']}, median of {cfg.async_rounds} interleaved round(s); "
          f"bound {a['conns']} / 20 ms = {a['bound_rps']:.0f} req/s (targets: >= 0.85 of it, p99 <= 40 ms)")
    hdr = f"{'server':12} {'req/s':>8} {'of bound':>8} {'p50 ms':>7} {'p99 ms':>7} {'CPU µs/req':>10} {'errors':>6}"
    print(hdr)
    print("-" * len(hdr))
    for pname, r in a["rows"].items():
        print(f"{pname:12} {f(r['rps'], '.0f'):>8} {f(r['of_bound']):>8} {f(r['p50_ms'], '.1f'):>7} "
              f"{f(r['p99_ms'], '.1f'):>7} {f(r['cpu_us_per_req'], '.0f'):>10} {r['errors']:>6}")
    for peer in ("hummingbird", "herdd-before"):
        if a.get(f"herdd/{peer}"):
            q = a[f"herdd/{peer}"]
            print(f"   herdd/{peer}: req/s {f(q['rps'])}, p99 {f(q['p99_ms'])}, CPU per request {f(q['cpu_us_per_req'])}")
    if a.get("herdd_metrics"):
        print(f"   herdd async counters over the section: {a['herdd_metrics']}")
