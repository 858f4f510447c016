"""bench/run section "connections" (issue 17): memory per idle keep-alive connection.

For herdd (and herdd-before with --herdd-before, the binary to compare against), and nginx, 2
workers each and all up in the same run: opens 1,000, 10,000 and 50,000 idle keep-alive
connections (each after one request), spread over several client processes (bench/idle_conns.py)
and loopback source addresses; measures the PSS of master + workers (/proc/PID/smaps_rollup)
before, while they are open and after the clients closed them; and hello throughput (wrk) with
10,000 idle connections held against without.
"""

import resource
import subprocess
import sys
import time

from herdtest import proc_mem_kib as mem_kib, settled

from . import BENCH_DIR
from .common import STARTED, f, log, record
from .load import run_wrk, wrk_cmd

CLIENT = BENCH_DIR / "idle_conns.py"


def raise_nofile(want):
    """Soft (and, as root, hard) RLIMIT_NOFILE up to `want`, within fs.nr_open. Inherited by the
    servers and clients this script starts. Returns (soft, hard, nr_open, note)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        nr_open = int(open("/proc/sys/fs/nr_open").read())
    except OSError:
        nr_open = hard
    target = min(want, nr_open)
    note = ""
    if hard != resource.RLIM_INFINITY and hard < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, target))
            note = f"raised the hard limit {hard} -> {target}"
        except (ValueError, OSError) as e:
            note = f"hard limit {hard} kept ({e}); asked for {target}"
            target = hard
    if target > soft:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(target, hard), hard))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard, nr_open, note


class IdleClients:
    """N idle keep-alive connections spread over client processes and source addresses."""

    PER_PROCESS = 12500
    seq = 0

    def __init__(self, port, n):
        self.procs = []
        self.ok = self.failed = 0
        self.seconds = 0.0
        nproc = max(1, -(-n // IdleClients.PER_PROCESS))
        t0 = time.monotonic()
        for k in range(nproc):
            count = n // nproc + (1 if k < n % nproc else 0)
            IdleClients.seq += 1
            # A fresh source address for every client process: ephemeral ports are then never
            # short (28k per source/destination pair) and no TIME_WAIT of a previous step is hit.
            src = f"127.{1 + IdleClients.seq // 250}.{IdleClients.seq % 250 + 1}.{k + 1}"
            cmd = [sys.executable, str(CLIENT), "client", "--port", str(port), "--count", str(count), "--src", src]
            record("load", cmd, label=f"idle connections {n}")
            p = STARTED.add(subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
            self.procs.append(p)
        for p in self.procs:
            line = p.stdout.readline()
            parts = dict(x.split("=") for x in line.split()[1:]) if line.startswith("ready") else {}
            self.ok += int(parts.get("ok", 0))
            self.failed += int(parts.get("failed", 0)) if parts else 1
        self.seconds = time.monotonic() - t0

    def close(self):
        for p in self.procs:
            try:
                p.stdin.write("close\n")
                p.stdin.flush()
            except OSError:
                pass
        for p in self.procs:
            try:
                p.stdout.readline()
                p.wait(timeout=30)
            except Exception:
                p.kill()
                p.wait()
            STARTED.discard(p)


def tree_pss_kib(srv):
    """PSS of master + workers, KiB."""
    return sum(mem_kib(p).get("Pss", 0) for p in [srv.pid] + srv.workers())


def settle_pss(srv, secs):
    """PSS once it stops moving (3 samples 0.5 s apart within 64 KiB) or after `secs`."""
    return settled(lambda: tree_pss_kib(srv), tolerance=64, interval=0.5, timeout=secs)


def herdd_server(peers, binary, name, workers):
    return peers.start_herdd(name, workers, [("web", "hello")], extra=["--keepalive-timeout", "600", "--backlog", "4096"],
                             binary=binary)


def nginx_server(peers, conns, workers, nofile):
    return peers.nginx_server(workers, 1, dirname="nginx-conns", note="connections section",
                              worker_connections=conns + 1024, keepalive_timeout=600, backlog=4096, nofile=nofile)


def server_connections(srv):
    """Open connections to the server's port as the kernel sees them (ESTABLISHED sockets whose
    local port is the server's), from /proc/net/tcp: works for every peer alike."""
    want = f"{srv.ports[0]:04X}"
    n = 0
    try:
        with open("/proc/net/tcp") as tcp:
            next(tcp)
            for line in tcp:
                parts = line.split()
                if parts[1].endswith(":" + want) and parts[3] == "01":
                    n += 1
    except OSError:
        return None
    return n


def wait_server_closed(srv, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (server_connections(srv) or 0) == 0:
            return True
        time.sleep(0.2)
    return False


def workers_for(n, soft):
    """2 workers, or more when one worker's share of n connections (with 25% for an uneven
    spread) would not fit in RLIMIT_NOFILE."""
    w = 2
    while w < 16 and n / w * 1.25 + 1024 > soft:
        w *= 2
    return w


def wrk_rps(srv, cfg, label):
    w = run_wrk([wrk_cmd(srv.ports[0], 2, cfg.conns, cfg.conn_wrk_secs, False)], cfg.conn_wrk_secs, label)[0]
    return {"rps": w["rps"], "errors": w["errors"] + w["non2xx"], "p99_ms": w["p99_ms"]}


def section(peers, cfg):
    counts = cfg.conn_counts
    need = max(counts) * 2 + 4096
    soft, hard, nr_open, note = raise_nofile(max(need, 262144))
    log(f"[connections] RLIMIT_NOFILE soft {soft} hard {hard} (fs.nr_open {nr_open}) {note}")
    out = {"rlimit_nofile": {"soft": soft, "hard": hard, "nr_open": nr_open, "note": note},
           "counts": counts, "peers": {}}
    groups = {}
    for n in counts:
        groups.setdefault(workers_for(n, soft), []).append(n)
    out["groups"] = {str(w): ns for w, ns in groups.items()}
    out["throughput"] = idle_throughput(peers, cfg, soft)
    for w, ns in groups.items():
        if w != 2:
            log(f"  {ns} idle connections: {w} workers per server (one worker's share must fit in RLIMIT_NOFILE {soft})")
        res = group(peers, cfg, w, ns, soft)
        for p, x in res.items():
            out["peers"].setdefault(p, {"groups": {}})["groups"][str(w)] = x
    return out


def idle_throughput(peers, cfg, soft):
    """Hello throughput with cfg.conn_wrk_idle idle connections held against without: per peer,
    two identical servers (2 workers), the idle connections opened on one of them, then wrk on
    each in turn for cfg.conn_rounds rounds (order alternating), so both see the same noise."""
    out = {}
    binaries = [("herdd", peers.herdd)] + ([("herdd-before", cfg.herdd_before)] if cfg.herdd_before else [])
    n = cfg.conn_wrk_idle
    for p in [b[0] for b in binaries] + ["nginx"]:
        pair = {}
        clients = None
        try:
            for role in ("with", "without"):
                if p == "nginx":
                    pair[role] = nginx_server(peers, n, 2, soft).wait_ready()
                else:
                    pair[role] = herdd_server(peers, dict(binaries)[p], f"{p}-{role}-idle", 2).wait_ready()
            for s in pair.values():
                run_wrk([wrk_cmd(s.ports[0], 2, cfg.conns, 1, False)], 1, "warm-up")
            clients = IdleClients(pair["with"].ports[0], n)
            runs = {"with": [], "without": []}
            for r in range(cfg.conn_rounds):
                for role in (("with", "without") if r % 2 == 0 else ("without", "with")):
                    runs[role].append(wrk_rps(pair[role], cfg, f"connections {p} {role} {n} idle"))
            still = server_connections(pair["with"])
            out[p] = {"idle": clients.ok, "idle_failed": clients.failed, "established_after": still,
                      "with": runs["with"], "without": runs["without"]}
            log(f"  {p:13} req/s with {clients.ok} idle: {[round(x['rps']) for x in runs['with']]}, "
                f"without: {[round(x['rps']) for x in runs['without']]}")
        finally:
            if clients:
                clients.close()
            for s in pair.values():
                s.stop()
    return out


def group(peers, cfg, workers, counts, soft):
    """herdd (and herdd-before) and nginx with `workers` workers each, all up at once; the steps
    of `counts` idle connections in turn for each, every peer before the next step."""
    srvs = {}
    try:
        srvs["herdd"] = herdd_server(peers, peers.herdd, "herdd-conns", workers).wait_ready()
        if cfg.herdd_before:
            srvs["herdd-before"] = herdd_server(peers, cfg.herdd_before, "herdd-before-conns", workers).wait_ready()
        srvs["nginx"] = nginx_server(peers, max(counts), workers, soft).wait_ready()
        res = {p: {"workers": workers, "steps": {}} for p in srvs}
        for p, s in srvs.items():  # warm-up, then the baseline
            run_wrk([wrk_cmd(s.ports[0], 2, cfg.conns, 1, False)], 1, "warm-up")
        time.sleep(1.5)
        for p, s in srvs.items():
            res[p]["baseline_kib"] = settle_pss(s, 5)
        for n in counts:
            for p, s in srvs.items():  # same step for every peer before the next step
                before = settle_pss(s, 5)
                clients = IdleClients(s.ports[0], n)
                try:
                    time.sleep(0.5)
                    held = settle_pss(s, 5)
                    seen = server_connections(s)
                    step = {"opened": clients.ok, "failed": clients.failed, "open_seconds": round(clients.seconds, 2),
                            "server_established": seen, "before_kib": before, "open_kib": held,
                            "bytes_per_conn": (held - before) * 1024 / clients.ok if clients.ok else None}
                finally:
                    clients.close()
                step["closed_by_server"] = wait_server_closed(s)
                # herdd gives memory back on its once-a-second sweep; nginx when it frees pools.
                time.sleep(1.5)
                step["after_close_kib"] = settle_pss(s, 6)
                step["after_close_vs_baseline"] = step["after_close_kib"] / res[p]["baseline_kib"]
                res[p]["steps"][str(n)] = step
                log(f"  {p:13} {n:6} idle ({workers} workers): +{step['bytes_per_conn'] or 0:.0f} B/conn "
                    f"(opened {clients.ok}, failed {clients.failed}, {clients.seconds:.1f} s); after close "
                    f"{step['after_close_kib']} KiB vs baseline {res[p]['baseline_kib']} KiB")
        return res
    finally:
        for s in srvs.values():
            s.stop()


def report(res, cfg):
    c = res["connections"]
    r = c["rlimit_nofile"]
    print(f"\n## 5. Idle keep-alive connections: every connection made one request and stays idle")
    print(f"   PSS of master + workers (/proc/PID/smaps_rollup), B/conn = (PSS with them - PSS before) / opened;"
          f" closed/base = PSS after the clients closed / PSS before the first step")
    print(f"   RLIMIT_NOFILE soft {r['soft']} hard {r['hard']} (fs.nr_open {r['nr_open']})"
          f"{'; ' + r['note'] if r['note'] else ''}; workers per server: "
          + ", ".join(f"{w} for {ns}" for w, ns in c.get("groups", {}).items()))
    peers = c["peers"]

    def step_of(peer, n):
        for g in peers.get(peer, {}).get("groups", {}).values():
            if str(n) in g["steps"]:
                return g, g["steps"][str(n)]
        return None, None
    hdr = (f"{'peer':13} {'workers':>7} {'idle conns':>10} {'opened':>7} {'B/conn':>8} {'vs nginx':>8} "
           f"{'base KiB':>9} {'open KiB':>9} {'closed KiB':>10} {'closed/base':>11}")
    print(hdr)
    print("-" * len(hdr))
    for n in c["counts"]:
        for p in peers:
            g, st = step_of(p, n)
            if not st:
                continue
            _, ng = step_of("nginx", n)
            ngb = ng["bytes_per_conn"] if ng else None
            ratio = st["bytes_per_conn"] / ngb if st["bytes_per_conn"] and ngb else None
            print(f"{p:13} {g['workers']:>7} {n:>10} {st['opened']:>7} {f(st['bytes_per_conn'], '.0f'):>8} {f(ratio):>8} "
                  f"{g['baseline_kib']:>9} {st['open_kib']:>9} {st['after_close_kib']:>10} {f(st['after_close_vs_baseline']):>11}")
    t = c.get("throughput", {})
    if t:
        print(f"\n   hello throughput, wrk -t2 -c{cfg.conns} -d{cfg.conn_wrk_secs}s keep-alive, 2 workers: two identical"
              f" servers per peer, {cfg.conn_wrk_idle} idle connections held on one, wrk on each in turn"
              f" ({cfg.conn_rounds} rounds, order alternating); with/without = median / median; the spread of"
              f" the rounds is the noise")
        hdr = f"{'peer':13} {'with idle req/s (rounds)':>34} {'without req/s (rounds)':>34} {'with/without':>12}"
        print(hdr)
        print("-" * len(hdr))
        for p, x in t.items():
            wi = [w["rps"] for w in x["with"]]
            wo = [w["rps"] for w in x["without"]]
            med = lambda v: sorted(v)[len(v) // 2] if v else None
            ratio = med(wi) / med(wo) if wi and wo and med(wo) else None
            print(f"{p:13} {' '.join(f(v, '.0f') for v in wi):>34} {' '.join(f(v, '.0f') for v in wo):>34} {f(ratio):>12}")
