"""Observability (issue 5): accept backlog, busy/idle, exact counters, Prometheus format,
`herdd status`, STATUS=, backlog alarm, access log, latency histogram."""

from __future__ import annotations

import json
import socket
import threading
import time

from prometheus_client.parser import text_string_to_metric_families

from conftest import HERDD_BIN, LOCALHOST, free_ports, http_get, run_herdd, wait_busy, wait_until


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """Parses /metrics with the reference Prometheus parser: {(sample name, labels): value}."""
    r = http_get(port, "/metrics")
    assert r.status == 200
    assert r.header("Content-Type").startswith("text/plain; version=0.0.4")
    out = {}
    for fam in text_string_to_metric_families(r.body.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(m, name, **labels) -> float:
    return m[(name, tuple(sorted(labels.items())))]


def start(herd_factory, workers: int, *extra):
    http, mport = free_ports(2)
    h = herd_factory(["--workers", str(workers), "--listen", f"{LOCALHOST}:{http}",
                      "--listen", f"{LOCALHOST}:{mport},name=metrics", "--handler", "metrics=metrics",
                      "--handler", "http=debug", *extra])
    return h, http, mport


def test_backlog_busy_workers_and_alarm(herd_factory):
    h, port, mport = start(herd_factory, 2, "--backlog-alarm", "3")
    # Block both workers in a handler (each worker runs one request at a time).
    results = []
    sleepers = [threading.Thread(target=lambda: results.append(http_get(port, "/sleep/5000", timeout=20).status))
                for _ in range(2)]
    for i, t in enumerate(sleepers):
        t.start()
        wait_busy(mport, count=i + 1)  # the first sleeper is in a handler before the second connects
    wait_until(lambda: value(scrape(mport), "herdd_workers", state="busy") == 2, 5, what="2 busy workers")
    m = scrape(mport)
    assert value(m, "herdd_workers", state="idle") == 0
    # Five more connections wait in the kernel's accept queue: nobody can accept them.
    queued = [socket.create_connection((LOCALHOST, port), timeout=5) for _ in range(5)]
    try:
        m = wait_until(lambda: (lambda m: m if value(m, "herdd_listen_backlog", listener="http") == 5 else None)(scrape(mport)),
                       3, what="backlog 5")
        assert value(m, "herdd_listen_backlog_limit", listener="http") == 1024
        assert value(m, "herdd_listen_backlog_max", listener="http") >= 5
        # Metrics stay readable while every worker is saturated: they come from the master.
        # The queue stays above --backlog-alarm 3 for 3 s: a warning names the listener.
        alarm = h.wait_log("backlog-alarm", timeout=6)[0]
        assert alarm["listener"] == "http" and alarm["backlog"] == "5", alarm.raw
        for t in sleepers:
            t.join(15)
        assert results == [200, 200]
        # The workers are free again and take the queued connections: the backlog drains to 0.
        wait_until(lambda: value(scrape(mport), "herdd_listen_backlog", listener="http") == 0, 5, what="backlog 0")
        h.wait_log("backlog-alarm-cleared", timeout=3)
    finally:
        for s in queued:
            s.close()
    wait_until(lambda: value(scrape(mport), "herdd_workers", state="idle") == 2, 5, what="2 idle workers")


def test_counters_match_requests_exactly(herd_factory, notify):
    h, port, mport = start(herd_factory, 3)
    before = scrape(mport)
    assert value(before, "herdd_connections_accepted_total", listener="http") == 0
    for i in range(30):
        assert http_get(port, f"/n{i}").status == 200
    for _ in range(7):
        assert http_get(port, "/exit/notanumber").status == 400
    m = scrape(mport)
    assert value(m, "herdd_requests_total", code="2xx") == 30
    assert value(m, "herdd_requests_total", code="4xx") == 7
    assert value(m, "herdd_requests_total", code="5xx") == 0
    assert value(m, "herdd_connections_accepted_total", listener="http") == 37
    assert value(m, "herdd_request_duration_seconds_count", listener="http") == 37 - 0  # handler ran for all
    assert value(m, "herdd_workers_desired") == 3
    per_worker = sum(v for (n, _), v in m.items() if n == "herdd_worker_requests")
    assert per_worker == 37
    # The herd meter: one connection at a time, EPOLLEXCLUSIVE: accepted == wakeups - empty.
    wake = value(m, "herdd_epoll_wakeups_total", listener="http")
    empty = value(m, "herdd_accept_empty_wakeups_total", listener="http")
    assert wake - empty == 37


def test_latency_histogram(herd_factory):
    h, port, mport = start(herd_factory, 1)
    assert http_get(port, "/sleep/300").status == 200
    m = scrape(mport)
    assert value(m, "herdd_request_duration_seconds_bucket", listener="http", le="0.25") == 0
    assert value(m, "herdd_request_duration_seconds_bucket", listener="http", le="0.5") == 1
    assert value(m, "herdd_request_duration_seconds_bucket", listener="http", le="+Inf") == 1
    assert 0.29 <= value(m, "herdd_request_duration_seconds_sum", listener="http") < 1.0


def test_status_command_and_status_line(herd_factory, notify, tmp_path):
    http, mport = free_ports(2)
    h = herd_factory(["--workers", "2", "--listen", f"{LOCALHOST}:{http}",
                      "--listen", f"{LOCALHOST}:{mport},name=metrics", "--handler", "metrics=metrics"], notify=notify)
    for _ in range(4):
        assert http_get(http, "/").status == 200
    p = run_herdd(["status", "--address", f"{LOCALHOST}:{mport}"])
    assert p.returncode == 0, p.stderr
    assert "WORKER" in p.stdout and "2 workers" in p.stdout and "accepted 4" in p.stdout, p.stdout
    for pid in h.worker_pids():
        assert str(pid) in p.stdout
    j = json.loads(run_herdd(["status", "--json", "--address", f"{LOCALHOST}:{mport}"]).stdout)
    assert j["accepted"] == 4 and j["requests"]["2xx"] == 4
    assert sorted(w["pid"] for w in j["workers"]) == h.worker_pids()
    assert j["listeners"][0]["name"] == "http" and j["listeners"][0]["backlog"] == 0
    # STATUS= carries the same one-line summary (refreshed at most once a second).
    notify.wait_for(lambda m: "STATUS=2 workers (0 busy, 2 idle), accepted 4, backlog 0" in m, timeout=5)
    # A wrong address is a clear error, not a hang.
    bad = run_herdd(["status", "--address", f"{LOCALHOST}:{free_ports(1)[0]}"])
    assert bad.returncode != 0 and "connect" in bad.stderr


def test_access_log_entries(herd_factory):
    h, port, mport = start(herd_factory, 1, "--access-log", "on")
    assert http_get(port, "/hello-there?x=1").status == 200
    line = h.wait_log("access", timeout=5)[0]
    assert line["path"] == "/hello-there" and line["status"] == "200" and line["method"] == "GET"
    assert line["listener"] == "http" and line["peer"].startswith("127.0.0.1:")
    assert int(line["duration_us"]) >= 0


def test_unix_listener_backlog_via_sock_diag(herd_factory, tmp_path):
    import tempfile, os
    d = tempfile.mkdtemp(prefix="herdu-", dir="/tmp")  # short path: sun_path is 108 bytes
    path = os.path.join(d, "app.sock")
    mport = free_ports(1)[0]
    h = herd_factory(["--workers", "1", "--listen", f"unix:{path},name=app", "--handler", "app=debug",
                      "--listen", f"{LOCALHOST}:{mport},name=metrics", "--handler", "metrics=metrics", "--backlog", "64"])

    def unix_get(p: str) -> bytes:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(15)
            s.connect(path)
            s.sendall(f"GET {p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            out = b""
            while chunk := s.recv(65536):
                out += chunk
            return out

    assert unix_get("/").startswith(b"HTTP/1.1 200")
    m = scrape(mport)
    assert value(m, "herdd_listen_backlog", listener="app") == 0
    assert value(m, "herdd_listen_backlog_limit", listener="app") == 64
    blocker = threading.Thread(target=lambda: unix_get("/sleep/3000"))
    blocker.start()
    wait_busy(mport)  # the worker is in the handler: what connects next waits in the backlog
    queued = []
    try:
        for _ in range(3):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            queued.append(s)
        wait_until(lambda: value(scrape(mport), "herdd_listen_backlog", listener="app") == 3, 3, what="unix backlog 3")
        blocker.join(10)
        wait_until(lambda: value(scrape(mport), "herdd_listen_backlog", listener="app") == 0, 5, what="unix backlog 0")
    finally:
        for s in queued:
            s.close()
        import shutil
        shutil.rmtree(d, ignore_errors=True)


def test_master_keeps_working_when_the_notify_reader_stalls(tmp_path):
    """A service manager that stops reading its notify socket must not freeze the master:
    STATUS= and WATCHDOG=1 are sent without blocking (dropped when the queue is full)."""
    import os, subprocess
    from conftest import HERDD_BIN, clean_env, stop_process_tree
    path = f"/tmp/herdstall-{os.getpid()}-{time.monotonic_ns()}.sock"
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)  # the kernel's minimum: a few datagrams
    rx.bind(path)
    port, mport = free_ports(2)
    env = clean_env(NOTIFY_SOCKET=path, WATCHDOG_USEC="100000")
    p = subprocess.Popen([str(HERDD_BIN), "--workers", "1", "--listen", f"{LOCALHOST}:{port}",
                          "--listen", f"{LOCALHOST}:{mport},name=metrics", "--handler", "metrics=metrics"],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        rx.settimeout(10)
        while b"READY=1" not in rx.recv(4096):
            pass
        # From now on nobody reads: the queue fills within a few pings (every 50 ms).
        time.sleep(2)  # a duration: 40 pings into a queue that holds a few, so sends are dropped
        for i in range(3):
            assert http_get(port, "/").status == 200
            m = scrape(mport)
            assert value(m, "herdd_workers", state="idle") == 1
            time.sleep(0.5)  # a duration: the master keeps answering over time, not once
    finally:
        stop_process_tree(p)
        rx.close()
        os.unlink(path)
