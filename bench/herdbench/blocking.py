"""bench/run section "blocking": handlers that block (issue 12).

herdd (`--handler debug`: /sleep/<ms>, /work/<us>) against gunicorn sync (-w N) and gthread
(-w N --threads T) running the same WSGI app, in the same run, interleaved. Two mixes, chosen per
request by a wrk Lua script:

  sleep: 90% /sleep/2, 10% /sleep/50      (mean service 6.8 ms; the handler waits)
  cpu:   90% /work/500, 10% /work/10000   (mean service 1.45 ms of CPU time; the handler burns it)

at c = 8, 16, 64 connections, keep-alive and `Connection: close` (wrk -t1). Reported: req/s as a
fraction of the work-conserving bound (sleep: workers / mean service; cpu: min(workers, CPUs) /
mean service, since CPU time cannot overlap beyond the cores), p50/p99, and herdd's ratios to
gunicorn sync. gthread has workers x threads handler slots, so its sleep-mix bound is higher;
it is shown for reference.

"""

import os
import resource

from .common import f, log, median_of as med, msum
from .load import run_wrk, tree_cpu_s

MIXES = {
    # name: ([(weight, path)], mean service seconds, cpu-bound, seconds per unit of the body's N)
    "sleep": ([(0.9, "/sleep/2"), (0.1, "/sleep/50")], 0.9 * 0.002 + 0.1 * 0.050, False, 1e-3),
    "cpu": ([(0.9, "/work/500"), (0.1, "/work/10000")], 0.9 * 0.0005 + 0.1 * 0.010, True, 1e-6),
}

APP = '''import time

def app(environ, start_response):
    parts = environ.get("PATH_INFO", "/").strip("/").split("/")
    body = b"debug\\n"
    if len(parts) == 2 and parts[0] == "sleep":
        ms = int(parts[1])
        time.sleep(ms / 1000.0)
        body = ("slept %d\\n" % ms).encode()
    elif len(parts) == 2 and parts[0] == "work":
        us = int(parts[1])
        # CPU time of this thread, like herdd's /work (CLOCK_THREAD_CPUTIME_ID).
        end = time.thread_time() + us / 1e6
        while time.thread_time() < end:
            pass
        body = ("worked %d\\n" % us).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


BLOCK = 20  # requests per shuffled block of the Lua mix


def lua_script(paths):
    """wrk script. Requests come in shuffled blocks of BLOCK holding each path in proportion to
    its weight (stratified: every window of requests has the nominal mix to within one block; a
    mix drawn per request would leave the mean service of a 6 s run up to ~3% off the nominal
    one, as much as the effects measured). Each response's body ("slept N" / "worked N") is
    added up, and done() prints the count and sum: the mean service actually served."""
    block = []
    for w, p in paths:
        block += [p] * round(w * BLOCK)
    assert len(block) == BLOCK, "weights must be multiples of 1/BLOCK"
    items = ", ".join(f'"{p}"' for p in block)
    return ("local block = {" + items + "}\n"
            "local i = #block\n"
            "served_n, served_sum = 0, 0\n"
            "function init(args) math.randomseed(os.time()) end\n"
            "function request()\n"
            "    if i == #block then\n"
            "        for k = #block, 2, -1 do local j = math.random(k); block[k], block[j] = block[j], block[k] end\n"
            "        i = 0\n"
            "    end\n"
            "    i = i + 1\n"
            "    return wrk.format(\"GET\", block[i])\n"
            "end\n"
            "function response(status, headers, body)\n"
            "    local v = tonumber(string.match(body or \"\", \"^%a+ (%d+)\"))\n"
            "    if v then served_n = served_n + 1; served_sum = served_sum + v end\n"
            "end\n"
            "function setup(thread) wrk_thread = thread end\n"
            "function done(summary, latency, requests)\n"
            "    io.write(string.format(\"served %d %d\\n\", wrk_thread:get(\"served_n\"), wrk_thread:get(\"served_sum\")))\n"
            "end\n")


def herdd_server(peers, workers):
    return peers.start_herdd("herdd", workers, [("web", "debug")], dirname="herdd-blocking")


def gunicorn_server(peers, workers, threads=None):
    return peers.gunicorn_server(workers, 1, name="gunicorn-gthread" if threads else "gunicorn-sync", app=APP,
                                 module="blocking_app", threads=threads, extra=["--timeout", "60"])


def section(peers, cfg):
    workers = cfg.blocking_workers
    ncpu = os.cpu_count() or 1
    tmp = peers.workdir("blocking-scripts")
    scripts = {}
    for mix, (paths, _, _, _) in MIXES.items():
        p = tmp / f"{mix}.lua"
        p.write_text(lua_script(paths))
        scripts[mix] = str(p)
    out = {"workers": workers, "cpus": ncpu, "threads": cfg.blocking_threads, "rows": []}
    srvs = {}
    try:
        srvs["herdd"] = herdd_server(peers, workers).wait_ready()
        srvs["gunicorn-sync"] = gunicorn_server(peers, workers).wait_ready()
        srvs["gunicorn-gthread"] = gunicorn_server(peers, workers, cfg.blocking_threads).wait_ready()
        names = list(srvs)
        for s in srvs.values():  # warm-up
            run_wrk([["wrk", "-t1", "-c8", "-d1s", "-s", scripts["sleep"], f"http://127.0.0.1:{s.ports[0]}/"]], 1, "warm-up")
        runs = {}
        for r in range(cfg.blocking_rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for mix in MIXES:
                for mode in cfg.modes:
                    for c in cfg.blocking_conns:
                        for pname in order:
                            s = srvs[pname]
                            cmd = ["wrk", "-t1", f"-c{c}", f"-d{cfg.blocking_secs}s", "--latency", "-s", scripts[mix]]
                            if mode == "close":
                                cmd += ["-H", "Connection: close"]
                            cmd.append(f"http://127.0.0.1:{s.ports[0]}/")
                            log(f"  [blocking] round {r + 1}/{cfg.blocking_rounds} {mix} {mode} c={c} {pname}")
                            # wrk's own CPU time (the only child reaped meanwhile): on this machine the
                            # load generator shares the cores, so the CPU mix's bound is also given
                            # against the CPU it leaves (ncpu - wrk's CPUs).
                            ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                            cpu0 = tree_cpu_s(s)
                            w = run_wrk([cmd], cfg.blocking_secs, f"blocking {mix} {mode} c{c} {pname}")[0]
                            cpu1 = tree_cpu_s(s)
                            ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                            w["client_cpus"] = ((ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)) / cfg.blocking_secs
                            w["server_cpus"] = (cpu1 - cpu0) / cfg.blocking_secs
                            sv = w.get("served")
                            if sv and sv[0]:
                                w["served_mean_s"] = sv[1] * MIXES[mix][3] / sv[0]
                            runs.setdefault((mix, mode, c, pname), []).append(w)
        if "herdd" in srvs:
            m = srvs["herdd"].metrics()
            if m:
                out["herdd_metrics"] = {
                    "handed_off": msum(m, "herdd_dispatch_handed_off_total"),
                    "received": msum(m, "herdd_dispatch_received_total"),
                    "dispatch_wakeups": msum(m, "herdd_dispatch_wakeups_total"),
                    "dispatch_empty_wakeups": msum(m, "herdd_dispatch_empty_wakeups_total"),
                    "queue_count": msum(m, "herdd_request_queue_seconds_count"),
                    "queue_sum_s": msum(m, "herdd_request_queue_seconds_sum"),
                }
    finally:
        for s in srvs.values():
            s.stop()

    for mix, (_, mean_s, cpu, _) in MIXES.items():
        bound = (min(workers, ncpu) if cpu else workers) / mean_s
        for mode in cfg.modes:
            for c in cfg.blocking_conns:
                row = {"mix": mix, "mode": mode, "conns": c, "bound_rps": bound}
                for pname in ("herdd", "gunicorn-sync", "gunicorn-gthread"):
                    lst = runs.get((mix, mode, c, pname), [])
                    row[pname] = {"rps": med(lst, "rps"), "p50_ms": med(lst, "p50_ms"), "p99_ms": med(lst, "p99_ms"),
                                  "errors": sum(x["errors"] + x["non2xx"] for x in lst),
                                  "rounds_rps": [x["rps"] for x in lst], "client_cpus": med(lst, "client_cpus"),
                                  "server_cpus": med(lst, "server_cpus"), "served_mean_s": med(lst, "served_mean_s")}
                    row[pname]["of_bound"] = row[pname]["rps"] / bound if row[pname]["rps"] else None
                    # CPU mix: the bound with the CPU the load generator left (min(workers, ncpu - wrk)).
                    left = ncpu - (row[pname]["client_cpus"] or 0.0)
                    row[pname]["of_cpu_left"] = (row[pname]["rps"] * mean_s / min(workers, left)
                                                 if cpu and row[pname]["rps"] and left > 0 else None)
                    if cpu:
                        row[pname]["cpu_per_request_us"] = cpu_per_request(row[pname], ncpu, workers, mean_s)
                h, g = row["herdd"], row["gunicorn-sync"]
                row["herdd/gunicorn-sync"] = {k: (h[k] / g[k] if h[k] and g[k] else None) for k in ("rps", "p50_ms", "p99_ms")}
                out["rows"].append(row)
    return out


def cpu_per_request(p, ncpu, workers, mean_s):
    """Where the machine's CPU went per request (µs) in a CPU-mix run: the handlers (the mean
    service served), the server outside its handlers (its processes' CPU time minus the
    handlers'), wrk, and the rest (kernel threads, other processes, idle: all CPUs' time per
    request minus the others). `ceiling`: the fraction of the nominal bound a server with no cost
    outside its handlers would reach with the same wrk and rest."""
    if not (p["rps"] and p["server_cpus"] is not None and p["client_cpus"] is not None and p["served_mean_s"]):
        return None
    handler = p["served_mean_s"] * 1e6
    server = p["server_cpus"] / p["rps"] * 1e6
    client = p["client_cpus"] / p["rps"] * 1e6
    rest = ncpu / p["rps"] * 1e6 - server - client
    return {"handler": handler, "outside": server - handler, "wrk": client, "rest": rest,
            "ceiling": (mean_s * 1e6 / (handler + client + rest)) * ncpu / min(workers, ncpu)}


def report(res, cfg):
    b = res["blocking"]
    print(f"\n## 5. Blocking handlers: {b['workers']} workers, wrk -t1 -d{cfg.blocking_secs}s --latency with a Lua mix, "
          f"median of {cfg.blocking_rounds} interleaved round(s); gthread: --threads {b['threads']}")
    print("   sleep: 90% /sleep/2 + 10% /sleep/50 (bound workers / 6.8 ms); "
          f"cpu: 90% /work/500 + 10% /work/10000 (bound min(workers, {b['cpus']} CPUs) / 1.45 ms)")
    hdr = (f"{'mix':5} {'mode':9} {'c':>3} {'bound':>6} | {'herdd req/s':>11} {'of bound':>8} {'p50':>7} {'p99':>7} | "
           f"{'sync req/s':>10} {'p50':>7} {'p99':>7} | {'gthread req/s':>13} {'p99':>7} | {'rps/sync':>8} {'p99/sync':>8}")
    print(hdr)
    print("-" * len(hdr))
    for r in b["rows"]:
        h, g, t, q = r["herdd"], r["gunicorn-sync"], r["gunicorn-gthread"], r["herdd/gunicorn-sync"]
        print(f"{r['mix']:5} {r['mode']:9} {r['conns']:>3} {r['bound_rps']:>6.0f} | {f(h['rps'], '.0f'):>11} {f(h['of_bound']):>8} "
              f"{f(h['p50_ms'], '.1f'):>7} {f(h['p99_ms'], '.1f'):>7} | {f(g['rps'], '.0f'):>10} {f(g['p50_ms'], '.1f'):>7} "
              f"{f(g['p99_ms'], '.1f'):>7} | {f(t['rps'], '.0f'):>13} {f(t['p99_ms'], '.1f'):>7} | {f(q['rps']):>8} {f(q['p99_ms']):>8}")
    errs = {p: sum(r[p]["errors"] for r in b["rows"]) for p in ("herdd", "gunicorn-sync", "gunicorn-gthread")}
    print(f"   errors (socket + non-2xx): {errs}")
    cpu_rows = [r for r in b["rows"] if r["mix"] == "cpu" and r["herdd"].get("of_cpu_left") is not None]
    if cpu_rows:
        print("   cpu mix against the CPU wrk leaves (min(workers, CPUs - wrk's CPUs) / 1.45 ms), of that bound: "
              + "; ".join(f"{r['mode']} c={r['conns']}: herdd {f(r['herdd']['of_cpu_left'])} (wrk {f(r['herdd']['client_cpus'])} CPU), "
                          f"sync {f(r['gunicorn-sync'].get('of_cpu_left'))}" for r in cpu_rows))
    costed = [r for r in b["rows"] if r["herdd"].get("cpu_per_request_us")]
    if costed:
        print("   cpu mix, CPU per request in µs: handlers (mean service served) + server outside them + wrk + rest "
              "(kernel threads, idle); ceiling = of bound with nothing outside the handlers")
        for r in costed:
            parts = []
            for pname in ("herdd", "gunicorn-sync"):
                k = r[pname].get("cpu_per_request_us")
                if k:
                    parts.append(f"{pname} {k['handler']:.0f} + {k['outside']:.0f} + {k['wrk']:.0f} + {k['rest']:.0f} "
                                 f"(ceiling {k['ceiling']:.3f})")
            print(f"     {r['mode']:9} c={r['conns']:<3} " + "; ".join(parts))
    if b.get("herdd_metrics"):
        print(f"   herdd dispatch over the section: {b['herdd_metrics']}")
