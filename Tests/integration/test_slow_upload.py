"""Issue 24, part 2: slow but honest uploads. A request body has a rule of its own
(--body-timeout between two reads, --body-min-rate on average after that grace; RequestTimeouts),
so an upload that keeps coming is never cut by --header-timeout, while a trickle still is.
Each test paces its client by the clock: they take 10-65 s by design, and are bounded."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from conftest import LOCALHOST, closed_reasons, free_ports, parse_responses, recv_until, unread_by_server, wait_until

# Timing-sensitive (the client is paced by the clock; 408 within a bounded time):
# run alone, after the other CI lanes' compiles (test.sh).
pytestmark = pytest.mark.serial


def one_response_read(data: bytes) -> bool:
    """A whole Content-Length framed response is in `data`."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    length = next((int(l.split(b":", 1)[1]) for l in head.split(b"\r\n")[1:]
                   if l.lower().startswith(b"content-length:")), 0)
    return len(body) >= length


def start(herd_factory, *extra):
    port, mport = free_ports(2)
    h = herd_factory(["--workers", "1", "--listen", f"{LOCALHOST}:{port}", "--handler", "http=debug",
                      "--listen", f"{LOCALHOST}:{mport},name=metrics", "--handler", "metrics=metrics", *extra])
    h.wait_workers(1)
    return h, port, mport


def read_response(s: socket.socket, deadline: float) -> bytes:
    """Reads until the server closes or one Content-Length framed response is complete."""
    return recv_until(s, deadline, one_response_read)


def paced_upload(port: int, total: int, rate: int, limit: float) -> tuple[bytes, float, int]:
    """POSTs `total` bytes to /echo at `rate` bytes/s (pieces every 50 ms, on a schedule from
    the start); returns (response bytes, seconds from the head to the response, bytes sent).
    Stops sending at the first byte of a response (an early 408) or after `limit` s."""
    with socket.create_connection((LOCALHOST, port), timeout=10) as s:
        s.sendall(f"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {total}\r\n\r\n".encode())
        t0 = time.monotonic()
        piece = max(1, rate // 20)
        sent = 0
        answered = threading.Event()
        result: dict[str, bytes] = {}

        def reader():
            result["data"] = read_response(s, t0 + limit + 15)
            result["at"] = time.monotonic()  # when the response came (or the read gave up)
            answered.set()

        r = threading.Thread(target=reader, daemon=True)
        r.start()
        while sent < total and not answered.is_set() and time.monotonic() - t0 < limit:
            due = t0 + sent / rate
            if due > time.monotonic() and answered.wait(due - time.monotonic()):
                break  # pacing (the client's upload rate), cut short by a response
            n = min(piece, total - sent)
            try:
                s.sendall(b"u" * n)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += n
        r.join(timeout=limit + 20)
        assert not r.is_alive(), "no response"
        return result.get("data", b""), result["at"] - t0, sent


def test_800_kb_at_64_kb_per_second_is_accepted(herd_factory):
    # 12.5 s: longer than --header-timeout (10 s), which used to cover the body and cut this
    # upload at 697,600 bytes with a 408.
    h, port, mport = start(herd_factory)
    total = 800 * 1024
    data, elapsed, sent = paced_upload(port, total, 64 * 1024, limit=40)
    (r,) = parse_responses(data)
    assert r.status == 200, (r.status, sent, elapsed, h.log_tail())
    assert r.header("X-Body-Length") == str(total) and len(r.body) == total
    assert elapsed > 12, elapsed  # it really was slow
    assert closed_reasons(mport)["body-timeout"] == 0


def test_2_mb_at_32_kb_per_second_is_accepted(herd_factory):
    # 64 s with --max-body 4m.
    h, port, mport = start(herd_factory, "--max-body", "4m")
    total = 2 * 1024 * 1024
    data, elapsed, sent = paced_upload(port, total, 32 * 1024, limit=90)
    (r,) = parse_responses(data)
    assert r.status == 200, (r.status, sent, elapsed, h.log_tail())
    assert r.header("X-Body-Length") == str(total) and len(r.body) == total
    assert elapsed > 60, elapsed


def test_one_byte_per_second_gets_408_after_the_grace(herd_factory):
    # Defaults: --body-timeout 10, --body-min-rate 500. Never silent for 10 s, so the rate rule
    # cuts it: 10 s after the head plus 2 ms per byte, judged once a second (docs/operations.md,
    # "Options and config file": within --body-timeout + 1 s). Up to 1.5 s more for a loaded machine.
    h, port, mport = start(herd_factory)
    data, elapsed, sent = paced_upload(port, 1000, 1, limit=30)
    assert data.startswith(b"HTTP/1.1 408 "), (data[:200], elapsed, h.log_tail())
    assert 10.0 <= elapsed <= 12.5, elapsed
    assert sent <= 13, sent
    # The 408's connection lingers (unread input) and is counted when it ends, after the client's
    # close: a moment after the response was read, on the worker's next turn.
    wait_until(lambda: closed_reasons(mport)["body-timeout"] >= 1, 5, what="the 408's close counted")
    assert closed_reasons(mport)["body-timeout"] == 1


def test_a_stalled_body_gets_408_after_the_body_timeout(herd_factory):
    # Half the body at once, then silence: the gap rule (--body-timeout 2) cuts it, though the
    # bytes received would buy it minutes under the rate rule.
    h, port, mport = start(herd_factory, "--body-timeout", "2")
    with socket.create_connection((LOCALHOST, port), timeout=10) as s:
        # The head first, the 100 KB a moment later: bytes read with the head are not credited
        # to the rate rule (docs/connections.md), and this test is about the gap rule alone.
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n")
        wait_until(lambda: unread_by_server(s) == [0], 5, what="the worker to read the head")
        # t0 before the send: the worker may read the last bytes (and start its gap clock)
        # before this thread, preempted on a loaded machine, gets to read the clock after it.
        t0 = time.monotonic()
        s.sendall(b"u" * 100_000)
        data = read_response(s, t0 + 15)
        elapsed = time.monotonic() - t0
    assert data.startswith(b"HTTP/1.1 408 "), (data[:200], h.log_tail())
    assert 2.0 <= elapsed <= 4.5, elapsed
    # The 408's connection lingers (unread input) and is counted when it ends, after the client's
    # close: a moment after the response was read, on the worker's next turn.
    wait_until(lambda: closed_reasons(mport)["body-timeout"] >= 1, 5, what="the 408's close counted")
    assert closed_reasons(mport)["body-timeout"] == 1


def test_a_handlers_blocking_time_never_counts_against_the_client(herd_factory):
    # One worker, --body-timeout 2. While an upload comes at 16 KB/s, another connection runs
    # /sleep/4000 on the same worker: for 4 s nobody reads the upload (its bytes wait in the
    # socket), twice the body timeout. The upload is still accepted whole.
    h, port, mport = start(herd_factory, "--body-timeout", "2")
    total = 96 * 1024  # 6 s at 16 KB/s
    result = {}

    def upload():
        result["r"] = paced_upload(port, total, 16 * 1024, limit=30)

    t = threading.Thread(target=upload, daemon=True)
    t.start()
    time.sleep(1.0)  # a duration: a second (16 KB) of the upload under way before the handler blocks
    with socket.create_connection((LOCALHOST, port), timeout=10) as s:
        s.sendall(b"GET /sleep/4000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        slept = read_response(s, time.monotonic() + 15)
    assert slept.startswith(b"HTTP/1.1 200 ") and slept.endswith(b"slept 4000\n"), slept
    t.join(timeout=40)
    assert not t.is_alive()
    data, elapsed, sent = result["r"]
    (r,) = parse_responses(data)
    assert r.status == 200, (r.status, sent, elapsed, h.log_tail())
    assert r.header("X-Body-Length") == str(total)
    closes = closed_reasons(mport)
    assert closes["body-timeout"] == 0 and closes["header-timeout"] == 0, closes
