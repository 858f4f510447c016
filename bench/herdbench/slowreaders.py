"""Slow readers (issue 25, part of the static section): 200 clients each fetch the 20 MB file and
read it at about 1 KB/s, while a probe opens a fresh connection every 50 ms for the 1 KB file.
What a server must show: its workers' memory stays flat (resident set of the server's processes
but the group leader, the master, sampled every second) and the probe is answered in < 50 ms
at p99. The readers' receive buffers are small (SO_RCVBUF 4 KiB) so that the kernel's buffers
fill and the server really holds 200 unfinished responses."""

import socket
import threading
import time

from herdtest import proc_status_field, process_group_pids


def worker_rss_kib(pgid):
    """Sum of VmRSS of the processes of group `pgid` other than its leader (the master)."""
    return sum(proc_status_field(pid, "VmRSS") or 0 for pid in process_group_pids(pgid) if pid != pgid)


def probe(port, stop_at, latencies, failures):
    """One fresh connection per 50 ms: GET /1k.bin with Connection: close, timed to the last byte."""
    request = b"GET /1k.bin HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    while time.monotonic() < stop_at:
        t0 = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(request)
                got = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += chunk
            if b" 200 " not in got.split(b"\r\n", 1)[0] or len(got) < 1024:
                failures.append("bad response")
            else:
                latencies.append(time.monotonic() - t0)
        except OSError as e:
            failures.append(str(e))
        time.sleep(max(0.0, 0.05 - (time.monotonic() - t0)))


def run_one(port, pgid, readers, secs, rate, log, label):
    socks = []
    request = b"GET /20m.bin HTTP/1.1\r\nHost: bench\r\n\r\n"
    for _ in range(readers):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
        s.settimeout(5)
        s.connect(("127.0.0.1", port))
        s.sendall(request)
        s.setblocking(False)
        socks.append(s)
    stop_at = time.monotonic() + secs
    latencies, failures = [], []
    prober = threading.Thread(target=probe, args=(port, stop_at, latencies, failures), daemon=True)
    prober.start()
    per_tick = max(1, rate // 10)  # ten reads a second per reader
    read_bytes, closed, samples = 0, 0, []
    next_sample = time.monotonic()
    open_socks = list(socks)
    while time.monotonic() < stop_at:
        tick = time.monotonic()
        for s in list(open_socks):
            try:
                chunk = s.recv(per_tick)
                if not chunk:
                    closed += 1
                    open_socks.remove(s)
                read_bytes += len(chunk)
            except BlockingIOError:
                pass
            except OSError:
                closed += 1
                open_socks.remove(s)
        if tick >= next_sample:
            samples.append(worker_rss_kib(pgid))
            next_sample += 1.0
        time.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))
    prober.join(timeout=10)
    for s in socks:
        s.close()
    lat = sorted(latencies)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else None
    res = {"readers": readers, "seconds": secs, "read_kib_per_s_per_reader": read_bytes / 1024 / secs / readers,
           "readers_cut": closed, "rss_kib_first": samples[0] if samples else None,
           "rss_kib_max": max(samples) if samples else None, "rss_kib_last": samples[-1] if samples else None,
           "probe_count": len(lat), "probe_p50_ms": lat[len(lat) // 2] * 1000 if lat else None,
           "probe_p99_ms": p99, "probe_failures": len(failures)}
    log(f"slow readers {label:13} workers' RSS {res['rss_kib_first']} -> max {res['rss_kib_max']} -> "
        f"{res['rss_kib_last']} KiB; probe p50 {res['probe_p50_ms'] or 0:.1f} ms p99 {p99 or 0:.1f} ms "
        f"({len(lat)} ok, {len(failures)} failed); readers cut {closed}; "
        f"{res['read_kib_per_s_per_reader']:.2f} KiB/s each")
    return res


def section(servers, root, tmp, start, stop, free_port, log=print, readers=200, secs=20, rate=1024):
    """One run per server (start/stop/free_port: staticbench's); {label: figures}."""
    out = {}
    for label, kind, binary in servers:
        port = free_port()
        p = start(kind, binary, root, port, tmp)
        try:
            out[label] = run_one(port, p.pid, readers, secs, rate, log, label)
        finally:
            stop(p)
    return out


def table(results):
    lines = ["| slow readers (200 × 1 KiB/s of 20 MB, 20 s) | workers' RSS first / max / last (KiB) "
             "| fresh 1 KB request p50 / p99 (ms) | probe failures | readers cut |", "|---|---|---|---|---|"]
    for label, r in results.items():
        lines.append(f"| {label} | {r['rss_kib_first']} / {r['rss_kib_max']} / {r['rss_kib_last']} | "
                     f"{r['probe_p50_ms'] or 0:.1f} / {r['probe_p99_ms'] or 0:.1f} | {r['probe_failures']} | "
                     f"{r['readers_cut']} |")
    return "\n".join(lines)
