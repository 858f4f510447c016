"""bench/run section "overload": --max-queue-time under more load than the workers can serve
(issue 28, docs/overload.md), herdd with and without the option against gunicorn sync, in the
same run.

  spike: 4 workers, /sleep/50 (capacity 80 req/s), 256 keep-alive clients, closed loop. A client
         sends its next request when it has its answer; after a 503 it honours `Retry-After`
         (1 s, with ±50% jitter) and connects again, as a well-behaved client does.
         herdd --max-queue-time 250 vs herdd without it vs gunicorn sync -w 4.
  mix:   the sleep mix of the blocking section (90% /sleep/2, 10% /sleep/50; capacity
         4 / 6.8 ms = 588 req/s) at twice its capacity, open loop: requests are sent at a fixed
         rate on a pool of keep-alive connections whatever the answers, latency counted from
         when a request was due (no coordinated omission). The limit scaled with the service
         time: herdd --max-queue-time 50 vs herdd without it vs gunicorn sync -w 4. A request
         due when the pool has no free connection and holds `POOL` of them already counts as
         `overflow` (a server that answers nothing makes every later request one).

Reported per server: goodput (200s per second) and its fraction of capacity, p99 of the 200s
and of the 503s (ms), 503s per second, connection errors (connect, reset, EOF before an answer,
timeout), overflow; and herdd's shed counters per reason. The load generator is asyncio in this
process. Where the time of a slow answer goes (docs/overload.md, "the sleep mix"), per run:
the CPU share of the load generator (this process), of the server's processes and of the whole
machine; and for the 503s, p99 of the part before the request was written (the open loop's
lag behind its schedule in the mix, a connect when there was no idle connection) and of the
part from the write to the answer (what the server took, plus this process's delay in reading).
"""

import asyncio
import os
import random
import resource
import time

from .blocking import APP, BLOCK, MIXES, tree_cpu_s
from .common import f, log, mby, msum

WORKERS = 4
SPIKE_CLIENTS = 256
SPIKE_PATH = "/sleep/50"
SPIKE_LIMIT_MS = 250
MIX_LIMIT_MS = 50
POOL = 1024
REQUEST_TIMEOUT = 30.0


class Tally:
    """Answers by status with latencies, and connection errors, for one measured run."""

    def __init__(self, t0, t1):
        self.t0, self.t1 = t0, t1  # the measured window (after the warm-up)
        self.lat = {}  # status -> [seconds]
        self.errors = 0
        self.overflow = 0
        self.phases = []  # 503s: (before the write, write -> answer) in seconds
        self.cpu = {}

    def answer(self, status, due, done, written=None):
        if self.t0 <= done < self.t1:
            self.lat.setdefault(status, []).append(done - due)
            if status == 503 and written is not None:
                self.phases.append((written - due, done - written))

    def error(self, when):
        if self.t0 <= when < self.t1:
            self.errors += 1

    def summary(self, capacity):
        secs = self.t1 - self.t0
        ok, shed = sorted(self.lat.get(200, [])), sorted(self.lat.get(503, []))
        other = sum(len(v) for k, v in self.lat.items() if k not in (200, 503))
        return {"goodput": len(ok) / secs, "of_capacity": len(ok) / secs / capacity,
                "p50_200_ms": pct(ok, 0.50), "p99_200_ms": pct(ok, 0.99),
                "p50_503_ms": pct(shed, 0.50), "p99_503_ms": pct(shed, 0.99), "max_503_ms": shed[-1] * 1e3 if shed else None,
                "rate_503": len(shed) / secs, "n_200": len(ok), "n_503": len(shed), "other_status": other,
                "errors": self.errors, "overflow": self.overflow, "cpu": self.cpu,
                "p99_503_before_write_ms": pct(sorted(p[0] for p in self.phases), 0.99),
                "p99_503_write_to_answer_ms": pct(sorted(p[1] for p in self.phases), 0.99)}


def pct(sorted_s, q):
    return sorted_s[min(len(sorted_s) - 1, int(q * len(sorted_s)))] * 1e3 if sorted_s else None


async def exchange(reader, writer, path, written=None):
    """One GET on an open connection: (status, the server closes it). `written`: a list that
    gets the time of the write."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    if written is not None:
        written.append(time.monotonic())
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:] if l)}
    await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers.get("connection", "").lower() == "close" or status == 503


async def spike_client(port, tally, deadline):
    conn = None
    while time.monotonic() < deadline:
        due = time.monotonic()
        written = []
        try:
            if conn is None:
                conn = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), REQUEST_TIMEOUT)
            status, closes = await asyncio.wait_for(exchange(*conn, SPIKE_PATH, written), REQUEST_TIMEOUT)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
            tally.error(time.monotonic())
            conn = close(conn)
            await asyncio.sleep(0.05)  # pacing: a failed connection is not retried in a spin
            continue
        tally.answer(status, due, time.monotonic(), written[0] if written else None)
        if closes:
            conn = close(conn)
        if status == 503:
            # Retry-After: 1, with jitter as clients that back off add it (without it the
            # clients come back in one wave a second, and this one process is then the queue
            # that the 503s' latency measures).
            await asyncio.sleep(random.uniform(0.5, 1.5))


def close(conn):
    if conn is not None:
        conn[1].close()
    return None


async def mix_load(port, tally, rate, deadline, paths):
    """Open loop at `rate` req/s until `deadline`, on a pool of keep-alive connections."""
    idle, open_count, tasks = [], [0], set()
    block = []
    for w, p in paths:
        block += [p] * round(w * BLOCK)

    async def one(due, path):
        conn = idle.pop() if idle else None
        written = []
        try:
            if conn is None:
                open_count[0] += 1
                conn = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), REQUEST_TIMEOUT)
            status, closes = await asyncio.wait_for(exchange(*conn, path, written), REQUEST_TIMEOUT)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
            tally.error(time.monotonic())
            close(conn)
            open_count[0] -= 1
            return
        tally.answer(status, due, time.monotonic(), written[0] if written else None)
        if closes:
            close(conn)
            open_count[0] -= 1
        else:
            idle.append(conn)

    t0, i, order = time.monotonic(), 0, []
    while True:
        due = t0 + i / rate
        if due >= deadline:
            break
        now = time.monotonic()
        if due > now:
            await asyncio.sleep(due - now)  # pacing: the open loop's schedule
        if not order:
            order = block[:]
            random.shuffle(order)
        path = order.pop()
        i += 1
        if not idle and open_count[0] >= POOL:
            if tally.t0 <= due < tally.t1:
                tally.overflow += 1
            continue
        t = asyncio.ensure_future(one(due, path))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT + 1)
    for c in idle:
        close(c)


def machine_ticks():
    """(busy, all) jiffies of the whole machine so far (/proc/stat's first line)."""
    with open("/proc/stat") as fp:
        v = [int(x) for x in fp.readline().split()[1:]]
    idle = v[3] + v[4]  # idle + iowait
    return sum(v) - idle, sum(v)


class CPUWindow:
    """CPU shares over a run (fractions of one core): this process (the load generator), the
    server's master and workers, and the whole machine (of all its cores, in cores)."""

    def __init__(self, srv):
        self.srv = srv
        self.t = time.monotonic()
        self.me = resource.getrusage(resource.RUSAGE_SELF)
        self.server = tree_cpu_s(srv)
        self.machine = machine_ticks()

    def shares(self):
        dt = time.monotonic() - self.t
        me = resource.getrusage(resource.RUSAGE_SELF)
        busy, total = machine_ticks()
        ncpu = os.cpu_count() or 1
        return {"loadgen": round((me.ru_utime - self.me.ru_utime + me.ru_stime - self.me.ru_stime) / dt, 3),
                "server": round((tree_cpu_s(self.srv) - self.server) / dt, 3),
                "machine": round((busy - self.machine[0]) / max(1, total - self.machine[1]) * ncpu, 3),
                "cores": ncpu}


def run_spike(srv, secs, warm):
    port = srv.ports[0]
    start = time.monotonic()
    tally = Tally(start + warm, start + warm + secs)

    async def main():
        deadline = start + warm + secs
        await asyncio.gather(*(spike_client(port, tally, deadline) for _ in range(SPIKE_CLIENTS)))
    window = CPUWindow(srv)
    asyncio.run(main())
    tally.cpu = window.shares()
    return tally


def run_mix(srv, rate, secs, warm):
    start = time.monotonic()
    tally = Tally(start + warm, start + warm + secs)
    window = CPUWindow(srv)
    asyncio.run(mix_load(srv.ports[0], tally, rate, start + warm + secs, MIXES["sleep"][0]))
    tally.cpu = window.shares()
    return tally


def section(peers, cfg):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    secs, warm = cfg.overload_secs, 3.0
    mix_capacity = WORKERS / MIXES["sleep"][1]
    spike_capacity = WORKERS / 0.050
    out = {"workers": WORKERS, "secs": secs, "warm": warm, "spike": {}, "mix": {},
           "spike_capacity": spike_capacity, "mix_capacity": mix_capacity, "mix_rate": 2 * mix_capacity,
           "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0]}
    from .blocking import gunicorn_server  # the same WSGI app as the blocking section
    # --overload-cases, --overload-shed-only: one scenario, or herdd with the option alone (a
    # shorter locked run while working on one case; the full table needs both peers).
    cases = set(getattr(cfg, "overload_cases", "spike,mix").split(","))
    peers_too = not getattr(cfg, "overload_shed_only", False)
    spike_servers = [n for n in ("herdd-shed", "herdd-off", "gunicorn-sync") if "spike" in cases and (peers_too or n == "herdd-shed")]
    mix_servers = [n for n in ("herdd-shed-mix", "herdd-off", "gunicorn-sync") if "mix" in cases and (peers_too or n == "herdd-shed-mix")]
    srvs = {}
    try:
        if spike_servers:
            srvs["herdd-shed"] = peers.start_herdd("herdd-shed", WORKERS, [("web", "debug")],
                                                   ["--max-queue-time", str(SPIKE_LIMIT_MS)], dirname="herdd-overload-shed").wait_ready()
        if mix_servers:
            srvs["herdd-shed-mix"] = peers.start_herdd("herdd-shed-mix", WORKERS, [("web", "debug")],
                                                       ["--max-queue-time", str(MIX_LIMIT_MS)], dirname="herdd-overload-shed-mix").wait_ready()
        if peers_too:
            srvs["herdd-off"] = peers.start_herdd("herdd-off", WORKERS, [("web", "debug")], dirname="herdd-overload-off").wait_ready()
            srvs["gunicorn-sync"] = gunicorn_server(peers, WORKERS).wait_ready()
        for name in spike_servers:
            log(f"  [overload] spike: {SPIKE_CLIENTS} keep-alive clients on {SPIKE_PATH}, {name}")
            out["spike"][name] = run_spike(srvs[name], secs, warm).summary(spike_capacity)
            log(f"    {out['spike'][name]}")
            time.sleep(2)  # let the previous run's connections close before the next server's
        for name in mix_servers:
            log(f"  [overload] mix at {2 * mix_capacity:.0f} req/s open loop, {name}")
            out["mix"][name] = run_mix(srvs[name], 2 * mix_capacity, secs, warm).summary(mix_capacity)
            log(f"    {out['mix'][name]}")
            time.sleep(2)
        for name in ("herdd-shed", "herdd-shed-mix"):
            if name not in srvs:
                continue
            m = srvs[name].metrics()
            if m:
                out[f"{name}_metrics"] = {"shed": msum(m, "herdd_requests_shed_total"),
                                          "shed_by_reason": mby(m, "herdd_requests_shed_total", "reason"),
                                          "shed_queue_s": msum(m, "herdd_requests_shed_queue_seconds_total")}
    finally:
        for s in srvs.values():
            s.stop()
    return out


def report(res, cfg):
    o = res["overload"]
    print(f"\n## Overload (--max-queue-time, issue 28): {o['workers']} workers, {o['secs']:.0f} s measured after "
          f"{o['warm']:.0f} s of warm-up, one run per server")
    hdr = (f"{'scenario':34} {'server':15} | {'200/s':>6} {'of cap':>6} {'p50 200':>8} {'p99 200':>8} | "
           f"{'503/s':>6} {'p50 503':>8} {'p99 503':>8} | {'errors':>6} {'overflow':>8}")
    print(hdr)
    print("-" * len(hdr))
    for key, title in (("spike", f"spike: {SPIKE_CLIENTS} clients {SPIKE_PATH} (cap {o['spike_capacity']:.0f})"),
                       ("mix", f"sleep mix at {o['mix_rate']:.0f}/s (cap {o['mix_capacity']:.0f})")):
        for name, s in o[key].items():
            label = name + (f" {SPIKE_LIMIT_MS if key == 'spike' else MIX_LIMIT_MS}ms" if name.startswith("herdd-shed") else "")
            print(f"{title:34} {label:15} | {s['goodput']:>6.1f} {f(s['of_capacity']):>6} {f(s['p50_200_ms'], '.1f'):>8} "
                  f"{f(s['p99_200_ms'], '.1f'):>8} | {s['rate_503']:>6.1f} {f(s['p50_503_ms'], '.1f'):>8} {f(s['p99_503_ms'], '.1f'):>8} | "
                  f"{s['errors']:>6} {s['overflow']:>8}")
            title = ""
    for key, shed in (("spike", "herdd-shed"), ("mix", "herdd-shed-mix")):
        h, g = o[key].get(shed), o[key].get("gunicorn-sync")
        if h and g:
            print(f"   {key}: herdd/gunicorn goodput {f(h['goodput'] / g['goodput'] if g['goodput'] else None)}, "
                  f"p99 of 200s {f(h['p99_200_ms'] / g['p99_200_ms'] if h['p99_200_ms'] and g['p99_200_ms'] else None, '.3f')}")
    for name in ("herdd-shed", "herdd-shed-mix"):
        if o.get(f"{name}_metrics"):
            print(f"   {name} metrics: {o[f'{name}_metrics']}")
    print("   CPU (cores) of the load generator / the server / the whole machine, and the 503s' time split"
          " (p99 before the write: the client's lag and connect; p99 write -> answer):")
    for key in ("spike", "mix"):
        for name, s in o[key].items():
            c = s.get("cpu") or {}
            split = (f", 503 p99 before write {f(s.get('p99_503_before_write_ms'), '.1f')} ms, write->answer "
                     f"{f(s.get('p99_503_write_to_answer_ms'), '.1f')} ms") if s.get("p99_503_before_write_ms") is not None else ""
            print(f"     {key:5} {name:15} {c.get('loadgen')} / {c.get('server')} / {c.get('machine')} of {c.get('cores')}{split}")
