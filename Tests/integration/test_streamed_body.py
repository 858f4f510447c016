"""Streamed response bodies (StreamedBody, docs/async.md "Streamed response bodies"): an async
producer's writes go out as they are written, the worker serves others meanwhile, a slow
client holds the producer back (bounded memory), a client that leaves cancels it, a failure
cuts the body, drains wait for a stream and cut one still going at --graceful-timeout. The
debug handler's /events, /events-fail, /produce and /producers endpoints drive it."""

from __future__ import annotations

import signal
import socket
import threading
import time

from conftest import LOCALHOST, closed_reasons, free_ports, http_get, metrics_listener, wait_until
from herdtest import proc_mem_kib


def start(herd_factory, *extra):
    port, mport = free_ports(2)
    h = herd_factory(["--workers", "1", "--listen", f"{LOCALHOST}:{port}", "--handler", "http=debug",
                      *metrics_listener(mport), *extra])
    h.wait_workers(1)
    return h, port, mport


class ChunkedReader:
    """Reads one chunked response from a socket, noting when each piece of the body came."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""
        self.head = b""
        self.body = bytearray()
        self.arrivals: list[tuple[float, int]] = []  # (monotonic time, chunk size)
        self.complete = False  # the last chunk came
        self.eof = False

    def _fill(self, deadline: float) -> bool:
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = self.sock.recv(262144)
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_head(self, deadline: float):
        while b"\r\n\r\n" not in self.buf:
            assert self._fill(deadline), f"no response head: {self.buf!r}"
        self.head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        assert b"Transfer-Encoding: chunked" in self.head, self.head

    def read_chunks(self, deadline: float, until: int = 1 << 62):
        """Reads chunks until the last one, EOF, the deadline, or `until` body bytes."""
        while not self.complete and len(self.body) < until and time.monotonic() < deadline:
            line, sep, rest = self.buf.partition(b"\r\n")
            if sep:
                size = int(line, 16)
                if len(rest) >= size + 2:
                    assert rest[size:size + 2] == b"\r\n", rest[:size + 2]
                    self.buf = rest[size + 2:]
                    if size == 0:
                        self.complete = True
                    else:
                        self.body += rest[:size]
                        self.arrivals.append((time.monotonic(), size))
                    continue
            if not self._fill(deadline):
                if self.eof:
                    return


def request(port: int, path: str, method: str = "GET") -> socket.socket:
    s = socket.create_connection((LOCALHOST, port), timeout=10)
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return s


def first_event(s: socket.socket) -> ChunkedReader:
    """A reader of the events response on `s`, once its head and first event came."""
    r = ChunkedReader(s)
    r.read_head(time.monotonic() + 5)
    r.read_chunks(time.monotonic() + 5, until=len(b"event 0\n"))
    assert r.body == b"event 0\n", r.body
    return r


def producers(port: int) -> int:
    return int(http_get(port, "/producers").body)


def events(n: int) -> bytes:
    return b"".join(b"event %d\n" % i for i in range(n))


def test_events_go_out_as_they_are_written_and_the_connection_is_kept(herd_factory):
    h, port, mport = start(herd_factory)
    with request(port, "/events/5/200") as s:
        t0 = time.monotonic()
        r = ChunkedReader(s)
        r.read_head(t0 + 5)
        r.read_chunks(t0 + 10)
        assert r.complete and r.body == events(5), (r.body, r.eof)
        first, last = r.arrivals[0][0] - t0, r.arrivals[-1][0] - t0
        # The first event at once (not after the whole body: 0.8 s), the last after 4 pauses.
        assert first < 0.5 and last >= 0.75, (first, last)
        assert len(r.arrivals) >= 4, r.arrivals  # in pieces, as written
        # Keep-alive: the same connection serves the next request.
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        rest = r.buf
        while b"ok\n" not in rest:
            data = s.recv(4096)
            assert data, rest
            rest += data
        assert rest.startswith(b"HTTP/1.1 200 OK\r\n"), rest
    assert producers(port) == 0


def test_one_worker_streams_many_bodies_at_once_and_answers_others_meanwhile(herd_factory):
    h, port, mport = start(herd_factory)
    n = 20
    results: list[ChunkedReader] = []
    lock = threading.Lock()

    def client():
        with request(port, "/events/10/100") as s:
            r = ChunkedReader(s)
            r.read_head(time.monotonic() + 10)
            r.read_chunks(time.monotonic() + 20)
            with lock:
                results.append(r)

    t0 = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(n)]
    for t in threads:
        t.start()
    # While 20 producers await on the only worker, other requests are answered promptly.
    latencies = []
    for _ in range(5):
        t = time.monotonic()
        assert http_get(port, "/health").status == 200
        latencies.append(time.monotonic() - t)
        time.sleep(0.05)
    for t in threads:
        t.join(30)
    elapsed = time.monotonic() - t0
    assert len(results) == n and all(r.complete and r.body == events(10) for r in results)
    # Each body takes 0.9 s; one at a time they would take 18 s.
    assert elapsed < 6, elapsed
    assert max(latencies) < 1.0, latencies


def test_a_client_that_leaves_cancels_the_producer(herd_factory):
    h, port, mport = start(herd_factory)
    s = request(port, "/events/100000/20")
    first_event(s)
    assert producers(port) == 1
    s.close()
    wait_until(lambda: producers(port) == 0, 5, what="the producer to end")
    reasons = closed_reasons(mport)
    assert reasons["client-closed"] + reasons["write-error"] >= 1, reasons


def test_a_failing_producer_cuts_the_body(herd_factory):
    h, port, mport = start(herd_factory)
    with request(port, "/events-fail/3") as s:
        r = ChunkedReader(s)
        r.read_head(time.monotonic() + 5)
        r.read_chunks(time.monotonic() + 5)
        # What was written goes out; then the connection closes without the last chunk.
        assert r.body == events(3) and not r.complete and r.eof, (r.body, r.complete, r.eof)
    assert wait_until(lambda: closed_reasons(mport)["error"] == 1, 5, what="close reason error")


def test_a_slow_client_holds_the_producer_back(herd_factory):
    h, port, mport = start(herd_factory)
    (worker,) = h.worker_pids()
    before = proc_mem_kib(worker)["VmRSS"]
    pieces = 2000  # 32 MB if nothing held the producer back
    with request(port, f"/produce/{pieces}") as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        time.sleep(1.5)  # the client reads nothing: socket buffers fill, the producer must wait
        grown = proc_mem_kib(worker)["VmRSS"] - before
        assert grown < 16 * 1024, f"worker RSS grew {grown} KiB while the client did not read"
        r = ChunkedReader(s)
        r.read_head(time.monotonic() + 5)
        r.read_chunks(time.monotonic() + 60)
        assert r.complete and len(r.body) == pieces * 16384, (len(r.body), r.eof)
        assert r.body[:32] == b"0123456789abcdef" * 2
    assert producers(port) == 0


def test_head_never_starts_the_producer(herd_factory):
    h, port, mport = start(herd_factory)
    with request(port, "/events/3/2000", method="HEAD") as s:
        t0 = time.monotonic()
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            assert chunk, data
            data += chunk
        assert time.monotonic() - t0 < 1.0 and data.startswith(b"HTTP/1.1 200 OK\r\n"), data
    assert producers(port) == 0


def test_a_drain_waits_for_a_stream(herd_factory):
    h, port, mport = start(herd_factory, "--graceful-timeout", "20")
    with request(port, "/events/10/100") as s:
        r = first_event(s)
        h.signal(signal.SIGTERM)
        r.read_chunks(time.monotonic() + 15)
        assert r.complete and r.body == events(10), (r.body, r.eof)
    assert h.wait(20) == 0


def test_a_stream_still_going_at_the_graceful_timeout_is_cut_and_the_worker_exits(herd_factory):
    h, port, mport = start(herd_factory, "--graceful-timeout", "3")
    with request(port, "/events/100000/50") as s:
        r = first_event(s)
        h.signal(signal.SIGTERM)
        r.read_chunks(time.monotonic() + 20)
        # Cut without the last chunk, by the worker itself (at the graceful timeout less its
        # margin), which then exits: not by the master's SIGKILL at 3 s.
        assert r.eof and not r.complete, (r.complete, len(r.body))
    assert h.wait(20) == 0
    (exited,) = h.events("worker-exited")
    assert "exit_status=exit 0 " in exited.raw, h.log_tail()  # not "signal 9 (Killed)"
