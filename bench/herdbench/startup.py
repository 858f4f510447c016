"""Start -> READY=1: herdd with 4 workers and 3 listeners (2 hello + metrics) started
cfg.starts times, the time from the start to READY=1 on a notify socket of our own; median."""

import statistics


def startup(peers, cfg):
    times = []
    for i in range(cfg.starts):
        srv = peers.herdd_server(4, 2, "exclusive", name=f"herdd-start{i}")
        try:
            srv.wait_ready()
            times.append(srv.ready_s * 1000)
        finally:
            srv.stop()
    return {"ms": times, "median_ms": statistics.median(times), "workers": 4, "listeners": 3}


def report(res, cfg):
    s = res["startup"]
    print(f"   herdd start -> READY=1 ({s['workers']} workers, {s['listeners']} listeners): median "
          f"{s['median_ms']:.1f} ms (goal < 100 ms: {'OK' if s['median_ms'] < 100 else 'OVER'}); "
          f"runs {' '.join(f'{x:.1f}' for x in s['ms'])}")
