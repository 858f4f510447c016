"""--balance spread (issue 8): an even spread over workers without the herd; --balance hot keeps
EPOLLEXCLUSIVE's LIFO behaviour."""

from __future__ import annotations

import json
import socket
import time

import pytest

from conftest import LOCALHOST, free_ports, http_get, wait_until

# Timing-sensitive (the spread over workers depends on who gets the CPU):
# run alone, after the other CI lanes' compiles (test.sh).
pytestmark = pytest.mark.serial


def start(herd_factory, mode: str):
    port, mport = free_ports(2)
    h = herd_factory(["--workers", "4", "--balance", mode, "--listen", f"{LOCALHOST}:{port}",
                      "--listen", f"{LOCALHOST}:{mport},name=metrics", "--handler", "metrics=metrics"])
    h.wait_workers(4)
    return h, port, mport


def status(mport):
    return json.loads(http_get(mport, "/status.json").body)


def sequential(port, n):
    for _ in range(n):
        with socket.create_connection((LOCALHOST, port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            while s.recv(4096):
                pass


def test_spread_balances_sequential_connections(herd_factory):
    h, port, mport = start(herd_factory, "spread")
    sequential(port, 400)
    accepted = [w["accepted"] for w in status(mport)["workers"]]
    assert sum(accepted) == 400
    assert min(accepted) > 0 and max(accepted) / min(accepted) <= 1.5, accepted
    # Still no herd: spreading must not bring back empty wakeups.
    listener = status(mport)["listeners"][0]
    assert listener["empty_wakeups"] <= 0.03 * 400, listener


def test_spread_balances_held_connections(herd_factory):
    h, port, mport = start(herd_factory, "spread")
    held = []
    try:
        for _ in range(40):
            s = socket.create_connection((LOCALHOST, port), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            s.recv(4096)
            held.append(s)
        active = [w["active"] for w in status(mport)["workers"]]
        assert sum(active) == 40 and max(active) - min(active) <= 2, active
    finally:
        for s in held:
            s.close()


def test_hot_keeps_lifo(herd_factory):
    # The kernel's EPOLLEXCLUSIVE order: the most recent waiter takes the next connection, so
    # sequential connections pile onto few workers. (Documented behaviour; measured, and
    # asserted loosely: at least one worker took more than its even share.)
    h, port, mport = start(herd_factory, "hot")
    sequential(port, 400)
    accepted = [w["accepted"] for w in status(mport)["workers"]]
    assert sum(accepted) == 400 and max(accepted) > 100, accepted


def test_rotate_spreads_sequential_connections(herd_factory):
    # nginx's way (ngx_reorder_accept_events): every 16 accepts a worker re-adds the listener
    # and goes to the back of the wait queue, so sequential connections come in runs of about
    # 16 per worker instead of piling onto one (hot: 1999 / 0 / 0 / 1 in the benchmark).
    h, port, mport = start(herd_factory, "rotate")
    sequential(port, 400)
    st = status(mport)
    accepted = [w["accepted"] for w in st["workers"]]
    assert sum(accepted) == 400, accepted
    print(f"rotate: accepted per worker {accepted}, empty wakeups {st['listeners'][0]['empty_wakeups']}")
    assert min(accepted) >= 50 and max(accepted) <= 150, accepted
    # Rotating must not bring back the herd. Measured: 0-11 empty wakeups of 400 on an idle
    # machine, 16 once in CI (each of the 25 rotations changes which worker is woken first,
    # and now and then the previous one is not back in epoll_wait yet); the herd itself
    # (--accept-mode shared) is 10-70%. Bound: 6%.
    assert st["listeners"][0]["empty_wakeups"] <= 0.06 * 400, st["listeners"][0]
