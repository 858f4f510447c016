"""Issue 14, bodies and responses: a chunked upload is decoded as it arrives (only the decoded
body counts against --max-body), and a long response does not monopolise its worker (a write
budget per connection per turn of the event loop; the worker shows as busy while writing)."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Callable

import pytest

from conftest import LOCALHOST, closed_reasons, free_ports, http_get, parse_responses, wait_until

# Timing-sensitive (latency bounds while a long response streams):
# run alone, after the other CI lanes' compiles (test.sh).
pytestmark = pytest.mark.serial


def one_byte_chunks(n: int) -> bytes:
    return (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"1\r\nx\r\n" * n + b"0\r\n\r\n")


def exchange(port: int, data: bytes, timeout: float) -> bytes:
    """Sends `data` from a thread while reading, so neither side blocks on full buffers."""
    with socket.create_connection((LOCALHOST, port), timeout=timeout) as s:
        sender = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)), daemon=True)
        sender.start()
        out = bytearray()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(1 << 20)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
        sender.join(timeout=1)
        return bytes(out)


def test_many_small_chunks_are_decoded_as_they_arrive(herd_factory):
    # 400,000 one-byte chunks: 2.4 MB on the wire, 400,000 bytes of body, exactly --max-body.
    # Before issue 14 the framing stayed buffered and the upload stalled into a 408 after
    # --header-timeout; now it is answered promptly.
    port, = free_ports(1)
    h = herd_factory(["--workers", "1", "--listen", f"{LOCALHOST}:{port}", "--handler", "http=debug",
                      "--max-body", "400000", "--header-timeout", "10"])
    h.wait_workers(1)
    start = time.monotonic()
    got = exchange(port, one_byte_chunks(400_000), timeout=15)
    elapsed = time.monotonic() - start
    print(f"400,000 one-byte chunks answered in {elapsed:.2f} s")
    (r,) = parse_responses(got)
    assert r.status == 200, (r, h.log_tail())
    assert r.header("X-Body-Length") == "400000" and r.body == b"x" * 400_000
    # Well under --header-timeout (10 s), which is what a stall would take; seconds of headroom
    # for a loaded machine and a debug build.
    assert elapsed < 6, f"upload took {elapsed:.2f}s"

    # One decoded byte over the limit: 413 (the framing bytes never counted).
    got = exchange(port, one_byte_chunks(400_001), timeout=15)
    assert got.startswith(b"HTTP/1.1 413 "), got[:200]


def ping_while(t: threading.Thread, ping: Callable[[], float], mport: int, what: str) -> tuple[list[float], bool]:
    """While thread `t` runs (at most 60 s): `ping` on the keep-alive connection, then a look at
    the scoreboard (/status.json on the metrics port), every 20 ms. Returns the ping latencies
    and whether a worker was seen busy."""
    latencies = []
    busy_seen = False
    deadline = time.monotonic() + 60
    while t.is_alive() and time.monotonic() < deadline:
        latencies.append(ping())
        workers = json.loads(http_get(mport, "/status.json").body)["workers"]
        busy_seen = busy_seen or any(w["state"] == "busy" for w in workers)
        time.sleep(0.02)
    t.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not t.is_alive(), f"{what} did not finish within 60 s"
    return latencies, busy_seen


def assert_prompt(latencies: list[float], what: str):
    """Requests on the other connection were answered meanwhile, each promptly: < 50 ms, except
    what the scheduler of a loaded 2-core machine adds now and then (load averages of 9 were seen
    while other builds ran): at least 90% under 50 ms and none near the seconds a monopolised
    worker made them wait (2.3 s before issue 14)."""
    assert len(latencies) >= 3, latencies
    fast = sum(1 for x in latencies if x < 0.05)
    summary = f"{what}; {fast}/{len(latencies)} under 50 ms, slowest {sorted(latencies)[-5:]}"
    print("keep-alive latencies:", summary)
    assert fast >= 0.9 * len(latencies) and max(latencies) < 0.5, summary


def test_long_stream_leaves_room_for_other_connections(herd_factory):
    # One worker, so the keep-alive connection is on the streaming worker; --timeout 2: a worker
    # whose loop stops beating for 2 s would be killed mid-response.
    port, mport = free_ports(2)
    h = herd_factory(["--workers", "1", "--timeout", "2", "--listen", f"{LOCALHOST}:{port}",
                      "--listen", f"{LOCALHOST}:{mport},name=metrics", "--handler", "metrics=metrics",
                      "--handler", "http=debug"])
    (worker,) = h.wait_workers(1)

    ka = socket.create_connection((LOCALHOST, port), timeout=5)

    def ka_request() -> float:
        t0 = time.monotonic()
        ka.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while not (b"\r\n\r\n" in data and data.endswith(b"\n") and b"debug pid=" in data):
            chunk = ka.recv(4096)
            assert chunk, "keep-alive connection closed"
            data += chunk
        return time.monotonic() - t0

    ka_request()  # warm: the connection is accepted and served before the stream starts

    result = {}

    def read_stream():
        with socket.create_connection((LOCALHOST, port), timeout=30) as s:
            s.sendall(b"GET /stream/1000000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            buf = bytearray()
            while True:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                buf += chunk
            result["data"] = bytes(buf)

    t = threading.Thread(target=read_stream, daemon=True)
    t.start()
    latencies, busy_seen = ping_while(t, ka_request, mport, "stream")
    ka.close()

    (r,) = parse_responses(result["data"])
    assert r.status == 200
    assert r.body.startswith(b"chunk 0\n") and r.body.endswith(b"chunk 999999\n"), r.body[-100:]
    assert r.body.count(b"\n") == 1_000_000
    # The worker was not killed mid-response and was seen busy while it wrote.
    assert h.worker_pids() == [worker] and h.events("worker-timeout") == [], h.log_tail()
    assert busy_seen, "the streaming worker never showed as busy"
    assert_prompt(latencies, "while streaming")
    # Afterwards the worker is idle again.
    wait_until(lambda: json.loads(http_get(mport, "/status.json").body)["workers"][0]["state"] == "idle", 5,
               what="worker idle after the stream")
    # Every close is explained (issue 24): the stream's connection closed once, after its
    # `Connection: close` response was out; the keep-alive one when its client closed it. A
    # connection may have gone through the dispatch socket (one worker hands off to itself);
    # nothing closed for an error, a stall or a timeout. (Scrapes go to the master's endpoint.)
    wait_until(lambda: closed_reasons(mport)["client-closed"] == 1, 5, what="the keep-alive close counted")
    closes = {r: n for r, n in closed_reasons(mport).items() if n}
    assert closes.pop("response-done", 0) == 1 and closes.pop("client-closed", 0) == 1, closes
    assert set(closes) <= {"hand-off"}, closes


def read_response_on(s: socket.socket, buf: bytearray) -> tuple[bytes, int]:
    """Reads one Content-Length response from keep-alive socket `s` (`buf` holds bytes read
    beyond the previous one): (head, body length)."""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        assert chunk, "connection closed before a response"
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    n = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    del buf[:]
    buf += rest
    while len(buf) < n:
        chunk = s.recv(65536)
        assert chunk, "connection closed mid-body"
        buf += chunk
    del buf[:n]
    return head, n


def test_large_file_download_leaves_room_for_other_connections(herd_factory, tmp_path):
    """Issue 24: the stream test above for files. A large static file goes by sendfile, which is
    charged to the same write budget per turn: the worker shows busy while the download runs,
    and a keep-alive connection on the same (only) worker is answered promptly meanwhile. A fast
    client (loopback, reading as fast as it can) is the hard case: the socket would take the
    whole file without ever saying EAGAIN."""
    root = tmp_path / "www"
    root.mkdir()
    size = 64 << 20
    # Written, so it is in the page cache (a sparse file's holes would be allocated and zeroed
    # by the first download, a cost of the machine's, not of herdd's loop).
    (root / "big.bin").write_bytes(bytes(range(256)) * (size // 256))
    (root / "ping.txt").write_bytes(b"pong\n")
    port, mport = free_ports(2)
    h = herd_factory(["--workers", "1", "--timeout", "2", "--listen", f"{LOCALHOST}:{port}",
                      "--listen", f"{LOCALHOST}:{mport},name=metrics", "--handler", "metrics=metrics",
                      "--handler", f"http=static:{root}"])
    (worker,) = h.wait_workers(1)

    ka = socket.create_connection((LOCALHOST, port), timeout=5)
    ka_buf = bytearray()

    def ka_request() -> float:
        t0 = time.monotonic()
        ka.sendall(b"GET /ping.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        head, n = read_response_on(ka, ka_buf)
        assert head.startswith(b"HTTP/1.1 200") and n == 5, head
        return time.monotonic() - t0

    ka_request()  # warm: the connection is accepted and served before the downloads start
    # Downloads one after the other on one keep-alive connection, each read at full speed,
    # for at least 3 s (at most 40 downloads, 60 s).
    result = {"downloads": 0, "bytes": []}

    def download():
        view = memoryview(bytearray(1 << 20))
        with socket.create_connection((LOCALHOST, port), timeout=30) as s:
            buf = bytearray()
            t_end = time.monotonic() + 3
            while result["downloads"] < 40 and (time.monotonic() < t_end or result["downloads"] == 0):
                s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
                while b"\r\n\r\n" not in buf:
                    k = s.recv_into(view)
                    assert k, "download connection closed before the head"
                    buf += view[:k]
                head, _, rest = bytes(buf).partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200"), head
                n = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                got = len(rest)
                while got < n:
                    k = s.recv_into(view, min(len(view), n - got))
                    assert k, f"download connection closed after {got} of {n} bytes"
                    got += k
                buf = bytearray()
                result["bytes"].append(got)
                result["downloads"] += 1

    t = threading.Thread(target=download, daemon=True)
    t.start()
    latencies, busy_seen = ping_while(t, ka_request, mport, "downloads")
    ka.close()

    assert result["downloads"] >= 1 and result["bytes"] == [size] * result["downloads"], result
    # The worker was not killed mid-download, and showed busy while it sent.
    assert h.worker_pids() == [worker] and h.events("worker-timeout") == [], h.log_tail()
    assert busy_seen, "the worker sending a large file never showed as busy"
    assert_prompt(latencies, f"while {result['downloads']} downloads of {size >> 20} MiB")
    wait_until(lambda: json.loads(http_get(mport, "/status.json").body)["workers"][0]["state"] == "idle", 5,
               what="worker idle after the downloads")
