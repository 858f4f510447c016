"""Issue 13: workers that leave (max-requests, reload, TTOU, upgrade) lose no request, and a
graceful stop refuses new connections at once on sockets herdd bound itself.

The clients send back-to-back keep-alive requests and never retry: a request that meets an EOF
or a reset before any byte of its response is lost, and the test counts it. A response with
`Connection: close` ends the connection normally (the client opens a new one for the next
request, which is not a retry). Every loop is bounded in count and time; 127.0.0.1 only.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import pytest

from conftest import (LOCALHOST, closed_reasons, free_ports, http_get, metrics_listener, parse_responses, pid_alive,
                      recv_until, wait_busy, wait_until)
from conftest import stop_process_tree

CLIENTS = 8
REQUESTS = 2500


class NoRetryClient(threading.Thread):
    """`requests` back-to-back GETs on keep-alive connections, no retry."""

    def __init__(self, port: int, requests: int, deadline: float, progress: list[int], index: int):
        super().__init__(daemon=True)
        self.port = port
        self.requests = requests
        self.deadline = deadline
        self.progress = progress
        self.index = index
        self.ok = 0
        self.lost: list[str] = []
        self.connections = 0

    def run(self):
        sock = None
        buf = b""
        req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        for _ in range(self.requests):
            if time.monotonic() > self.deadline:
                self.lost.append("deadline")
                break
            try:
                if sock is None:
                    sock = socket.create_connection((LOCALHOST, self.port), timeout=10)
                    buf = b""
                    self.connections += 1
                sock.sendall(req)
                while b"\r\n\r\n" not in buf:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise EOFError("EOF before the response")
                    buf += chunk
                head, _, rest = buf.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                status = int(lines[0].split(" ")[1])
                hdrs = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
                n = int(hdrs.get("content-length", "0"))
                while len(rest) < n:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise EOFError("EOF in the body")
                    rest += chunk
                buf = rest[n:]
                if status != 200:
                    self.lost.append(f"status {status}")
                else:
                    self.ok += 1
                if hdrs.get("connection", "").lower() == "close":
                    sock.close()
                    sock = None
            except (OSError, EOFError) as e:
                self.lost.append(repr(e))
                if sock is not None:
                    sock.close()
                sock = None
            self.progress[self.index] += 1
        if sock is not None:
            sock.close()


def run_load(port: int, during=None, timeout: float = 150.0) -> list[NoRetryClient]:
    progress = [0] * CLIENTS
    deadline = time.monotonic() + timeout
    clients = [NoRetryClient(port, REQUESTS, deadline, progress, i) for i in range(CLIENTS)]
    for c in clients:
        c.start()
    if during is not None:
        during(lambda: sum(progress))
    for c in clients:
        c.join(timeout + 10)
        assert not c.is_alive(), "client thread did not finish"
    return clients


def assert_none_lost(clients: list[NoRetryClient], log_tail: str = ""):
    lost = [l for c in clients for l in c.lost]
    ok = sum(c.ok for c in clients)
    assert lost == [] and ok == CLIENTS * REQUESTS, (
        f"{len(lost)} of {CLIENTS * REQUESTS} requests lost: {lost[:10]}\n{log_tail}")


def test_max_requests_recycling_loses_no_request(herd_factory):
    port = free_ports(1)[0]
    h = herd_factory(["--workers", "4", "--listen", f"{LOCALHOST}:{port}",
                      "--max-requests", "200", "--max-requests-jitter", "50"])
    clients = run_load(port)
    assert_none_lost(clients, h.log_tail())
    recycled = [l for l in h.events("worker-exited") if l.get("reason") == "max-requests"]
    assert len(recycled) >= 40, f"only {len(recycled)} max-requests recycles"
    # Connections ended by `Connection: close` (one per recycle and client), not by EOFs.
    assert sum(c.connections for c in clients) > CLIENTS


def _after(progress, fraction: float, timeout: float = 60):
    wait_until(lambda: progress() >= CLIENTS * REQUESTS * fraction, timeout, interval=0.01,
               what=f"{fraction:.0%} of the load")


@pytest.mark.parametrize("how", ["HUP", "TTOU", "USR2"])
def test_reload_resize_and_upgrade_lose_no_request(herd_factory, how):
    port = free_ports(1)[0]
    h = herd_factory(["--workers", "8" if how == "TTOU" else "3", "--listen", f"{LOCALHOST}:{port}",
                      "--graceful-timeout", "10", "--upgrade-timeout", "20"])
    masters = [h.pid]

    def during(progress):
        if how == "HUP":
            for i, frac in enumerate((0.15, 0.4, 0.65), 1):
                _after(progress, frac)
                h.signal(signal.SIGHUP)
                h.wait_log("reload-done", timeout=30, count=i)
        elif how == "TTOU":
            # From 8 workers down to 1: every worker but one leaves, so the clients' connections
            # (made once, at the start) sit on leaving workers again and again.
            for i in range(1, 8):
                _after(progress, 0.1 * i)
                h.signal(signal.SIGTTOU)
                wait_until(lambda: len([l for l in h.events("worker-exited") if l.get("reason") == "ttou"]) >= i,
                           30, what=f"{i} TTOU exits")
        else:
            for i, frac in enumerate((0.15, 0.5), 1):
                _after(progress, frac)
                os.kill(masters[-1], signal.SIGUSR2)
                done = h.wait_log("upgrade-done", timeout=30, count=i)
                masters.append(int(done[i - 1]["new_pid"]))
                wait_until(lambda: not pid_alive(masters[-2]), 30, what="old master drained")

    try:
        clients = run_load(port, during)
        assert_none_lost(clients, h.log_tail())
        if how == "TTOU":
            h.wait_workers(1)
        if how == "USR2":
            assert len(masters) == 3 and pid_alive(masters[-1])
    finally:
        for p in masters[1:]:
            stop_process_tree(p)


def test_graceful_stop_refuses_new_connections_at_once_on_own_sockets(herd_factory):
    """Self-bound listeners are closed when the drain starts: a connect during the drain is
    refused at once instead of queueing until the master exits and then being reset."""
    port, mport = free_ports(2)
    h = herd_factory(["--workers", "2", "--listen", f"{LOCALHOST}:{port}", "--handler", "http=debug",
                      "--graceful-timeout", "10", *metrics_listener(mport)])
    h.wait_workers(2)
    result = {}

    def slow():
        try:
            result["slow"] = http_get(port, "/sleep/2500", timeout=10).status
        except Exception as e:  # noqa: BLE001
            result["slow"] = repr(e)

    t = threading.Thread(target=slow)
    t.start()
    wait_busy(mport)  # the slow request is in a worker's handler
    h.signal(signal.SIGTERM)
    h.wait_log("stop", timeout=5)
    time.sleep(0.2)  # a duration: the master is still there a while after the stop began
    assert h.poll() is None, "the master must still be draining the slow request"
    t0 = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        s = socket.create_connection((LOCALHOST, port), timeout=5)
        s.close()
    assert time.monotonic() - t0 < 1
    t.join(10)
    assert result.get("slow") == 200, result
    assert h.wait(10) == 0


def test_graceful_stop_serves_the_connections_already_queued_on_own_sockets(herd_factory):
    """A graceful stop seals the sockets herdd bound (a drop-all socket filter: nothing new joins
    the accept queue) instead of shutting them down at once, which would reset the connections
    already queued with their requests. Each worker's drain begins by taking what is queued, and
    answers it with `Connection: close`; the sockets close (new clients refused) once their
    queues are empty."""
    from test_metrics import scrape, value

    port, mport = free_ports(2)
    h = herd_factory(["--workers", "2", "--listen", f"{LOCALHOST}:{port}", "--handler", "http=debug",
                      "--listen", f"{LOCALHOST}:{mport},name=metrics", "--handler", "metrics=metrics",
                      "--graceful-timeout", "20"])
    h.wait_workers(2)
    slow: list = []
    sleepers = [threading.Thread(target=lambda: slow.append(http_get(port, "/sleep/1500", timeout=20).status))
                for _ in range(2)]
    for t in sleepers:
        t.start()
    wait_until(lambda: value(scrape(mport), "herdd_workers", state="busy") == 2, 5, what="2 busy workers")
    # Both workers are inside a handler: these wait in the kernel's accept queue, request sent.
    queued = []
    for i in range(6):
        s = socket.create_connection((LOCALHOST, port), timeout=10)
        s.sendall(f"GET /queued-{i} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        queued.append(s)
    try:
        wait_until(lambda: value(scrape(mport), "herdd_listen_backlog", listener="http") == 6, 5, what="6 queued")
        h.signal(signal.SIGTERM)
        h.wait_log("listeners-sealed", timeout=5)
        for i, s in enumerate(queued):
            data = recv_until(s, time.monotonic() + 10)  # to EOF: the worker closes after it
            (r,) = parse_responses(data)
            assert r.status == 200 and r.header("Connection") == "close", (i, r)
            assert r.body.startswith(b"debug pid="), (i, r.body)
        for t in sleepers:
            t.join(10)
        assert slow == [200, 200]
        closed = h.wait_log("listeners-closed", timeout=5, count=2)  # metrics at once, then http
        assert any(line["listeners"] == "http" for line in closed), [line.raw for line in closed]
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((LOCALHOST, port), timeout=5).close()
        assert h.wait(10) == 0
    finally:
        for s in queued:
            s.close()


def _one_worker_reloaded_around(herd_factory, conn_setup):
    """One worker; `conn_setup(port)` opens a connection in some state on it; then a reload
    (SIGHUP) makes that worker drain while the connection stays silent for more than
    DrainPolicy's second. Returns (herd, metrics port, connection, old worker pid)."""
    port, mport = free_ports(2)
    h = herd_factory(["--workers", "1", "--listen", f"{LOCALHOST}:{port}", "--handler", "http=debug",
                      "--listen", f"{LOCALHOST}:{mport},name=metrics", "--handler", "metrics=metrics"])
    (old,) = h.wait_workers(1)
    s = conn_setup(port)
    time.sleep(1.3)  # silent for longer than DrainPolicy.idleNanos before the drain starts
    h.signal(signal.SIGHUP)
    h.wait_log("reload-done", timeout=20)
    assert pid_alive(old), "the old worker left with the connection open"
    time.sleep(1.5)  # and silent again while the old worker drains (swept every 100 ms)
    return h, mport, s, old


def test_drain_keeps_a_half_received_request_and_answers_it_with_close(herd_factory):
    """Issue 24 part 5: a draining worker must not close a connection whose request is half
    received because it has been silent for a second; the request gets its answer, with
    `Connection: close`."""
    def setup(port):
        s = socket.create_connection((LOCALHOST, port), timeout=10)
        s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n")
        return s

    h, mport, s, old = _one_worker_reloaded_around(herd_factory, setup)
    with s:
        s.sendall(b"\r\n")
        data = recv_until(s, time.monotonic() + 10)
    (r,) = parse_responses(data)
    assert r.status == 200 and r.body.startswith(f"debug pid={old}\n".encode()), (r, h.log_tail())
    assert r.header("Connection") == "close"
    wait_until(lambda: not pid_alive(old), 10, what="the old worker gone after answering")
    closes = closed_reasons(mport)
    assert closes["response-done"] == 1 and closes["drain"] == 0, closes


def test_drain_keeps_a_connection_with_unsent_output(herd_factory):
    """Issue 24 part 5: a response the client has not read yet (the socket is full, nothing
    moves for seconds) is not closed by the drain as idle: the client gets all of it."""
    def setup(port):
        s = socket.create_connection((LOCALHOST, port), timeout=20)
        # A small receive window and about 7 MB of response: most of it is still ours to send
        # (the kernel's send buffer grows to 4 MB at most) when the drain starts.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
        s.sendall(b"GET /stream/400000 HTTP/1.1\r\nHost: x\r\n\r\n")
        return s

    h, mport, s, old = _one_worker_reloaded_around(herd_factory, setup)
    with s:
        data = b""
        deadline = time.monotonic() + 120
        while not data.endswith(b"\r\n0\r\n\r\n"):
            assert time.monotonic() < deadline, f"{len(data)} bytes in 120 s"
            chunk = s.recv(1 << 20)
            assert chunk, f"response cut after {len(data)} bytes\n{h.log_tail()}"
            data += chunk
    (r,) = parse_responses(data)
    assert r.status == 200 and r.body.endswith(b"chunk 399999\n")
    closes = closed_reasons(mport)
    assert closes["drain"] == 0 and closes["write-stall"] == 0, closes
