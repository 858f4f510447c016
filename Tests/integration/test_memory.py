"""Memory per idle keep-alive connection, memory given back, and correctness of the pooled
per-connection buffers (issue 17).

An idle connection holds no input or output buffer: they come from a per-worker pool when bytes
arrive and go back when the connection is idle again. When many connections went away, the worker
shrinks its connection table and returns free heap pages (malloc_trim) on its next sweep.
"""

import resource
import selectors
import socket
import threading
import time

import pytest

from conftest import LOCALHOST, free_port, parse_responses, unread_by_server, wait_until
from herdtest import proc_mem_kib, settled

# Timing-sensitive (memory figures, and memory given back within a deadline):
# run alone, after the other CI lanes' compiles (test.sh).
pytestmark = pytest.mark.serial

# 0.1 had ~5,800 bytes of PSS per idle connection (4 KiB input buffer, 1 KiB output buffer and
# the Connection object with the parser inline); with pooled buffers and parser state it is ~260
# (the object and its table slot). The bound leaves 4x headroom over what we measure and is far
# below the old cost (a connection that kept even its input buffer would exceed it).
MAX_BYTES_PER_IDLE_CONN = 1024
IDLE_CONNS = 3000


def pss_kib(pid: int) -> int:
    """The worker's anonymous PSS (heap and anonymous mmaps: what connections cost), or its whole
    PSS on kernels without Pss_Anon. Pages of files (the binary, libc) are left out: their share
    changes whenever other processes on the machine map or unmap them."""
    mem = proc_mem_kib(pid)
    assert "Pss" in mem, f"no Pss in /proc/{pid}/smaps_rollup"
    return mem.get("Pss_Anon", mem["Pss"])


def settled_pss(pid: int, timeout: float = 6.0) -> int:
    """PSS once three samples 0.3 s apart agree within 32 KiB (or the last one at the timeout)."""
    return settled(lambda: pss_kib(pid), tolerance=32, interval=0.3, timeout=timeout)


def raise_nofile(need: int):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        assert hard == resource.RLIM_INFINITY or hard >= need, f"RLIMIT_NOFILE hard limit {hard} < {need}"
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def open_idle(port: int, n: int, timeout: float = 60.0) -> list[socket.socket]:
    """n keep-alive connections, one GET each with its response read; then they stay idle.
    At most 200 in flight (the listen backlog)."""
    sel = selectors.DefaultSelector()
    req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    done: list[socket.socket] = []
    pending: dict[socket.socket, bytearray] = {}
    started = 0
    deadline = time.monotonic() + timeout
    while len(done) < n:
        assert time.monotonic() < deadline, f"only {len(done)} of {n} idle connections opened in {timeout} s"
        while started < n and len(pending) < 200:
            s = socket.create_connection((LOCALHOST, port), timeout=5)
            s.sendall(req)
            s.setblocking(False)
            pending[s] = bytearray()
            sel.register(s, selectors.EVENT_READ)
            started += 1
        for key, _ in sel.select(timeout=1.0):
            s = key.fileobj
            try:
                b = s.recv(4096)
            except BlockingIOError:
                continue
            assert b, f"server closed an idle connection after one request ({len(done)} open)"
            buf = pending[s]
            buf += b
            if b"\r\n\r\n" in buf:
                head, _, body = bytes(buf).partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                if len(body) >= length:
                    assert head.startswith(b"HTTP/1.1 200"), head
                    sel.unregister(s)
                    del pending[s]
                    done.append(s)
    sel.close()
    return done


@pytest.fixture
def one_worker(herd_factory):
    port = free_port()
    h = herd_factory([
        "--workers", "1", "--listen", f"127.0.0.1:{port}", "--handler", "http=debug",
        "--max-body", "4000000", "--keepalive-timeout", "300",
    ])
    h.port = port
    (h.worker,) = h.wait_workers(1)
    return h


def get_on(s: socket.socket):
    """One GET on an idle keep-alive connection; asserts a whole 200 from the hello handler."""
    s.setblocking(True)
    s.settimeout(5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"hello" not in data:
        chunk = s.recv(4096)
        assert chunk, "connection closed after idling"
        data += chunk
    assert data.startswith(b"HTTP/1.1 200"), data


@pytest.mark.parametrize("late", [0, 5])
def test_idle_connections_cost_little_and_memory_is_given_back(herd_factory, late):
    """With late=5, five connections opened after the 3,000 stay open while those close (issue
    24): their objects sit above the freed ones in the heap, so free() alone cannot lower the
    heap's top; the worker's reclaim (malloc_trim) must give the pages in between back."""
    raise_nofile(2 * IDLE_CONNS + 512)  # herdd inherits the limit
    port = free_port()
    h = herd_factory(["--workers", "1", "--listen", f"127.0.0.1:{port}", "--handler", "http=hello",
                      "--keepalive-timeout", "300"])
    (worker,) = h.wait_workers(1)
    # Warm-up: the first requests allocate what every request needs (pooled buffers, caches).
    warm = open_idle(port, 50)
    for s in warm:
        s.close()
    time.sleep(1.5)  # a duration: idle across a sweep (every 1 s), which gives pooled buffers back
    base = settled_pss(worker)

    socks = open_idle(port, IDLE_CONNS)
    late_socks = open_idle(port, late) if late else []
    try:
        held = settled_pss(worker)
        per_conn = (held - base) * 1024 / IDLE_CONNS
        assert per_conn <= MAX_BYTES_PER_IDLE_CONN, (
            f"{per_conn:.0f} bytes of worker PSS per idle connection (bound {MAX_BYTES_PER_IDLE_CONN}): "
            f"{base} KiB -> {held} KiB for {IDLE_CONNS} connections")
        # Still served after being idle: a second request on a sample of them.
        for s in socks[:: IDLE_CONNS // 20]:
            get_on(s)
    finally:
        for s in socks:
            s.close()

    # The worker sees the closes, then gives the memory back on its sweep (once a second).
    def given_back():
        return pss_kib(worker) - base <= max(0.25 * (held - base), 256)
    try:
        wait_until(given_back, 10, interval=0.3, what="memory given back after the clients closed")
    except AssertionError:
        raise AssertionError(f"worker PSS {pss_kib(worker)} KiB after close; baseline {base} KiB, "
                             f"{held} KiB with {IDLE_CONNS} idle connections")
    r = socket.create_connection((LOCALHOST, port), timeout=5)
    r.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert r.recv(4096).startswith(b"HTTP/1.1 200")
    r.close()
    # The late connections lived through the reclaim and still serve.
    try:
        for s in late_socks:
            get_on(s)
    finally:
        for s in late_socks:
            s.close()


def _read_responses(s: socket.socket, count: int, timeout: float = 10.0):
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        try:
            rs = parse_responses(data)
            if len(rs) >= count and all(
                r.header("Content-Length") is None or len(r.body) == int(r.header("Content-Length")) for r in rs
            ):
                return rs
        except (AssertionError, ValueError, IndexError):
            pass
        assert time.monotonic() < deadline, f"no {count} complete responses within {timeout} s: {data[:300]!r}"
        s.settimeout(max(0.05, deadline - time.monotonic()))
        chunk = s.recv(65536)
        assert chunk, f"server closed the connection; got {data[:300]!r}"
        data += chunk


def test_partial_requests_on_many_connections_keep_their_own_bytes(one_worker):
    """100 connections each send the first part of a different request (their bytes wait in a
    buffer of their own), then the rest in reverse order: every response belongs to its request.
    Then each idles past a sweep and serves another request on the same connection."""
    port = one_worker.port
    conns = []
    for i in range(100):
        s = socket.create_connection((LOCALHOST, port), timeout=5)
        body = b"body-%03d-" % i * 10
        req = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        cut = 20 + i % 40  # inside the head for some, inside the body for others
        s.sendall(req[:cut])
        conns.append((s, req, cut, body))
    # The worker has read every partial request (and holds it) before the rest arrives.
    wait_until(lambda: unread_by_server(*[c[0] for c in conns]) == [0] * len(conns), 30,
               what="the worker to read every partial request")
    for s, req, cut, body in reversed(conns):
        s.sendall(req[cut:])
    for s, req, cut, body in conns:
        (r,) = _read_responses(s, 1)
        assert r.status == 200 and r.body == body, (r, body)
    time.sleep(1.5)  # idle across a sweep: buffers went back to the pool
    for i, (s, _, _, _) in enumerate(conns):
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nx%04d" % i)
        (r,) = _read_responses(s, 1)
        assert r.status == 200 and r.body == b"x%04d" % i, r
        s.close()


def test_byte_by_byte_pipelined_and_large_bodies(one_worker):
    port = one_worker.port
    with socket.create_connection((LOCALHOST, port), timeout=10) as s:
        # A request split into single bytes, each its own read.
        req = b"GET /p1 HTTP/1.1\r\nHost: x\r\n\r\n"
        for b in req:
            s.sendall(bytes([b]))
            time.sleep(0.002)  # pacing: each byte its own segment, so its own read
        (r,) = _read_responses(s, 1)
        assert r.status == 200 and r.body.startswith(b"debug pid=")
        # Pipelined: three requests in one write, the last one incomplete until later.
        p = (b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
             b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
             b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nde")
        s.sendall(p)
        wait_until(lambda: unread_by_server(s) == [0], 10, what="the worker to read the pipelined requests")
        s.sendall(b"fghi")
        rs = _read_responses(s, 3)
        assert [r.status for r in rs] == [200, 200, 200]
        assert rs[1].body == b"abc" and rs[2].body == b"defghi", rs
        # Large bodies, in and out (more than the pooled 4 KiB input buffer and 1 KiB output).
        for size in (5000, 300_000, 3_000_000):
            body = bytes((i * 7) & 0xFF for i in range(size))
            sender = threading.Thread(target=s.sendall, args=(
                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size + body,), daemon=True)
            sender.start()
            (r,) = _read_responses(s, 1, timeout=30)
            sender.join(10)
            assert r.status == 200 and r.header("X-Body-Length") == str(size) and r.body == body
        # Keep-alive after idling past a sweep (and the worker's reclaim of memory).
        time.sleep(2.2)  # a duration: idle across two sweeps (every 1 s)
        s.sendall(b"GET /after-idle HTTP/1.1\r\nHost: x\r\n\r\n")
        (r,) = _read_responses(s, 1)
        assert r.status == 200 and r.body.startswith(b"debug pid=")
        # A streamed (chunked) response still arrives whole.
        s.sendall(b"GET /stream/2000 HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        deadline = time.monotonic() + 20
        while not data.endswith(b"\r\n0\r\n\r\n"):
            assert time.monotonic() < deadline, f"chunked response incomplete: {data[-200:]!r}"
            chunk = s.recv(65536)
            assert chunk, "server closed mid-stream"
            data += chunk
        (r,) = parse_responses(data)
        assert r.body == b"".join(b"chunk %d\n" % i for i in range(2000))
