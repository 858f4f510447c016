"""Issue 13: process names, stop signals at start-up, finding the master without --pid, the
reload warning about the metrics listener, and the backlog peak that does not depend on who
scrapes."""

from __future__ import annotations

import os
import re
import signal
import socket
import threading

import pytest

from conftest import LOCALHOST, free_ports, http_get, pid_alive, proc_cmdline, run_herdd, wait_busy, wait_until
from conftest import metric, stop_process_tree


def comm(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as f:
        return f.read().rstrip("\n")


def test_process_titles(herd_factory):
    port = free_ports(1)[0]
    h = herd_factory(["--workers", "2", "--listen", f"{LOCALHOST}:{port}"])
    workers = h.wait_workers(2)
    # comm is what systemd ("Killing process 662 (herdd: worker 0)"), top and ps -e show.
    assert comm(h.pid) == "herdd: master"
    assert proc_cmdline(h.pid) == ["herdd: master"]
    slots = sorted(int(l["worker_id"]) for l in h.events("worker-spawned"))
    titles = sorted(comm(w) for w in workers)
    assert titles == [f"herdd: worker {s}" for s in slots], titles
    for w in workers:
        assert re.fullmatch(r"herdd: worker \d", " ".join(proc_cmdline(w))), proc_cmdline(w)
    # The master's original arguments survive for a hot upgrade's re-exec (tested in
    # test_upgrade); the environment is intact for its children.
    assert http_get(port).status == 200


def test_worker_comm_fits_for_two_digit_slots(herd_factory):
    port = free_ports(1)[0]
    h = herd_factory(["--workers", "11", "--listen", f"{LOCALHOST}:{port}"])
    workers = h.wait_workers(11)
    names = sorted(comm(w) for w in workers)
    assert "herdd: worker10" in names and "herdd: worker 9" in names, names


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGQUIT])
def test_stop_signal_while_a_worker_starts_is_clean(herd_factory, sig):
    """A stop signal that reaches a worker before it set up its signal handling (held open
    1.5 s by a test hook) waits, blocked since the spawn, and then stops it cleanly: exit 0, no
    Swift runtime crash report."""
    port = free_ports(1)[0]
    h = herd_factory(["--workers", "1", "--listen", f"{LOCALHOST}:{port}"],
                     env={"HERDD_TEST_WORKER_START_DELAY": "1.5"})
    h.wait_workers(1)
    h.signal(signal.SIGTTIN)
    spawned = h.wait_log("worker-spawned", count=2, timeout=5)[1]
    pid = int(spawned["worker_pid"])
    # The new worker is inside its start-up delay: it sets its title right before it.
    wait_until(lambda: proc_cmdline(pid)[:1] == [f"herdd: worker {spawned['worker_id']}"], 5, what="the new worker's title")
    assert pid_alive(pid)
    os.kill(pid, sig)
    exited = h.wait_log("worker-exited", timeout=10, worker_pid=pid)[0]
    assert "exited (exit 0)" in exited.raw, exited.raw
    text = h.log_text()
    assert "Program crashed" not in text and "Backtrace" not in text and "💣" not in text, h.log_tail()
    assert h.stop() == 0


def test_reload_does_not_warn_about_the_metrics_listener(herd_factory):
    port, mport = free_ports(2)
    h = herd_factory(["--workers", "1", "--listen", f"{LOCALHOST}:{port}",
                      "--listen", f"{LOCALHOST}:{mport},name=metrics", "--handler", "metrics=metrics"])
    h.signal(signal.SIGHUP)
    h.wait_log("reload-done", timeout=15)
    assert h.events("config-warning") == [], h.events("config-warning")
    assert h.stop() == 0


def test_reload_and_upgrade_commands_find_the_master_without_pid(herd_factory, tmp_path):
    rt = tmp_path / "run"
    rt.mkdir()
    port = free_ports(1)[0]
    h = herd_factory(["--workers", "1", "--listen", f"{LOCALHOST}:{port}", "--upgrade-timeout", "20"],
                     env={"RUNTIME_DIRECTORY": str(rt)})
    no_mainpid = {"MAINPID": ""}
    # $RUNTIME_DIRECTORY (as under systemd), then --runtime-directory (as from a shell).
    p = run_herdd(["reload", "--timeout", "20"], timeout=30, env=dict(no_mainpid, RUNTIME_DIRECTORY=str(rt)))
    assert p.returncode == 0 and "generation 2" in p.stdout, p.stderr
    p = run_herdd(["reload", "--runtime-directory", str(rt), "--timeout", "20"], timeout=30, env=no_mainpid)
    assert p.returncode == 0 and "generation 3" in p.stdout, p.stderr
    masters = [h.pid]
    try:
        p = run_herdd(["upgrade", "--runtime-directory", str(rt), "--timeout", "30"], timeout=40, env=no_mainpid)
        assert p.returncode == 0, p.stderr
        new_pid = int(re.search(r"new master pid (\d+)", p.stdout).group(1))
        masters.append(new_pid)
        assert h.wait(20) == 0
        # The new master published its scoreboard when it was committed: found without --pid.
        p = run_herdd(["reload", "--runtime-directory", str(rt), "--timeout", "20"], timeout=30, env=no_mainpid)
        assert p.returncode == 0 and "generation 5" in p.stdout, (p.stdout, p.stderr)
        assert sorted(os.listdir(rt)) == ["scoreboard"], os.listdir(rt)
    finally:
        for m in masters[1:]:
            stop_process_tree(m)
    # Nothing to find: a clear error naming the options.
    p = run_herdd(["reload", "--runtime-directory", str(tmp_path / "none")], timeout=10, env=no_mainpid)
    assert p.returncode != 0 and "--pid" in p.stderr and "--unit" in p.stderr, p.stderr


def test_aborted_upgrade_leaves_the_published_scoreboard_alone(herd_factory, tmp_path):
    rt = tmp_path / "run"
    rt.mkdir()
    port = free_ports(1)[0]
    # The commit is held back 3 s (test hook) but the upgrade times out after 1 s: aborted.
    h = herd_factory(["--workers", "1", "--listen", f"{LOCALHOST}:{port}", "--upgrade-timeout", "1"],
                     env={"RUNTIME_DIRECTORY": str(rt), "HERDD_TEST_UPGRADE_COMMIT_DELAY": "3"})
    p = run_herdd(["upgrade", "--runtime-directory", str(rt), "--timeout", "20"], timeout=30, env={"MAINPID": ""})
    assert p.returncode == 1 and "upgrade failed" in p.stderr, (p.stdout, p.stderr)
    new_pid = int(h.events("upgrade-start")[0]["new_pid"])
    try:
        wait_until(lambda: not pid_alive(new_pid), 10, what="aborted new master gone")
    finally:
        stop_process_tree(new_pid)
    # The aborted new master must not have shut down the sockets it shares with us (they are
    # the old master's own, not in an fd store: it closes them only once committed).
    for _ in range(5):
        assert http_get(port).status == 200
    p = run_herdd(["reload", "--runtime-directory", str(rt), "--timeout", "20"], timeout=30, env={"MAINPID": ""})
    assert p.returncode == 0 and "generation 2" in p.stdout, (p.stdout, p.stderr)
    wait_until(lambda: sorted(os.listdir(rt)) == ["scoreboard"], 5, what=f"only our scoreboard in {os.listdir(rt)}")
    assert h.stop() == 0


def test_backlog_max_does_not_depend_on_who_scrapes(herd_factory):
    port, mport = free_ports(2)
    h = herd_factory(["--workers", "1", "--listen", f"{LOCALHOST}:{port}", "--handler", "http=debug",
                      "--listen", f"{LOCALHOST}:{mport},name=metrics", "--handler", "metrics=metrics",
                      "--backlog-alarm", "3"])
    h.wait_workers(1)
    # The only worker blocks in a handler for 2.5 s; 6 connections wait in the accept queue.
    slow = threading.Thread(target=lambda: http_get(port, "/sleep/2500", timeout=10), daemon=True)
    slow.start()
    wait_busy(mport)
    waiting = [socket.create_connection((LOCALHOST, port), timeout=5) for _ in range(6)]
    try:
        wait_until(lambda: metric(mport, "herdd_listen_backlog", listener="http") >= 6, 3,
                   what="6 connections queued")
        slow.join(10)
        # The worker is back: the queue empties.
        wait_until(lambda: metric(mport, "herdd_listen_backlog", listener="http") == 0, 5,
                   what="queue drained")
        # Two scrapers, one after the other, both see the peak (it is the peak of the last
        # minute, not since the previous scrape).
        first = metric(mport, "herdd_listen_backlog_max", listener="http")
        second = metric(mport, "herdd_listen_backlog_max", listener="http")
        assert first >= 6 and second >= 6, (first, second)
        # About 2 s at or above the alarm threshold (3), counted once whoever scrapes.
        alarm = metric(mport, "herdd_listen_backlog_alarm_seconds_total", listener="http")
        assert 1.0 <= alarm <= 3.0, alarm
        assert metric(mport, "herdd_listen_backlog_alarm_seconds_total", listener="http") == alarm
    finally:
        for s in waiting:
            s.close()
    assert h.stop() == 0
