"""Master death, immediate stop, and the graceful-stop deadline."""

from __future__ import annotations

import signal
import threading
import time

from conftest import LOCALHOST, free_ports, http_get, pid_alive, wait_until


def test_workers_exit_when_the_master_is_killed(herd_factory):
    port = free_ports(1)[0]
    h = herd_factory(["--workers", "3", "--listen", f"{LOCALHOST}:{port}"])
    workers = h.wait_workers(3)
    h.signal(signal.SIGKILL)
    h.wait(5)
    # PR_SET_PDEATHSIG delivers SIGTERM to each worker: they drain (nothing in flight) and exit.
    wait_until(lambda: not any(pid_alive(w) for w in workers), 5, what="orphaned workers to exit")


def test_sigquit_stops_at_once(herd_factory):
    port = free_ports(1)[0]
    h = herd_factory(["--workers", "2", "--listen", f"{LOCALHOST}:{port}", "--handler", "http=debug"])
    workers = h.wait_workers(2)
    t = threading.Thread(target=lambda: _ignore(lambda: http_get(port, "/sleep/5000", timeout=10)))
    t.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    h.signal(signal.SIGQUIT)
    assert h.wait(5) == 0
    assert time.monotonic() - t0 < 3, "SIGQUIT must not wait for the in-flight request"
    t.join(10)
    assert not any(pid_alive(w) for w in workers)
    assert h.events("stop", mode="immediate")


def test_graceful_timeout_kills_stragglers(herd_factory):
    port = free_ports(1)[0]
    h = herd_factory(["--workers", "1", "--listen", f"{LOCALHOST}:{port}", "--handler", "http=debug",
                      "--graceful-timeout", "1"])
    worker = h.wait_workers(1)[0]
    t = threading.Thread(target=lambda: _ignore(lambda: http_get(port, "/sleep/10000", timeout=15)))
    t.start()
    time.sleep(0.3)
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
