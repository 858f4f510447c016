"""The end of a bench/run: the tables derived from the sections (load distribution per worker,
memory), the JSON results, and the printed report, section by section."""

import json
import time
from pathlib import Path

from . import appbench, asyncbench, blocking, connections, herd, overloadbench, startup, throughput
from .common import ANOMALIES, COMMANDS, LOGDIR, f
from .load import distribution


def derive(res, cfg):
    """Section 3 (load distribution) and 4 (memory) from the herd and throughput sections."""
    dist = {}
    if "herd" in res:
        for peer in ("herdd-exclusive", "herdd-shared", "herdd-spread"):
            if peer in res["herd"]:
                for load, label in (("seq", f"{cfg.seq_conns} sequential conns"), ("wrk_close", "wrk -c50 Connection: close")):
                    acc = res["herd"][peer][load].get("per_worker_accepted")
                    if acc:
                        dist[f"4w herdd {peer.split('-')[1]:9} {label} (accepted)"] = distribution(acc)
    if "throughput" in res:
        for nw, t in res["throughput"].items():
            for mode in cfg.modes:
                v = t["herdd_per_worker_requests"].get(mode)
                if v:
                    dist[f"{nw}w herdd wrk -c{cfg.conns} {mode} (requests)"] = distribution(v)
                for peer in ("herdd", "nginx", "gunicorn"):
                    ticks = t["summary"][mode][peer].get("per_worker_cpu_ticks")
                    if ticks:
                        dist[f"{nw}w {peer} wrk -c{cfg.conns} {mode} (cpu ticks)"] = distribution(ticks)
    if dist:
        res["distribution"] = dist
    mem = {}
    if "herd" in res:
        for peer, r in res["herd"].items():
            mem[f"4w x 2 listeners {peer}"] = r["memory"]
    if "throughput" in res:
        for nw, t in res["throughput"].items():
            for peer, mm in t["memory"].items():
                mem[f"{nw}w after wrk {peer}"] = mm
    if mem:
        res["memory"] = mem
        herdd_rss = [w.get("VmRSS", 0) for k, mm in mem.items() if "herdd" in k for w in mm["workers"]]
        res["herdd_worker_rss_max_kib"] = max(herdd_rss) if herdd_rss else None


def write(res, cfg, t_start):
    res["commands"] = COMMANDS
    res["anomalies"] = ANOMALIES
    res["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    res["total_seconds"] = time.monotonic() - t_start
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    res["json_path"] = str(out)
    text = json.dumps(res, indent=2, default=str)
    out.write_text(text)
    (out.parent / time.strftime("bench-%Y%m%d-%H%M%S.json")).write_text(text)


def print_report(res, cfg):
    m = res["machine"]
    print(f"\n# herdd benchmark  ({'quick' if cfg.quick else 'full'}; {res['total_seconds']:.0f} s)")
    print(f"machine: nproc {m['nproc']}, kernel {m['kernel']}, {m['cpu']}, loadavg at start "
          f"{' '.join(m['loadavg_start'])}, at end {' '.join(res['loadavg_end'])}")
    print(f"herdd: {m['herdd_binary']} ({m['herdd_binary_source']}), git {str(m['git_head'])[:12]}"
          f"{' (dirty: ' + ', '.join(m['git_dirty_files']) + ')' if m['git_dirty_files'] else ''}")

    if "herd" in res:
        herd.report(res, cfg)
    if "throughput" in res:
        throughput.report(res, cfg)
    if "distribution" in res:
        print("\n## 3. Load distribution: herdd requests/accepted per worker slot (from /metrics);"
              " all peers: worker CPU time (ticks) per worker")
        hdr = f"{'scenario':54} {'per worker':34} {'max/min':>8} {'top share':>9}"
        print(hdr)
        print("-" * len(hdr))
        for name, d in res["distribution"].items():
            print(f"{name:54} {' '.join(str(int(v)) for v in d['values']):34} "
                  f"{f(d.get('max_min'), none='inf' if d.get('values') else '-'):>8} {f(d.get('top_share')):>9}")

    if "memory" in res:
        print("\n## 4. Memory after warm-up (KiB) and startup")
        hdr = f"{'scenario':30} {'master RSS':>10} {'worker RSS (each)':28} {'worker Pss (each)':24} {'worker USS (each)':24}"
        print(hdr)
        print("-" * len(hdr))
        for name, mm in res["memory"].items():
            print(f"{name:30} {mm['master'].get('VmRSS', 0):>10} "
                  f"{' '.join(str(w.get('VmRSS', 0)) for w in mm['workers']):28} "
                  f"{' '.join(str(w.get('Pss', 0)) for w in mm['workers']):24} "
                  f"{' '.join(str(w.get('USS', 0)) for w in mm['workers']):24}")
        mx = res.get("herdd_worker_rss_max_kib")
        if mx is not None:
            print(f"   herdd max worker VmRSS {mx} KiB = {mx / 1024:.1f} MiB (goal < 10 MiB): "
                  f"{'OK' if mx < 10 * 1024 else 'OVER'}")
    if "startup" in res:
        startup.report(res, cfg)
    if "connections" in res:
        connections.report(res, cfg)
    if "blocking" in res:
        blocking.report(res, cfg)
    if "async" in res:
        asyncbench.report(res, cfg)
    if "app" in res:
        appbench.report(res, cfg)
    if "overload" in res:
        overloadbench.report(res, cfg)
    if res.get("anomalies"):
        print(f"\nanomalies ({len(res['anomalies'])}):")
        for a in res["anomalies"]:
            print("   " + json.dumps(a))
    print(f"\nresults: {res['json_path']} (server logs: {LOGDIR})")
