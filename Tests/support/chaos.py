"""Chaos under load (issue 24, part 3): the driver shared by Tests/integration/test_chaos.py
(60 s, debug build) and `bench/run --only chaos` (a soak, release build).

One socket-activated herdd (debug handler on `http`, static:/DIR on `static`, metrics) runs
while bounded client threads load it: keep-alive and `Connection: close` clients asking for
`/`, `/sleep/<ms>`, `/stream/<n>`, POST `/echo` and static files of several sizes, each answer
checked byte for byte. Meanwhile a seeded RNG picks, every 0.5-2 s, one of: SIGHUP, SIGTTIN,
SIGTTOU (the pool stays within bounds), SIGUSR2 (a hot upgrade; the driver waits for the new
master's MAINPID=), kill -9 of a worker, SIGSTOP of a worker for longer than --timeout (the
master's heartbeat check kills it). --max-requests with jitter recycles workers meanwhile.

Clients never retry; every failure is recorded with its kind, time and the worker pid the
connection last answered from (`/` says `debug pid=<pid>`). `ChaosRun.verdict()` checks the
invariants (docs/connections.md, "Part 3: chaos"). Standard library only.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import random
import re
import select
import shutil
import signal
import socket
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from herdtest import LOCALHOST, HerddProcess, children_of, free_ports, pid_alive, proc_cmdline, proc_mem_kib, wait_until

PR_SET_CHILD_SUBREAPER = 36
# Half of DrainPolicy.idleNanos: a keep-alive connection idle this long is not reused.
REUSE_IDLE_LIMIT = 0.5
STATIC_SIZES = {"tiny.txt": 1, "small.bin": 1024, "mid.bin": 64 * 1024, "big.bin": 1536 * 1024}
LOG_RE = re.compile(r"^herdd\[(\d+)\] (\S+) (\w+): (.*)$")
KV_RE = re.compile(r"(?:(?<= )|^)([a-z_]+)=(\S*)")


# --------------------------------------------------------------------------------------------
# a strict HTTP/1.1 client on a raw socket: every failure has a kind


class ClientFailure(Exception):
    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind  # reset | eof | timeout | wrong | status
        self.detail = detail


class Conn:
    """One connection; `exchange` sends a request and reads one whole response."""

    def __init__(self, port: int, timeout: float):
        self.timeout = timeout
        self.sock = socket.create_connection((LOCALHOST, port), timeout=timeout)
        self.buf = b""
        self.closed = False
        self.used = 0
        self.idle_since = time.monotonic()

    def stale(self) -> bool:
        """Whether the server closed this idle keep-alive connection (EOF or reset already
        waiting): a client checks before it reuses one, as HTTP clients' pools do, since a
        server may close an idle connection at any time (keep-alive timeout, a draining
        worker's idle rule: DrainPolicy.swift)."""
        # Readable before we asked anything: EOF, a reset, or bytes nobody asked for.
        r, _, _ = select.select([self.sock], [], [], 0)
        return bool(r) or bool(self.buf)

    def close(self):
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self, deadline: float, what: str):
        left = deadline - time.monotonic()
        if left <= 0:
            raise ClientFailure("timeout", f"no {what} within {self.timeout}s")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(262144)
        except socket.timeout:
            raise ClientFailure("timeout", f"no {what} within {self.timeout}s")
        except (ConnectionResetError, BrokenPipeError) as e:
            raise ClientFailure("reset", f"{e.__class__.__name__} reading {what}")
        if not data:
            raise ClientFailure("eof", f"EOF reading {what} (after {len(self.buf)} buffered bytes)")
        self.buf += data

    def _take(self, n: int, deadline: float, what: str) -> bytes:
        while len(self.buf) < n:
            self._fill(deadline, what)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _line(self, deadline: float, what: str) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill(deadline, what)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exchange(self, method: str, path: str, body: bytes = b"", close: bool = False) -> tuple[int, dict, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: chaos\r\n"
        if body or method == "POST":
            head += f"Content-Length: {len(body)}\r\nContent-Type: application/octet-stream\r\n"
        if close:
            head += "Connection: close\r\n"
        deadline = time.monotonic() + self.timeout
        try:
            self.sock.settimeout(self.timeout)
            self.sock.sendall(head.encode() + b"\r\n" + body)
        except socket.timeout:
            raise ClientFailure("timeout", "sending the request")
        except (ConnectionResetError, BrokenPipeError) as e:
            raise ClientFailure("reset", f"{e.__class__.__name__} sending the request")
        self.used += 1
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline, "response head")
        raw, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise ClientFailure("wrong", f"bad status line {lines[0]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            headers[k.strip().lower()] = v.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            pieces = []
            while True:
                size = int(self._line(deadline, "chunk size").split(b";")[0], 16)
                if size == 0:
                    while self._line(deadline, "trailer") != b"":
                        pass
                    break
                pieces.append(self._take(size, deadline, "chunk data"))
                if self._take(2, deadline, "chunk end") != b"\r\n":
                    raise ClientFailure("wrong", "chunk not followed by CRLF")
            data = b"".join(pieces)
        elif "content-length" in headers:
            data = self._take(int(headers["content-length"]), deadline, "body")
        else:
            raise ClientFailure("wrong", f"response without framing: {headers}")
        if headers.get("connection", "").lower() == "close" or close:
            self.close()
        self.idle_since = time.monotonic()
        return status, headers, data


# --------------------------------------------------------------------------------------------
# records


@dataclass
class Failure:
    t: float
    client: str
    kind: str
    what: str
    detail: str
    pid: Optional[int]
    reused: bool  # the connection had answered before (a keep-alive reuse)


@dataclass
class KillEvent:
    t: float
    pid: int
    how: str  # "kill9" or "stop"
    t_dead: Optional[float] = None


@dataclass
class Tally:
    ok: dict = field(default_factory=dict)  # kind -> count
    bytes_in: int = 0
    stale: int = 0  # idle keep-alive connections the server had closed before their next request
    not_reused: int = 0  # keep-alive connections idle for REUSE_IDLE_LIMIT, closed by the client
    failures: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def success(self, kind: str, n: int):
        with self.lock:
            self.ok[kind] = self.ok.get(kind, 0) + 1
            self.bytes_in += n

    def total_ok(self) -> int:
        with self.lock:
            return sum(self.ok.values())

    def served_by_workers(self) -> int:
        """Successes that herdd_requests_total counts: all but the /metrics scrapes, which the
        master answers itself."""
        with self.lock:
            return sum(n for k, n in self.ok.items() if k != "metrics")


# --------------------------------------------------------------------------------------------
# the run


class ChaosRun:
    """Starts herdd, the load and the chaos; `run(seconds)`, then `verdict()` and `report()`.
    Always call `close()` (ends every process it started, by pid)."""

    def __init__(self, binary: Path, workdir: Path, *, seed: Optional[int] = None, workers: int = 3,
                 min_workers: int = 2, max_workers: int = 5, keepalive_clients: int = 3, close_clients: int = 2,
                 log: Callable[[str], None] = print):
        self.seed = seed if seed is not None else random.SystemRandom().randrange(1 << 32)
        self.rng = random.Random(self.seed)
        self.log = log
        self.workdir = Path(workdir)
        self.workers, self.min_workers, self.max_workers = workers, min_workers, max_workers
        self.n_ka, self.n_close = keepalive_clients, close_clients
        bindir = self.workdir / "bin"
        bindir.mkdir(parents=True, exist_ok=True)
        self.binary = bindir / "herdd"  # a copy: SIGUSR2 re-executes the file at this path
        shutil.copy2(binary, self.binary)
        self.static_dir = self.workdir / "static"
        self.static_dir.mkdir(exist_ok=True)
        frng = random.Random(self.seed ^ 0x5A5A)
        self.static: dict[str, tuple[int, str]] = {}
        for name, size in STATIC_SIZES.items():
            data = frng.randbytes(size)
            (self.static_dir / name).write_bytes(data)
            self.static[name] = (size, hashlib.sha256(data).hexdigest())
        self.http_port, self.static_port, self.metrics_port = free_ports(3)
        self.tally = Tally()
        self.kills: list[KillEvent] = []
        self.events: list[tuple[float, str, str]] = []  # (t, action, detail)
        self.masters: list[int] = []  # in succession order
        self.master_exits: dict[int, int] = {}
        self.stop_load = threading.Event()
        self.stop_chaos = threading.Event()
        self.threads: list[threading.Thread] = []
        self.samples: list[dict] = []  # resource samples
        self.scrapes = 0
        self.t0 = time.monotonic()
        self.errors: list[str] = []  # problems of the driver itself (a failed upgrade...)
        self.herd: Optional[HerddProcess] = None
        self.final_exit: Optional[int] = None
        self.metrics_end: dict = {}
        self.warm_sample: Optional[dict] = None
        self.end_sample: Optional[dict] = None
        self._libc = ctypes.CDLL(None, use_errno=True)

    # ---- herdd

    def args(self) -> list[str]:
        return ["--workers", str(self.workers), "--max-workers", str(self.max_workers + 1),
                "--handler", "http=debug", "--handler", f"static=static:{self.static_dir}",
                "--handler", "metrics=metrics", "--timeout", "2", "--graceful-timeout", "10",
                "--upgrade-timeout", "20", "--max-requests", "100", "--max-requests-jitter", "100",
                "--max-body", "2m"]

    def start(self):
        # New masters (SIGUSR2) are children of the old master; when it exits they would go to
        # init and their exit status would be lost. As a subreaper we get them and read it.
        self._libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        self.herd = HerddProcess(self.binary, self.args(), workdir=self.workdir,
                                 activate=[(self.http_port, "http"), (self.static_port, "static"),
                                           (self.metrics_port, "metrics")])
        self.herd.wait_until(lambda: self.herd.tail(100000).count("Listening on") >= 3, 15, "activator listening")
        c = Conn(self.http_port, 20)  # the first connection makes systemd-socket-activate exec herdd
        status, _, body = c.exchange("GET", "/", close=True)
        assert status == 200 and body.startswith(b"debug pid="), (status, body)
        self.tally.success("warmup", len(body))
        self.herd.wait_ready(20)
        self.masters.append(self.herd.pid)
        self._wait_workers(self.workers, 20)

    @property
    def master(self) -> int:
        return self.masters[-1]

    def worker_pids(self, master: Optional[int] = None) -> list[int]:
        out = []
        for p in children_of(master or self.master):
            argv = proc_cmdline(p)
            if argv and "worker" in argv[0] and pid_alive(p):
                out.append(p)
        return out

    def _wait_workers(self, n: int, timeout: float):
        deadline = time.monotonic() + timeout
        while len(self.worker_pids()) != n:
            if time.monotonic() > deadline:
                raise AssertionError(f"master {self.master}: {len(self.worker_pids())} workers, wanted {n}: {self.log_tail()}")
            time.sleep(0.05)

    def log_text(self) -> str:
        try:
            return (self.workdir / "herdd.log").read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def log_events(self, event: str) -> list[tuple[int, dict]]:
        out = []
        for line in self.log_text().splitlines():
            m = LOG_RE.match(line)
            if not m:
                continue
            meta = dict(KV_RE.findall(m.group(4)))
            if meta.get("event") == event:
                out.append((int(m.group(1)), meta))
        return out

    # ---- load

    def _client(self, name: str, close: bool, deadline: float, max_requests: int):
        rng = random.Random(f"{self.seed}-{name}")
        conns: dict[int, Optional[Conn]] = {self.http_port: None, self.static_port: None}
        pids: dict[int, Optional[int]] = {self.http_port: None, self.static_port: None}
        n = 0
        while not self.stop_load.is_set() and time.monotonic() < deadline and n < max_requests:
            n += 1
            r = rng.random()
            port, method, body, check = self.http_port, "GET", b"", None
            if r < 0.30:
                path, what = "/", "pid"
            elif r < 0.45:
                ms = rng.randrange(0, 150)
                path, what = f"/sleep/{ms}", "sleep"
                expect = f"slept {ms}\n".encode()
                check = lambda b, e=expect: b == e
            elif r < 0.60:
                k = rng.randrange(100, 6000)
                path, what = f"/stream/{k}", "stream"
                expect = "".join(f"chunk {i}\n" for i in range(k)).encode()
                check = lambda b, e=expect: b == e
            elif r < 0.80:
                size = rng.choice([0, 1, 100, 4096, 65536, rng.randrange(1, 300_000)])
                body = rng.randbytes(size)
                path, what, method = "/echo", "echo", "POST"
                check = lambda b, e=body: b == e
            else:
                fname = rng.choice(list(self.static))
                size, digest = self.static[fname]
                port, path, what = self.static_port, f"/{fname}", "static"
                check = lambda b, s=size, d=digest: len(b) == s and hashlib.sha256(b).hexdigest() == d
            c = conns[port]
            if c is not None and not c.closed and c.stale():
                c.close()
                with self.tally.lock:
                    self.tally.stale += 1
            elif c is not None and not c.closed and time.monotonic() - c.idle_since >= REUSE_IDLE_LIMIT:
                # herdd may close a keep-alive connection silent for a second (a draining worker,
                # DrainPolicy.swift) or for --keepalive-timeout; a request sent at that moment
                # meets the close, and HTTP/1.1 lets a client retry it (RFC 9112 9.3.1). We do
                # not retry, so we do not reuse a connection that came near that rule: then any
                # close of a reused connection is herdd's fault.
                c.close()
                with self.tally.lock:
                    self.tally.not_reused += 1
            reused = c is not None and not c.closed
            try:
                if not reused:
                    try:
                        c = conns[port] = Conn(port, 15)
                    except OSError as e:
                        raise ClientFailure("reset" if isinstance(e, ConnectionError) else "timeout", f"connect: {e}")
                    pids[port] = None
                status, headers, data = c.exchange(method, path, body, close=close)
                if status != 200:
                    raise ClientFailure("status", f"{status} {data[:200]!r}")
                if what == "pid":
                    m = re.fullmatch(rb"debug pid=(\d+)\n", data)
                    if not m:
                        raise ClientFailure("wrong", f"{data[:100]!r}")
                    pids[port] = int(m.group(1))
                elif not check(data):
                    raise ClientFailure("wrong", f"{len(data)} bytes not as expected")
                self.tally.success(what, len(data))
            except ClientFailure as f:
                with self.tally.lock:
                    self.tally.failures.append(Failure(time.monotonic() - self.t0, name, f.kind, f"{method} {path}",
                                                       f.detail, pids[port], reused))
                if c is not None:
                    c.close()
            except OSError as e:  # anything the classification above missed
                with self.tally.lock:
                    self.tally.failures.append(Failure(time.monotonic() - self.t0, name, "reset", f"{method} {path}",
                                                       repr(e), pids[port], reused))
                if c is not None:
                    c.close()
        for c in conns.values():
            if c is not None:
                c.close()

    def _scraper(self, deadline: float):
        while not self.stop_load.is_set() and time.monotonic() < deadline:
            try:
                self.scrape()
            except ClientFailure as f:
                with self.tally.lock:
                    self.tally.failures.append(Failure(time.monotonic() - self.t0, "scraper", f.kind, "GET /metrics",
                                                       f.detail, None, False))
            except OSError as e:
                with self.tally.lock:
                    self.tally.failures.append(Failure(time.monotonic() - self.t0, "scraper", "reset", "GET /metrics",
                                                       repr(e), None, False))
            self.stop_load.wait(1.0)

    def scrape(self) -> dict:
        c = Conn(self.metrics_port, 15)
        status, _, data = c.exchange("GET", "/metrics", close=True)
        if status != 200:
            raise ClientFailure("status", f"{status}")
        self.tally.success("metrics", len(data))
        return parse_metrics(data.decode())

    # ---- chaos

    def _note(self, action: str, detail: str = ""):
        self.events.append((time.monotonic() - self.t0, action, detail))

    def _pick_worker(self) -> Optional[int]:
        ws = self.worker_pids()
        return self.rng.choice(ws) if ws else None

    def _upgrade(self):
        notify = self.herd.notify
        n_before = notify.count()
        old = self.master
        os.kill(old, signal.SIGUSR2)
        try:
            msg = notify.wait_for(lambda m: "MAINPID=" in m, timeout=30, start=n_before)
        except AssertionError as e:
            self.errors.append(f"USR2 to {old}: no MAINPID= ({e})")
            return
        new = int(re.search(r"MAINPID=(\d+)", msg).group(1))
        self.masters.append(new)
        self._note("usr2", f"{old}->{new}")
        # The old master drains its workers and exits; wait for it before more chaos (a second
        # USR2 during an upgrade is refused by design) and read its exit status.
        self._reap_master(old, 30)

    def _reap_master(self, pid: int, timeout: float):
        deadline = time.monotonic() + timeout
        if pid == self.herd.pid:
            try:
                self.master_exits[pid] = self.herd.proc.wait(timeout=timeout)
            except Exception as e:
                self.errors.append(f"master {pid} did not exit: {e}")
            return
        while time.monotonic() < deadline:
            try:
                got, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                self.errors.append(f"master {pid} is not our child (subreaper)")
                return
            if got == pid:
                self.master_exits[pid] = os.waitstatus_to_exitcode(status)
                return
            time.sleep(0.05)
        self.errors.append(f"master {pid} did not exit within {timeout}s")

    def _kill(self, how: str):
        w = self._pick_worker()
        if w is None:
            return
        ev = KillEvent(time.monotonic() - self.t0, w, how)
        self.kills.append(ev)
        os.kill(w, signal.SIGKILL if how == "kill9" else signal.SIGSTOP)
        self._note(how, str(w))
        # Wait until it is gone: the master kills a stopped worker after --timeout (2 s).
        deadline = time.monotonic() + 15
        while pid_alive(w) and time.monotonic() < deadline:
            time.sleep(0.02)
        if pid_alive(w):
            self.errors.append(f"{how} worker {w} still alive after 15 s")
            os.kill(w, signal.SIGKILL)
        ev.t_dead = time.monotonic() - self.t0

    def _chaos(self, deadline: float):
        actions = ["hup", "ttin", "ttou", "usr2", "kill9", "stop"]
        weights = [2, 2, 2, 1, 3, 2]
        # Every kind once first (in a random order), so that even a short run has each.
        first = self.rng.sample(actions, len(actions))
        while not self.stop_chaos.is_set() and time.monotonic() < deadline:
            if self.stop_chaos.wait(self.rng.uniform(0.5, 2.0)):
                break
            a = first.pop() if first else self.rng.choices(actions, weights)[0]
            try:
                if a == "hup":
                    os.kill(self.master, signal.SIGHUP)
                    self._note(a)
                elif a in ("ttin", "ttou"):
                    # The pool size as the master has it (a new master starts from --workers).
                    wanted = self.scrape()["desired"]
                    if a == "ttin" and wanted < self.max_workers:
                        os.kill(self.master, signal.SIGTTIN)
                        self._note(a, str(wanted + 1))
                    elif a == "ttou" and wanted > self.min_workers:
                        os.kill(self.master, signal.SIGTTOU)
                        self._note(a, str(wanted - 1))
                elif a == "usr2":
                    self._upgrade()
                elif a in ("kill9", "stop"):
                    self._kill(a)
            except (ProcessLookupError, ClientFailure, OSError, AssertionError) as e:
                self.errors.append(f"{a}: {e}")

    # ---- resources

    def resource_sample(self) -> dict:
        m = self.master
        ws = self.worker_pids()
        return {"t": time.monotonic() - self.t0, "master": m,
                "master_rss": proc_mem_kib(m).get("VmRSS", 0), "master_fds": _fd_count(m),
                "workers": {w: proc_mem_kib(w).get("VmRSS", 0) for w in ws}}

    def _sampler(self, deadline: float):
        while not self.stop_load.is_set() and time.monotonic() < deadline:
            self.samples.append(self.resource_sample())
            self.stop_load.wait(2.0)

    # ---- the whole run

    def run(self, seconds: float, warmup: float = 5.0, max_requests_per_client: int = 2_000_000):
        """Warm-up (load, no chaos), `seconds` of chaos under load, then a quiet end: the pool set
        back to its start size, resources measured, metrics scraped, SIGTERM."""
        self.log(f"chaos: seed {self.seed}, {seconds:.0f} s of chaos, herdd {self.binary}")
        self.start()
        self.t0 = time.monotonic()
        end = self.t0 + warmup + seconds + 60  # hard bound for the load threads
        for i in range(self.n_ka):
            self.threads.append(threading.Thread(target=self._client, args=(f"ka{i}", False, end, max_requests_per_client), daemon=True))
        for i in range(self.n_close):
            self.threads.append(threading.Thread(target=self._client, args=(f"close{i}", True, end, max_requests_per_client), daemon=True))
        self.threads.append(threading.Thread(target=self._scraper, args=(end,), daemon=True))
        self.threads.append(threading.Thread(target=self._sampler, args=(end,), daemon=True))
        for t in self.threads:
            t.start()
        time.sleep(warmup)
        self.warm_sample = self.resource_sample()
        chaos = threading.Thread(target=self._chaos, args=(time.monotonic() + seconds,), daemon=True)
        chaos.start()
        chaos.join(seconds + 120)
        self.stop_chaos.set()
        # Quiet end: the pool back to its start size, under load, so the end sample compares with
        # the warm one (a master's fds grow with its workers).
        # One signal at a time, each seen in `desired` before the next: standard signals do not
        # queue, so a second TTOU sent before the master read the first was lost (4 -> 3, not 2).
        try:
            deadline = time.monotonic() + 10 + 5 * abs(self.scrape()["desired"] - self.workers)
            while (wanted := self.scrape()["desired"]) != self.workers:
                if time.monotonic() > deadline:
                    raise AssertionError(f"pool size back: desired {wanted}, want {self.workers}")
                os.kill(self.master, signal.SIGTTIN if wanted < self.workers else signal.SIGTTOU)
                wait_until(lambda: self.scrape()["desired"] != wanted, 10, what=f"pool size away from {wanted}")
            self._wait_workers(self.workers, 30)
        except AssertionError as e:
            self.errors.append(str(e))
        time.sleep(2.0)
        self.end_sample = self.resource_sample()
        self.stop_load.set()
        for t in self.threads:
            t.join(60)
            if t.is_alive():
                self.errors.append(f"load thread {t.name} still running")
        self.metrics_end = self.scrape()
        self.log_exits = self.log_events("worker-exited")
        self.final_exit = self.stop_master()

    def stop_master(self) -> Optional[int]:
        m = self.master
        os.kill(m, signal.SIGTERM)
        self._reap_master(m, 30)
        return self.master_exits.get(m)

    def close(self):
        """Ends every process started here (pid by pid), whatever happened."""
        for m in self.masters:
            if pid_alive(m):
                for w in children_of(m):
                    try:
                        os.kill(w, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                try:
                    os.kill(m, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                if m != (self.herd.pid if self.herd else None):
                    try:
                        os.waitpid(m, 0)
                    except ChildProcessError:
                        pass
        if self.herd:
            self.herd.stop()
        self._libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)

    # ---- invariants

    def worker_successes(self) -> int:
        return self.tally.served_by_workers()

    def in_flight_on_killed(self) -> tuple[int, list]:
        """Connections open on workers we killed (kill -9) or the master killed (timeout, after
        SIGSTOP), from the master's worker-exited log lines; plus any worker exit we did not cause."""
        ours = {k.pid for k in self.kills}
        total, foreign = 0, []
        for master, meta in self.log_exits:
            # By pid, whatever the reason: a worker killed while it retired (max-requests, HUP)
            # is logged with that reason.
            if int(meta.get("worker_pid", 0)) in ours:
                total += int(meta.get("open_connections", "0"))
            elif meta.get("reason") in ("crash", "timeout"):
                foreign.append((master, meta))
        return total, foreign

    def events_near(self, t: float, span: float = 3.0) -> list:
        """Chaos actions within `span` seconds of t (for the report of a failure)."""
        return [e for e in self.events if abs(e[0] - t) <= span]

    def explained(self, f: Failure) -> bool:
        """A failure is put down to a kill when it is a reset or an EOF seen between the kill
        (or SIGSTOP) and 3 s after the worker was gone."""
        if f.kind not in ("reset", "eof"):
            return False
        for k in self.kills:
            if k.t - 0.05 <= f.t <= (k.t_dead or k.t) + 3.0:
                return True
        return False

    def verdict(self) -> list[str]:
        """The broken invariants (empty: all held)."""
        bad = list(self.errors)
        fails = self.tally.failures
        unexplained = [f for f in fails if not self.explained(f)]
        if unexplained:
            bad.append(f"{len(unexplained)} client failures not on a killed worker: {unexplained[:5]}")
        inflight, foreign = self.in_flight_on_killed()
        if foreign:
            bad.append(f"workers died that nobody killed: {foreign[:5]}")
        if len(fails) > inflight:
            bad.append(f"{len(fails)} client failures > {inflight} connections open on killed workers")
        closed = self.metrics_end.get(("herdd_connections_closed_total", "worker-exit"), 0)
        if len(fails) > closed:
            bad.append(f"{len(fails)} client failures > herdd_connections_closed_total{{reason=worker-exit}} {closed}")
        ok = self.worker_successes()
        m2 = self.metrics_end.get(("herdd_requests_total", "2xx"), 0)
        if not (ok <= m2 <= ok + inflight):
            bad.append(f"metrics 2xx {m2} not within client successes {ok} .. {ok + inflight} (+ in flight on killed)")
        other = sum(self.metrics_end.get(("herdd_requests_total", c), 0) for c in ("1xx", "3xx", "4xx", "5xx"))
        if other:
            bad.append(f"metrics count {other} non-2xx responses")
        w, e = self.warm_sample, self.end_sample
        if w and e:
            if e["master_rss"] > w["master_rss"] * 1.05:
                bad.append(f"master RSS grew {w['master_rss']} -> {e['master_rss']} KiB")
            if e["master_fds"] > w["master_fds"] * 1.05:
                bad.append(f"master fds grew {w['master_fds']} -> {e['master_fds']}")
            wr, er = _median(w["workers"].values()), _median(e["workers"].values())
            if er > wr * 1.05:
                bad.append(f"worker RSS (median) grew {wr} -> {er} KiB")
        else:
            bad.append("no resource samples")
        for m in self.masters:
            if self.master_exits.get(m) != 0:
                bad.append(f"master {m} exit status {self.master_exits.get(m)}")
        usr2 = sum(1 for _, a, _ in self.events if a == "usr2")
        if len(self.masters) != usr2 + 1:
            bad.append(f"{len(self.masters)} masters for {usr2} upgrades")
        if self.log_events("crash-loop"):
            bad.append("crash loop")
        return bad

    def figures(self) -> dict:
        inflight, _ = self.in_flight_on_killed()
        actions: dict[str, int] = {}
        for _, a, _ in self.events:
            actions[a] = actions.get(a, 0) + 1
        kinds: dict[str, int] = {}
        for f in self.tally.failures:
            kinds[f.kind] = kinds.get(f.kind, 0) + 1
        exits: dict[str, int] = {}
        for _, meta in self.log_exits:
            exits[meta.get("reason", "?")] = exits.get(meta.get("reason", "?"), 0) + 1
        dur = (self.end_sample or {}).get("t", 0)
        return {
            "seed": self.seed, "seconds": round(dur, 1), "ok": dict(self.tally.ok), "ok_total": self.tally.total_ok(),
            "req_per_s": round(self.tally.total_ok() / dur, 1) if dur else 0, "mb_in": round(self.tally.bytes_in / 1e6, 1),
            "stale_keepalive_closed": self.tally.stale,
            "keepalive_not_reused": self.tally.not_reused,
            "unexplained_failures": [dict(vars(f), near=self.events_near(f.t)) for f in self.tally.failures
                                     if not self.explained(f)][:20],
            "failures": len(self.tally.failures), "failure_kinds": kinds,
            "unexplained": sum(1 for f in self.tally.failures if not self.explained(f)),
            "in_flight_on_killed": inflight,
            "closed_worker_exit": self.metrics_end.get(("herdd_connections_closed_total", "worker-exit"), 0),
            "metrics_2xx": self.metrics_end.get(("herdd_requests_total", "2xx"), 0),
            "worker_successes": self.worker_successes(),
            "chaos": actions, "worker_exits": exits, "masters": len(self.masters),
            "master_exits": list(self.master_exits.values()), "final_exit": self.final_exit,
            "warm": _brief(self.warm_sample), "end": _brief(self.end_sample),
        }

    def report(self) -> str:
        f = self.figures()
        lines = [
            f"chaos seed {f['seed']}: {f['seconds']} s, {f['ok_total']} requests answered whole ({f['req_per_s']}/s, {f['mb_in']} MB read)",
            f"  by kind: {f['ok']}",
            f"  keep-alive connections found closed by herdd before reuse: {f['stale_keepalive_closed']};"
            f" not reused after {REUSE_IDLE_LIMIT} s idle: {f['keepalive_not_reused']}",
            f"  chaos actions: {f['chaos']}; masters {f['masters']} (exits {f['master_exits']}, final {f['final_exit']})",
            f"  worker exits by reason: {f['worker_exits']}",
            f"  client failures: {f['failures']} {f['failure_kinds']} (unexplained {f['unexplained']});"
            f" open on killed workers (log): {f['in_flight_on_killed']}; closed reason=worker-exit (metrics): {f['closed_worker_exit']}",
            f"  metrics 2xx {f['metrics_2xx']} vs client successes of workers {f['worker_successes']} (all but /metrics)",
            f"  warm: {f['warm']}",
            f"  end:  {f['end']}",
        ]
        return "\n".join(lines)


def parse_metrics(text: str) -> dict:
    """(family, code or reason label) -> value, for the counters the invariants use."""
    out = {}
    for line in text.splitlines():
        m = re.match(r'(herdd_requests_total|herdd_connections_closed_total)\{[^}]*(?:code|reason)="([^"]+)"[^}]*\} (\d+)', line)
        if m:
            out[(m.group(1), m.group(2))] = out.get((m.group(1), m.group(2)), 0) + int(m.group(3))
        elif line.startswith("herdd_workers_desired "):
            out["desired"] = int(float(line.split()[1]))
    return out


def _fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def _median(xs) -> float:
    xs = list(xs)
    return statistics.median(xs) if xs else 0


def _brief(s: Optional[dict]) -> str:
    if not s:
        return "-"
    return (f"master {s['master']} RSS {s['master_rss']} KiB, {s['master_fds']} fds; "
            f"{len(s['workers'])} workers, RSS median {_median(s['workers'].values()):.0f} KiB")
