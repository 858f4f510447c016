"""HTTP/1.1 behaviour: malformed requests, keep-alive, pipelining, timeouts, static files."""

import socket
import time

import pytest

from conftest import (
    LOCALHOST,
    free_port,
    http_get,
    parse_responses,
    raw_exchange,
    recv_until,
    wait_until,
)


@pytest.fixture
def debug_herd(herd_factory):
    """2 workers, debug handler, --max-body 100, short timeouts."""
    port = free_port()
    h = herd_factory([
        "--workers", "2", "--listen", f"127.0.0.1:{port}", "--handler", "http=debug",
        "--max-body", "100", "--header-timeout", "1", "--keepalive-timeout", "1",
    ])
    h.port = port
    h.wait_workers(2)
    return h


def _status_line(data: bytes) -> bytes:
    return data.split(b"\r\n", 1)[0]


MALFORMED = [
    ("garbage request line", b"GARBAGE\r\n\r\n", 400),
    ("binary garbage", b"\x01\x02\x03 hello there\r\n\r\n", 400),
    ("HTTP/1.1 without Host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("non-numeric Content-Length", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
    ("negative Content-Length", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
    ("conflicting Content-Lengths", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
    ("Content-Length with Transfer-Encoding",
     b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("header section too large", b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", 431),
    ("request line too long", b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    ("body over --max-body", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000, 413),
    ("chunked body over --max-body",
     b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n200\r\n" + b"x" * 512 + b"\r\n0\r\n\r\n", 413),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\n\r\n", 400),
    ("whitespace before colon", b"GET / HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n", 400),
    ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ("HTTP/3.0", b"GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505),
]


def test_malformed_requests_get_error_status_and_workers_survive(debug_herd):
    h = debug_herd
    workers = h.worker_pids()
    results = {}
    for name, data, want in MALFORMED:
        got = raw_exchange(h.port, data, timeout=5)
        results[name] = (want, _status_line(got))
    wrong = {k: v for k, v in results.items() if not v[1].startswith(b"HTTP/1.1 %d " % v[0])}
    assert wrong == {}, f"wrong status (want, got): {wrong}"

    # Errors close the connection and say so.
    got = raw_exchange(h.port, b"GARBAGE\r\n\r\n", timeout=5)
    assert b"\r\nConnection: close\r\n" in got, got

    # Nobody crashed: same workers, no worker-exited events, still serving.
    assert h.worker_pids() == workers, (workers, h.worker_pids(), h.log_tail())
    assert h.events("worker-exited") == []
    for _ in range(10):
        r = http_get(h.port, "/")
        assert r.status == 200 and r.body.startswith(b"debug pid=")
    assert h.worker_pids() == workers


def test_keepalive_pipelining_head_and_chunked(debug_herd):
    port = debug_herd.port
    with socket.create_connection((LOCALHOST, port), timeout=5) as s:
        # Several requests on one connection.
        pids = set()
        for i in range(5):
            s.sendall(b"GET /x%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
            data = b""
            while b"\n" not in data.partition(b"\r\n\r\n")[2]:
                chunk = s.recv(4096)
                assert chunk, f"server closed a keep-alive connection after {i} requests: {data!r}"
                data += chunk
            (r,) = parse_responses(data)
            assert r.status == 200 and r.body.startswith(b"debug pid="), r
            assert (r.header("Connection") or "").lower() != "close", r
            pids.add(r.body)
        assert len(pids) == 1, f"one connection served by several workers: {pids}"

        # Three pipelined requests in one send: three responses, in order.
        s.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirst"
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nsecond"
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nthird"
        )
        data = recv_until(s, time.monotonic() + 5)
        rs = parse_responses(data)
        assert [r.status for r in rs] == [200, 200, 200], data
        assert [r.body for r in rs] == [b"first", b"second", b"third"], data
        # The last one asked for Connection: close, and the server closed (recv returned b"").
        assert (rs[-1].header("Connection") or "").lower() == "close", rs[-1]

    # Connection: close on a single request closes.
    data = raw_exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=3)
    (r,) = parse_responses(data)
    assert r.status == 200

    # HTTP/1.0 without keep-alive: the server closes after the response.
    t0 = time.monotonic()
    data = raw_exchange(port, b"GET / HTTP/1.0\r\n\r\n", timeout=3)
    assert time.monotonic() - t0 < 0.9, "HTTP/1.0 connection was not closed after the response"
    (r,) = parse_responses(data)
    assert r.status == 200 and r.body.startswith(b"debug pid=")

    # HEAD: Content-Length of the GET body, no body bytes.
    get = parse_responses(raw_exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))[0]
    data = raw_exchange(port, b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=3)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), data
    (hr,) = parse_responses(data, head_requests=1)
    assert hr.header("Content-Length") == str(len(get.body)), (hr, get)
    assert rest == b"", f"HEAD response carried a body: {rest!r}"

    # Chunked request body to /echo.
    data = raw_exchange(
        port,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n",
        timeout=3,
    )
    (r,) = parse_responses(data)
    assert r.status == 200 and r.body == b"hello world", data


def test_deep_pipelining_is_served_to_the_end(debug_herd):
    """10000 pipelined requests in one stream: more input than a connection buffers at once
    (--max-body 100: about 130 KiB) and far more output than its 64 KiB output limit. Every
    request must be answered, in order: the worker has to go on by itself with bytes it already
    read or left in the socket (edge-triggered epoll reports no new edge for them)."""
    n = 10000
    reqs = b"".join(b"GET /p%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(n))
    assert len(reqs) > 300_000
    with socket.create_connection((LOCALHOST, debug_herd.port), timeout=10) as s:
        import threading
        sender = threading.Thread(target=s.sendall, args=(reqs,), daemon=True)
        sender.start()
        data = bytearray()
        deadline = time.monotonic() + 30
        while data.count(b"HTTP/1.1 200 ") < n and time.monotonic() < deadline:
            chunk = s.recv(1 << 16)
            assert chunk, f"server closed after {data.count(b'HTTP/1.1 200 ')} of {n} responses"
            data += chunk
        sender.join(5)
    got = data.count(b"HTTP/1.1 200 ")
    assert got == n, f"{got} of {n} pipelined requests answered within 30 s"
    assert data.count(b"HTTP/1.1 ") == n, "unexpected extra responses"


def test_header_timeout_and_keepalive_timeout(debug_herd):
    port = debug_herd.port
    # --header-timeout 1: an incomplete request gets 408 and the connection closes.
    t0 = time.monotonic()
    data = raw_exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n", timeout=6)
    elapsed = time.monotonic() - t0
    assert _status_line(data).startswith(b"HTTP/1.1 408 "), data
    assert 0.8 <= elapsed <= 3.0, elapsed

    # A client that trickles the header slowly does not get more time than the timeout.
    with socket.create_connection((LOCALHOST, port), timeout=6) as s:
        t0 = time.monotonic()
        got = b""
        for part in (b"GET / HT", b"TP/1.1\r\n", b"Host: x\r\n", b"X-A: 1\r\n", b"X-B: 2\r\n", b"X-C: 3\r\n"):
            try:
                s.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break
            s.settimeout(0.4)
            try:
                got += s.recv(4096)
            except socket.timeout:
                pass
            if got:
                break
        s.settimeout(5)
        while not got.endswith(b"\n408 Request Timeout\n") and time.monotonic() - t0 < 6:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        assert _status_line(got).startswith(b"HTTP/1.1 408 "), got
        assert time.monotonic() - t0 <= 3.0

    # --keepalive-timeout 1: an idle keep-alive connection is closed by the server.
    with socket.create_connection((LOCALHOST, port), timeout=6) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while not data.endswith(b"\n") or b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            assert chunk, data
            data += chunk
        assert data.startswith(b"HTTP/1.1 200 "), data
        t0 = time.monotonic()
        s.settimeout(6)
        try:
            rest = s.recv(4096)
        except ConnectionResetError:
            rest = b""
        idle = time.monotonic() - t0
        assert rest == b"", f"unexpected bytes on an idle keep-alive connection: {rest!r}"
        assert 0.8 <= idle <= 3.0, f"idle keep-alive connection closed after {idle:.2f}s (timeout 1s)"


def test_static_handler(herd_factory, tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "index.html").write_text("<h1>hi</h1>\n")
    (root / "a.css").write_text("body { color: red }\n")
    (tmp_path / "secret.txt").write_text("do not serve\n")
    port = free_port()
    h = herd_factory(["--workers", "1", "--listen", f"127.0.0.1:{port}", "--handler", f"http=static:{root}"])

    def get_raw(path: bytes):
        data = raw_exchange(port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=5)
        (r,) = parse_responses(data)
        return r

    r = get_raw(b"/index.html")
    assert r.status == 200 and r.body == b"<h1>hi</h1>\n", r
    assert r.header("Content-Type").split(";")[0].strip() == "text/html", r
    r = get_raw(b"/")
    assert r.status == 200 and r.body == b"<h1>hi</h1>\n", r
    r = get_raw(b"/a.css")
    assert r.status == 200 and r.body == b"body { color: red }\n", r
    assert r.header("Content-Type").split(";")[0].strip() == "text/css", r
    assert r.header("Content-Length") == str(len(b"body { color: red }\n"))

    for path in (b"/missing.html", b"/../etc/passwd", b"/%2e%2e/etc/passwd", b"/%2E%2E/%2e%2e/etc/passwd",
                 b"/..%2fetc/passwd", b"/../secret.txt", b"/%2e%2e/secret.txt", b"/a.css/../../secret.txt"):
        r = get_raw(path)
        assert r.status == 404, (path, r)
        assert b"root:" not in r.body and b"do not serve" not in r.body, (path, r)
    assert http_get(port, "/a.css").status == 200
    assert h.stop() == 0


def test_expect_100_continue(debug_herd):
    """RFC 9110 10.1.1: on a complete header section with `Expect: 100-continue` and a body to
    follow, the server MUST send either 100 (Continue) or a final status at once."""
    port = debug_herd.port
    with socket.create_connection((LOCALHOST, port), timeout=5) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        s.settimeout(0.8)  # well under the 1 s header timeout of this fixture
        try:
            first = s.recv(4096)
        except socket.timeout:
            first = b""
        assert first.startswith(b"HTTP/1.1 100 "), f"no 100 Continue before the body was sent: {first!r}"
        s.settimeout(5)
        s.sendall(b"hello")
        data = first.partition(b"\r\n\r\n")[2]
        while b"hello" not in data:
            chunk = s.recv(4096)
            assert chunk, data
            data += chunk
        assert data.startswith(b"HTTP/1.1 200 "), data
    # A body over --max-body is refused up front with 413, without waiting for the body.
    with socket.create_connection((LOCALHOST, port), timeout=5) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n")
        s.settimeout(0.8)
        try:
            first = s.recv(4096)
        except socket.timeout:
            first = b""
        assert first.startswith(b"HTTP/1.1 413 "), first
