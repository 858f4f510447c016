"""The three --balance policies (Worker.swift, docs/design.md "Balance"), each held to what its
code promises for sequential connections: rotate (default) hands the listener on every
rotationInterval (16) accepts and steps out above its share + 1, spread re-arms after every batch and steps out above its share,
hot keeps EPOLLEXCLUSIVE's LIFO order. And a respawned worker joins the rotation."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from conftest import LOCALHOST, all_in_epoll_wait, free_ports, in_epoll_wait, metrics_listener, wait_until
from conftest import status_json as status

ROTATION_INTERVAL = 16  # Worker.rotationInterval

# Timing-sensitive (the spread over workers depends on who gets the CPU):
# run alone, after the other CI lanes' compiles (test.sh).
pytestmark = pytest.mark.serial


def start(herd_factory, mode: str, workers: int = 4):
    port, mport = free_ports(2)
    h = herd_factory(["--workers", str(workers), "--balance", mode, "--listen", f"{LOCALHOST}:{port}",
                      *metrics_listener(mport)])
    pids = h.wait_workers(workers)
    # Every worker waits on the listeners before the first connection.
    wait_until(lambda: all(in_epoll_wait(p) for p in pids), 10, what="every worker in epoll_wait")
    return h, port, mport


def accepted_by_pid(mport) -> dict[int, int]:
    return {w["pid"]: w["accepted"] for w in status(mport)["workers"]}


def sequential(port, n):
    for _ in range(n):
        with socket.create_connection((LOCALHOST, port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            while s.recv(4096):
                pass


def active_with_held(port, mport, n) -> list[int]:
    """Opens `n` keep-alive connections one after the other (each answered once, so it is
    accepted and served), reads each worker's open connections, closes them."""
    held = []
    try:
        for _ in range(n):
            s = socket.create_connection((LOCALHOST, port), timeout=5)
            held.append(s)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            s.recv(4096)
        return [w["active"] for w in status(mport)["workers"]]
    finally:
        for s in held:
            s.close()


def test_spread_balances_sequential_connections(herd_factory):
    h, port, mport = start(herd_factory, "spread")
    sequential(port, 400)
    accepted = [w["accepted"] for w in status(mport)["workers"]]
    print(f"spread: accepted per worker {accepted}")
    assert sum(accepted) == 400
    # A spread worker re-arms (goes to the tail of the wait queue) right after its accept, before
    # it serves the connection, so the next connection of a sequential client wakes the next
    # worker: strict rotation, 100 each, whenever every worker waits in epoll_wait. A worker
    # that is not waiting when its turn comes (its heartbeat turn once a second, or descheduled
    # on a loaded machine) loses that turn to the next one and stays at the head. Measured
    # 100 / 100 / 100 / 100 on most runs, at worst 77 / 108 / 110 / 105 (load average 30).
    assert max(accepted) - min(accepted) <= 40, accepted
    # Still no herd: spreading must not bring back empty wakeups.
    listener = status(mport)["listeners"][0]
    assert listener["empty_wakeups"] <= 0.03 * 400, listener


def test_spread_balances_held_connections(herd_factory):
    h, port, mport = start(herd_factory, "spread")
    active = active_with_held(port, mport, 40)
    print(f"spread held: active per worker {active}")
    # overShare: a worker checks after each accept and steps out of the wait queues once
    # it holds more than ceil(total / workers), so it never holds more than one over the
    # share: at most 11 of 40 (so at least 40 - 3 * 11 = 7 each). Not closer: a worker
    # that stepped out re-adds itself at the tail, out of turn; measured 10/11/11/8 once.
    share = -(-40 // 4)
    assert sum(active) == 40 and max(active) <= share + 1, active


def test_hot_keeps_lifo(herd_factory):
    # No rotation: EPOLLEXCLUSIVE wakes the first waiter of the listener's wait queue whose
    # epoll has a thread in epoll_wait, and with hot nobody leaves their place in it, so the
    # worker at the head takes every connection that finds it back in epoll_wait. Paced (each
    # connection waits until every worker is in epoll_wait), that is every connection but one
    # that meets the head worker in its heartbeat turn: measured 200 of 200. Unpaced, the head
    # worker is sometimes still closing the previous connection, and how often depends on the
    # load on the machine: 90-92% on a loaded 2-core VM, 41% once in CI beside a package build
    # (the bound of half failed there), so the claim is tested paced. Bound: 90%, which rotate
    # (16 per run: 64 of 200 at most here) and spread (strict rotation: 50) never come near.
    n = 200
    h, port, mport = start(herd_factory, "hot")
    pids = h.worker_pids()
    unpaced = 0
    for _ in range(n):
        if not all_in_epoll_wait(pids, time.monotonic() + 1.0):
            unpaced += 1
        sequential(port, 1)
    assert h.worker_pids() == pids, "a worker was replaced during the measurement"
    accepted = [w["accepted"] for w in status(mport)["workers"]]
    print(f"hot: accepted per worker {accepted}, unpaced {unpaced}")
    assert unpaced <= 0.02 * n, f"{unpaced} connections did not find every worker in epoll_wait within 1 s"
    assert sum(accepted) == n and max(accepted) >= 0.9 * n, accepted


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
    # Runs of ROTATION_INTERVAL in turn: 25 runs over 4 workers, 112 / 96 / 96 / 96 when every
    # worker is back in epoll_wait in time. A connection that comes while the worker at the head
    # is not yet back goes to the next one and counts toward its run, which shifts the runs a
    # little; a worker that is not waiting for a while (descheduled on a loaded machine) loses
    # its run. Measured 96-112 on most runs, at worst 80. Bound: every worker within three runs
    # of the even share.
    assert all(abs(a - 100) <= 3 * ROTATION_INTERVAL for a in accepted), accepted
    # Rotating must not bring back the herd. Empty wakeups come when a worker that is not in
    # epoll_wait (still finishing the previous connection) has the listener in its ready list:
    # EPOLLEXCLUSIVE limits whom the kernel wakes, not whose ready list gets the event. Measured
    # on this 2-core VM, idle, 2026-12-02: 2-65 of 400 (most runs under 12, a third near 40),
    # the same with the build of 8b1e5c2 and of today (50 once in CI, where an earlier bound of
    # 6% failed); the herd itself (--accept-mode shared) reaches 70%. Bound: 25%, which the
    # herd breaks and rotation has never come near.
    assert st["listeners"][0]["empty_wakeups"] <= 0.25 * 400, st["listeners"][0]


def test_rotate_caps_held_connections_at_share_plus_one(herd_factory):
    # Issue 22's JSON p99: the rotation alone let one of 2 workers keep 32 of 50 keep-alive
    # connections opened one after the other (runs of 16: 16 + 16 against 16 + 2), and a burst
    # while the other was off the CPU 48/2. A rotate worker steps out of the wait queues above
    # ceil(total / workers) + 1 (Worker.rotateShareSlack) and comes back within the share:
    # it checks after each accept, so it holds at most share + 2 = 27 of 50, 23 the other.
    h, port, mport = start(herd_factory, "rotate", workers=2)
    active = active_with_held(port, mport, 50)
    print(f"rotate held: active per worker {active}")
    assert sum(active) == 50 and max(active) <= 27, active


def test_respawned_worker_joins_the_rotation(herd_factory):
    # Seen once in the notes-api test: after a worker was respawned, the other took every one
    # of 81 sequential connections. The respawned worker registers the listener at the tail of
    # its wait queue; the survivor hands on after at most ROTATION_INTERVAL more accepts and
    # goes behind it, so in 81 connections the new worker gets at least one full run.
    h, port, mport = start(herd_factory, "rotate", workers=2)
    sequential(port, 40)  # the rotation is under way: the survivor's count is anywhere in a run
    old = h.wait_workers(2)
    victim = old[0]
    os.kill(victim, signal.SIGKILL)
    new = h.wait_workers(2, exclude=[victim])
    (fresh,) = set(new) - set(old)
    wait_until(lambda: in_epoll_wait(fresh) and any(w["pid"] == fresh and w["state"] == "idle" for w in status(mport)["workers"]),
               10, what="the respawned worker waiting on the listener")
    before = accepted_by_pid(mport)
    sequential(port, 81)
    after = accepted_by_pid(mport)
    got = {pid: after[pid] - before.get(pid, 0) for pid in after}
    print(f"after a respawn: accepted per worker {got} (respawned: {fresh})")
    assert sum(got.values()) == 81, got
    assert got[fresh] >= ROTATION_INTERVAL, got
