#!/usr/bin/env python3
"""A/B of the hello hot path between two herdd binaries, interleaved in one run:

    flock /tmp/herdd-bench.lock bench/ab_hello.py BASE_BINARY NEW_BINARY [ROUNDS]

Both run `--workers 2` with the default handler (hello); each round runs wrk -t1 -c50 -d3s keep-alive against one
then the other (the order alternates), and reads the workers' CPU time from /proc. Prints the
medians of req/s and CPU microseconds per request, and their ratios. Every process it starts is
ended by PID.
"""
import os, re, signal, socket, subprocess, sys, time, statistics
if len(sys.argv) < 3:
    sys.exit(__doc__)
BIN = {"base": sys.argv[1], "new": sys.argv[2]}
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 8
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
def kids(pid):
    try: return [int(x) for x in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except OSError: return []
def ticks(pids):
    t = 0
    for p in pids:
        try:
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split(); t += int(f[11]) + int(f[12])
        except OSError: pass
    return t
srv = {}
for k, b in BIN.items():
    port = free_port()
    p = subprocess.Popen([b, "--workers", "2", "--listen", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    srv[k] = (p, port)
time.sleep(1.5)
res = {k: {"rps": [], "us": []} for k in BIN}
try:
    for r in range(ROUNDS):
        for k in (list(BIN) if r % 2 == 0 else list(BIN)[::-1]):
            p, port = srv[k]
            w = kids(p.pid); a = ticks(w)
            out = subprocess.run(["wrk", "-t1", "-c50", "-d3s", f"http://127.0.0.1:{port}/"], capture_output=True, text=True).stdout
            b = ticks(w)
            n = int(re.search(r"(\d+) requests in", out).group(1)); rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
            res[k]["rps"].append(rps); res[k]["us"].append((b - a) / os.sysconf("SC_CLK_TCK") * 1e6 / n)
finally:
    for p, _ in srv.values():
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
for k, v in res.items():
    print(k, "median rps %.0f" % statistics.median(v["rps"]), "median cpu us/req %.2f" % statistics.median(v["us"]), "rps", [round(x) for x in v["rps"]], "us", [round(x, 1) for x in v["us"]])
b, n = res["base"], res["new"]
print("new/base rps %.3f, cpu/req %.3f; per-round paired rps ratio median %.3f" % (statistics.median(n["rps"]) / statistics.median(b["rps"]), statistics.median(n["us"]) / statistics.median(b["us"]), statistics.median([x / y for x, y in zip(n["rps"], b["rps"])])))
