"""Tests written to kill mutants the other suites let live (see Tests/mutants/run.sh): the
watchdog ping that depends on the scoreboard reading as intact, and counters of workers that
have exited (max-requests, TTOU) folded into the totals exactly once."""

from __future__ import annotations

import os
import signal
import time

from conftest import LOCALHOST, free_ports, http_get, wait_until
from test_metrics import scrape, value



def _scoreboard_fd(pid: int) -> str:
    """/proc path of the master's scoreboard memfd (same user: we may open it read-write)."""
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("/memfd:herdd-scoreboard"):
                return f"/proc/{pid}/fd/{fd}"
        except OSError:
            continue
    raise AssertionError(f"no scoreboard memfd among the fds of {pid}")


def test_watchdog_stops_while_the_scoreboard_is_damaged(herd_factory, notify):
    # WATCHDOG_USEC=800000: a ping every 0.4 s while all is well.
    (port,) = free_ports(1)
    h = herd_factory(["--workers", "1", "--listen", f"{LOCALHOST}:{port}"], notify=notify,
                     env={"WATCHDOG_USEC": "800000"}, wrap_watchdog_pid=True)
    notify.wait_for("READY=1", timeout=10)
    t0 = time.monotonic()
    wait_until(lambda: len(notify.times_of("WATCHDOG=1", t0, time.monotonic() + 1)) >= 2, 5, what="2 WATCHDOG=1")

    path = _scoreboard_fd(h.pid)
    with open(path, "r+b", buffering=0) as f:
        magic = f.read(8)
        assert magic == b"HERDSCB1", magic
        f.seek(0)
        f.write(b"\0" * 8)  # the master's mapping (MAP_SHARED) sees this at once
        try:
            time.sleep(0.5)  # a duration: a ping decided before the write (one tick) may still land
            s0 = time.monotonic()
            time.sleep(1.6)  # a duration: 4 ping intervals of silence
            s1 = time.monotonic()
            during = notify.times_of("WATCHDOG=1", s0, s1)
            assert during == [], f"{len(during)} WATCHDOG=1 while the scoreboard magic was zeroed"
            assert h.poll() is None
        finally:
            f.seek(0)
            f.write(magic)
    c0 = time.monotonic()
    wait_until(lambda: notify.times_of("WATCHDOG=1", c0, time.monotonic() + 1), 3, what="WATCHDOG=1 after repair")
    assert http_get(port).status == 200
    assert h.stop() == 0


def test_totals_stay_exact_after_workers_exit(herd_factory, notify):
    http, mport = free_ports(2)
    h = herd_factory(["--workers", "2", "--max-requests", "4", "--listen", f"{LOCALHOST}:{http}",
                      "--listen", f"{LOCALHOST}:{mport},name=metrics", "--handler", "metrics=metrics",
                      "--handler", "http=debug"], notify=notify)
    notify.wait_for("READY=1", timeout=10)
    first = h.wait_workers(2)
    # 10 requests, one connection each, over 2 workers that recycle after 4: at least one exits.
    for i in range(10):
        assert http_get(http, f"/a{i}", timeout=10).status == 200
    h.wait_log("worker-exited", timeout=10, reason="max-requests")
    # Then TTOU: one more worker leaves (its counters too must move to the retired totals).
    h.signal(signal.SIGTTOU)
    h.wait_log("worker-exited", timeout=10, reason="ttou")
    h.wait_workers(1)
    for i in range(3):
        assert http_get(http, f"/b{i}", timeout=10).status == 200
    exited = h.events("worker-exited")
    assert len(exited) >= 2, exited
    assert {int(e["worker_pid"]) for e in exited} & set(first), exited

    m = scrape(mport)
    assert value(m, "herdd_requests_total", code="2xx") == 13
    assert value(m, "herdd_requests_total", code="4xx") == 0
    assert value(m, "herdd_connections_accepted_total", listener="http") == 13
    assert value(m, "herdd_request_duration_seconds_count", listener="http") == 13
    wake = value(m, "herdd_epoll_wakeups_total", listener="http")
    empty = value(m, "herdd_accept_empty_wakeups_total", listener="http")
    assert wake - empty == 13
    # The live workers alone account for less: the rest comes from the retired ones.
    live = sum(v for (n, _), v in m.items() if n == "herdd_worker_requests")
    assert live < 13, live
    # A second scrape adds nothing (retired counters are folded in once, at the reap).
    assert value(scrape(mport), "herdd_requests_total", code="2xx") == 13
    # The STATUS= line counts accepted connections from the same totals. It is sent (at most once
    # a second) when it changes, so the last one must read 13, and still so a while later.
    def last_status() -> str:
        return [l for m in notify.messages for l in m.split("\n") if l.startswith("STATUS=")][-1]
    wait_until(lambda: "accepted 13," in last_status(), 5, what="STATUS= with accepted 13")
    time.sleep(1.5)  # a duration: past the next STATUS= (at most once a second), still 13
    assert "accepted 13," in last_status(), last_status()
    assert h.stop() == 0
