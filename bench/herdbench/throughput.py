"""Section 2, throughput and latency: wrk -t2 --latency, keep-alive and `Connection: close`, for
each worker count, herdd against nginx and gunicorn all up at once, the rounds interleaved (the
order of the peers rotates from round to round); medians of the rounds."""

import statistics

from herdtest import proc_mem_kib as mem_kib

from .common import f, log
from .load import delta, run_wrk, snapshot, wrk_cmd


def throughput(peers, cfg):
    """Per worker count: herdd, nginx, gunicorn all up; rounds interleave peers and modes."""
    out = {}
    for nw in cfg.worker_counts:
        log(f"[throughput] {nw} workers")
        srvs = {}
        try:
            srvs["herdd"] = peers.herdd_server(nw, 1, "exclusive", name="herdd", balance=cfg.balance).wait_ready()
            srvs["nginx"] = peers.nginx_server(nw, 1).wait_ready()
            srvs["gunicorn"] = peers.gunicorn_server(nw, 1).wait_ready()
            for s in srvs.values():  # warm-up
                run_wrk([wrk_cmd(s.ports[0], 2, cfg.conns, 1, False)], 1, "warm-up")
            runs = {m: {p: [] for p in srvs} for m in cfg.modes}
            dist = {m: [] for m in cfg.modes}
            names = list(srvs)
            for r in range(cfg.rounds):
                # The order of the peers rotates from round to round, so no peer always runs
                # right after the same other one (a close-mode run leaves tens of thousands of
                # TIME_WAIT sockets and warm or cold caches behind for the next).
                order = names[r % len(names):] + names[:r % len(names)]
                for mode in cfg.modes:
                    for pname in order:
                        s = srvs[pname]
                        log(f"  round {r + 1}/{cfg.rounds} {mode:9s} {pname}")
                        a = snapshot(s)
                        w = run_wrk([wrk_cmd(s.ports[0], 2, cfg.conns, cfg.secs, mode == "close")],
                                    cfg.secs, f"throughput {nw}w {mode} {pname}")[0]
                        b = snapshot(s)
                        d = delta(a, b, w["requests"])
                        w["vcsw_per_req"] = d["vcsw_per_req"]
                        w["nvcsw_per_req"] = d["nvcsw_per_req"]
                        w["per_worker_cpu_ticks"] = d["per_worker_cpu_ticks"]
                        w["cpu_us_per_req"] = d["worker_cpu_us_per_req"]
                        if pname == "herdd":
                            w["per_worker_requests"] = d.get("per_worker_requests")
                            w["per_worker_accepted"] = d.get("per_worker_accepted")
                            dist[mode].append(d.get("per_worker_requests") or {})
                        runs[mode][pname].append(w)
            summary = {}
            for mode in cfg.modes:
                summary[mode] = {}
                for pname, lst in runs[mode].items():
                    def med(key):
                        xs = [x[key] for x in lst if x.get(key) is not None]
                        return statistics.median(xs) if xs else None
                    summary[mode][pname] = {"rps": med("rps"), "p50_ms": med("p50_ms"),
                                            "p99_ms": med("p99_ms"), "errors": sum(x["errors"] for x in lst),
                                            "non2xx": sum(x["non2xx"] for x in lst),
                                            "vcsw_per_req": med("vcsw_per_req"),
                                            "cpu_us_per_req": med("cpu_us_per_req"),
                                            "per_worker_cpu_ticks": [sum(t) for t in zip(*[x["per_worker_cpu_ticks"] for x in lst])],
                                            "rps_rounds": [x["rps"] for x in lst]}
                h = summary[mode]["herdd"]
                for other in ("nginx", "gunicorn"):
                    o = summary[mode][other]
                    summary[mode][f"herdd/{other}"] = {
                        k: (h[k] / o[k] if h[k] and o[k] else None) for k in ("rps", "p50_ms", "p99_ms")}
            # per-worker requests summed over rounds (herdd)
            agg = {}
            for mode in cfg.modes:
                tot = {}
                for d in dist[mode]:
                    for k, v in d.items():
                        tot[k] = tot.get(k, 0) + v
                agg[mode] = tot
            mem = {p: {"master": mem_kib(s.pid), "workers": [mem_kib(w) for w in sorted(s.workers())]}
                   for p, s in srvs.items()}
            out[str(nw)] = {"summary": summary, "runs": runs, "herdd_per_worker_requests": agg,
                            "memory": mem}
        finally:
            for s in srvs.values():
                s.stop()
    return out


def report(res, cfg):
    print(f"\n## 2. Throughput and latency: wrk -t2 -c{cfg.conns} -d{cfg.secs}s --latency, "
          f"median of {cfg.rounds} interleaved round(s)")
    hdr = f"{'workers':7} {'mode':9} {'peer':9} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'vcsw/req':>8} {'cpu us/req':>10}  rounds req/s"
    print(hdr)
    print("-" * len(hdr))
    for nw, t in res["throughput"].items():
        for mode, s in t["summary"].items():
            for peer in ("herdd", "nginx", "gunicorn"):
                x = s[peer]
                print(f"{nw:7} {mode:9} {peer:9} {f(x['rps'], '.0f'):>9} {f(x['p50_ms'], '.3f'):>8} "
                      f"{f(x['p99_ms'], '.3f'):>8} {x['errors'] + x['non2xx']:>7} {f(x['vcsw_per_req'], '.3f'):>8} {f(x['cpu_us_per_req'], '.1f'):>10}  "
                      f"{' '.join(f(v, '.0f') for v in x['rps_rounds'])}")
    print("\n   ratios (herdd / peer; req/s > 1 and latency < 1 favour herdd)")
    hdr = f"{'workers':7} {'mode':9} {'vs':9} {'req/s':>7} {'p50':>7} {'p99':>7}"
    print(hdr)
    print("   " + "-" * len(hdr))
    for nw, t in res["throughput"].items():
        for mode, s in t["summary"].items():
            for other in ("nginx", "gunicorn"):
                r = s[f"herdd/{other}"]
                print(f"{nw:7} {mode:9} {other:9} {f(r['rps']):>7} {f(r['p50_ms']):>7} {f(r['p99_ms']):>7}")
