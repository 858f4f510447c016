"""Chaos under load, nothing lost (issue 24, part 3): 60 s of HUP, TTIN, TTOU, USR2, kill -9 and
SIGSTOP of workers (and --max-requests recycling) against keep-alive and `Connection: close`
clients of streams, uploads, static files and blocking handlers. The driver and the invariants
are in Tests/support/chaos.py (shared with `bench/run --only chaos`); docs/connections.md,
"Part 3: chaos". The seed is printed; HERDD_CHAOS_SEED replays one, HERDD_CHAOS_SECONDS changes
the length.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import (HERDD_BIN, LOCALHOST, NotifySocket, children_of, clean_env, closed_reasons, free_ports,
                      herdd_command, http_request, parse_responses, pid_alive, recv_until, wait_until)

from chaos import ChaosRun

# Heavy (80 s of load and kills, --timeout 2 heartbeats): run alone, after the other CI
# lanes' compiles (test.sh), so a worker descheduled by a compile is not taken for a hung one.
pytestmark = pytest.mark.serial


# About 75 s (start, 5 s warm-up, 60 s of chaos, a quiet end); pytest.ini's 90 s is too close
# on a loaded machine.
@pytest.mark.timeout(240)
def test_chaos_under_load_nothing_lost(tmp_path):
    seed = os.environ.get("HERDD_CHAOS_SEED")
    run = ChaosRun(HERDD_BIN, tmp_path, seed=int(seed) if seed else None)
    try:
        run.run(float(os.environ.get("HERDD_CHAOS_SECONDS", "60")))
        report = run.report()
        print(report)
        bad = run.verdict()
        assert not bad, "\n".join(bad + [report, run.log_tail(40)])
        f = run.figures()
        # The chaos happened: every kind of action, kills that cut connections, recycling.
        assert {"hup", "usr2", "kill9", "stop"} <= set(f["chaos"]), f["chaos"]
        assert f["worker_exits"].get("max-requests", 0) > 0, f["worker_exits"]
        assert f["worker_exits"].get("timeout", 0) > 0, f["worker_exits"]
        assert f["final_exit"] == 0
        assert all(f["ok"].get(k, 0) > 20 for k in ("pid", "sleep", "stream", "echo", "static")), f["ok"]
    finally:
        run.close()


def test_drain_serves_a_request_that_waited_unread_in_the_socket(herd_factory):
    """Found by the chaos test: a draining worker closed an idle keep-alive connection (silent
    for DrainPolicy's second) whose next request had already arrived in the socket but was not
    read yet because the worker was busy (here: stopped, as on a loaded machine). The client
    got a reset instead of its answer. The request must be read and answered, with
    `Connection: close`."""
    port, mport = free_ports(2)
    h = herd_factory(["--workers", "1", "--listen", f"{LOCALHOST}:{port}", "--handler", "http=debug",
                      "--listen", f"{LOCALHOST}:{mport},name=metrics", "--handler", "metrics=metrics"])
    (old,) = h.wait_workers(1)
    with socket.create_connection((LOCALHOST, port), timeout=10) as s:
        s.sendall(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
        data = recv_until(s, time.monotonic() + 10, done=lambda d: d.endswith(b"\n") and b"debug pid=" in d)
        assert f"debug pid={old}\n".encode() in data, data
        os.kill(old, signal.SIGSTOP)
        try:
            h.signal(signal.SIGHUP)  # the worker's TERM waits until it runs again
            h.wait_log("worker-spawned", timeout=10, count=2)
            time.sleep(1.2)  # silent longer than DrainPolicy.idleNanos
            s.sendall(b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.2)  # in the worker's socket, unread
        finally:
            os.kill(old, signal.SIGCONT)
        data = recv_until(s, time.monotonic() + 10)
    assert data, f"the connection was closed without an answer\n{h.log_tail()}"
    (r,) = parse_responses(data)
    assert r.status == 200 and r.body == f"debug pid={old}\n".encode(), (r, h.log_tail())
    assert r.header("Connection") == "close"
    wait_until(lambda: not pid_alive(old), 15, what="the old worker gone after answering")
    assert closed_reasons(mport).get("drain", 0) == 0


def test_full_log_target_changes_nothing(tmp_path):
    """The log target full, as on a full disk: herdd's stderr on /dev/full, where every write
    fails with ENOSPC. herdd serves, reloads, replaces a worker killed by -9 and one stopped
    past --timeout, and stops with status 0; nothing waits on the log."""
    port, mport = free_ports(2)
    notify = NotifySocket()
    cmd = herdd_command(HERDD_BIN, ["--workers", "2", "--listen", f"{LOCALHOST}:{port}", "--handler", "http=debug",
                                    "--listen", f"{LOCALHOST}:{mport},name=metrics", "--handler", "metrics=metrics",
                                    "--timeout", "2", "--log-level", "debug"])
    seen: set[int] = set()
    with open("/dev/full", "wb") as full:
        p = subprocess.Popen(cmd, env=clean_env(NOTIFY_SOCKET=notify.path), stdin=subprocess.DEVNULL,
                             stdout=full, stderr=full, start_new_session=True)
    try:
        notify.wait_for("READY=1", timeout=20)
        assert os.readlink(f"/proc/{p.pid}/fd/2") == "/dev/full"

        def workers() -> list[int]:
            ws = [w for w in children_of(p.pid) if pid_alive(w)]
            seen.update(ws)
            return ws

        def load(n: int):
            for i in range(n):
                body = os.urandom(i * 97 % 5000)
                r = http_request(mport if i % 10 == 0 else port, "POST" if i % 10 else "GET",
                                 "/echo" if i % 10 else "/metrics", body=body if i % 10 else None)
                assert r.status == 200 and (i % 10 == 0 or r.body == body), (i, r)

        first = wait_until(lambda: len(workers()) == 2 and workers(), 10, what="2 workers")
        load(100)
        os.kill(first[0], signal.SIGKILL)
        wait_until(lambda: len(set(workers()) - set(first)) == 1 and len(workers()) == 2, 10, what="killed worker replaced")
        os.kill(p.pid, signal.SIGHUP)
        wait_until(lambda: len(workers()) == 2 and not set(workers()) & set(first), 15, what="reload")
        load(100)
        stopped = workers()[0]
        os.kill(stopped, signal.SIGSTOP)
        wait_until(lambda: not pid_alive(stopped), 15, what="stopped worker killed by the heartbeat check")
        wait_until(lambda: len(workers()) == 2, 10, what="stopped worker replaced")
        load(100)
        assert p.poll() is None
        p.send_signal(signal.SIGTERM)
        assert p.wait(20) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        for w in seen:
            if pid_alive(w):
                os.kill(w, signal.SIGKILL)
        notify.close()
