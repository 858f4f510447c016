"""Streamed request bodies (RequestBodyStream, docs/async.md "Streamed request bodies"): the
handler of a request whose body streams in starts at the end of the head and reads the body
as it arrives; a slow reader holds the client back (bounded worker memory); --max-body gives
413, a stalled client 408; a client that leaves cancels the handler; keep-alive goes on after
a streamed body, and a handler that answers before the body's end closes the connection. The
debug handler's /upload-count and /upload-stats endpoints drive it."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time

from conftest import LOCALHOST, free_ports, http_get, metrics_listener, parse_responses, recv_until, wait_until
from herdtest import proc_mem_kib


def start(herd_factory, *extra):
    port, mport = free_ports(2)
    h = herd_factory(["--workers", "1", "--listen", f"{LOCALHOST}:{port}", "--handler", "http=debug",
                      *metrics_listener(mport), *extra])
    h.wait_workers(1)
    return h, port, mport


def stats(port: int) -> dict[str, int]:
    text = http_get(port, "/upload-stats").body.decode().split()
    return {k: int(v) for k, v in (kv.split("=") for kv in text)}


def head(path: str, length: int | None = None, chunked: bool = False, extra: str = "") -> bytes:
    framing = "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {length}\r\n"
    return f"POST {path} HTTP/1.1\r\nHost: t\r\n{framing}{extra}\r\n".encode()


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def complete(data: bytes, n: int = 1) -> bool:
    """`n` responses have arrived whole (parse_responses takes a cut Content-Length body)."""
    if b"\r\n\r\n" not in data:
        return False
    try:
        rs = parse_responses(data)
    except (AssertionError, ValueError):  # a head still arriving
        return False
    return len(rs) >= n and all(len(r.body) == int(r.header("Content-Length") or len(r.body)) for r in rs)


def one_response(s: socket.socket, timeout: float = 10.0):
    data = recv_until(s, time.monotonic() + timeout, complete)
    responses = parse_responses(data)
    assert responses, f"no response: {data!r}"
    return responses[0]


def test_the_handler_sees_the_first_chunk_before_the_client_sent_the_last(herd_factory):
    h, port, _ = start(herd_factory)
    with socket.create_connection((LOCALHOST, port), timeout=10) as s:
        s.sendall(head("/upload-count", length=200_000) + b"a" * 1000)
        time.sleep(1.0)  # the first part waits on the server while the rest is not sent
        last_sent = time.time()
        s.sendall(b"b" * 199_000)
        r = one_response(s)
    assert r.status == 200, r
    got = json.loads(r.body)
    assert got["bytes"] == 200_000 and got["chunks"] >= 2, got
    # The handler started and saw its first chunk while the client still held the rest back.
    assert got["first_chunk_at"] < last_sent - 0.5, (got, last_sent)
    assert got["started_at"] <= got["first_chunk_at"]


def test_a_chunked_body_streams_in_and_keep_alive_goes_on(herd_factory):
    h, port, _ = start(herd_factory)
    with socket.create_connection((LOCALHOST, port), timeout=10) as s:
        s.sendall(head("/upload-count", chunked=True) + chunk(b"x" * 5000))
        time.sleep(1.0)  # the first chunk waits on the server
        last_sent = time.time()
        s.sendall(chunk(b"y" * 7000) + chunk(b"z" * 3) + b"0\r\nX-Trailer: 1\r\n\r\n")
        r = one_response(s)
        assert r.status == 200, r
        got = json.loads(r.body)
        assert got["bytes"] == 12_003, got
        assert got["first_chunk_at"] < last_sent - 0.5, (got, last_sent)
        assert (r.header("connection") or "").lower() != "close"
        # The same connection serves the next requests: a streamed one, then a plain one.
        s.sendall(head("/upload-count", length=10) + b"0123456789" + b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        data = recv_until(s, time.monotonic() + 10, lambda b: complete(b, 2))
        rs = parse_responses(data)
        assert [x.status for x in rs] == [200, 200], data
        assert json.loads(rs[0].body)["bytes"] == 10 and rs[1].body == b"ok\n"


def test_a_slow_reader_keeps_the_worker_memory_bounded(herd_factory):
    size = 12 * 1024 * 1024
    h, port, _ = start(herd_factory, "--max-body", str(64 * 1024 * 1024))
    (worker,) = h.worker_pids()
    before = proc_mem_kib(worker)["VmRSS"]
    peak = 0
    result: dict = {}

    def upload():
        with socket.create_connection((LOCALHOST, port), timeout=60) as s:
            s.sendall(head("/upload-count?delay=2", length=size))
            piece = b"q" * 65536
            for _ in range(size // len(piece)):
                s.sendall(piece)
            result["response"] = one_response(s, timeout=60)

    t = threading.Thread(target=upload)
    t.start()
    deadline = time.monotonic() + 60
    while t.is_alive() and time.monotonic() < deadline:
        peak = max(peak, proc_mem_kib(worker)["VmRSS"] - before)
        time.sleep(0.05)  # sampling interval
    t.join(timeout=1)
    r = result.get("response")
    assert r is not None and r.status == 200, r
    got = json.loads(r.body)
    assert got["bytes"] == size, got
    # The handler read slowly (2 ms per chunk): without back-pressure the 12 MB would have
    # piled up in the worker. The body's pieces are at most ~64 KiB unread plus the read-ahead.
    assert got["chunks"] >= 50, got
    print(f"worker RSS peak growth {peak} KiB during a {size >> 20} MB upload read in {got['chunks']} chunks")
    assert peak < 4 * 1024, f"worker RSS grew {peak} KiB during a {size >> 20} MB upload"


def test_over_max_body_is_413_and_the_reader_fails(herd_factory):
    h, port, _ = start(herd_factory, "--max-body", "100000")
    with socket.create_connection((LOCALHOST, port), timeout=10) as s:
        s.sendall(head("/upload-count", chunked=True) + chunk(b"a" * 60_000))
        wait_until(lambda: stats(port)["running"] == 1, 5, what="the handler reading")
        s.sendall(chunk(b"b" * 60_000))
        r = one_response(s)
    assert r.status == 413, r
    assert wait_until(lambda: stats(port)["running"] == 0, 5, what="the handler's end")
    # A Content-Length over the limit is refused at the head, before any handler starts.
    with socket.create_connection((LOCALHOST, port), timeout=10) as s:
        s.sendall(head("/upload-count", length=100_001))
        assert one_response(s).status == 413


def test_a_client_that_leaves_mid_body_cancels_the_handler(herd_factory):
    h, port, _ = start(herd_factory)
    before = stats(port)["cancelled"]
    s = socket.create_connection((LOCALHOST, port), timeout=10)
    s.sendall(head("/upload-count", length=500_000) + b"a" * 10_000)
    wait_until(lambda: stats(port)["running"] == 1, 5, what="the handler reading")
    s.close()
    wait_until(lambda: stats(port)["running"] == 0, 5, what="the handler's end")
    assert stats(port)["cancelled"] == before + 1


def test_a_stalled_body_gets_408(herd_factory):
    h, port, _ = start(herd_factory, "--body-timeout", "1")
    with socket.create_connection((LOCALHOST, port), timeout=10) as s:
        s.sendall(head("/upload-count", length=50_000) + b"a" * 1000)
        r = one_response(s, timeout=8)
    assert r.status == 408, r
    assert wait_until(lambda: stats(port)["running"] == 0, 5, what="the handler's end")


def test_an_answer_before_the_body_ends_closes_the_connection(herd_factory):
    h, port, _ = start(herd_factory)
    with socket.create_connection((LOCALHOST, port), timeout=10) as s:
        s.sendall(head("/upload-count?read=1000", length=300_000) + b"a" * 20_000)
        r = one_response(s)
        assert r.status == 200 and (r.header("connection") or "").lower() == "close", r
        assert json.loads(r.body)["bytes"] >= 1000
        # The rest of the body is not taken for a request: the connection ends (lingering).
        rest = recv_until(s, time.monotonic() + 5)
        assert b"HTTP/1.1" not in rest


def test_other_handlers_still_get_the_whole_body(herd_factory):
    h, port, _ = start(herd_factory)
    body = bytes(range(256)) * 1000
    with socket.create_connection((LOCALHOST, port), timeout=10) as s:
        s.sendall(head("/echo", length=len(body)) + body[:1000])
        time.sleep(0.2)
        s.sendall(body[1000:])
        r = one_response(s)
    assert r.status == 200 and r.body == body


def test_a_drain_waits_for_a_streamed_upload(herd_factory):
    h, port, _ = start(herd_factory, "--graceful-timeout", "20")
    with socket.create_connection((LOCALHOST, port), timeout=10) as s:
        s.sendall(head("/upload-count", length=100_000) + b"a" * 10_000)
        wait_until(lambda: stats(port)["running"] == 1, 5, what="the handler reading")
        h.signal(signal.SIGTERM)
        time.sleep(0.5)  # the worker drains meanwhile; the upload is in flight
        s.sendall(b"b" * 90_000)
        r = one_response(s)
    assert r.status == 200 and json.loads(r.body)["bytes"] == 100_000, r
    assert h.wait(20) == 0
