#!/usr/bin/env python3
"""The client processes of bench/run's "connections" section (bench/herdbench/connections.py).

`python3 bench/idle_conns.py client --port P --count N --src 127.0.X.Y` opens N connections from
source address SRC (bound with IP_BIND_ADDRESS_NO_PORT, so the ephemeral port is chosen per
4-tuple at connect time), sends one keep-alive GET on each, reads the whole response, keeps them
idle, prints `ready ok=.. failed=.. seconds=..`, then waits for a line (or EOF) on stdin and closes
them all. At most WINDOW connections are in flight at once (the servers' accept queues are 1024
deep), and everything is bounded in time.

`bench/idle_conns.py measure --herdd BINARY [--count N] [--workers W]` is a short standalone
check: one herdd started through Tests/support/herdtest.py, N idle connections (default 1,000)
from client processes of this file, the PSS growth per connection and the PSS after they close.
"""

import selectors
import shutil
import socket
import sys
import time

WINDOW = 256
IP_BIND_ADDRESS_NO_PORT = 24  # linux/in.h
REQ = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


# ----------------------------------------------------------------------------- client role

def client(port, count, src, timeout=90.0):
    sel = selectors.DefaultSelector()
    socks, done, failed = [], 0, 0
    state = {}  # sock -> bytearray of the response so far (None = request not sent yet)
    t0 = time.monotonic()
    started = 0

    def start_one():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        s.bind((src, 0))
        s.setblocking(False)
        err = s.connect_ex(("127.0.0.1", port))
        if err not in (0, 115):  # EINPROGRESS
            s.close()
            return False
        state[s] = None
        sel.register(s, selectors.EVENT_WRITE)
        return True

    while done + failed < count and time.monotonic() - t0 < timeout:
        while started < count and len(state) < WINDOW:
            started += 1
            if not start_one():
                failed += 1
        for key, ev in sel.select(timeout=1.0):
            s = key.fileobj
            if state[s] is None:
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                    sel.unregister(s); s.close(); del state[s]; failed += 1
                    continue
                try:
                    s.send(REQ)
                except OSError:
                    sel.unregister(s); s.close(); del state[s]; failed += 1
                    continue
                state[s] = bytearray()
                sel.modify(s, selectors.EVENT_READ)
                continue
            try:
                b = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                b = b""
            if not b:
                sel.unregister(s); s.close(); del state[s]; failed += 1
                continue
            buf = state[s]
            buf += b
            head, sep, body = bytes(buf).partition(b"\r\n\r\n")
            if not sep:
                continue
            length = 0
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v.strip())
            if len(body) >= length:
                sel.unregister(s)
                del state[s]
                if head.startswith(b"HTTP/1.1 200"):
                    socks.append(s)
                    done += 1
                else:
                    s.close()
                    failed += 1
    for s in list(state):
        sel.unregister(s); s.close(); failed += 1
    print(f"ready ok={done} failed={failed + count - started} seconds={time.monotonic() - t0:.2f}", flush=True)
    sys.stdin.readline()  # "close" or EOF (the bench died)
    for s in socks:
        s.close()
    print("closed", flush=True)


# ----------------------------------------------------------------------------- standalone check

def measure(binary, count, workers):
    """One herdd (hello, through herdtest like every server of bench/run) and `count` idle
    connections; prints the PSS of master + workers before, with them open, after they close."""
    import tempfile
    from herdbench.common import STARTED
    from herdbench.connections import IdleClients, raise_nofile, server_connections, settle_pss, wait_server_closed
    from herdbench.servers import Server
    from herdtest import free_port, raise_on_signals

    soft = raise_nofile(count * 2 + 4096)[0]
    raise_on_signals()
    workdir = tempfile.mkdtemp(prefix="herdd-idle-")
    port = free_port()
    args = ["--workers", str(workers), "--listen", f"127.0.0.1:{port}", "--keepalive-timeout", "600", "--backlog", "4096"]
    try:
        srv = Server.herdd(binary, args, workers, [port], workdir, "herdd").wait_ready()
        time.sleep(1.0)
        before = settle_pss(srv, 5)
        clients = IdleClients(port, count)
        try:
            time.sleep(0.5)
            held, seen = settle_pss(srv, 5), server_connections(srv)
        finally:
            clients.close()
        closed = wait_server_closed(srv)
        time.sleep(1.5)  # herdd gives memory back on its once-a-second sweep
        after = settle_pss(srv, 6)
        per = (held - before) * 1024 / clients.ok if clients.ok else None
        print(f"herdd {binary}, {workers} workers, RLIMIT_NOFILE {soft}: ready in {srv.ready_s * 1000:.1f} ms; "
              f"{clients.ok} idle connections opened ({clients.failed} failed, {clients.seconds:.1f} s), "
              f"{seen} established at the server")
        print(f"PSS master + workers: before {before} KiB, open {held} KiB "
              f"({'-' if per is None else f'{per:.0f}'} B/conn), after close {after} KiB "
              f"(closed by the server: {closed})")
    finally:
        STARTED.end_all()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if clients.ok == count and clients.failed == 0 else 1


if __name__ == "__main__":
    import argparse
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        ap = argparse.ArgumentParser()
        ap.add_argument("client")
        ap.add_argument("--port", type=int, required=True)
        ap.add_argument("--count", type=int, required=True)
        ap.add_argument("--src", default="127.0.0.1")
        a = ap.parse_args()
        client(a.port, a.count, a.src)
    elif len(sys.argv) > 1 and sys.argv[1] == "measure":
        ap = argparse.ArgumentParser()
        ap.add_argument("measure")
        ap.add_argument("--herdd", required=True, help="herdd binary")
        ap.add_argument("--count", type=int, default=1000, help="idle connections (default 1000, at most 50000)")
        ap.add_argument("--workers", type=int, default=2)
        a = ap.parse_args()
        if not 0 < a.count <= 50000:
            sys.exit("--count: 1 to 50000")
        try:
            sys.exit(measure(a.herdd, a.count, a.workers))
        except KeyboardInterrupt:
            sys.exit(130)
    else:
        sys.exit("usage: idle_conns.py client --port P --count N --src ADDR   (started by bench/run's connections section)\n"
                 "       idle_conns.py measure --herdd BINARY [--count N] [--workers W]")
