#!/usr/bin/env python3
"""A/B of the hello hot path between two herdd binaries, interleaved in one run:

    flock /tmp/herdd-bench.lock bench/ab_hello.py BASE_BINARY NEW_BINARY [ROUNDS] [--blocking] [--close] [--workers=N]

Both run `--workers 2` (or N) with the default handler (hello); each round runs wrk -t1 -c50 -d3s keep-alive
(with --close: `Connection: close`) against one
then the other (the order alternates), and reads the workers' CPU time from /proc. With
--blocking: the debug handler (blocking, with dispatch) and the blocking section's CPU mix
(bench/herdbench/blocking.py: 90% /work/500, 10% /work/10000) from wrk -t1 -c16 -d3s, keep-alive
and `Connection: close` in alternate rounds. Prints the
medians of req/s, CPU microseconds per request, wrk's p99 and the voluntary context switches per
request of the workers' other threads (the dispatch watchers, with --blocking), and the ratios. The servers are started
through Tests/support/herdtest.py (a notify socket each: measuring starts after READY=1 and both
workers); every process it starts is ended by PID.
"""
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent / "Tests" / "support"), str(Path(__file__).resolve().parent)]
from herdtest import HerddProcess, Started, free_port, proc_cpu_ticks, raise_on_signals  # noqa: E402
from herdbench.blocking import MIXES, lua_script  # noqa: E402

BLOCKING = "--blocking" in sys.argv[1:]
CLOSE = "--close" in sys.argv[1:]
WORKERS_GIVEN = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--workers=")]
ARGS = [a for a in sys.argv[1:] if a not in ("--blocking", "--close") and not a.startswith("--workers=")]
if len(ARGS) < 2:
    sys.exit(__doc__)
BIN = {"base": str(Path(ARGS[0]).resolve()), "new": str(Path(ARGS[1]).resolve())}
ROUNDS = int(ARGS[2]) if len(ARGS) > 2 else 8
if not 1 <= ROUNDS <= 100:
    sys.exit("ROUNDS: 1 to 100")
WORKERS = int(WORKERS_GIVEN[-1]) if WORKERS_GIVEN and WORKERS_GIVEN[-1].isdigit() else 2
if WORKERS_GIVEN and not (WORKERS_GIVEN[-1].isdigit() and 1 <= WORKERS <= 64):
    sys.exit("--workers=N: 1 to 64")


def ticks(pids):
    return sum(proc_cpu_ticks(p) for p in pids)


started = Started()
raise_on_signals()
tmp = tempfile.mkdtemp(prefix="herdd-ab-")
res = {k: {"rps": [], "us": [], "p99": [], "wcs": []} for k in BIN}


def p99_ms(out):
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)", out, re.M)
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)] if m else float("nan")


def watcher_switches(pids):
    """Voluntary context switches of the workers' threads other than their event loops (the
    dispatch watchers)."""
    v = 0
    for pid in pids:
        try:
            tids = [t for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid]
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    v += int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", f.read(), re.M).group(1))
            except (OSError, AttributeError):
                pass
    return v

try:
    srv = {}
    for k, b in BIN.items():
        port = free_port()
        d = Path(tmp) / k
        d.mkdir()
        handler = ["--handler", "http=debug"] if BLOCKING else []
        h = started.add(HerddProcess(b, ["--workers", str(WORKERS), "--listen", f"127.0.0.1:{port}", *handler], workdir=d, name=k))
        srv[k] = (h, port)
    for h, _ in srv.values():
        h.wait_ready(20)
        h.wait_until(lambda: len(h.children()) >= WORKERS, 10, f"{WORKERS} workers")
    load = ["-c50"]
    if BLOCKING:
        script = Path(tmp) / "cpu.lua"
        script.write_text(lua_script(MIXES["cpu"][0]))
        load = ["-c16", "-s", str(script)]
    for r in range(ROUNDS):
        close = ["-H", "Connection: close"] if CLOSE or (BLOCKING and r % 4 >= 2) else []
        for k in (list(BIN) if r % 2 == 0 else list(BIN)[::-1]):
            h, port = srv[k]
            w = h.children(); a = ticks(w); wa = watcher_switches(w)
            out = subprocess.run(["wrk", "-t1", "--latency", *load, *close, "-d3s", f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
                                 timeout=30).stdout
            b = ticks(w); wb = watcher_switches(w)
            n = int(re.search(r"(\d+) requests in", out).group(1)); rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
            res[k]["rps"].append(rps); res[k]["us"].append((b - a) / os.sysconf("SC_CLK_TCK") * 1e6 / n)
            res[k]["p99"].append(p99_ms(out)); res[k]["wcs"].append((wb - wa) / max(1, n))
except KeyboardInterrupt:
    sys.exit(130)
finally:
    started.end_all()
    shutil.rmtree(tmp, ignore_errors=True)
for k, v in res.items():
    print(k, "median rps %.0f" % statistics.median(v["rps"]), "median cpu us/req %.2f" % statistics.median(v["us"]), "rps", [round(x) for x in v["rps"]], "us", [round(x, 1) for x in v["us"]])
    print(" " * len(k), "median p99 %.2f ms" % statistics.median(v["p99"]), "p99", [round(x, 2) for x in v["p99"]],
          "watcher vcs/req %.3f" % statistics.median(v["wcs"]))
b, n = res["base"], res["new"]
print("new/base rps %.3f, cpu/req %.3f; per-round paired rps ratio median %.3f" % (statistics.median(n["rps"]) / statistics.median(b["rps"]), statistics.median(n["us"]) / statistics.median(b["us"]), statistics.median([x / y for x, y in zip(n["rps"], b["rps"])])))
