"""Master death, immediate stop, and the graceful-stop deadline."""

from __future__ import annotations

import signal
import threading
import time

from conftest import LOCALHOST, free_ports, http_get, metrics_listener, pid_alive, wait_busy, wait_until


def test_workers_exit_when_the_master_is_killed(herd_factory):
    port = free_ports(1)[0]
    h = herd_factory(["--workers", "3", "--listen", f"{LOCALHOST}:{port}"])
    workers = h.wait_workers(3)
    h.signal(signal.SIGKILL)
    h.wait(5)
    # PR_SET_PDEATHSIG delivers SIGTERM to each worker: they drain (nothing in flight) and exit.
    wait_until(lambda: not any(pid_alive(w) for w in workers), 5, what="orphaned workers to exit")


def test_sigquit_stops_at_once(herd_factory):
    port, mport = free_ports(2)
    h = herd_factory(["--workers", "2", "--listen", f"{LOCALHOST}:{port}", "--handler", "http=debug",
                      *metrics_listener(mport)])
    workers = h.wait_workers(2)
    t = threading.Thread(target=lambda: _ignore(lambda: http_get(port, "/sleep/5000", timeout=10)))
    t.start()
    wait_busy(mport)  # the request is in a worker's handler
    t0 = time.monotonic()
    h.signal(signal.SIGQUIT)
    assert h.wait(5) == 0
    assert time.monotonic() - t0 < 3, "SIGQUIT must not wait for the in-flight request"
    t.join(10)
    assert not any(pid_alive(w) for w in workers)
    assert h.events("stop", mode="immediate")


def test_graceful_timeout_kills_stragglers(herd_factory):
    port, mport = free_ports(2)
    h = herd_factory(["--workers", "1", "--listen", f"{LOCALHOST}:{port}", "--handler", "http=debug",
                      "--graceful-timeout", "1", *metrics_listener(mport)])
    worker = h.wait_workers(1)[0]
    t = threading.Thread(target=lambda: _ignore(lambda: http_get(port, "/sleep/10000", timeout=15)))
    t.start()
    wait_busy(mport)  # the request is in the worker's handler
    t0 = time.monotonic()
    h.signal(signal.SIGTERM)
    assert h.wait(8) == 0
    assert 0.9 <= time.monotonic() - t0 < 5
    assert not pid_alive(worker)
    killed = h.events("worker-killed")
    assert killed and killed[0]["reason"] == "graceful-timeout", h.log_tail()
    t.join(15)


def _ignore(fn):
    try:
        fn()
    except Exception:  # noqa: BLE001 - the connection is cut on purpose
        pass


def test_fd_exhaustion_does_not_spin_and_recovers(tmp_path):
    """accept4 failing with EMFILE leaves the listener readable: the worker must step back
    instead of spinning on it, and serve again once descriptors are free."""
    import os, socket, subprocess
    from conftest import HERDD_BIN, children_of, clean_env, stop_process_tree
    port = free_ports(1)[0]
    env = clean_env()
    # 48 descriptors per process: a worker runs out after a few dozen connections.
    p = subprocess.Popen(["prlimit", "--nofile=48:48", str(HERDD_BIN), "--workers", "1",
                          "--listen", f"{LOCALHOST}:{port}"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    held = []
    try:
        wait_until(lambda: children_of(p.pid), 10, what="worker")
        worker = children_of(p.pid)[0]
        from conftest import wait_http
        wait_http(port)
        for _ in range(60):  # more than the worker can hold: the rest wait in the accept queue
            s = socket.create_connection((LOCALHOST, port), timeout=5)
            held.append(s)
        # The worker has taken all it can: its descriptor table is full (48), and accept4
        # now fails with EMFILE.
        wait_until(lambda: len(os.listdir(f"/proc/{worker}/fd")) >= 48, 10, what="the worker out of descriptors")

        def cpu_ticks(pid):
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])  # utime + stime

        t0 = cpu_ticks(worker)
        time.sleep(1.0)  # a duration: the CPU the worker uses in 1 s while out of descriptors
        used = cpu_ticks(worker) - t0
        assert used < 20, f"worker used {used} ticks in 1 s while out of descriptors (spinning)"
        for s in held:
            s.close()
        held.clear()
        # Descriptors free again: new connections are served.
        wait_until(lambda: _ok(port), 10, what="serving again after EMFILE")
    finally:
        for s in held:
            s.close()
        stop_process_tree(p)
    err = p.stderr.read().decode(errors="replace")
    assert "accept-error" in err and "Too many open files" in err, err[-2000:]


def _ok(port):
    try:
        return http_get(port, "/", timeout=2).status == 200
    except Exception:  # noqa: BLE001
        return False


def test_a_validator_thread_does_not_take_the_masters_signals(herd_factory):
    # A handler validator may leave a thread behind (a database library, NIO's thread pool).
    # The master blocks its signals before the validators run, so that thread inherits the
    # mask: SIGUSR2 and SIGTERM stay for the master's signalfd instead of ending the process
    # by their default action on that thread.
    port = free_ports(1)[0]
    h = herd_factory(["--workers", "1", "--listen", f"{LOCALHOST}:{port}"],
                     env={"HERDD_TEST_VALIDATOR_THREAD": "1"})
    h.wait_workers(1)
    h.signal(signal.SIGTERM)
    assert h.wait(10) == 0, f"master ended by a signal on another thread\n{h.log_tail()}"
    assert h.events("stop")
