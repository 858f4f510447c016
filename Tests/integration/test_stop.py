"""Issue 27: `herdd stop` (the unit's ExecStop=) and graceful stops around hot upgrades.

`herdd stop` sends SIGTERM to the master and returns once it has exited; the master exits after
its workers and, after a hot upgrade, after the old master's drain. Under systemd 252 this is
what makes `systemctl stop` graceful after an upgrade (the master is then not systemd's child,
and systemd does not wait for it): the systemd end-to-end test checks that part; these tests
check the command and the master's side without systemd. An aborted upgrade stops the new
master gracefully: what its workers accepted is answered.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import pytest

from conftest import (LOCALHOST, LoadThread, descendants, free_ports, http_get, pid_alive, run_herdd,
                      stop_process_tree, wait_until)


class SlowRequest(threading.Thread):
    """One GET in the background; records (status, body) or the exception."""

    def __init__(self, port: int, path: str, timeout: float = 30.0):
        super().__init__(name="slow-request", daemon=True)
        self.port, self.path, self.timeout = port, path, timeout
        self.result = None
        self.done_at = None

    def run(self):
        try:
            r = http_get(self.port, self.path, timeout=self.timeout)
            self.result = (r.status, r.body)
        except Exception as e:  # noqa: BLE001 - the test asserts on it
            self.result = e
        self.done_at = time.monotonic()


def start(herd_factory, notify, *extra, env=None):
    port, mport = free_ports(2)
    h = herd_factory(["--workers", "2", "--listen", f"{LOCALHOST}:{port}", "--handler", "http=debug",
                      "--listen", f"{LOCALHOST}:{mport},name=metrics", "--handler", "metrics=metrics",
                      *extra], notify=notify, env=env)
    notify.wait_for("READY=1", timeout=15)
    h.wait_workers(2)
    h.mport = mport
    return h, port


def busy_workers(mport: int) -> int:
    """Busy workers of the master that serves /metrics now (the newest one)."""
    m = re.search(r'^herdd_workers\{state="busy"\} (\d+)$', http_get(mport, "/metrics").body.decode(), re.M)
    assert m, "herdd_workers{state=busy} not in /metrics"
    return int(m.group(1))


def in_flight(h, port: int, ms: int) -> SlowRequest:
    """Starts /sleep/<ms> and returns once it is in flight: a worker of the newest master is busy
    with it or, right after an upgrade, an old worker that had not begun its drain took it (the
    newest master's /metrics cannot see that one; give it 0.8 s)."""
    r = SlowRequest(port, f"/sleep/{ms}")
    r.start()
    deadline = time.monotonic() + 0.8
    while busy_workers(h.mport) < 1 and r.result is None and time.monotonic() < deadline:
        time.sleep(0.02)  # poll interval of the bounded wait above
    assert r.result is None, f"/sleep/{ms} finished early: {r.result}"
    return r


def upgrade(notify, master: int) -> int:
    """SIGUSR2 to `master`; returns the new master's pid once it is the main pid (MAINPID=)."""
    n0 = notify.count()
    os.kill(master, signal.SIGUSR2)
    msg = notify.wait_for(lambda m: "MAINPID=" in m, timeout=20, start=n0)
    return int(re.search(r"MAINPID=(\d+)", msg).group(1))


def stop_during(herd_factory, notify, graceful: str, ms: int):
    """A master with /sleep/<ms> in flight, stopped by `herdd stop`: (master, result, seconds it
    took, the request, the workers)."""
    h, port = start(herd_factory, notify, "--graceful-timeout", graceful)
    workers = h.worker_pids()
    req = in_flight(h, port, ms)
    t0 = time.monotonic()
    p = run_herdd(["stop", "--pid", str(h.pid), "--timeout", "20"], timeout=30)
    took = time.monotonic() - t0
    assert p.returncode == 0, p.stderr
    assert h.poll() is not None, "herdd stop returned before the master exited"
    assert not any(pid_alive(w) for w in workers)
    req.join(5)
    return h, p, took, req, t0


def test_stop_waits_for_the_drain_and_reports(herd_factory, notify):
    h, p, took, req, t0 = stop_during(herd_factory, notify, "10", 1500)
    assert f"stopped: master {h.pid}" in p.stderr, p.stderr
    assert h.returncode == 0
    # It returned after the master's exit, which came after the in-flight request was answered.
    assert req.result == (200, b"slept 1500\n"), req.result
    assert req.done_at is not None and req.done_at <= t0 + took
    assert 0.7 < took < 8, took


def test_stop_is_bounded_by_graceful_timeout(herd_factory, notify):
    _, _, took, req, _ = stop_during(herd_factory, notify, "1.5", 20000)
    assert 1.2 < took < 6, took
    assert isinstance(req.result, Exception), req.result  # cut at the graceful timeout


def test_stop_with_nothing_running_succeeds(herd_factory, notify, tmp_path):
    h, _ = start(herd_factory, notify)
    dead = h.pid
    assert h.stop() == 0
    p = run_herdd(["stop", "--pid", str(dead)], timeout=10)
    assert p.returncode == 0 and "already gone" in p.stderr, p.stderr
    # ExecStop= after the main process died: no $MAINPID, no published scoreboard.
    empty = tmp_path / "run"
    empty.mkdir()
    p = run_herdd(["stop", "--runtime-directory", str(empty)], timeout=10, env={"MAINPID": ""})
    assert p.returncode == 0 and "no master running" in p.stderr, p.stderr


def test_stop_times_out_on_a_hung_master(herd_factory, notify):
    h, _ = start(herd_factory, notify, "--graceful-timeout", "5")
    os.kill(h.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        p = run_herdd(["stop", "--pid", str(h.pid), "--timeout", "1"], timeout=10)
        assert p.returncode == 1 and "still running after 1.0 s" in p.stderr, p.stderr
        assert 0.9 < time.monotonic() - t0 < 5
        assert pid_alive(h.pid)
    finally:
        os.kill(h.pid, signal.SIGCONT)
    # The SIGTERM it sent is acted on once the master runs again.
    assert h.wait(15) == 0


def test_stop_no_wait_returns_at_once(herd_factory, notify):
    h, port = start(herd_factory, notify, "--graceful-timeout", "10")
    req = in_flight(h, port, 1500)
    t0 = time.monotonic()
    p = run_herdd(["stop", "--no-wait", "--pid", str(h.pid)], timeout=10)
    assert p.returncode == 0, p.stderr
    assert req.result is None and time.monotonic() - t0 < 1.2
    assert h.wait(15) == 0
    req.join(5)
    assert req.result == (200, b"slept 1500\n"), req.result


@pytest.mark.parametrize("upgrades", [1, 2])
def test_stop_after_upgrades_waits_for_every_generation(herd_factory, notify, upgrades):
    """Right after a hot upgrade the old master still drains a request; `herdd stop` of the new
    main pid returns only when both (and all workers) are gone, and every request is answered."""
    h, port = start(herd_factory, notify, "--graceful-timeout", "10", "--upgrade-timeout", "20")
    masters = [h.pid]
    tree = set(descendants(h.pid))
    requests = []
    try:
        for _ in range(upgrades):
            requests.append(in_flight(h, port, 2500))
            masters.append(upgrade(notify, masters[-1]))
            tree.update(descendants(masters[-1]))
        requests.append(in_flight(h, port, 2000))  # on the newest generation
        main = masters[-1]
        assert all(pid_alive(m) for m in masters[-2:]), "the previous master should still drain"
        t0 = time.monotonic()
        p = run_herdd(["stop", "--pid", str(main), "--timeout", "30"], timeout=40)
        took = time.monotonic() - t0
        assert p.returncode == 0, p.stderr
        for m in masters:
            assert not pid_alive(m), f"master {m} still alive when herdd stop returned"
        for r in requests:
            r.join(5)
            assert r.result is not None and r.result[0] == 200, r.result
            assert r.done_at <= t0 + took
        tree.update(descendants(main))
        assert not [p for p in tree if pid_alive(p)], "processes left"
        assert 1.0 < took < 10, took
    finally:
        for m in masters[1:]:
            stop_process_tree(m)


def test_aborted_upgrades_under_mixed_load_lose_nothing(herd_factory, notify):
    """20 aborted upgrades (the new master is ready, its workers serve, but the old master holds
    the commit past --upgrade-timeout): the old master stops the new one gracefully, so whatever
    its workers accepted is answered. Mixed load: keep-alive, new connections, slow requests."""
    h, port = start(herd_factory, notify, "--graceful-timeout", "10", "--upgrade-timeout", "1.5",
                    env={"HERDD_TEST_UPGRADE_COMMIT_DELAY": "30"})
    loads = [LoadThread(port, max_seconds=170, keepalive=True),
             LoadThread(port, max_seconds=170, keepalive=False),
             LoadThread(port, path="/sleep/150", max_seconds=170, keepalive=False),
             LoadThread(port, path="/sleep/40", max_seconds=170, keepalive=True)]
    new_pids = []
    served_by_new = 0
    for t in loads:
        t.start()
    try:
        deadline = time.monotonic() + 150
        for n in range(1, 21):
            assert time.monotonic() < deadline, f"only {n - 1} aborts in time"
            h.signal(signal.SIGUSR2)
            new = int(h.wait_log("upgrade-start", timeout=10, count=n)[n - 1]["new_pid"])
            new_pids.append(new)
            h.wait_log("upgrade-failed", timeout=15, count=n)
            # Reaped by the old master (not just exited): then it takes the next SIGUSR2.
            wait_until(lambda: not os.path.exists(f"/proc/{new}"), 20, what=f"aborted new master {new} reaped")
        served_by_new = sum(int(l.get("requests", "0")) for l in h.events("worker-exited")
                            if l.pid in new_pids)
    finally:
        for t in loads:
            t.stop(timeout=20)
        for p in new_pids:
            stop_process_tree(p)
    failures = [f for t in loads for f in t.failures]
    assert failures == [], failures[:5]
    assert all(t.ok > 20 for t in loads), [t.ok for t in loads]
    assert not h.events("upgrade-done")
    assert h.poll() is None
    # Most new masters reported ready (their workers served) before the deadline aborted them.
    assert len(h.events("upgrade-ready")) >= 10, h.log_tail()
    assert served_by_new > 0, "the new masters' workers served nothing: the test did not exercise the abort drain"
    assert h.stop() == 0
