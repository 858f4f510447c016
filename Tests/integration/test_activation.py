"""systemd integration: socket activation, sd_notify READY/STOPPING, listener names, watchdog."""

import re
import signal
import time
from email.utils import parsedate_to_datetime

from conftest import (
    free_port,
    free_ports,
    http_get,
    pid_alive,
    proc_cmdline,
    proc_state,
    wait_until,
)


def test_socket_activation_ready_serve_stop(herd_factory, notify):
    port = free_port()
    h = herd_factory(["--workers", "2"], activate=[(port, "http")], notify=notify)

    # systemd-socket-activate execs herdd only when the first connection arrives.
    time.sleep(0.5)  # a duration: nothing happens (no exec, no notification) without a connection
    assert notify.messages == [], f"notifications before the first connection: {notify.messages}"
    assert proc_cmdline(h.pid)[0].endswith("systemd-socket-activate"), proc_cmdline(h.pid)

    before = time.time()
    r = http_get(port, "/", timeout=10)
    assert r.status == 200, r
    assert r.body == b"hello\n"
    assert r.header("Server"), f"no Server header: {r.headers}"
    date = r.header("Date")
    assert date and re.fullmatch(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT", date), date
    assert abs(parsedate_to_datetime(date).timestamp() - before) < 10, date

    ready = notify.wait_for("READY=1", timeout=10)
    assert "READY=1" in ready.split("\n")
    # READY=1 carries a STATUS= line describing the pool.
    assert re.search(r"^STATUS=2 workers \(\d+ busy, \d+ idle\)", ready, re.M), ready
    # Same pid: the activator exec'd herdd.
    assert proc_cmdline(h.pid) == ["herdd: master"], proc_cmdline(h.pid)
    workers = h.wait_workers(2)
    for w in workers:
        assert re.fullmatch(r"herdd: worker \d+", " ".join(proc_cmdline(w))), proc_cmdline(w)

    h.signal(signal.SIGTERM)
    notify.wait_for("STOPPING=1", timeout=10)
    assert h.wait(15) == 0, h.log_tail()
    h.wait_log("exit", timeout=1, exit_code=0)
    wait_until(lambda: not any(pid_alive(p) for p in h.seen_pids), 5, what="all herdd processes gone")
    leftovers = [p for p in h.seen_pids if pid_alive(p)]
    assert leftovers == [], f"processes still alive after stop: {leftovers}"


def test_two_named_listeners_use_their_handlers(herd_factory, notify):
    p_http, p_health = free_ports(2)
    h = herd_factory(
        ["--workers", "2", "--handler", "health=health"],
        activate=[(p_http, "http"), (p_health, "health")],
        notify=notify,
    )
    r = http_get(p_http, "/", timeout=10)
    assert (r.status, r.body) == (200, b"hello\n")
    notify.wait_for("READY=1", timeout=10)
    workers = h.wait_workers(2)

    r = http_get(p_health, "/")
    assert r.status == 200, r
    m = re.fullmatch(rb"ok pid=(\d+) worker=(\d+)\n", r.body)
    assert m, r.body
    assert int(m.group(1)) in workers, (m.group(1), workers)
    assert int(m.group(2)) in (0, 1)

    # And the http listener still says hello (the names were not swapped).
    for _ in range(5):
        assert http_get(p_http, "/healthz").body == b"hello\n"
        assert http_get(p_health, "/").body.startswith(b"ok pid=")

    start = h.events("start")
    assert start and "http=127.0.0.1:%d" % p_http in start[0].raw and "health=127.0.0.1:%d" % p_health in start[0].raw, start
    assert h.stop() == 0



def test_watchdog_pings_and_stops_when_master_is_stopped(herd_factory, notify):
    # WATCHDOG_USEC=800000: herdd pings every WATCHDOG_USEC/2 = 0.4 s, so ~5 pings in 2 s.
    # WATCHDOG_PID is set to herdd's own pid (sh `exec` keeps the pid).
    port = free_port()
    h = herd_factory(
        ["--workers", "1", "--listen", f"127.0.0.1:{port}"],
        notify=notify,
        env={"WATCHDOG_USEC": "800000"},
        wrap_watchdog_pid=True,
    )
    notify.wait_for("READY=1", timeout=10)
    assert proc_cmdline(h.pid) == ["herdd: master"]

    t0 = time.monotonic()
    time.sleep(2.0)  # a duration: the window in which the pings are counted
    t1 = time.monotonic()
    n = len(notify.times_of("WATCHDOG=1", t0, t1))
    assert 3 <= n <= 8, f"{n} WATCHDOG=1 in 2 s with WATCHDOG_USEC=800000: {notify.messages}"

    # A stopped master must not ping.
    h.signal(signal.SIGSTOP)
    try:
        # Stopped, and every datagram it sent before is recorded: anything later would be a
        # ping sent while stopped.
        wait_until(lambda: proc_state(h.pid) == "T" and notify.drained(), 5, what="master stopped")
        s0 = time.monotonic()
        time.sleep(1.0)  # a duration: 2.5 ping intervals of silence
        s1 = time.monotonic()
        during = notify.times_of("WATCHDOG=1", s0, s1)
        assert during == [], f"WATCHDOG=1 arrived while the master was SIGSTOPped: {len(during)}"
    finally:
        h.signal(signal.SIGCONT)
    c0 = time.monotonic()
    wait_until(lambda: notify.times_of("WATCHDOG=1", c0, time.monotonic() + 1), 3, what="WATCHDOG=1 after SIGCONT")
    assert http_get(port).status == 200
    assert h.stop() == 0
