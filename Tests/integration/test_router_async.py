"""Issue 23: async routes of the Herd router through the real binary (the debug build's
`router-demo` handler, Sources/HerddMain/RouterDemo.swift): many awaits in flight on one
worker beside a sync route, HTTPError and other errors from async routes, router middleware
around them, and a SIGTERM drain with requests inside `await`. 127.0.0.1 only; every loop is
bounded in count and time.
"""

from __future__ import annotations

import re
import signal
import socket
import time

from conftest import LOCALHOST, free_ports
from test_async import concurrent_gets, in_flight, read_response_head
from test_metrics import scrape, value


def start_router(herd_factory, workers: int, *extra):
    http, mport = free_ports(2)
    h = herd_factory(["--workers", str(workers), "--listen", f"{LOCALHOST}:{http}",
                      "--listen", f"{LOCALHOST}:{mport},name=metrics", "--handler", "metrics=metrics",
                      "--handler", "http=router-demo", *extra])
    return h, http, mport


def request(port: int, path: str, headers: str = "") -> tuple[int, bytes, bytes]:
    """(status, head, body) of one GET on a fresh connection."""
    with socket.create_connection((LOCALHOST, port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
        status, head, body, _ = read_response_head(s)
        return status, head, body


def test_async_routes_keep_many_awaits_in_flight_beside_sync_routes(herd_factory):
    h, port, mport = start_router(herd_factory, 1)
    pid = h.worker_pids()[0]
    status, head, body = request(port, "/sync", "X-Request-ID: abc\r\n")
    assert (status, body) == (200, f"sync {pid}\n".encode())
    assert re.search(rb"(?i)x-request-id: abc\r\n", head), head
    t0 = time.monotonic()
    results = concurrent_gets(port, ["/async/300"] * 32)
    elapsed = time.monotonic() - t0
    assert results == [(200, f"slept 300 {pid}\n".encode())] * 32, results[:3]
    # One at a time would take 32 * 0.3 = 9.6 s: the worker kept them in flight together.
    assert elapsed < 3.0, elapsed
    m = scrape(mport)
    assert value(m, "herdd_async_requests_total") == 32  # /sync did not go the async way
    assert value(m, "herdd_requests_total", code="2xx") == 33


def test_errors_of_async_routes_and_middleware_around_them(herd_factory):
    h, port, _ = start_router(herd_factory, 1)
    status, head, body = request(port, "/async-teapot", "X-Request-ID: tea-1\r\n")
    assert status == 418 and b"short and stout" in body, (status, body)
    assert re.search(rb"(?i)x-request-id: tea-1\r\n", head), head  # router middleware ran
    status, _, body = request(port, "/async-error", "X-Request-ID: err-9\r\n")
    assert status == 500 and b"err-9" in body, (status, body)
    assert b"not for the client" not in body
    assert "unhandled error" in h.log_text() and "not for the client" in h.log_text()
    status, _, _ = request(port, "/async/abc")
    assert status == 400  # a bad parameter: the route's HTTPError
    status, _, _ = request(port, "/nothing")
    assert status == 404
    assert len(h.worker_pids()) == 1 and not h.events("worker-exit")


def test_sigterm_drain_answers_every_async_route_in_flight(herd_factory):
    h, port, mport = start_router(herd_factory, 2, "--graceful-timeout", "10")
    results, runner = in_flight(port, mport, "/async/1000", 24)
    h.signal(signal.SIGTERM)
    runner.join(15)
    assert len(results) == 24
    assert all(status == 200 and body.startswith(b"slept 1000 ") for status, body in results), results[:3]
    assert h.wait(10) == 0
    assert not h.events("worker-killed")
