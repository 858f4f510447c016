"""Helpers shared by herdd's integration tests (Tests/integration/conftest.py) and the
benchmark (bench/run): free ports, /proc process inspection, bounded waits, and a stand-in for
systemd's notify socket. Standard library only; both import it by path (Tests/support)."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from typing import Callable, Optional, Union

LOCALHOST = "127.0.0.1"


# --------------------------------------------------------------------------------------------
# small utilities


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOCALHOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_until(pred: Callable[[], object], timeout: float, interval: float = 0.05, what: str = "condition"):
    """Polls pred until it returns something truthy; returns it. Raises AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    """True if pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    # state is the field after the ")" that closes comm
    state = stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3]
    return state not in (b"Z", b"X", b"")


def proc_cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def proc_status_field(pid: int, field: str) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def proc_starttime(pid: int) -> Optional[int]:
    """Start time of pid in clock ticks since boot (field 22 of /proc/PID/stat), None if gone:
    with the pid, it names one process even after the pid is recycled."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


# --------------------------------------------------------------------------------------------
# sd_notify receiver


class NotifySocket:
    """AF_UNIX SOCK_DGRAM socket standing in for systemd's notify socket."""

    def __init__(self, path: Optional[str] = None):
        # AF_UNIX paths are limited to 107 bytes: by default keep it short, in /tmp.
        self.dir = None if path else tempfile.mkdtemp(prefix="herdn-", dir="/tmp")
        self.path = path or os.path.join(self.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        # SO_PASSCRED: every datagram carries SCM_CREDENTIALS with the sender's pid (filled in by
        # the kernel), as systemd reads it to apply NotifyAccess=.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self._messages: list[tuple[float, str]] = []
        self._senders: list[int] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notify-recv", daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                data, anc, _flags, _addr = self.sock.recvmsg(65536, socket.CMSG_SPACE(12))
            except socket.timeout:
                continue
            except OSError:
                return
            sender = 0
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(payload) >= 4:
                    sender = int.from_bytes(payload[0:4], "little")  # struct ucred: pid, uid, gid
            with self._cond:
                self._messages.append((time.monotonic(), data.decode(errors="replace")))
                self._senders.append(sender)
                self._cond.notify_all()

    @property
    def messages(self) -> list[str]:
        with self._cond:
            return [m for _, m in self._messages]

    def timed_messages(self) -> list[tuple[float, str]]:
        with self._cond:
            return list(self._messages)

    def sender_messages(self, start: int = 0) -> list[tuple[int, str]]:
        """(sender pid, datagram) pairs, from SCM_CREDENTIALS."""
        with self._cond:
            return list(zip(self._senders[start:], [m for _, m in self._messages[start:]]))

    def count(self) -> int:
        with self._cond:
            return len(self._messages)

    @staticmethod
    def _matcher(what: Union[str, Callable[[str], bool]]) -> Callable[[str], bool]:
        if callable(what):
            return what
        # A string matches a whole line of the datagram ("READY=1") or, failing that, a substring.
        return lambda m: what in m.split("\n") or what in m

    def wait_for(self, what: Union[str, Callable[[str], bool]], timeout: float = 10.0, start: int = 0) -> str:
        """Waits for a datagram (index >= start) matching `what`; returns it."""
        match = self._matcher(what)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for _, m in self._messages[start:]:
                    if match(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no notify message matching {what!r} within {timeout}s; got {[m for _, m in self._messages]!r}"
                    )
                self._cond.wait(min(left, 0.2))

    def index_of(self, what, start: int = 0) -> Optional[int]:
        match = self._matcher(what)
        with self._cond:
            for i, (_, m) in enumerate(self._messages[start:], start):
                if match(m):
                    return i
        return None

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            try:
                os.unlink(self.path)
            except OSError:
                pass
