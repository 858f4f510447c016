"""Helpers shared by herdd's integration tests (Tests/integration/conftest.py) and the
benchmarks (bench/run and its package bench/herdbench/, bench/ab_hello.py): free ports, /proc
process inspection, bounded waits, a stand-in for systemd's notify socket, the command line of
herdd run directly or under systemd-socket-activate, process trees started in a session of their
own and ended by PID only, and a registry that ends everything a script started.
Standard library only; both import it by path (Tests/support)."""

from __future__ import annotations

import fcntl
import http.client
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Optional, Union

LOCALHOST = "127.0.0.1"
SOCKET_ACTIVATE = shutil.which("systemd-socket-activate") or "/usr/bin/systemd-socket-activate"


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


class Resp:
    """One HTTP response: status, reason, headers in order (names as sent), body, version (10/11)."""

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes, version: int = 11):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.version = version

    def header(self, name: str) -> Optional[str]:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return f"Resp({self.status} {self.reason!r}, {self.headers!r}, {self.body[:200]!r})"


def http_request(port: int, method: str = "GET", path: str = "/", *, body: Optional[bytes] = None,
                 headers: Optional[dict[str, str]] = None, timeout: float = 5.0) -> Resp:
    """One request on a fresh connection to 127.0.0.1:port (closed afterwards)."""
    c = http.client.HTTPConnection(LOCALHOST, port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return Resp(r.status, r.reason, r.getheaders(), data, r.version)
    finally:
        c.close()


def http_get(port: int, path: str = "/", **kw) -> Resp:
    return http_request(port, "GET", path, **kw)


def parse_prometheus(text: str) -> dict[tuple[str, tuple], float]:
    """Prometheus text format: {(sample name, sorted (label, value) pairs): value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)$', line)
        if not m:
            continue
        labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or "")))
        try:
            out[(m.group(1), labels)] = float(m.group(4))
        except ValueError:
            pass
    return out


def metric_sample(text: str, name: str, **labels) -> float:
    """The value of the sample `name` with exactly `labels` in Prometheus text."""
    key = (name, tuple(sorted((k, str(v)) for k, v in labels.items())))
    samples = parse_prometheus(text)
    assert key in samples, f"no {name}{labels} in /metrics"
    return samples[key]


def metric(port: int, name: str, **labels) -> float:
    """The value of one sample of /metrics on `port` (see metric_sample)."""
    return metric_sample(http_get(port, "/metrics").body.decode(), name, **labels)


def tcp_socket_info(ss_filter: str) -> str:
    """`ss -tinH` of the established TCP sockets matching `ss_filter` (e.g. `sport = :8080`):
    one block per socket with its TCP counters (notsent, bytes_sent, rcv_ssthresh...)."""
    return subprocess.run(["ss", "-tinH", "state", "established", f"( {ss_filter} )"],
                          capture_output=True, text=True, check=True).stdout


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


def proc_state(pid: int) -> str:
    """The state letter of pid (/proc/PID/stat: R, S, T for stopped...), "" if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


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


def in_epoll_wait(pid: int) -> bool:
    """Whether pid's main thread sleeps in epoll_wait: /proc/PID/wchan names the kernel function
    it sleeps in (do_epoll_wait); where the kernel hides it ("0"), /proc/PID/syscall gives the
    call's number (x86_64: epoll_wait 232, epoll_pwait 281, epoll_pwait2 441)."""
    try:
        with open(f"/proc/{pid}/wchan") as f:
            wchan = f.read()
        if "epoll" in wchan:
            return True
        if wchan not in ("0", ""):
            return False
        with open(f"/proc/{pid}/syscall") as f:
            return f.read().split(" ", 1)[0] in ("232", "281", "441")
    except OSError:
        return False


def all_in_epoll_wait(pids: Iterable[int], deadline: float) -> bool:
    """Spins (bounded by `deadline`, a time.monotonic() value) until every pid sleeps in
    epoll_wait; False if the deadline came first."""
    pids = list(pids)
    while time.monotonic() < deadline:
        if all(in_epoll_wait(p) for p in pids):
            return True
        time.sleep(0.0002)
    return False


def unread_by_server(*clients: socket.socket) -> list[Optional[int]]:
    """For each client (a TCP connection to 127.0.0.1): the bytes it sent that the server has
    not read yet, the receive queue of the server's end in /proc/net/tcp (read once for all);
    None while the server's end is not there."""
    return [None if f is None else int(f[4].split(":")[1], 16)  # tx_queue:rx_queue
            for f in _server_ends(clients)]


# /proc/net/tcp's `st` column (include/net/tcp_states.h)
TCP_ESTABLISHED, TCP_SYN_RECV = 0x01, 0x03


def server_end_states(*clients: socket.socket) -> list[Optional[int]]:
    """For each client (a TCP connection to 127.0.0.1): the TCP state of the server's end in
    /proc/net/tcp (TCP_ESTABLISHED, TCP_SYN_RECV: a request the kernel holds back, as under
    TCP_DEFER_ACCEPT until data arrives, ...); None while it is not there."""
    return [None if f is None else int(f[3], 16) for f in _server_ends(clients)]


def _server_ends(clients) -> list[Optional[list[str]]]:
    """The /proc/net/tcp line (split) of each client's server end, read once for all."""
    want = {}
    for i, c in enumerate(clients):
        lhost, lport = c.getsockname()[:2]
        rhost, rport = c.getpeername()[:2]
        want[(f"{_proc_net_addr(rhost)}:{rport:04X}", f"{_proc_net_addr(lhost)}:{lport:04X}")] = i
    out: list[Optional[list[str]]] = [None] * len(clients)
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            i = want.get((fields[1], fields[2]))
            if i is not None:
                out[i] = fields
    return out


def _proc_net_addr(ipv4: str) -> str:
    """An IPv4 address as /proc/net/tcp writes it: the 32-bit value in host order (x86: little-endian), hex."""
    return socket.inet_aton(ipv4)[::-1].hex().upper()


def proc_cpu_ticks(pid: int) -> int:
    """utime + stime of pid in clock ticks (fields 14 and 15 of /proc/PID/stat), 0 if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def process_group_pids(pgid: int) -> list[int]:
    """The live processes of process group `pgid` (field 5 of /proc/PID/stat), the leader included."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[2]) == pgid:
                    out.append(int(name))
        except (OSError, IndexError, ValueError):
            continue  # a process that ended meanwhile
    return out


def proc_ctx_switches(pids: Iterable[int]) -> tuple[int, int]:
    """(voluntary, nonvoluntary) context switches summed over every thread of every pid."""
    v = n = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches:"):
                            v += int(line.split()[1])
                        elif line.startswith("nonvoluntary_ctxt_switches:"):
                            n += int(line.split()[1])
            except OSError:
                pass
    return v, n


def proc_mem_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (/proc/PID/status), Pss, Pss_Anon (kernels >= 5.14), Private_Dirty,
    Private_Clean and USS (their sum) from /proc/PID/smaps_rollup, in KiB; the keys that could
    not be read are missing."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1])
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith(("Pss:", "Pss_Anon:", "Private_Dirty:", "Private_Clean:")):
                    out[line.split(":")[0]] = int(line.split()[1])
        out["USS"] = out.get("Private_Dirty", 0) + out.get("Private_Clean", 0)
    except OSError:
        pass
    return out


def settled(sample: Callable[[], int], tolerance: int, interval: float, timeout: float) -> int:
    """A sample once three in a row, `interval` seconds apart, agree within `tolerance` (or the
    last one when `timeout` passes): memory figures move for a while after a load ends."""
    deadline = time.monotonic() + timeout
    last: list[int] = []
    while True:
        last = (last + [sample()])[-3:]
        if (len(last) == 3 and max(last) - min(last) <= tolerance) or time.monotonic() > deadline:
            return last[-1]
        time.sleep(interval)


def descendants(pid: int) -> list[int]:
    """Every process below pid (children, their children...), from /proc."""
    out, todo = [], [pid]
    while todo:
        for c in children_of(todo.pop()):
            out.append(c)
            todo.append(c)
    return out


def stop_process_tree(proc: Union[int, subprocess.Popen], timeout: float = 10.0, sig: int = signal.SIGTERM):
    """Stops a process this script started (a pid, or its Popen, which is then reaped) and
    anything it left below it: its workers and, after an upgrade that went wrong, a further
    master and that one's workers. `sig` and up to `timeout` seconds for it to exit, SIGKILL
    after; then SIGKILL for every descendant seen meanwhile that is still there. By PID only,
    each recorded with its start time, so a recycled PID is never touched."""
    pid = proc if isinstance(proc, int) else proc.pid
    seen: dict[int, Optional[int]] = {}

    def record(root: int):
        for d in descendants(root):
            seen.setdefault(d, proc_starttime(d))

    def alive() -> bool:
        return pid_alive(pid) if isinstance(proc, int) else proc.poll() is None

    record(pid)
    if alive():
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while alive() and time.monotonic() < deadline:
            record(pid)
            time.sleep(0.05)
        if alive():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    if not isinstance(proc, int):
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
    # Reparented after the master went: a worker's own children, a further master's workers.
    for k in list(seen):
        record(k)
    for d, st in seen.items():
        if st is not None and proc_starttime(d) == st and pid_alive(d):
            try:
                os.kill(d, signal.SIGKILL)
            except ProcessLookupError:
                pass


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
                readable, _, _ = select.select([self.sock], [], [], 0.1)
            except (OSError, ValueError):
                return
            if not readable:
                continue
            # Read and record under the lock, so drained() never sees a datagram that has left
            # the socket but is not in _messages yet.
            with self._cond:
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
                self._messages.append((time.monotonic(), data.decode(errors="replace")))
                self._senders.append(sender)
                self._cond.notify_all()

    def drained(self) -> bool:
        """Whether every datagram sent so far is recorded (none waits in the socket)."""
        with self._cond:
            return fcntl.ioctl(self.sock.fileno(), termios.FIONREAD, b"\0\0\0\0") == b"\0\0\0\0"

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

    def times_of(self, line: str, since: float = 0.0, until: float = float("inf")) -> list[float]:
        """Arrival times (time.monotonic()) in [since, until) of the datagrams with `line`
        ("WATCHDOG=1") as a whole line."""
        with self._cond:
            return [t for t, m in self._messages if line in m.split("\n") and since <= t < until]

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


# --------------------------------------------------------------------------------------------
# starting herdd (directly or under systemd-socket-activate) and other servers


def clean_env(base: Optional[dict[str, str]] = None, **extra: str) -> dict[str, str]:
    """`base` (default: this process's environment) without systemd's variables (LISTEN_*,
    NOTIFY_*, WATCHDOG_*), plus `extra`."""
    src = os.environ if base is None else base
    e = {k: v for k, v in src.items() if not k.startswith(("LISTEN_", "NOTIFY_", "WATCHDOG_"))}
    e.update(extra)
    return e


def herdd_command(binary: Union[str, Path], args: Iterable[str] = (), *,
                  activate: Optional[list[tuple[int, str]]] = None, env: Optional[dict[str, str]] = None,
                  wrap_watchdog_pid: bool = False) -> list[str]:
    """The command line that starts herdd `args`: directly, or with `activate` ([(port, fdname)])
    exec'd by systemd-socket-activate on the same pid once the first connection arrives.

    Under systemd-socket-activate, `env` is passed with -E (it hands only those on); run directly,
    the caller puts `env` into the process environment (see clean_env). With wrap_watchdog_pid,
    a shell exports WATCHDOG_PID=$$ and execs the rest, so it names the process that ends up
    being herdd."""
    herdd = [str(binary)] + [str(a) for a in args]
    if activate:
        cmd = [SOCKET_ACTIVATE]
        for port, name in activate:
            cmd += ["-l", f"{LOCALHOST}:{port}", f"--fdname={name}"]
        for k, v in (env or {}).items():
            cmd += ["-E", f"{k}={v}"]
        cmd += ["--"] + herdd
    else:
        cmd = herdd
    if wrap_watchdog_pid:
        if activate:
            cmd = cmd[:1] + ["-E", "WATCHDOG_PID=$$"] + cmd[1:]
            script = "exec " + " ".join(shlex.quote(c) if c != "WATCHDOG_PID=$$" else '"WATCHDOG_PID=$$"' for c in cmd)
        else:
            script = "WATCHDOG_PID=$$; export WATCHDOG_PID; exec " + " ".join(shlex.quote(c) for c in cmd)
        cmd = ["/bin/sh", "-c", script]
    return cmd


class ProcessTree:
    """A process started here in a session of its own (a server's master) and every child it was
    ever seen with (its workers). Ended by PID only: the master through its Popen, a leftover
    child by the PID recorded together with its start time, so a recycled PID is never touched.
    Output (stdout and stderr) goes to `log_path`, or nowhere."""

    def __init__(self, cmd: Iterable[str], *, cwd: Optional[Union[str, Path]] = None,
                 env: Optional[dict[str, str]] = None, log_path: Optional[Union[str, Path]] = None,
                 name: Optional[str] = None):
        self.cmd = [str(c) for c in cmd]
        self.name = name or Path(self.cmd[0]).name
        self.log_path = Path(log_path) if log_path else None
        self._log = open(self.log_path, "wb") if self.log_path else None
        self.known: dict[int, int] = {}  # pid -> start time of every child seen
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._log or subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.pid = self.proc.pid
        self.stopped = False

    def children(self) -> list[int]:
        """The master's children now; each one is recorded (pid, start time) for stop()."""
        kids = children_of(self.pid)
        for k in kids:
            if k not in self.known:
                st = proc_starttime(k)
                if st is not None:
                    self.known[k] = st
        return kids

    def running(self) -> bool:
        return self.proc.poll() is None

    def tail(self, n: int = 2000) -> str:
        """The last n bytes of the log."""
        if not self.log_path:
            return ""
        try:
            if self._log:
                self._log.flush()
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def wait_until(self, pred: Callable[[], object], timeout: float, what: str, interval: float = 0.02):
        """Polls pred until it returns something truthy (returned); RuntimeError, with the log's
        tail, if the master exits first or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running():
                raise RuntimeError(f"{self.name} (pid {self.pid}) exited with {self.proc.returncode}: {self.tail()}")
            v = pred()
            if v:
                return v
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} (pid {self.pid}): no {what} within {timeout}s: {self.tail()}")
            time.sleep(interval)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 8.0, leftovers: float = 3.0) -> Optional[int]:
        """Sends `sig` to the master and waits `timeout` (then SIGKILL); waits up to `leftovers`
        seconds for the recorded children to go, then SIGKILLs the ones still there (same PID
        and start time). Returns the master's exit status. Safe to call twice."""
        if self.stopped:
            return self.proc.returncode
        self.stopped = True
        self.children()
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        deadline = time.monotonic() + leftovers
        for pid, st in self.known.items():
            while proc_starttime(pid) == st and time.monotonic() < deadline:
                time.sleep(0.02)
            if proc_starttime(pid) == st:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self._log:
            self._log.close()
        return self.proc.returncode


class HerddProcess(ProcessTree):
    """herdd started directly (`activate` None) or under systemd-socket-activate, in `workdir`,
    with a NotifySocket of its own (workdir/notify.sock) unless notify=False: ready_s is the time
    from start to READY=1 on it (under systemd-socket-activate herdd starts only once the first
    connection arrives, so READY=1 follows that connection). The environment is this process's
    without systemd's variables, plus `env`."""

    def __init__(self, binary: Union[str, Path], args: Iterable[str], *, workdir: Union[str, Path],
                 activate: Optional[list[tuple[int, str]]] = None, notify: bool = True,
                 env: Optional[dict[str, str]] = None, name: str = "herdd",
                 log_path: Optional[Union[str, Path]] = None):
        workdir = Path(workdir)
        # Reads every datagram on its own thread, like systemd: the master sends STATUS= updates,
        # and a full datagram queue would block it in sd_notify.
        self.notify = NotifySocket(str(workdir / "notify.sock")) if notify else None
        extra = dict(env or {})
        if self.notify:
            extra["NOTIFY_SOCKET"] = self.notify.path
        cmd = herdd_command(binary, args, activate=activate, env=extra)
        self.ready_s: Optional[float] = None
        try:
            super().__init__(cmd, cwd=workdir, env=clean_env() if activate else clean_env(**extra),
                             log_path=log_path or workdir / f"{name}.log", name=name)
        except BaseException:
            if self.notify:
                self.notify.close()
            raise

    def wait_ready(self, timeout: float = 20.0) -> float:
        """Waits for READY=1; returns (and keeps in ready_s) the seconds since the start."""
        if self.ready_s is None:
            if not self.notify:
                raise RuntimeError(f"{self.name}: started without a notify socket")

            def ready_at():
                return next((t for t, m in self.notify.timed_messages() if "READY=1" in m.split("\n")), None)
            self.ready_s = self.wait_until(ready_at, timeout, "READY=1") - self.t0
        return self.ready_s

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 8.0, leftovers: float = 3.0) -> Optional[int]:
        try:
            return super().stop(sig, timeout, leftovers)
        finally:
            if self.notify:
                self.notify.close()
                self.notify = None


class Started:
    """Everything a script started (ProcessTree or subprocess.Popen), so one finally: block ends
    it all by PID, also after Ctrl-C or, with raise_on_signals(), SIGTERM and SIGHUP."""

    def __init__(self):
        self._items: list = []

    def add(self, p):
        self._items.append(p)
        return p

    def discard(self, p):
        if p in self._items:
            self._items.remove(p)

    def end_all(self, log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)):
        """Plain processes first (SIGKILL, waited for), then the trees (their stop())."""
        for p in [x for x in self._items if isinstance(x, subprocess.Popen)]:
            if p.poll() is None:
                p.kill()
            p.wait()
            self.discard(p)
        for t in [x for x in self._items if not isinstance(x, subprocess.Popen)]:
            try:
                t.stop()
            except Exception as e:  # keep stopping the others
                log(f"stopping {t.name} (pid {t.pid}): {e}")
            self.discard(t)


def raise_on_signals(*sigs: int):
    """SIGTERM and SIGHUP (or `sigs`) raise KeyboardInterrupt, so finally: blocks end what was
    started."""
    def handler(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    for s in sigs or (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, handler)
