"""Issue 23: async handlers on the worker's event loop (`/async-sleep/<ms>` of the debug handler).

Many requests in flight per worker, --worker-concurrency, cancellation (client gone, deadline,
drain past --graceful-timeout), drains and upgrades that wait for requests inside `await`, a
request longer than --timeout that does not get its worker killed, and sync and async handlers
in one server (a connection with a request in flight is never handed off). Raw sockets on
127.0.0.1, every loop bounded in count and time.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
import threading
import time

import pytest

from conftest import LOCALHOST, http_get, metric, pid_alive, wait_busy, wait_until
from test_metrics import scrape, start, value
from test_upgrade import upgradable_herd


def read_response_head(sock: socket.socket, buf: bytes = b"") -> tuple[int, bytes, bytes, bytes]:
    """One response with a Content-Length body: (status, head, body, bytes left over)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError(f"EOF before a response head (got {buf!r})")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    m = re.search(rb"(?i)content-length: *(\d+)", head)
    n = int(m.group(1)) if m else 0
    while len(rest) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("EOF in a response body")
        rest += chunk
    return status, head, rest[:n], rest[n:]


def read_response(sock: socket.socket, buf: bytes = b"") -> tuple[int, bytes, bytes]:
    """(status, body, bytes left over)."""
    status, _, body, rest = read_response_head(sock, buf)
    return status, body, rest


def get(port: int, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
    with socket.create_connection((LOCALHOST, port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        status, body, _ = read_response(s)
        return status, body


def concurrent_gets(port: int, paths: list[str], timeout: float = 20.0) -> list:
    """One connection and one GET per path, all at once; results in order ((status, body) or
    the exception)."""
    results: list = [None] * len(paths)

    def one(i: int):
        try:
            results[i] = get(port, paths[i], timeout)
        except Exception as e:  # noqa: BLE001 - reported by the caller
            results[i] = e

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(paths))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 5)
    return results


def in_flight(port: int, mport: int, path: str, n: int) -> tuple[list, threading.Thread]:
    """Starts `n` concurrent GETs of `path` and waits until all are in flight (from /metrics);
    returns the list their results go to and the thread to join."""
    results: list = []
    runner = threading.Thread(target=lambda: results.extend(concurrent_gets(port, [path] * n)), daemon=True)
    runner.start()
    wait_until(lambda: metric(mport, "herdd_async_requests_in_flight") == n, 5, what=f"{n} in flight")
    return results, runner


def test_64_concurrent_async_sleeps_on_one_worker(herd_factory):
    h, port, mport = start(herd_factory, 1)
    assert get(port, "/async-sleep/1") == (200, b"slept 1\n")
    t0 = time.monotonic()
    results = concurrent_gets(port, ["/async-sleep/200"] * 64)
    elapsed = time.monotonic() - t0
    assert results == [(200, b"slept 200\n")] * 64, [r for r in results if r != (200, b"slept 200\n")][:3]
    # One request at a time would take 64 * 0.2 = 12.8 s.
    assert elapsed < 2.0, elapsed
    m = scrape(mport)
    assert value(m, "herdd_async_requests_total") == 65
    assert value(m, "herdd_async_requests_in_flight") == 0
    assert value(m, "herdd_requests_total", code="2xx") == 65
    # The worker was never replaced.
    assert not h.events("worker-timeout") and len(h.worker_pids()) == 1


@pytest.mark.parametrize("connections", ["fresh", "open"])
def test_worker_concurrency_bounds_requests_in_flight(herd_factory, connections):
    # One worker, at most 4 tasks: 12 requests of 0.4 s take three rounds, never more than 4 at
    # once. Fresh connections wait in the accept queue while the worker is at its bound; on
    # connections it already holds, the requests wait in the worker for a place, in order.
    h, port, mport = start(herd_factory, 1, "--worker-concurrency", "4")
    peak = [0.0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], metric(mport, "herdd_async_requests_in_flight"))
            except Exception:  # noqa: BLE001 - a failed scrape only loses a sample
                pass
            stop.wait(0.02)

    socks = []
    if connections == "open":
        for _ in range(12):
            s = socket.create_connection((LOCALHOST, port), timeout=10)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(s)[0] == 200  # accepted and served by the worker
            socks.append(s)
    results: list = [None] * 12
    done_at: list = [None] * 12

    def one(i: int):
        try:
            if socks:
                socks[i].sendall(b"GET /async-sleep/400 HTTP/1.1\r\nHost: x\r\n\r\n")
                results[i] = read_response(socks[i])[:2]
            else:
                results[i] = get(port, "/async-sleep/400")
        except Exception as e:  # noqa: BLE001 - reported below
            results[i] = e
        done_at[i] = time.monotonic()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    stop.set()
    sampler.join(5)
    for s in socks:
        s.close()
    assert results == [(200, b"slept 400\n")] * 12, results
    assert peak[0] == 4, peak[0]
    times = sorted(t - t0 for t in done_at)
    # Three rounds: the 5th answer comes a round after the 4th.
    assert times[4] >= 0.75 and times[-1] >= 1.15 and times[-1] < 4.0, times


def test_worker_at_its_bound_steps_out_of_accepting(herd_factory):
    # Two workers, 2 tasks each: 4 long requests on fresh connections spread 2 and 2, although
    # EPOLLEXCLUSIVE would give most of them to the worker that waits first.
    h, port, mport = start(herd_factory, 2, "--worker-concurrency", "2", "--balance", "hot")
    done: list = []
    threads = []
    for i in range(4):
        t = threading.Thread(target=lambda: done.append(get(port, "/async-sleep/1500")), daemon=True)
        t.start()
        threads.append(t)
        # One at a time: each request is in flight before the next connects.
        wait_until(lambda: metric(mport, "herdd_async_requests_in_flight") >= i + 1, 5, what=f"{i + 1} in flight")

    def per_worker():
        m = scrape(mport)
        return sorted(v for (name, _), v in m.items() if name == "herdd_worker_async_in_flight")

    assert wait_until(lambda: per_worker() == [2.0, 2.0], 3, what="2 requests in flight in each worker")
    for t in threads:
        t.join(10)
    assert done == [(200, b"slept 1500\n")] * 4


def test_client_disconnect_cancels_the_task(herd_factory):
    h, port, mport = start(herd_factory, 1)
    for n, how in enumerate(["fin", "rst"], start=1):
        s = socket.create_connection((LOCALHOST, port), timeout=5)
        s.sendall(b"GET /async-sleep/30000 HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(lambda: metric(mport, "herdd_async_requests_in_flight") == 1, 5, what="request in flight")
        if how == "rst":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        t0 = time.monotonic()
        # The task ends at once (its Task.sleep is cancelled), not after 30 s.
        wait_until(lambda: metric(mport, "herdd_async_requests_in_flight") == 0, 3, what="task ended")
        assert time.monotonic() - t0 < 3
        assert metric(mport, "herdd_async_cancelled_total", reason="client-gone") == n
    assert metric(mport, "herdd_async_requests_total") == 2
    # Nothing was answered for them, and the worker serves on.
    assert get(port, "/async-sleep/5") == (200, b"slept 5\n")


def test_pipelined_requests_wait_behind_an_async_one_and_errors_answer_500(herd_factory):
    h, port, mport = start(herd_factory, 1)
    with socket.create_connection((LOCALHOST, port), timeout=10) as s:
        # One write: an async request, a sync one, a HEAD of an async one, a throwing handler.
        s.sendall(b"GET /async-sleep/150 HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
                  b"HEAD /async-sleep/10 HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /async-error HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /async-sleep/1 HTTP/1.1\r\nHost: x\r\n\r\n")
        status, body, rest = read_response(s)
        assert (status, body) == (200, b"slept 150\n")
        status, body, rest = read_response(s, rest)
        assert (status, body) == (200, b"hi")
        # HEAD: the head says the body's length, no body follows.
        while b"\r\n\r\n" not in rest:
            rest += s.recv(65536)
        head, _, rest = rest.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: 9" in head, head
        status, body, rest = read_response(s, rest)
        assert (status, body) == (500, b"500 Internal Server Error\n")
        assert read_response(s, rest)[:2] == (200, b"slept 1\n")
    errors = h.wait_log("handler-error")
    assert "failure requested by /async-error" in errors[0].raw
    assert metric(mport, "herdd_async_requests_total") == 4


def test_async_timeout_answers_504_and_keeps_the_connection(herd_factory):
    h, port, mport = start(herd_factory, 1, "--async-timeout", "1")
    with socket.create_connection((LOCALHOST, port), timeout=10) as s:
        t0 = time.monotonic()
        s.sendall(b"GET /async-sleep/8000 HTTP/1.1\r\nHost: x\r\n\r\n")
        status, body, rest = read_response(s)
        elapsed = time.monotonic() - t0
        assert status == 504 and body == b"504 Gateway Timeout\n"
        # Checked by the once-a-second sweep: between 1 and about 2 s.
        assert 0.9 <= elapsed < 3.5, elapsed
        # Nothing of the cancelled handler's answer was sent: the connection serves on.
        s.sendall(b"GET /async-sleep/10 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s, rest)[:2] == (200, b"slept 10\n")
    wait_until(lambda: metric(mport, "herdd_async_requests_in_flight") == 0, 3, what="cancelled task ended")
    assert metric(mport, "herdd_async_cancelled_total", reason="deadline") == 1


def test_async_request_longer_than_timeout_keeps_its_worker(herd_factory):
    # --timeout is the loop's heartbeat: it keeps beating while the request awaits.
    h, port, mport = start(herd_factory, 1, "--timeout", "1", "--async-timeout", "30")
    worker = h.wait_workers(1)[0]
    assert get(port, "/async-sleep/3000", timeout=10) == (200, b"slept 3000\n")
    assert h.worker_pids() == [worker]
    assert not h.events("worker-timeout")
    assert metric(mport, "herdd_worker_heartbeat_age_seconds", worker="0") < 1.0


def test_sigterm_drain_answers_every_request_in_flight(herd_factory):
    h, port, mport = start(herd_factory, 2, "--graceful-timeout", "10")
    results, runner = in_flight(port, mport, "/async-sleep/1500", 32)
    h.signal(signal.SIGTERM)
    runner.join(15)
    assert results == [(200, b"slept 1500\n")] * 32, [r for r in results if r != (200, b"slept 1500\n")][:3]
    assert h.wait(10) == 0
    assert not h.events("worker-killed")


def test_drain_past_graceful_timeout_cancels_and_answers_503(herd_factory):
    h, port, mport = start(herd_factory, 1, "--graceful-timeout", "2")
    results, runner = in_flight(port, mport, "/async-sleep/30000", 3)
    t0 = time.monotonic()
    h.signal(signal.SIGTERM)
    runner.join(10)
    # Cancelled shortly before the master's deadline (2 s), answered, and the worker exits by itself.
    assert results == [(503, b"503 Service Unavailable\n")] * 3, results
    assert 1.3 <= time.monotonic() - t0 < 2.5
    assert h.wait(10) == 0
    assert not h.events("worker-killed"), h.log_tail()
    assert h.events("async-drain-cancel")


def test_sync_and_async_in_one_server_never_hand_off_a_pending_connection(herd_factory):
    h, port, mport = start(herd_factory, 2)
    # Two connections on the same worker (the debug root answers with the worker's pid).
    socks: dict[int, list] = {}
    pair = None
    for _ in range(20):
        s = socket.create_connection((LOCALHOST, port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        _, body, _ = read_response(s)
        pid = int(re.search(rb"pid=(\d+)", body).group(1))
        socks.setdefault(pid, []).append(s)
        if len(socks[pid]) == 2:
            pair = (pid, socks[pid])
            break
    assert pair, "no two connections on one worker"
    pid, (c1, c2) = pair
    try:
        # c1 awaits; c2 blocks the same worker in a sync handler (its watcher is active);
        # meanwhile c1 pipelines another request: c1 turns readable, but has a response pending,
        # so it must stay with its worker (a hand-off would lose the pending response).
        c1.sendall(b"GET /async-sleep/800 HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(lambda: metric(mport, "herdd_async_requests_in_flight") >= 1, 5, what="c1's request awaiting")
        c2.sendall(b"GET /sleep/600 HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_busy(mport, exclude=[w for w in h.worker_pids() if w != pid])  # c2's worker in the sync handler
        c1.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        # Meanwhile the other worker serves async requests at once.
        t0 = time.monotonic()
        others = concurrent_gets(port, ["/async-sleep/100"] * 16)
        assert others == [(200, b"slept 100\n")] * 16
        assert time.monotonic() - t0 < 0.55  # before the sync handler ends
        status, body, rest = read_response(c1)
        assert (status, body) == (200, b"slept 800\n")
        status, body, _ = read_response(c1, rest)
        assert status == 200 and body == f"debug pid={pid}\n".encode()
        assert read_response(c2)[:2] == (200, b"slept 600\n")
    finally:
        for ss in socks.values():
            for s in ss:
                s.close()
    assert metric(mport, "herdd_dispatch_handed_off_total", listener="http") == 0


@pytest.fixture
def async_upgrade_env(tmp_path, notify):
    with upgradable_herd(tmp_path, notify, handler="debug", upgrade_timeout="10") as env:
        yield env


class AsyncClient(threading.Thread):
    """Back-to-back /async-sleep/<ms> on one keep-alive connection, no retry; a request that
    meets EOF or a reset is lost and counted. Reconnects after `Connection: close`."""

    def __init__(self, port: int, ms: int, seconds: float):
        super().__init__(daemon=True)
        self.port, self.ms, self.seconds = port, ms, seconds
        self.ok = 0
        self.lost: list[str] = []
        self._halt = threading.Event()

    def run(self):
        deadline = time.monotonic() + self.seconds
        sock, buf = None, b""
        while not self._halt.is_set() and time.monotonic() < deadline:
            try:
                if sock is None:
                    sock, buf = socket.create_connection((LOCALHOST, self.port), timeout=10), b""
                sock.sendall(f"GET /async-sleep/{self.ms} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                status, head, body, buf = read_response_head(sock, buf)
                if status != 200 or body != f"slept {self.ms}\n".encode():
                    self.lost.append(f"status {status} {body!r}")
                else:
                    self.ok += 1
                if b"connection: close" in head.lower():
                    sock.close()
                    sock = None
            except Exception as e:  # noqa: BLE001 - every failure is recorded
                self.lost.append(repr(e))
                if sock is not None:
                    sock.close()
                sock = None
        if sock is not None:
            sock.close()

    def stop(self):
        self._halt.set()
        self.join(20)


def test_upgrade_with_async_requests_in_flight_loses_none(async_upgrade_env):
    herd, _, port, mport, notify, extra = async_upgrade_env
    assert http_get(port, "/").status == 200  # activates herdd
    notify.wait_for("READY=1", timeout=15)
    old_pid = herd.pid
    old_workers = herd.wait_workers(2)
    clients = [AsyncClient(port, 150, 30) for _ in range(16)]
    for c in clients:
        c.start()
    try:
        wait_until(lambda: metric(mport, "herdd_async_requests_in_flight") >= 8, 5, what="requests in flight")
        n_before = notify.count()
        os.kill(old_pid, signal.SIGUSR2)
        msg = notify.wait_for(lambda m: "MAINPID=" in m, timeout=20, start=n_before)
        new_pid = int(re.search(r"MAINPID=(\d+)", msg).group(1))
        extra.append(new_pid)
        assert herd.wait(20) == 0
        # The load goes on against the new master: every client gets answers from it.
        for c in clients:
            start = c.ok
            wait_until(lambda: c.ok >= start + 2 or not c.is_alive(), 10, what="answers from the new master")
    finally:
        for c in clients:
            c.stop()
    lost = [x for c in clients for x in c.lost]
    assert lost == [], (lost[:5], herd.log_tail())
    assert sum(c.ok for c in clients) > 100
    for w in old_workers:
        assert not pid_alive(w)
    assert get(port, "/async-sleep/5") == (200, b"slept 5\n")
