"""Issue 24: every connection herdd closes carries a reason, counted in
`herdd_connections_closed_total{reason}` (summed from the scoreboard by the master, kept when
a worker exits) and logged at debug level (`event=connection-closed`)."""

from __future__ import annotations

import os
import signal
import socket
import time

from conftest import LOCALHOST, closed_reasons, free_ports, wait_until


def start(herd_factory, *extra, workers=1):
    port, mport = free_ports(2)
    h = herd_factory(["--workers", str(workers), "--listen", f"{LOCALHOST}:{port}", "--handler", "http=debug",
                      "--listen", f"{LOCALHOST}:{mport},name=metrics", "--handler", "metrics=metrics",
                      "--log-level", "debug", *extra])
    h.wait_workers(workers)
    return h, port, mport


def nonzero(mport):
    return {r: n for r, n in closed_reasons(mport).items() if n}


def test_each_way_a_connection_ends_is_counted_and_logged(herd_factory):
    h, port, mport = start(herd_factory, "--keepalive-timeout", "1", "--header-timeout", "1")
    # keep-alive timeout: a request, then silence
    a = socket.create_connection((LOCALHOST, port), timeout=10)
    a.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
    assert a.recv(65536).startswith(b"HTTP/1.1 200 ")
    # header timeout: half a head
    b = socket.create_connection((LOCALHOST, port), timeout=10)
    b.sendall(b"GET /ping HTTP/1.1\r\n")
    # protocol error: garbage, then the client closes after reading the 400
    c = socket.create_connection((LOCALHOST, port), timeout=10)
    c.sendall(b"NOT HTTP\r\n\r\n")
    assert c.recv(65536).startswith(b"HTTP/1.1 400 ")
    c.close()
    # response done: the client asked for close
    d = socket.create_connection((LOCALHOST, port), timeout=10)
    d.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    while d.recv(65536):
        pass
    d.close()
    # client closed: a keep-alive connection the client ends
    e = socket.create_connection((LOCALHOST, port), timeout=10)
    e.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
    assert e.recv(65536).startswith(b"HTTP/1.1 200 ")
    e.close()
    assert b.recv(65536).startswith(b"HTTP/1.1 408 ")
    b.close()
    want = {"keepalive-timeout": 1, "header-timeout": 1, "protocol-error": 1, "response-done": 1, "client-closed": 1}
    wait_until(lambda: nonzero(mport) == want, 10, what=f"closes {want}")
    a.close()
    # The worker logs right after it counts: wait for the lines too.
    wait_until(lambda: sorted(l["reason"] for l in h.events("connection-closed")) == sorted(want), 5,
               what=f"one connection-closed log line per close {sorted(want)}")


def test_connections_open_when_a_worker_is_killed_count_as_worker_exit(herd_factory):
    h, port, mport = start(herd_factory)
    conns = []
    for _ in range(3):
        s = socket.create_connection((LOCALHOST, port), timeout=10)
        s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
        conns.append(s)
    (worker,) = h.worker_pids()
    os.kill(worker, signal.SIGKILL)
    h.wait_workers(1, exclude=[worker])
    wait_until(lambda: nonzero(mport) == {"worker-exit": 3}, 10, what="3 worker-exit closes")
    for s in conns:
        s.close()
