#!/usr/bin/env python3
"""A/B of the hello hot path between two herdd binaries, interleaved in one run:

    flock /tmp/herdd-bench.lock bench/ab_hello.py BASE_BINARY NEW_BINARY [ROUNDS] [--blocking]

Both run `--workers 2` with the default handler (hello); each round runs wrk -t1 -c50 -d3s keep-alive against one
then the other (the order alternates), and reads the workers' CPU time from /proc. With
--blocking: the debug handler (blocking, with dispatch) and the blocking section's CPU mix
(bench/herdbench/blocking.py: 90% /work/500, 10% /work/10000) from wrk -t1 -c16 -d3s, keep-alive
and `Connection: close` in alternate rounds. Prints the
medians of req/s and CPU microseconds per request, and their ratios. The servers are started
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
ARGS = [a for a in sys.argv[1:] if a != "--blocking"]
if len(ARGS) < 2:
    sys.exit(__doc__)
BIN = {"base": str(Path(ARGS[0]).resolve()), "new": str(Path(ARGS[1]).resolve())}
ROUNDS = int(ARGS[2]) if len(ARGS) > 2 else 8
if not 1 <= ROUNDS <= 100:
    sys.exit("ROUNDS: 1 to 100")
WORKERS = 2


def ticks(pids):
    return sum(proc_cpu_ticks(p) for p in pids)


started = Started()
raise_on_signals()
tmp = tempfile.mkdtemp(prefix="herdd-ab-")
res = {k: {"rps": [], "us": []} for k in BIN}
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
        close = ["-H", "Connection: close"] if BLOCKING and r % 4 >= 2 else []
        for k in (list(BIN) if r % 2 == 0 else list(BIN)[::-1]):
            h, port = srv[k]
            w = h.children(); a = ticks(w)
            out = subprocess.run(["wrk", "-t1", *load, *close, "-d3s", f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
                                 timeout=30).stdout
            b = ticks(w)
            n = int(re.search(r"(\d+) requests in", out).group(1)); rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
            res[k]["rps"].append(rps); res[k]["us"].append((b - a) / os.sysconf("SC_CLK_TCK") * 1e6 / n)
except KeyboardInterrupt:
    sys.exit(130)
finally:
    started.end_all()
    shutil.rmtree(tmp, ignore_errors=True)
for k, v in res.items():
    print(k, "median rps %.0f" % statistics.median(v["rps"]), "median cpu us/req %.2f" % statistics.median(v["us"]), "rps", [round(x) for x in v["rps"]], "us", [round(x, 1) for x in v["us"]])
b, n = res["base"], res["new"]
print("new/base rps %.3f, cpu/req %.3f; per-round paired rps ratio median %.3f" % (statistics.median(n["rps"]) / statistics.median(b["rps"]), statistics.median(n["us"]) / statistics.median(b["us"]), statistics.median([x / y for x, y in zip(n["rps"], b["rps"])])))
