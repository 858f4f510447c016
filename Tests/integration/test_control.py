"""Issue 8: `herdd reload` / `herdd upgrade` that wait and report failure, reload rollback, and
listeners kept in systemd's fd store across a restart."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

from conftest import (
    HERDD_BIN,
    clean_env,
    stop_process_tree,
    LOCALHOST,
    LoadThread,
    children_of,
    free_ports,
    http_get,
    pid_alive,
    run_herdd,
    wait_http,
    wait_until,
)
from test_upgrade import install_binary, tagged_build


def test_reload_command_waits_and_reports(herd_factory, tmp_path):
    conf = tmp_path / "herdd.conf"
    port = free_ports(1)[0]
    conf.write_text(f"workers = 2\nlisten = {LOCALHOST}:{port}\n")
    h = herd_factory(["--config", str(conf)])
    old = h.wait_workers(2)
    load = LoadThread(port, max_seconds=30)
    load.start()
    try:
        conf.write_text(f"workers = 3\nlisten = {LOCALHOST}:{port}\n")
        p = run_herdd(["reload", "--pid", str(h.pid), "--timeout", "20"], timeout=30)
        assert p.returncode == 0, p.stderr
        assert "generation 2" in p.stdout
        # When the command returns, the new generation serves: 3 new workers, none of the old.
        new = h.wait_workers(3, timeout=5)
        assert not set(new) & set(old)

        conf.write_text("workers = lots\n")
        p = run_herdd(["reload", "--pid", str(h.pid), "--timeout", "20"], timeout=30)
        assert p.returncode == 1
        assert "reload failed" in p.stderr and "workers" in p.stderr and "lots" in p.stderr, p.stderr
        assert h.worker_pids() == new
    finally:
        load.stop()
    assert load.failures == [], load.failures[:5]


def test_reload_rolls_back_when_new_workers_die_at_start(herd_factory):
    port = free_ports(1)[0]
    # Workers of generation 2 and later exit at start (fault injection honoured by the worker).
    h = herd_factory(["--workers", "2", "--listen", f"{LOCALHOST}:{port}"],
                     env={"HERDD_TEST_WORKER_EXIT_AT_START": "generation>=2"})
    old = h.wait_workers(2)
    load = LoadThread(port, max_seconds=30)
    load.start()
    try:
        p = run_herdd(["reload", "--pid", str(h.pid), "--timeout", "30"], timeout=40)
        assert p.returncode == 1
        assert "new workers die right after they start" in p.stderr, p.stderr
        load.wait_served(50)  # the old generation keeps serving after the rollback
    finally:
        load.stop()
    assert load.failures == [] and load.ok > 10, load.failures[:5]
    # The previous generation kept serving: one old worker may have been retired while a new
    # one briefly served, but the pool is back to 2 workers of generation 1.
    workers = h.wait_workers(2, timeout=10)
    assert set(old) & set(workers), (old, workers)
    assert h.poll() is None
    assert http_get(port).status == 200


def test_upgrade_command_success_and_failure(herd_factory, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    binary = bindir / "herdd"
    shutil.copy2(HERDD_BIN, binary)
    port = free_ports(1)[0]
    # Started directly from the copy (not through the Herd wrapper, whose binary is fixed).
    log = open(tmp_path / "master.log", "wb")
    env = clean_env()
    master = subprocess.Popen([str(binary), "--workers", "2", "--listen", f"{LOCALHOST}:{port}",
                               "--upgrade-timeout", "3"], stdout=log, stderr=log, env=env)
    started = [master.pid]
    try:
        wait_http(port)
        install_binary(binary, b"#!/bin/sh\nexit 2\n")
        p = run_herdd(["upgrade", "--pid", str(master.pid), "--timeout", "20"], timeout=30)
        assert p.returncode == 1 and "exited (exit 2)" in p.stderr, p.stderr
        assert master.poll() is None and http_get(port).status == 200

        install_binary(binary, tagged_build("0000000000000cmd"))
        p = run_herdd(["upgrade", "--pid", str(master.pid), "--timeout", "20"], timeout=30)
        assert p.returncode == 0, p.stderr
        new_pid = int(re.search(r"new master pid (\d+)", p.stdout).group(1))
        started.append(new_pid)
        assert master.wait(20) == 0
        assert pid_alive(new_pid) and http_get(port).status == 200
    finally:
        for pid in reversed(started):
            stop_process_tree(pid)
        if master.poll() is None:
            master.kill()
        master.wait(5)
        log.close()


def recv_fdstore(sock: socket.socket, timeout: float) -> list[tuple[str, int]]:
    """Collects FDSTORE=1 datagrams (with their SCM_RIGHTS fd) until `timeout` passes quietly."""
    got = []
    sock.settimeout(timeout)
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(sock, 4096, 8)
        except socket.timeout:
            return got
        text = msg.decode()
        if "FDSTORE=1" in text.split("\n"):
            name = re.search(r"FDNAME=(\S+)", text).group(1)
            assert len(fds) == 1
            got.append((name, fds[0]))
        else:
            for fd in fds:
                os.close(fd)


def test_fd_store_keeps_listeners_across_a_restart(tmp_path):
    """herdd pushes the sockets it bound into the fd store; a restart that gets them back via
    LISTEN_FDS serves connections that arrived while no herdd ran (none refused)."""
    d = tmp_path / "n"
    d.mkdir()
    path = f"/tmp/herdfd-{os.getpid()}-{time.monotonic_ns()}.sock"
    store = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    store.bind(path)
    port = free_ports(1)[0]
    env = clean_env()
    procs = []
    kept = []
    try:
        first = subprocess.Popen([str(HERDD_BIN), "--workers", "1", "--listen", f"{LOCALHOST}:{port},name=web"],
                                 env=dict(env, NOTIFY_SOCKET=path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(first)
        wait_http(port)
        kept = recv_fdstore(store, 1.0)
        assert [n for n, _ in kept] == ["web"], kept
        fd = kept[0][1]
        # "Restart": the first herdd stops; the stored socket stays open (here, in the test, as in
        # systemd's fd store), so new connections queue in the kernel instead of being refused.
        first.send_signal(signal.SIGTERM)
        assert first.wait(15) == 0
        waiting = socket.create_connection((LOCALHOST, port), timeout=5)
        waiting.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        # The next start receives the socket as fd 3 with the sd_listen_fds protocol.
        second = subprocess.Popen(
            ["/bin/sh", "-c", 'LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"', str(HERDD_BIN), "--workers", "1",
             "--handler", "web=health"],
            env=dict(env, LISTEN_FDS="1", LISTEN_FDNAMES="web"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(), close_fds=False, preexec_fn=lambda: os.dup2(fd, 3))
        procs.append(second)
        waiting.settimeout(10)
        data = b""
        while chunk := waiting.recv(4096):
            data += chunk
        waiting.close()
        assert data.startswith(b"HTTP/1.1 200") and b"ok pid=" in data, data
        assert http_get(port).status == 200
    finally:
        for p in procs:
            stop_process_tree(p)
        for _, fd in kept:
            os.close(fd)
        store.close()
        os.unlink(path)


def test_scoreboard_published_in_runtime_directory(herd_factory, tmp_path):
    rt = tmp_path / "run"
    rt.mkdir()
    port = free_ports(1)[0]
    h = herd_factory(["--workers", "1", "--listen", f"{LOCALHOST}:{port}"], env={"RUNTIME_DIRECTORY": str(rt)})
    assert (rt / "scoreboard").is_file()
    p = run_herdd(["reload", "--pid", str(h.pid), "--timeout", "20"], timeout=30)
    assert p.returncode == 0 and "generation 2" in p.stdout, p.stderr
    assert h.stop() == 0
    assert not (rt / "scoreboard").exists(), "the master removes its published scoreboard at exit"
