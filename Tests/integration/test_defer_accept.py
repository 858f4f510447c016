"""`defer-accept` (issue 25): TCP_DEFER_ACCEPT on TCP listeners, on by default. The kernel holds
a connection back (the server's end in SYN_RECV) until its first bytes arrive, so a worker is
woken once per connection with the request in. Checked on the kernel's own state of the
server's end (/proc/net/tcp), on sockets that systemd-socket-activate bound (herdd sets it on
sockets it inherits), through a reload that turns it off, and for a client that stays silent:
accepted after the kernel's ~1 s, then closed as any connection idle before its first byte
(keepalive-timeout), as without it."""

from __future__ import annotations

import signal
import socket
import time

from conftest import LOCALHOST, closed_reasons, free_ports, http_get, metric, wait_until
from herdtest import TCP_ESTABLISHED, TCP_SYN_RECV, server_end_states
from test_close_reasons import start as start_with_metrics


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
    h.wait_log("reload-defer-accept", timeout=5)
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

