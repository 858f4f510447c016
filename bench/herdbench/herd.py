"""Section 1, the herd meter: 4 workers x 2 listeners, connection-per-request load (a sequential
Python client alternating listeners, then two concurrent wrk with `Connection: close`, one per
listener); context switches of the workers and the master per request, and for herdd wakeups and
empty wakeups per accepted connection from /metrics."""

import time

from herdtest import proc_mem_kib as mem_kib

from .common import f, log, record
from .load import delta, run_wrk, seq_client, snapshot, wrk_cmd


def herd_meter(peers, cfg):
    """4 workers x 2 listeners; sequential connections then 2 concurrent wrk Connection: close."""
    out = {}
    order = [("herdd-exclusive", lambda: peers.herdd_server(4, 2, "exclusive")),
             ("herdd-shared", lambda: peers.herdd_server(4, 2, "shared"))]
    if peers.herdd_has_balance:  # --balance spread (rotate in the exclusive wait queue)
        order.append(("herdd-spread", lambda: peers.herdd_server(4, 2, "exclusive", name="herdd-spread",
                                                                 balance="spread")))
    order += [("gunicorn", lambda: peers.gunicorn_server(4, 2)),
              ("nginx", lambda: peers.nginx_server(4, 2))]
    for name, start in order:
        log(f"[herd] {name}")
        srv = start().wait_ready()
        try:
            time.sleep(0.3)  # let workers settle into epoll_wait/select
            seq_client(srv.ports, 50)  # warm-up
            time.sleep(0.2)
            res = {"ready_s": srv.ready_s}
            a = snapshot(srv)
            record("load", f"python seq_client ports={srv.ports} n={cfg.seq_conns}", label=f"herd seq {name}")
            ok, err, secs = seq_client(srv.ports, cfg.seq_conns)
            time.sleep(0.2)
            b = snapshot(srv)
            res["seq"] = delta(a, b, ok) | {"errors": err, "seconds": secs, "conn_per_s": ok / secs}
            a = snapshot(srv)
            half = max(1, cfg.herd_conns // 2)
            cmds = [wrk_cmd(p, 1, half, cfg.herd_secs, True) for p in srv.ports]
            w = run_wrk(cmds, cfg.herd_secs, f"herd wrk close {name}")
            time.sleep(0.2)
            b = snapshot(srv)
            reqs = sum(x["requests"] for x in w)
            res["wrk_close"] = delta(a, b, reqs) | {
                "rps": sum(x["rps"] for x in w), "errors": sum(x["errors"] for x in w),
                "non2xx": sum(x["non2xx"] for x in w)}
            res["memory"] = {"master": mem_kib(srv.pid),
                             "workers": [mem_kib(p) for p in sorted(srv.workers())]}
            out[name] = res
        finally:
            srv.stop()
    return out


def report(res, cfg):
    h = res["herd"]
    print(f"\n## 1. Herd meter: 4 workers x 2 listeners, connection per request")
    print(f"   seq = {cfg.seq_conns} sequential connect/GET/close alternating listeners (Python client);"
          f" wrk = 2 x wrk -t1 -c{max(1, cfg.herd_conns // 2)} -d{cfg.herd_secs}s -H 'Connection: close', one per listener")
    hdr = f"{'load':5} {'peer':16} {'reqs':>7} {'req/s':>8} {'vcsw/req':>9} {'nvcsw/req':>9} {'master vcsw/req':>15} {'wakeups/acc':>11} {'empty/acc':>9}"
    print(hdr)
    print("-" * len(hdr))
    for load in ("seq", "wrk_close"):
        for peer, r in h.items():
            d = r[load]
            rate = d.get("conn_per_s") if load == "seq" else d.get("rps")
            print(f"{'seq' if load == 'seq' else 'wrk':5} {peer:16} {d['requests']:>7} {f(rate, '.0f'):>8} "
                  f"{f(d['vcsw_per_req'], '.3f'):>9} {f(d['nvcsw_per_req'], '.3f'):>9} "
                  f"{f(d['master_vcsw_per_req'], '.3f'):>15} {f(d.get('wakeups_per_accepted'), '.3f'):>11} "
                  f"{f(d.get('empty_per_accepted'), '.3f'):>9}")
    ex, sh_ = h.get("herdd-exclusive"), h.get("herdd-shared")
    if ex and sh_:
        for load in ("seq", "wrk_close"):
            a, b = ex[load]["vcsw_per_req"], sh_[load]["vcsw_per_req"]
            print(f"   {load}: herdd shared/exclusive vcsw per request = {f(b / a if a else None)}x;"
                  f" vs nginx {f(a / h['nginx'][load]['vcsw_per_req'] if h.get('nginx') and h['nginx'][load]['vcsw_per_req'] else None)}x,"
                  f" vs gunicorn {f(a / h['gunicorn'][load]['vcsw_per_req'] if h.get('gunicorn') and h['gunicorn'][load]['vcsw_per_req'] else None)}x (herdd exclusive / peer)")
