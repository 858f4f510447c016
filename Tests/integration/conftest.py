"""Fixtures and helpers for herdd's integration tests.

Every test starts its own herdd on random free ports with its own NOTIFY_SOCKET, so tests are
independent of each other (and could run in parallel). Every wait is bounded by a deadline.
The `herd` fixture's finalizer always kills the master and every worker it ever saw (by PID),
then whatever is left in the master's process group (a session of its own: a new master from an
upgrade, its workers, a wrapper's children), so no test leaves processes behind even when it
fails half-way.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal as _signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Optional, Union

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "Tests" / "support"))
# Shared with bench/ (run, herdbench/, ab_hello.py); re-exported here, so tests keep importing
# them from conftest.
from herdtest import (  # noqa: E402,F401
    LOCALHOST,
    SOCKET_ACTIVATE,
    NotifySocket,
    Resp,
    all_in_epoll_wait,
    children_of,
    clean_env,
    descendants,
    free_port,
    free_ports,
    herdd_command,
    http_get,
    http_request,
    in_epoll_wait,
    metric,
    metric_sample,
    pid_alive,
    proc_cmdline,
    proc_starttime,
    proc_state,
    proc_status_field,
    stop_process_tree,
    unread_by_server,
    wait_until,
)

HERDD_BIN = Path(os.environ.get("HERDD_BIN", str(REPO_ROOT / ".build" / "debug" / "herdd")))


def pytest_sessionstart(session):
    if not HERDD_BIN.is_file() or not os.access(HERDD_BIN, os.X_OK):
        raise pytest.UsageError(
            f"herdd binary not found at {HERDD_BIN}: run `swift build` in {REPO_ROOT} or set HERDD_BIN"
        )


# --------------------------------------------------------------------------------------------
# log parsing

LOG_RE = re.compile(r"^herdd\[(\d+)\] (\S+) (\w+): (.*)$")
KV_RE = re.compile(r"(?:(?<= )|^)([a-z_]+)=(\S*)")


class LogLine:
    def __init__(self, raw: str):
        self.raw = raw
        m = LOG_RE.match(raw)
        self.is_herdd = m is not None
        self.pid = int(m.group(1)) if m else None
        self.source = m.group(2) if m else ""  # "master" or "worker/N"
        self.level = m.group(3) if m else ""
        self.text = m.group(4) if m else raw
        self.meta: dict[str, str] = {}
        if m:
            for k, v in KV_RE.findall(self.text):
                self.meta.setdefault(k, v)

    @property
    def event(self) -> Optional[str]:
        return self.meta.get("event")

    def __getitem__(self, key: str) -> str:
        return self.meta[key]

    def get(self, key: str, default=None):
        return self.meta.get(key, default)

    def __repr__(self) -> str:
        return f"LogLine({self.raw!r})"


# --------------------------------------------------------------------------------------------
# herdd process wrapper


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes whose process group is `pgid` in the session `pgid`: a group
    started with start_new_session=True (its leader's pid is both)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # Fields after the ")" that closes comm: state, ppid, pgrp, session.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) >= 4 and fields[0] not in (b"Z", b"X") and int(fields[2]) == pgid and int(fields[3]) == pgid:
            out.append(int(name))
    return out


class Herd:
    """One herdd master (direct, or exec'd by systemd-socket-activate on the same pid)."""

    def __init__(
        self,
        args: Iterable[str] = (),
        *,
        activate: Optional[list[tuple[int, str]]] = None,
        notify: Optional[NotifySocket] = None,
        env: Optional[dict[str, str]] = None,
        workdir: Path,
        wrap_watchdog_pid: bool = False,
    ):
        self.args = [str(a) for a in args]
        self.activate = activate
        self.notify = notify
        self.extra_env = dict(env or {})
        self.workdir = Path(workdir)
        self.stderr_path = self.workdir / f"herdd-{id(self):x}.stderr"
        self.wrap_watchdog_pid = wrap_watchdog_pid
        self.proc: Optional[subprocess.Popen] = None
        self.seen_pids: set[int] = set()
        self._tracker_stop = threading.Event()
        self._tracker: Optional[threading.Thread] = None
        self.returncode: Optional[int] = None

    # -- lifecycle ----------------------------------------------------------------------------

    def command(self) -> list[str]:
        env = dict(self.extra_env)
        if self.notify is not None:
            env["NOTIFY_SOCKET"] = self.notify.path
        return herdd_command(HERDD_BIN, self.args, activate=self.activate, env=env,
                             wrap_watchdog_pid=self.wrap_watchdog_pid)

    def start(self) -> "Herd":
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        env.pop("LISTEN_FDS", None)
        env.pop("LISTEN_PID", None)
        env.pop("LISTEN_FDNAMES", None)
        env.pop("WATCHDOG_USEC", None)
        env.pop("WATCHDOG_PID", None)
        if not self.activate:
            env.update(self.extra_env)
            if self.notify is not None:
                env["NOTIFY_SOCKET"] = self.notify.path
        self._stderr = open(self.stderr_path, "wb")
        # A session (and process group) of its own, led by the master: everything it starts
        # stays in the group (herdd never calls setsid or setpgid), including what no pid list
        # here ever saw (a new master and its workers after an upgrade, a wrapper's children),
        # so kill_all() ends them all, even after they were re-parented.
        self.proc = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=self._stderr, stderr=self._stderr, env=env,
            start_new_session=True,
        )
        self.seen_pids.add(self.proc.pid)
        self._tracker = threading.Thread(target=self._track, name="herd-tracker", daemon=True)
        self._tracker.start()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _track(self):
        # Records every child of the master so the finalizer can kill workers it never asked about.
        while not self._tracker_stop.is_set():
            if self.proc is None or self.proc.poll() is not None:
                break
            for c in children_of(self.proc.pid):
                self.seen_pids.add(c)
            self._tracker_stop.wait(0.05)

    def poll(self) -> Optional[int]:
        rc = self.proc.poll()
        if rc is not None:
            self.returncode = rc
        return rc

    def wait(self, timeout: float) -> int:
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"herdd (pid {self.pid}) did not exit within {timeout}s\n{self.log_tail()}")
        return self.returncode

    def signal(self, sig: int):
        if self.proc.poll() is None:
            os.kill(self.pid, sig)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        self.signal(_signal.SIGTERM)
        return self.wait(timeout)

    def _is_ours(self, pid: int) -> bool:
        """Guards against PID reuse: only herdd processes of this master qualify."""
        argv = proc_cmdline(pid)
        if not argv:
            return False
        if pid == self.pid:
            return True
        if argv[0].startswith("herdd: "):
            # A titled herdd process (`herdd: worker 3`): ours if the master spawned it.
            return pid in self.seen_pids or proc_status_field(pid, "PPid") == self.pid
        if Path(argv[0]).name != "herdd" and argv[0] != str(HERDD_BIN):
            return False
        if "--master-pid" in argv:
            i = argv.index("--master-pid")
            return i + 1 < len(argv) and argv[i + 1] == str(self.pid)
        return False

    def kill_all(self):
        """Finalizer: SIGKILL the master and every worker ever recorded (by PID only)."""
        self._tracker_stop.set()
        pids = set(self.seen_pids)
        if self.proc is not None:
            for c in children_of(self.proc.pid):
                pids.add(c)
        for line in self.log_lines():
            for key in ("worker_pid",):
                v = line.get(key)
                if v and v.isdigit():
                    pids.add(int(v))
            if line.source.startswith("worker") and line.pid:
                pids.add(line.pid)
        # Decide which pids are ours while the master still lives (workers' PPid is the master).
        ours = [p for p in pids if (self.proc is None or p != self.proc.pid) and pid_alive(p) and self._is_ours(p)]
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, _signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in ours:
            if pid_alive(p):
                try:
                    os.kill(p, _signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.kill_group()
        if self.proc is not None:
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        try:
            self._stderr.close()
        except Exception:
            pass
        if self._tracker is not None:
            self._tracker.join(1)

    def group(self) -> list[int]:
        """The live processes of this herd's process group (see start())."""
        return [] if self.proc is None else group_members(self.proc.pid)

    def kill_group(self, timeout: float = 5.0):
        """SIGKILL every process left in the herd's process group and wait (bounded) until none
        is. Called while the master is not yet reaped by kill_all(), or with members left: either
        way the group id is still ours, never a recycled pid's (the kernel does not reuse a pid
        that is still some live process's process group or session id)."""
        if self.proc is None:
            return
        deadline = time.monotonic() + timeout
        while self.group() and time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, _signal.SIGKILL)
            except ProcessLookupError:
                break
            time.sleep(0.02)

    # -- introspection ------------------------------------------------------------------------

    def worker_pids(self) -> list[int]:
        """Live children of the master (the workers)."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        pids = [p for p in children_of(self.pid) if pid_alive(p)]
        self.seen_pids.update(pids)
        return sorted(pids)

    def wait_workers(self, n: int, timeout: float = 10.0, exclude: Iterable[int] = ()) -> list[int]:
        """Waits until exactly n workers run (none of them in `exclude`)."""
        excl = set(exclude)

        def ok():
            ps = self.worker_pids()
            return ps if len(ps) == n and not (set(ps) & excl) else None

        try:
            return wait_until(ok, timeout, what=f"{n} workers")
        except AssertionError:
            raise AssertionError(
                f"expected {n} workers (excluding {sorted(excl)}), have {self.worker_pids()}\n{self.log_tail()}"
            )

    def log_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_lines(self) -> list[LogLine]:
        return [LogLine(l) for l in self.log_text().splitlines()]

    def log_tail(self, n: int = 40) -> str:
        lines = self.log_text().splitlines()[-n:]
        return "---- herdd stderr (tail) ----\n" + "\n".join(lines)

    def events(self, event: str, **meta) -> list[LogLine]:
        return [
            l
            for l in self.log_lines()
            if l.event == event and all(l.get(k) == str(v) for k, v in meta.items())
        ]

    def wait_log(self, event: Optional[str] = None, timeout: float = 10.0, count: int = 1,
                 pred: Optional[Callable[[LogLine], bool]] = None, **meta) -> list[LogLine]:
        """Waits until at least `count` log lines match; returns the matches."""

        def matches():
            out = []
            for l in self.log_lines():
                if event is not None and l.event != event:
                    continue
                if any(l.get(k) != str(v) for k, v in meta.items()):
                    continue
                if pred is not None and not pred(l):
                    continue
                out.append(l)
            return out if len(out) >= count else None

        try:
            return wait_until(matches, timeout, interval=0.05, what=f"log event={event} {meta}")
        except AssertionError:
            raise AssertionError(
                f"no {count} log line(s) with event={event} {meta} within {timeout}s\n{self.log_tail()}"
            )

    def wait_ready_log(self, timeout: float = 10.0):
        return self.wait_log("ready", timeout)


# --------------------------------------------------------------------------------------------
# HTTP helpers (127.0.0.1 only)


def wait_http(port: int, timeout: float = 10.0, path: str = "/") -> Resp:
    """Retries GET until a response arrives (connection refused while starting up)."""
    deadline = time.monotonic() + timeout
    last: Optional[BaseException] = None
    while time.monotonic() < deadline:
        try:
            return http_get(port, path, timeout=min(3.0, max(0.2, deadline - time.monotonic())))
        except (OSError, http.client.HTTPException) as e:
            last = e
            time.sleep(0.05)  # retry interval of the bounded wait
    raise AssertionError(f"no HTTP response on port {port} within {timeout}s (last error: {last!r})")


def recv_until(s: socket.socket, deadline: float, done: Optional[Callable[[bytes], bool]] = None) -> bytes:
    """Reads from `s` until the peer closes (EOF or reset), `deadline` (time.monotonic()) passes,
    or `done(what was read)` is true. Returns what was read."""
    out = bytearray()
    while time.monotonic() < deadline:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except (socket.timeout, ConnectionResetError):
            break
        if not chunk:
            break
        out += chunk
        if done is not None and done(bytes(out)):
            break
    return bytes(out)


def raw_exchange(port: int, data: bytes, timeout: float = 5.0, read_until_close: bool = True,
                 shutdown_write: bool = False) -> bytes:
    """Sends raw bytes and reads until the server closes (or timeout). Returns what was read."""
    with socket.create_connection((LOCALHOST, port), timeout=timeout) as s:
        s.sendall(data)
        if shutdown_write:
            s.shutdown(socket.SHUT_WR)
        return recv_until(s, time.monotonic() + timeout, None if read_until_close else (lambda _: True))


def parse_responses(data: bytes, head_requests: int = 0) -> list[Resp]:
    """Splits a byte stream into HTTP/1.x responses (Content-Length or chunked bodies)."""
    out: list[Resp] = []
    i = 0
    while i < len(data):
        end = data.find(b"\r\n\r\n", i)
        if end < 0:
            raise AssertionError(f"incomplete response head in {data[i:]!r}")
        head = data[i:end].decode("latin-1").split("\r\n")
        ver, status, *reason = head[0].split(" ", 2)
        headers = []
        for h in head[1:]:
            k, _, v = h.partition(":")
            headers.append((k.strip(), v.strip()))
        r = Resp(int(status), reason[0] if reason else "", headers, b"", 11 if ver == "HTTP/1.1" else 10)
        i = end + 4
        is_head = len(out) < head_requests
        te = (r.header("Transfer-Encoding") or "").lower()
        if is_head or r.status in (204, 304) or 100 <= r.status < 200:
            pass
        elif "chunked" in te:
            body = bytearray()
            while True:
                le = data.find(b"\r\n", i)
                size = int(data[i:le].split(b";")[0], 16)
                i = le + 2
                if size == 0:
                    te_end = data.find(b"\r\n", i)
                    i = te_end + 2
                    break
                body += data[i : i + size]
                i += size + 2
            r.body = bytes(body)
        elif r.header("Content-Length") is not None:
            n = int(r.header("Content-Length"))
            r.body = data[i : i + n]
            i += n
        else:
            r.body = data[i:]
            i = len(data)
        out.append(r)
    return out


# --------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture
def notify():
    n = NotifySocket()
    try:
        yield n
    finally:
        n.close()


@pytest.fixture
def herd_factory(tmp_path):
    """Returns start(args, activate=..., notify=..., env=..., wait_ready=True) -> Herd.

    Direct mode waits until the master logs `ready` (all workers serve); activation mode
    returns right after the activator is listening (herdd starts on the first connection).
    """
    herds: list[Herd] = []

    def start(args: Iterable[str] = (), *, activate=None, notify=None, env=None, wait_ready: bool = True,
              wrap_watchdog_pid: bool = False) -> Herd:
        h = Herd(args, activate=activate, notify=notify, env=env, workdir=tmp_path,
                 wrap_watchdog_pid=wrap_watchdog_pid)
        herds.append(h)
        h.start()
        if activate:
            # systemd-socket-activate prints "Listening on ..." once per socket before waiting.
            n = len(activate)
            wait_until(lambda: h.log_text().count("Listening on") >= n or h.poll() is not None, 10,
                       what="systemd-socket-activate listening")
            assert h.poll() is None, f"systemd-socket-activate exited early\n{h.log_tail()}"
        elif wait_ready:
            try:
                wait_until(lambda: h.events("ready") or h.poll() is not None, 15, what="herdd ready")
            except AssertionError:
                raise AssertionError(f"herdd did not become ready\n{h.log_tail()}")
            assert h.poll() is None, f"herdd exited during startup (rc={h.returncode})\n{h.log_tail()}"
        return h

    yield start
    for h in herds:
        h.kill_all()


def queue_behind_a_sleep(port: int, mport: int, sleep_ms: int, n: int = 6) -> list[socket.socket]:
    """The only worker of a debug handler on `port` sleeps `sleep_ms` in a handler while `n`
    connections wait in its accept queue (read from /metrics on `mport`); returns once the
    worker is back and took them (the queue is empty again). The caller closes the returned
    connections."""
    def queued() -> float:
        return metric(mport, "herdd_listen_backlog", listener="http")

    slow = threading.Thread(target=lambda: http_get(port, f"/sleep/{sleep_ms}", timeout=10), daemon=True)
    slow.start()
    wait_busy(mport)
    waiting = [socket.create_connection((LOCALHOST, port), timeout=5) for _ in range(n)]
    try:
        wait_until(lambda: queued() >= n, 3, what=f"{n} connections queued")
        slow.join(10)
        # The worker is back: the queue empties.
        wait_until(lambda: queued() == 0, 5, what="queue drained")
    except BaseException:
        for s in waiting:
            s.close()
        raise
    return waiting


def closed_reasons(port: int) -> dict[str, int]:
    """herdd_connections_closed_total from /metrics on `port` (a metrics listener): reason -> count."""
    text = http_get(port, "/metrics").body.decode()
    out: dict[str, int] = {}
    for m in re.finditer(r'^herdd_connections_closed_total\{reason="([^"]+)"\} (\d+)$', text, re.M):
        out[m.group(1)] = int(m.group(2))
    assert out, "no herdd_connections_closed_total in /metrics"
    return out


def metrics_listener(mport: int) -> list[str]:
    """herdd arguments for a metrics listener on `mport` (/metrics, /status.json)."""
    return ["--listen", f"{LOCALHOST}:{mport},name=metrics", "--handler", "metrics=metrics"]


def status_json(mport: int) -> dict:
    """/status.json from `mport` (a listener with the metrics handler)."""
    return json.loads(http_get(mport, "/status.json").body)


def wait_busy(mport: int, count: int = 1, timeout: float = 10.0, exclude: Iterable[int] = ()) -> list[int]:
    """Waits until `count` workers (none in `exclude`) are inside a handler, as the master's
    scoreboard says (/status.json on `mport`, state busy); returns their pids. What a test
    means by "the request is in the handler now"."""
    excl = set(exclude)

    def busy():
        pids = [w["pid"] for w in status_json(mport)["workers"] if w["state"] == "busy" and w["pid"] not in excl]
        return pids if len(pids) >= count else None

    return wait_until(busy, timeout, what=f"{count} busy worker(s) on /status.json")


def run_herdd(args: Iterable[str], timeout: float = 10.0, env: Optional[dict[str, str]] = None):
    """Runs herdd to completion (for CLI tests); returns CompletedProcess."""
    e = dict(os.environ)
    for k in ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC", "WATCHDOG_PID"):
        e.pop(k, None)
    if env:
        e.update(env)
    p = subprocess.Popen([str(HERDD_BIN)] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # Kill by pid, and any worker children it started.
        for c in children_of(p.pid):
            try:
                os.kill(c, _signal.SIGKILL)
            except ProcessLookupError:
                pass
        p.kill()
        out, err = p.communicate(5)
        raise AssertionError(f"herdd {list(args)} did not exit within {timeout}s; stderr={err!r}")
    return subprocess.CompletedProcess(p.args, p.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


class KeepAliveClient:
    """A persistent-connection GET client on raw sockets.

    `get()` returns (status, body). A request that fails because the server closed the idle
    connection before sending ANY byte of the response is retried once on a fresh connection
    (legal for idempotent requests on persistent connections, RFC 9112 section 9.3.1); every
    other problem raises.
    """

    class ClosedBeforeResponse(Exception):
        pass

    def __init__(self, port: int, timeout: float = 5.0):
        self.port = port
        self.timeout = timeout
        self.sock: Optional[socket.socket] = None
        self.buf = b""
        self.retries = 0
        self.connections = 0

    def _connect(self):
        self.close()
        self.sock = socket.create_connection((LOCALHOST, self.port), timeout=self.timeout)
        self.buf = b""
        self.connections += 1

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None

    def _once(self, path: str) -> tuple[int, bytes, bool]:
        req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        got_any = False
        try:
            self.sock.sendall(req)
            while b"\r\n\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise EOFError
                got_any = True
                self.buf += chunk
        except (EOFError, ConnectionResetError, BrokenPipeError) as e:
            if not got_any and not self.buf:
                raise KeepAliveClient.ClosedBeforeResponse(repr(e))
            raise AssertionError(f"connection closed mid-response after {self.buf!r}")
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        hdrs = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs.get("content-length", "0"))
        while len(rest) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError(f"connection closed mid-body: head={head!r} body={rest!r}")
            rest += chunk
        body, self.buf = rest[:n], rest[n:]
        close = hdrs.get("connection", "").lower() == "close"
        return status, body, close

    def get(self, path: str = "/") -> tuple[int, bytes]:
        fresh = self.sock is None
        if fresh:
            self._connect()
        try:
            status, body, close = self._once(path)
        except KeepAliveClient.ClosedBeforeResponse:
            if fresh:
                raise AssertionError("a fresh connection was closed before any response byte")
            self.retries += 1
            self._connect()
            try:
                status, body, close = self._once(path)
            except KeepAliveClient.ClosedBeforeResponse as e:
                raise AssertionError(f"retry on a fresh connection also closed before any response: {e}")
        if close:
            self.close()
        return status, body


class LoadThread(threading.Thread):
    """Bounded background load: GETs until stopped, max_seconds elapse or max_requests are done.

    Records successes and every failure (with its reason) instead of raising."""

    def __init__(self, port: int, path: str = "/", max_seconds: float = 30.0, max_requests: int = 200000,
                 keepalive: bool = True, expect_body: Optional[bytes] = None):
        super().__init__(name="load", daemon=True)
        self.port = port
        self.path = path
        self.max_seconds = max_seconds
        self.max_requests = max_requests
        self.keepalive = keepalive
        self.expect_body = expect_body
        self.ok = 0
        self.failures: list[str] = []
        self.retries = 0
        self._stop_ev = threading.Event()

    def run(self):
        deadline = time.monotonic() + self.max_seconds
        client = KeepAliveClient(self.port)
        n = 0
        while not self._stop_ev.is_set() and time.monotonic() < deadline and n < self.max_requests:
            n += 1
            try:
                if self.keepalive:
                    status, body = client.get(self.path)
                else:
                    r = http_get(self.port, self.path, timeout=5)
                    status, body = r.status, r.body
                if status != 200 or (self.expect_body is not None and body != self.expect_body):
                    self.failures.append(f"status {status} body {body[:100]!r}")
                else:
                    self.ok += 1
            except Exception as e:  # noqa: BLE001 - every failure is recorded
                self.failures.append(repr(e))
                client.close()
        client.close()
        self.retries = client.retries

    def wait_served(self, n: int = 20, timeout: float = 10.0):
        """Waits until `n` more requests succeed from now: the load runs (and, after an upgrade
        or a reload, reaches whoever serves now)."""
        start = self.ok
        wait_until(lambda: self.ok >= start + n or not self.is_alive(), timeout, what=f"{n} more requests served")
        assert self.ok >= start + n, f"load thread ended after {self.ok - start} of {n} requests: {self.failures[:3]}"

    def stop(self, timeout: float = 10.0):
        self._stop_ev.set()
        self.join(timeout)
        assert not self.is_alive(), "load thread did not stop"
