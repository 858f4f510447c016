"""`defer-accept` (issue 25): TCP_DEFER_ACCEPT on TCP listeners, on by default. The kernel holds
a connection back (the server's end in SYN_RECV) until its first bytes arrive, so a worker is
woken once per connection with the request in. Checked on the kernel's own state of the
server's end (/proc/net/tcp), on sockets that systemd-socket-activate bound (herdd sets it on
sockets it inherits), through a reload that turns it off, a reload rolled back and an upgrade
that failed (each puts the running master's value back), and for a client that stays silent:
accepted after the kernel's ~1 s, then closed as any connection idle before its first byte
(keepalive-timeout), as without it."""

from __future__ import annotations

import signal
import socket
import time

from conftest import LOCALHOST, closed_reasons, free_ports, http_get, metric, pid_alive, run_herdd, stop_process_tree, wait_until
from herdtest import TCP_ESTABLISHED, TCP_SYN_RECV, server_end_states
from test_close_reasons import start as start_with_metrics
from test_upgrade_handshake import begin_upgrade


def silent_connection(port: int) -> tuple[socket.socket, int]:
    """A connection that sends nothing, and its server end's state right after the handshake."""
    s = socket.create_connection((LOCALHOST, port), timeout=10)
    (state,) = server_end_states(s)
    assert state is not None, "the server's end of the connection is not in /proc/net/tcp"
    return s, state


def test_defer_accept_on_sockets_from_systemd_and_off_by_reload(herd_factory, notify, tmp_path):
    port, mport = free_ports(2)
    conf = tmp_path / "herdd.conf"
    conf.write_text("workers = 1\nhandler = http=debug\nhandler = metrics=metrics\n")
    h = herd_factory(["--config", str(conf)], activate=[(port, "http"), (mport, "metrics")], notify=notify)
    assert http_get(port, "/ping").status == 200  # starts herdd (socket activation)
    notify.wait_for("READY=1", timeout=20)

    s, state = silent_connection(port)
    assert state == TCP_SYN_RECV, f"server end in state {state:#x}: TCP_DEFER_ACCEPT not set on the inherited socket"
    accepted = metric(mport, "herdd_connections_accepted_total", listener="http")
    time.sleep(0.3)  # the kernel's SYN-ACK retransmission, which would let it through, comes at ~1 s
    assert metric(mport, "herdd_connections_accepted_total", listener="http") == accepted
    # The request's bytes let it through at once, and it is answered.
    t = time.monotonic()
    s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    reply = b""
    while chunk := s.recv(65536):
        reply += chunk
    s.close()
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
    assert time.monotonic() - t < 0.9, "the request waited for the kernel's timer, not for its bytes"
    assert metric(mport, "herdd_connections_accepted_total", listener="http") == accepted + 1
    # The metrics listener is deferred too (a scraper speaks first).
    m, state = silent_connection(mport)
    assert state == TCP_SYN_RECV
    m.close()

    # A reload that turns it off applies to the same sockets at once.
    conf.write_text("workers = 1\nhandler = http=debug\nhandler = metrics=metrics\ndefer-accept = off\n")
    mark = notify.count()
    h.signal(signal.SIGHUP)
    notify.wait_for("READY=1", timeout=20, start=mark)
    h.wait_log("defer-accept", reason="reload", timeout=5)
    s, state = silent_connection(port)
    assert state == TCP_ESTABLISHED, f"server end in state {state:#x} after defer-accept = off"
    wait_until(lambda: metric(mport, "herdd_connections_accepted_total", listener="http") == accepted + 2, 0.9,
               what="a silent connection accepted at once with defer-accept off")
    s.close()


def test_silent_client_is_let_through_by_the_kernel_then_closed_as_idle(herd_factory):
    h, port, mport = start_with_metrics(herd_factory, "--keepalive-timeout", "1")
    t = time.monotonic()
    s, state = silent_connection(port)
    assert state == TCP_SYN_RECV
    # The kernel retransmits its SYN-ACK after ~1 s; the client's ACK to it completes the
    # accept (a deferral of 1 s is one retransmission). Then the idle timeout (1 s) closes it.
    wait_until(lambda: metric(mport, "herdd_connections_accepted_total", listener="http") == 1, 10,
               what="the silent connection accepted after the kernel's deferral")
    accepted_after = time.monotonic() - t
    assert accepted_after >= 0.5, f"accepted after {accepted_after:.2f} s: not deferred"
    s.settimeout(10)
    assert s.recv(65536) == b""  # closed without a word, as an idle connection
    closed_after = time.monotonic() - t
    s.close()
    assert closed_after < accepted_after + 5, f"closed {closed_after:.2f} s after connecting"
    wait_until(lambda: closed_reasons(mport).get("keepalive-timeout") == 1, 5,
               what=f"closed as idle (keepalive-timeout) ({closed_reasons(mport)})")
    assert h.poll() is None


def test_defer_accept_off_from_the_command_line(herd_factory):
    (port,) = free_ports(1)
    h = herd_factory(["--workers", "1", "--listen", f"{LOCALHOST}:{port}", "--handler", "http=debug",
                      "--defer-accept", "off"])
    h.wait_workers(1)
    s, state = silent_connection(port)
    assert state == TCP_ESTABLISHED
    s.close()



def fresh_state(port: int) -> int:
    """The server end's state of a new silent connection (closed again)."""
    s, state = silent_connection(port)
    s.close()
    return state


def test_reload_rolled_back_puts_defer_accept_back(herd_factory, tmp_path):
    """A reload that turns it off and whose workers die at start is rolled back: the sockets get
    the running configuration's value again, not the refused one's."""
    (port,) = free_ports(1)
    conf = tmp_path / "herdd.conf"
    conf.write_text(f"workers = 1\nlisten = {LOCALHOST}:{port}\n")
    # Workers of generation 2 and later exit at start (fault injection honoured by the worker).
    h = herd_factory(["--config", str(conf)], env={"HERDD_TEST_WORKER_EXIT_AT_START": "generation>=2"})
    h.wait_workers(1)
    assert fresh_state(port) == TCP_SYN_RECV
    conf.write_text(f"workers = 1\nlisten = {LOCALHOST}:{port}\ndefer-accept = off\n")
    p = run_herdd(["reload", "--pid", str(h.pid), "--timeout", "30"], timeout=40)
    assert p.returncode == 1 and "new workers die right after they start" in p.stderr, p.stderr
    h.wait_log("defer-accept", reason="reload", timeout=5)
    h.wait_log("defer-accept", reason="reload-rollback", timeout=5)
    assert fresh_state(port) == TCP_SYN_RECV, "the rolled-back reload's defer-accept = off stayed on the sockets"
    assert http_get(port, "/").status == 200


def start_from_config(herd_factory, notify, tmp_path, *, workers: int, upgrade_timeout: int, env: dict):
    """A herdd started from a config file (which a test then changes before an upgrade), with an
    http and a metrics listener, serving with its workers: (herdd, port, metrics port, config path)."""
    port, mport = free_ports(2)
    conf = tmp_path / "herdd.conf"
    conf.write_text(f"workers = {workers}\nlisten = {LOCALHOST}:{port}\nlisten = {LOCALHOST}:{mport},name=metrics\n"
                    f"handler = metrics=metrics\nupgrade-timeout = {upgrade_timeout}\ngraceful-timeout = 5\n")
    h = herd_factory(["--config", str(conf)], notify=notify, env=env)
    notify.wait_for("READY=1", timeout=15)
    h.wait_workers(workers)
    return h, port, mport, conf


def test_failed_upgrade_puts_defer_accept_back(herd_factory, notify, tmp_path):
    """The new master sets its own configuration's value on the shared sockets at its start; when
    it does not take over (here its workers die at start, so it is never ready), the old master,
    still serving, sets its own again."""
    # The new master is generation 2: its workers exit at start (fault injection of the worker).
    h, port, mport, conf = start_from_config(herd_factory, notify, tmp_path, workers=1, upgrade_timeout=4,
                                             env={"HERDD_TEST_WORKER_EXIT_AT_START": "generation>=2"})
    assert fresh_state(port) == TCP_SYN_RECV
    conf.write_text(conf.read_text() + "defer-accept = off\n")
    _, new_pid = begin_upgrade(h, notify)
    try:
        # The new master's start put its defer-accept = off on the sockets it shares with us.
        wait_until(lambda: fresh_state(port) == TCP_ESTABLISHED, 3.5,
                   what="the new master's defer-accept = off on the shared socket")
        h.wait_log("upgrade-failed", timeout=15)
        wait_until(lambda: not pid_alive(new_pid), 20, what="the failed new master gone")
        h.wait_log("defer-accept", reason="upgrade-failed", timeout=5)
        assert fresh_state(port) == TCP_SYN_RECV, "the old master's defer-accept = on was not put back"
        assert fresh_state(mport) == TCP_SYN_RECV
    finally:
        stop_process_tree(new_pid)
    assert h.poll() is None
    assert http_get(port, "/").status == 200


def test_new_master_vanished_at_the_handover_puts_defer_accept_back(herd_factory, notify, tmp_path):
    """The rarest way an upgrade fails: the new master dies after its "R" and before the old
    master's commit, its exit not reaped yet (its "R" and its EOF read at once, the SIGCHLD after
    them; forced by the test hook HERDD_TEST_UPGRADE_VANISH_AT_COMMIT). The handover fails, the
    old master claims the service back (MAINPID= its own pid, after the one it had just sent for
    the new master) and keeps serving with its workers, and its defer-accept = on holds again on
    the sockets the new master had set to off. That exit is no longer the launcher's upgrade when
    it is reaped, so the handover's failure itself must put the value back."""
    h, port, mport, conf = start_from_config(herd_factory, notify, tmp_path, workers=2, upgrade_timeout=20,
                                             env={"HERDD_TEST_UPGRADE_VANISH_AT_COMMIT": "1"})
    workers = h.worker_pids()
    conf.write_text(conf.read_text() + "defer-accept = off\n")
    n0, new_pid = begin_upgrade(h, notify)
    try:
        failed = h.wait_log("upgrade-failed", timeout=20)
        assert "vanished at the handover" in failed[0].raw, failed[0].raw
        wait_until(lambda: not pid_alive(new_pid), 10, what="the vanished new master reaped")
        h.wait_log("defer-accept", reason="upgrade-failed", timeout=5)
        assert fresh_state(port) == TCP_SYN_RECV, "the old master's defer-accept = on was not put back"
        assert fresh_state(mport) == TCP_SYN_RECV
        # Claimed back: the last MAINPID= names the old master, which alone spoke.
        sent = notify.sender_messages(n0)
        assert [p for p, _ in sent if p != h.pid] == [], sent
        mainpids = [l for _, m in sent for l in m.split("\n") if l.startswith("MAINPID=")]
        assert mainpids == [f"MAINPID={new_pid}", f"MAINPID={h.pid}"], sent
        assert not any("STOPPING=1" in m.split("\n") for _, m in sent), sent
        assert not h.events("upgrade-done"), h.log_tail()
        assert h.poll() is None and h.worker_pids() == workers, h.log_tail()
        for _ in range(5):
            assert http_get(port, "/").status == 200
    finally:
        stop_process_tree(new_pid)
    assert h.stop() == 0
