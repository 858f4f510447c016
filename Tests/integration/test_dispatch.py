"""Issue 12: work-conserving dispatch. While a worker runs a blocking handler, its idle keep-alive
connections that turn readable are handed (SCM_RIGHTS over the dispatch socket) to an idle
worker; the queue-time histogram counts every request."""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import threading
import time

import pytest

from conftest import (LOCALHOST, children_of, closed_reasons, free_ports, http_get, pid_alive, run_herdd,
                      stop_process_tree, wait_until)
from conftest import status_json as status

# Timing-sensitive (hand-offs answered within 0.1 s):
# run alone, after the other CI lanes' compiles (test.sh).
pytestmark = pytest.mark.serial


def start(herd_factory, workers=2, extra=(), notify=None, env=None):
    port, mport = free_ports(2)
    h = herd_factory(["--workers", str(workers), "--listen", f"{LOCALHOST}:{port},name=web", "--handler", "web=debug",
                      "--listen", f"{LOCALHOST}:{mport},name=metrics", "--handler", "metrics=metrics", *extra],
                     notify=notify, env=env)
    h.wait_workers(workers)
    return h, port, mport


def web(mport):
    return next(l for l in status(mport)["listeners"] if l["name"] == "web")


class Conn:
    """A raw keep-alive connection: send a GET, read one response (Content-Length framed)."""

    def __init__(self, port, timeout=10.0):
        self.s = socket.create_connection((LOCALHOST, port), timeout=timeout)
        self.buf = b""
        self.server_closes = False  # the last response said `Connection: close`

    def send(self, path, close=False):
        extra = "Connection: close\r\n" if close else ""
        self.s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())

    def read(self):
        while b"\r\n\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise AssertionError(f"connection closed before a response (buffer {self.buf!r})")
            self.buf += chunk
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        n = int(m.group(1)) if m else 0
        while len(rest) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise AssertionError(f"connection closed mid-body: {head!r}")
            rest += chunk
        self.buf = rest[n:]
        self.server_closes = re.search(rb"(?i)\r\nconnection: *close", head) is not None
        return int(head.split(b" ")[1]), rest[:n]

    def get(self, path, close=False):
        self.send(path, close)
        return self.read()

    def close(self):
        self.s.close()


def pid_of(body: bytes) -> int:
    m = re.match(rb"debug pid=(\d+)\n", body)
    assert m, body
    return int(m.group(1))


def run_clients(fn, n, timeout):
    """Runs fn(i) for i in 0..<n on threads and waits for all of them (at most `timeout` s)."""
    threads = [threading.Thread(target=fn, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), f"load did not finish within {timeout} s"


def two_on_one_worker(port, conns):
    """Opens keep-alive connections (appended to `conns`, which the caller closes) until two of
    them are held by the same worker; returns (that worker's pid, the two connections)."""
    by_pid: dict[int, list[Conn]] = {}
    for _ in range(12):
        c = Conn(port)
        conns.append(c)
        status_, body = c.get("/")
        assert status_ == 200
        by_pid.setdefault(pid_of(body), []).append(c)
        if any(len(v) >= 2 for v in by_pid.values()):
            break
    return next((p, v[0], v[1]) for p, v in by_pid.items() if len(v) >= 2)


def park_in_sleep(mport, port, conns, ms):
    """Two keep-alive connections on one worker (appended to `conns`); the first sends
    /sleep/`ms` and the worker is inside that handler (its scoreboard state says busy) on return.
    Returns (busy worker pid, the parked connection, the other one, web listener stats before)."""
    busy_pid, parked, other = two_on_one_worker(port, conns)
    before = web(mport)
    parked.send(f"/sleep/{ms}")
    wait_until(lambda: any(w["pid"] == busy_pid and w["state"] == "busy" for w in status(mport)["workers"]),
               5, what=f"the worker running /sleep/{ms}")
    return busy_pid, parked, other, before


def served_elsewhere(other, busy_pid, within):
    """Sends `/` on `other` (a connection of the busy worker `busy_pid`) and checks that the
    idle worker answered it (handed off), within `within` seconds."""
    t0 = time.monotonic()
    status_, body = other.get("/")
    elapsed = time.monotonic() - t0
    assert status_ == 200
    assert pid_of(body) != busy_pid, f"served after the handler by its own worker ({elapsed:.2f} s)"
    assert elapsed < within, f"answered in {elapsed:.2f} s"


@pytest.mark.parametrize("balance", ["rotate", "hot", "spread"])
def test_request_on_a_busy_workers_connection_is_served_by_the_idle_worker(herd_factory, balance):
    h, port, mport = start(herd_factory, extra=("--balance", balance))
    conns = []
    try:
        busy_pid, parked, other, before = park_in_sleep(mport, port, conns, 2000)
        t0 = time.monotonic()
        status_, body = other.get("/")
        elapsed = time.monotonic() - t0
        assert status_ == 200
        served_by = pid_of(body)
        assert served_by != busy_pid, "the request waited for the busy worker"
        assert elapsed < 0.1, f"answered in {elapsed * 1000:.0f} ms"
        # The connection now lives in the other worker: it keeps serving there, keep-alive.
        status_, body = other.get("/")
        assert status_ == 200 and pid_of(body) == served_by
        # The parked request completes normally on its own worker.
        status_, body = parked.read()
        assert (status_, body) == (200, b"slept 2000\n")
        after = web(mport)
        assert after["handed_off"] - before["handed_off"] >= 1
        assert after["received"] - before["received"] >= 1
        # Queue time of the dispatched request is below 100 ms, and the slept request is counted.
        assert after["queue"]["count"] - before["queue"]["count"] == 3
    finally:
        for c in conns:
            c.close()


def test_request_arriving_between_handlers_goes_to_the_idle_worker(herd_factory):
    """A request that becomes readable while its worker's event loop is busy outside a handler
    (here: a slow turn, HERDD_TEST_TURN_DELAY_MS in test builds) is seen by the watcher while it
    is not active. That edge is reported once: the watcher keeps it, and the next blocking
    handler of the worker hands the connection to the idle worker instead of serving it after."""
    port, mport = free_ports(2)
    h = herd_factory(["--workers", "2", "--listen", f"{LOCALHOST}:{port},name=web", "--handler", "web=debug",
                      "--listen", f"{LOCALHOST}:{mport},name=metrics", "--handler", "metrics=metrics"],
                     env={"HERDD_TEST_TURN_DELAY_MS": "300"})
    h.wait_workers(2)
    conns = []
    try:
        busy_pid, parked, other = two_on_one_worker(port, conns)
        before = web(mport)
        # The worker wakes for the first request and spends 300 ms before serving it; the
        # second request comes 100 ms into that turn, so it is not in the turn's batch.
        parked.send("/sleep/1500")
        time.sleep(0.1)  # a duration: 100 ms into the worker's slow (300 ms) turn, not its batch
        # Handed off when /sleep/1500 starts (about 200 ms from now), served after the other
        # worker's own 300 ms turn: about 0.5 s. Kept by its worker, it would come after the
        # sleep: about 1.7 s.
        served_elsewhere(other, busy_pid, 1.2)
        assert (parked.read()) == (200, b"slept 1500\n")
        after = web(mport)
        assert after["handed_off"] - before["handed_off"] == 1
        assert after["received"] - before["received"] == 1
    finally:
        for c in conns:
            c.close()


def watcher_switches(pid):
    """Voluntary context switches of worker `pid`'s dispatch watcher thread (named "watcher"):
    one per wake-up."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().strip() != "watcher":
                    continue
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                return int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", f.read(), re.M).group(1))
        except OSError:
            continue
    raise AssertionError(f"worker {pid} has no thread named watcher")


def park_watcher(conn, pid, n=300):
    """Sends `n` requests that do not block (`/`) on `conn`, held by worker `pid`, one at a
    time: each comes while the worker is idle, an edge on the watcher's epoll. Returns the
    watcher's wake-ups meanwhile."""
    before = watcher_switches(pid)
    for _ in range(n):
        status_, body = conn.get("/")
        assert status_ == 200 and pid_of(body) == pid
    return watcher_switches(pid) - before


def parked_watcher(port, conns):
    """Two connections on one worker (appended to `conns`) whose watcher is parked: 300 requests
    that do not block woke it fewer than 100 times (about Watcher.parkAfter). Returns (that
    worker's pid, the two connections)."""
    busy_pid, parked, other = two_on_one_worker(port, conns)
    woke = park_watcher(other, busy_pid)
    assert woke < 100, f"the watcher woke {woke} times for 300 requests that do not block"
    return busy_pid, parked, other


def test_watcher_parks_while_no_handler_blocks_and_a_blocking_handler_wakes_it(herd_factory):
    """Issue 22: a blocking listener's requests to routes that do not block (json20 beside
    GRDB routes; here the debug handler's `/`) woke the watcher once each, for nothing. After
    Watcher.parkAfter (8) such wake-ups in a row it parks on an eventfd: 300 requests wake it
    about 8 times, not 300. A blocking handler's start() wakes it, and it hands off at once."""
    parks_and_wakes(herd_factory)


def test_event_loop_asks_the_watcher_to_park(herd_factory):
    """The watcher's own count misses the wake-ups that return nothing: when the event loop
    reads a request before the woken watcher looks (CPU short), epoll_wait sleeps again inside
    the kernel (300 requests woke it 101 times in one CI run). The event loop, which sees every
    request, asks it to park after Watcher.parkAfter requests in a row that blocked nothing.
    With the watcher's own count off (HERDD_TEST_WATCHER_OWN_COUNT_OFF, test builds) only that
    request parks it: 300 requests still wake it fewer than 100 times, and a blocking handler
    still wakes it and hands off."""
    parks_and_wakes(herd_factory, env={"HERDD_TEST_WATCHER_OWN_COUNT_OFF": "1"})


def parks_and_wakes(herd_factory, env=None):
    """A parked watcher (parked_watcher) is woken by the next blocking handler, and the request
    that comes meanwhile on the worker's other connection goes to the idle worker at once."""
    h, port, mport = start(herd_factory, env=env)
    conns = []
    try:
        busy_pid, parked, other = parked_watcher(port, conns)
        parked.send("/sleep/1500")
        wait_until(lambda: any(w["pid"] == busy_pid and w["state"] == "busy" for w in status(mport)["workers"]),
                   5, what="the worker running /sleep/1500")
        served_elsewhere(other, busy_pid, 0.5)
        assert parked.read() == (200, b"slept 1500\n")
    finally:
        for c in conns:
            c.close()


def test_edge_that_comes_while_the_watcher_is_parked_is_handed_off_at_the_next_handler(herd_factory):
    """An edge that comes while the watcher is parked (not in epoll_wait) stays on its epoll's
    ready list: when the next blocking handler wakes it, it sees that connection and hands it
    off. Here the worker is busy in `/spin` (CPU, a route that does not block: nothing starts
    the watcher) when the other connection's request comes; `/sleep` is pipelined behind it."""
    h, port, mport = start(herd_factory)
    conns = []
    try:
        busy_pid, parked, other = parked_watcher(port, conns)
        before = web(mport)
        parked.s.sendall(b"GET /spin/400000 HTTP/1.1\r\nHost: x\r\n\r\nGET /sleep/1500 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.15)  # a duration: into the worker's 400 ms of CPU (a turn that reads nothing else)
        # Handed off when /sleep/1500 starts (after the spin, about 0.25 s from now). Lost, it
        # would be served by its own worker after the sleep: about 1.75 s.
        served_elsewhere(other, busy_pid, 1.2)
        assert parked.read() == (200, b"worked 400000\n")
        assert parked.read() == (200, b"slept 1500\n")
        after = web(mport)
        assert after["handed_off"] - before["handed_off"] == 1
    finally:
        for c in conns:
            c.close()


def test_connection_per_request_load_at_saturation_goes_through_the_accept_queue_only(herd_factory):
    """Saturated by `Connection: close` clients, a worker coming back from a handler takes one
    piece of new work per turn and serves it at once: it does not accept a connection it cannot
    serve and then hand it off at its next handler (before: nearly every request went through
    the listener's queue and then the dispatch queue)."""
    h, port, mport = start(herd_factory)
    before = web(mport)
    clients, per = 8, 25
    errors = []
    answered = [0]
    lock = threading.Lock()

    def run(_i):
        for _ in range(per):
            c = Conn(port)
            try:
                status_, body = c.get("/sleep/20", close=True)
                if (status_, body) != (200, b"slept 20\n"):
                    errors.append((status_, body[:80]))
                else:
                    with lock:
                        answered[0] += 1
            except Exception as e:  # noqa: BLE001 - recorded, asserted below
                errors.append(repr(e))
            finally:
                c.close()

    run_clients(run, clients, 60)
    assert not errors, errors[:5]
    assert answered[0] == clients * per
    after = web(mport)
    handed = after["handed_off"] - before["handed_off"]
    # 8 clients on 2 workers: the workers are saturated nearly all the time. A hand-off can
    # still happen when a worker that slept is woken for two things at once; a few, not one
    # per request (the build before this rule: 189 of 200 here).
    assert handed <= clients * per // 10, f"{handed} of {clients * per} requests were handed off"
    assert after["received"] - before["received"] == handed
    assert after["queue"]["count"] - before["queue"]["count"] == clients * per


def test_no_request_lost_over_20000_mixed_requests_and_queue_histogram_counts_all(herd_factory):
    h, port, mport = start(herd_factory)
    base = web(mport)
    total = 20000
    clients = 16
    per = total // clients
    results = [[] for _ in range(clients)]
    errors = []

    def run(i):
        rnd = random.Random(i)
        c = Conn(port)
        try:
            for k in range(per):
                r = rnd.random()
                if r < 0.06:
                    path, want = "/sleep/2", b"slept 2\n"
                elif r < 0.12:
                    path, want = "/work/300", b"worked 300\n"
                else:
                    path, want = f"/n/{i}/{k}", None
                close = rnd.random() < 0.05  # some connections close after the response
                status_, body = c.get(path, close=close)
                ok = status_ == 200 and (body == want if want else body.startswith(b"debug pid="))
                results[i].append(ok)
                if not ok:
                    errors.append((path, status_, body[:80]))
                if close:
                    c.close()
                    c = Conn(port)
        except Exception as e:  # noqa: BLE001 - recorded, asserted below
            errors.append(repr(e))
        finally:
            c.close()

    run_clients(run, clients, 120)
    assert not errors, errors[:5]
    assert sum(len(r) for r in results) == total and all(all(r) for r in results)
    after = web(mport)
    st = status(mport)
    served = st["requests"]["2xx"]
    # Every request was counted once in the queue-time histogram of its listener.
    assert after["queue"]["count"] - base["queue"]["count"] == total, (after["queue"], base["queue"])
    assert sum(after["queue"]["buckets"]) <= after["queue"]["count"]
    assert served >= total
    # The mix made workers busy while their other connections had requests: some were handed
    # over, and every one handed over was taken by a worker.
    assert after["handed_off"] > 0
    assert after["received"] == after["handed_off"], after
    text = http_get(mport, "/metrics").body.decode()
    m = re.search(r'herdd_request_queue_seconds_count\{listener="web"\} (\d+)', text)
    assert m and int(m.group(1)) == after["queue"]["count"]


def test_draining_worker_leaves_nothing_in_the_dispatch_queue(herd_factory):
    """Reload while blocking requests run on every connection: every request gets its answer."""
    h, port, mport = start(herd_factory)
    stop = threading.Event()
    errors = []
    done = [0]

    def run(i):
        c = None
        while not stop.is_set():
            fresh = c is None
            try:
                if c is None:
                    c = Conn(port)
                status_, body = c.get("/sleep/5" if i % 2 else "/x")
                if status_ != 200:
                    errors.append((status_, body))
                done[0] += 1
            except (AssertionError, ConnectionResetError, BrokenPipeError) as e:
                # A draining worker closes idle keep-alive connections; a request that crossed
                # that close gets EOF or a reset before any response byte, and the client
                # retries it on a new connection (RFC 9112 9.3.1). On a fresh connection, or
                # after part of a response, it is an error.
                if fresh or "mid-body" in str(e) or (c is not None and c.buf):
                    errors.append(repr(e))
                if c is not None:
                    c.close()
                c = None
            except OSError as e:
                errors.append(repr(e))
                c = None
        if c is not None:
            c.close()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(8)]
    for t in threads:
        t.start()
    try:
        def served(n):
            start = done[0]
            wait_until(lambda: done[0] >= start + n or errors, 20, what=f"{n} more requests answered")
        served(50)  # the clients run
        for _ in range(2):
            p = run_herdd(["reload", "--pid", str(h.pid), "--timeout", "30"], timeout=40)
            assert p.returncode == 0, p.stderr
            served(50)  # the new generation serves them
    finally:
        stop.set()
        for t in threads:
            t.join(20)
    assert not errors, errors[:5]
    assert done[0] > 100
    wait_until(lambda: web(mport)["received"] == web(mport)["handed_off"], 5, what="every handed-off connection taken")


def dispatch_counters(mport):
    """herdd_dispatch_handed_off_total / herdd_dispatch_received_total of the web listener."""
    text = http_get(mport, "/metrics").body.decode()
    out = []
    for name in ("herdd_dispatch_handed_off_total", "herdd_dispatch_received_total"):
        m = re.search(name + r'\{listener="web"\} (\d+)\n', text)
        assert m, f"{name} missing from /metrics"
        out.append(int(m.group(1)))
    return tuple(out)


class UpgradeClient(threading.Thread):
    """Keep-alive requests until stopped (bounded in count and time): a mix of blocking
    `/sleep/<ms>` and `POST /echo` with a body unique to the request, so every response is
    checked against the request it answers (a second answer to one request would be read as
    the answer to the next and fail the check). A request that meets EOF or a reset before any
    byte of its response on a reused connection (a draining worker closed it while idle) is
    sent again on a new connection (RFC 9112 9.3.1); the server-side count below proves it was
    not served the first time."""

    def __init__(self, index, port, stop, max_requests=4000, max_seconds=120.0):
        super().__init__(name=f"upgrade-client-{index}", daemon=True)
        self.index = index
        self.port = port
        self.stop_ev = stop
        self.max_requests = max_requests
        self.deadline = time.monotonic() + max_seconds
        self.sent = 0  # distinct requests
        self.answered = 0  # 200 with the body of that request
        self.retries = 0
        self.connections = 0
        self.errors = []

    def _request(self, k, rnd):
        r = rnd.random()
        if r < 0.3:
            ms = rnd.choice((2, 5, 10, 20, 40))
            return f"GET /sleep/{ms} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), f"slept {ms}\n".encode()
        body = f"client {self.index} request {k}\n".encode()
        head = f"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        return head + body, body

    def run(self):
        rnd = random.Random(1000 + self.index)
        c = None
        try:
            while not self.stop_ev.is_set() and self.sent < self.max_requests and time.monotonic() < self.deadline:
                req, want = self._request(self.sent, rnd)
                self.sent += 1
                for attempt in (0, 1):
                    fresh = c is None
                    if c is None:
                        c = Conn(self.port)
                        self.connections += 1
                    try:
                        c.s.sendall(req)
                        status_, body = c.read()
                        break
                    except (AssertionError, ConnectionResetError, BrokenPipeError) as e:
                        partial = bool(c.buf)
                        c.close()
                        c = None
                        if fresh or partial or attempt == 1:
                            raise AssertionError(f"request {self.sent - 1} failed: {e!r} (fresh={fresh}, partial={partial})")
                        self.retries += 1
                if (status_, body) != (200, want):
                    raise AssertionError(f"request {self.sent - 1}: got {(status_, body[:80])}, want {(200, want)}")
                self.answered += 1
                if c.server_closes:
                    c.close()
                    c = None
            if c is not None:
                # Nothing more may arrive on the connection: no second answer to any request.
                c.s.settimeout(0.3)
                try:
                    extra = c.buf or c.s.recv(65536)
                except (socket.timeout, ConnectionResetError):  # silence or a close: no answer
                    extra = b""
                assert not extra, f"unsolicited bytes after the last response: {extra[:120]!r}"
        except Exception as e:  # noqa: BLE001 - recorded, asserted by the test
            self.errors.append(repr(e))
        finally:
            if c is not None:
                c.close()


def test_upgrade_under_blocking_load_loses_and_repeats_no_request(herd_factory, notify):
    """SIGUSR2 while keep-alive clients send blocking requests and busy workers hand their
    connections to the dispatch socket: the new master takes over (MAINPID= + READY=1), the old
    one drains its dispatch queue and exits, every request gets exactly one 200, and the
    dispatch counters (carried across the upgrade) balance: handed off == received."""
    h, port, mport = start(herd_factory, workers=3, notify=notify,
                           extra=("--graceful-timeout", "10", "--upgrade-timeout", "20"))
    notify.wait_for("READY=1", timeout=15)
    old_pid = h.pid
    old_workers = h.wait_workers(3)
    base = web(mport)
    stop = threading.Event()
    clients = [UpgradeClient(i, port, stop) for i in range(8)]

    def answered():
        return sum(c.answered for c in clients)

    def failed():
        return [e for c in clients for e in c.errors]

    try:
        try:
            for c in clients:
                c.start()
            # The load runs and busy workers have handed connections off before the upgrade.
            wait_until(lambda: failed() or (web(mport)["handed_off"] > base["handed_off"] and answered() >= 200),
                       30, what="hand-offs under load before the upgrade")
            assert not failed(), failed()[:5]
            at_usr2 = answered()
            n_before = notify.count()
            os.kill(old_pid, signal.SIGUSR2)
            msg = notify.wait_for(lambda m: "MAINPID=" in m, timeout=30, start=n_before)
            new_pid = int(re.search(r"MAINPID=(\d+)", msg).group(1))
            assert new_pid != old_pid
            assert "READY=1" in msg.split("\n"), msg
            # The old master drains (its workers empty the old dispatch queue) and exits cleanly.
            assert h.wait(30) == 0, h.log_tail()
            assert answered() > at_usr2, "no request was answered while the upgrade ran"
            for w in old_workers:
                wait_until(lambda: not pid_alive(w), 10, what=f"old worker {w} gone")
            assert status(mport)["master_pid"] == new_pid
            # The new master's workers hand off too. (The old master sends its final counters
            # right before it exits; a second later the new master has added them: a duration,
            # as no event marks that.)
            time.sleep(1.0)
            after_upgrade = web(mport)["handed_off"]
            at_exit = answered()
            wait_until(lambda: failed() or (web(mport)["handed_off"] > after_upgrade and answered() >= at_exit + 200),
                       30, what="hand-offs under the new master")
        finally:
            stop.set()
            for c in clients:
                c.join(30)
        assert not any(c.is_alive() for c in clients), "a client did not stop within 30 s"
        assert not failed(), (failed()[:5], h.log_tail())
        # Exactly one 200 (with the request's own body) per request, per client.
        for c in clients:
            assert c.answered == c.sent, (c.index, c.sent, c.answered)
        total = answered()
        # The server ran each request once: its queue-time histogram (the old master's counts
        # carried over, plus the new master's) counted exactly the requests the clients got.
        wait_until(lambda: web(mport)["queue"]["count"] - base["queue"]["count"] >= total, 10,
                   what="every answered request counted")
        assert web(mport)["queue"]["count"] - base["queue"]["count"] == total
        # Every connection handed off was taken, in both generations (herdd_dispatch_*).
        wait_until(lambda: (lambda d: d[0] == d[1])(dispatch_counters(mport)), 10,
                   what="dispatch queue empty (handed off == received)")
        handed_off, received = dispatch_counters(mport)
        assert handed_off == received > base["handed_off"], (handed_off, received, base)
        print(f"answered {total} ({at_usr2} before SIGUSR2, {at_exit} when the old master had exited), "
              f"retried {sum(c.retries for c in clients)}, connections {sum(c.connections for c in clients)}, "
              f"handed off {handed_off} ({after_upgrade} one second after the old master exited)")
        new_workers = [p for p in children_of(new_pid) if pid_alive(p)]
        assert len(new_workers) == 3 and not set(new_workers) & set(old_workers), (new_workers, old_workers)
    finally:
        # The new master is not the fixture's: stop it and its workers (by pid).
        for line in h.events("upgrade-start"):
            stop_process_tree(int(line["new_pid"]))


def test_queue_time_shows_a_request_waiting_behind_a_blocking_one(herd_factory):
    """Pipelined input stays with its worker: the second request waits for the first's 300 ms,
    and the queue-time histogram shows it (bucket bounds: ... 0.25 s, 1 s ...)."""
    h, port, mport = start(herd_factory)
    before = web(mport)["queue"]
    c = Conn(port)
    try:
        c.s.sendall(b"GET /sleep/300 HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read() == (200, b"slept 300\n")
        status_, body = c.read()
        assert status_ == 200 and body.startswith(b"debug pid=")
    finally:
        c.close()
    after = web(mport)["queue"]
    assert after["count"] - before["count"] == 2
    bounds = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5]
    waited = [i for i, (a, b) in enumerate(zip(after["buckets"], before["buckets"])) if a > b and bounds[i] > 0.25]
    assert waited, (before, after)  # one request in a bucket above 250 ms
    assert after["sum_seconds"] - before["sum_seconds"] >= 0.29


def test_long_response_on_a_dispatched_connection_is_sent_whole(herd_factory):
    """A connection handed over is served at once by the worker that takes it, before that
    worker registers it in its epoll (Dispatch.adopt). A response longer than one turn's write
    budget yields on that first write: the yield must not need the registration (before the fix
    its EPOLL_CTL_MOD failed with ENOENT and the stream was cut after its first turn, as seen
    under load in issue 24)."""
    h, port, mport = start(herd_factory)
    conns = []
    try:
        busy_pid, parked, other, before = park_in_sleep(mport, port, conns, 1500)
        # 200,000 pieces: about 3.4 MB chunked, many write budgets (256 KB) long.
        other.send("/stream/200000")
        data = bytearray()
        other.s.settimeout(30)
        while not data.endswith(b"\r\n0\r\n\r\n"):
            chunk = other.s.recv(1 << 20)
            assert chunk, f"stream cut after {len(data)} bytes: {bytes(data[-60:])!r}\n{h.log_tail()}"
            data += chunk
        assert data.startswith(b"HTTP/1.1 200 ")
        assert b"chunk 199999\n" in data[-40:]
        assert (parked.read()) == (200, b"slept 1500\n")
        # Counted once the sleeping handler is over (the event loop books the watcher's hand-offs).
        after = web(mport)
        assert after["handed_off"] - before["handed_off"] == 1
        assert after["received"] - before["received"] == 1
        assert h.events("write-yield-error") == [], h.log_tail()
        # The one connection herdd closed so far is the one it handed over (the stream's
        # connection is still open: keep-alive).
        closes = closed_reasons(mport)
        assert {r: n for r, n in closes.items() if n} == {"hand-off": 1}, closes
    finally:
        for c in conns:
            c.close()


def echo_request(body: bytes) -> bytes:
    return b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body


@pytest.mark.parametrize("cut", ["head", "body"])
def test_half_sent_request_is_completed_after_the_hand_off(herd_factory, cut):
    """Issue 24: a client sends the first part of a request on an idle connection of a busy
    worker: the bytes make it readable, the watcher hands it over, and the rest arrives only
    then, at the worker that took it. The answer is whole and belongs to that request."""
    h, port, mport = start(herd_factory)
    conns = []
    try:
        busy_pid, parked, other, before = park_in_sleep(mport, port, conns, 2000)
        body = b"half-sent-%s-" % cut.encode() * 40
        req = echo_request(body)
        at = 12 if cut == "head" else req.index(b"\r\n\r\n") + 4 + len(body) // 2
        other.s.sendall(req[:at])
        # Taken by the idle worker (counted by it at once; the busy one books its hand-off only
        # after its handler), then the rest.
        wait_until(lambda: web(mport)["received"] - before["received"] >= 1, 1.5, what="the connection handed over")
        time.sleep(0.1)  # the taker has read the first part and waits for more
        other.s.sendall(req[at:])
        t0 = time.monotonic()
        assert other.read() == (200, body)
        assert time.monotonic() - t0 < 1.0, "answered only after the busy worker's handler"
        # It lives on at the worker that took it, keep-alive.
        status_, got = other.get("/")
        assert status_ == 200 and pid_of(got) != busy_pid
        assert parked.read() == (200, b"slept 2000\n")
        after = web(mport)
        assert after["handed_off"] - before["handed_off"] == 1 and after["received"] - before["received"] == 1
        assert h.events("write-yield-error") == [], h.log_tail()
    finally:
        for c in conns:
            c.close()


@pytest.mark.parametrize("cut", ["head", "body"])
def test_half_request_read_before_a_handler_is_not_handed_off(herd_factory, cut):
    """Issue 24: the first part of a request arrives while its worker is idle and is read into
    that connection's buffer; then the worker blocks in a handler for another connection and the
    rest arrives. The connection holds half a request: it must stay (handing over the socket
    would lose the buffered part) and be answered, whole, after the handler."""
    h, port, mport = start(herd_factory)
    conns = []
    try:
        busy_pid, parked, other = two_on_one_worker(port, conns)
        body = b"kept-%s-" % cut.encode() * 40
        req = echo_request(body)
        at = 12 if cut == "head" else req.index(b"\r\n\r\n") + 4 + len(body) // 2
        other.s.sendall(req[:at])
        time.sleep(0.3)  # read by the idle worker into the connection's buffer
        before = web(mport)
        parked.send("/sleep/1500")
        wait_until(lambda: any(w["pid"] == busy_pid and w["state"] == "busy" for w in status(mport)["workers"]),
                   5, what="the worker running /sleep/1500")
        other.s.sendall(req[at:])
        assert other.read() == (200, body)
        status_, got = other.get("/")
        assert status_ == 200 and pid_of(got) == busy_pid
        assert parked.read() == (200, b"slept 1500\n")
        after = web(mport)
        assert after["handed_off"] == before["handed_off"], (before, after)
    finally:
        for c in conns:
            c.close()
