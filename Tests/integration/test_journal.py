"""Native journald logging (issues 2 and 5): when stderr is the journal stream (JOURNAL_STREAM
names stderr's device:inode), every entry goes through sd_journal_sendv with HERDD_* fields.

Where no journald runs (CI containers), the test binds journald's socket path itself and decodes
the native protocol; where journald runs, it reads the entries back with journalctl."""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

from conftest import LOCALHOST, clean_env, free_ports, http_get, stop_process_tree, wait_http, wait_until

JOURNAL_SOCKET = Path("/run/systemd/journal/socket")


def decode_native(data: bytes) -> dict[str, list[str]]:
    """journald native protocol: NAME=value\\n, or NAME\\n<u64 le length><value>\\n."""
    fields: dict[str, list[str]] = {}
    i = 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            k, _, v = line.partition(b"=")
            i = nl + 1
        else:
            k = line
            (n,) = struct.unpack_from("<Q", data, nl + 1)
            v = data[nl + 9 : nl + 9 + n]
            i = nl + 9 + n + 1
        fields.setdefault(k.decode(), []).append(v.decode(errors="replace"))
    return fields


def run_with_journal_stream(tmp_path, args, duration_fn):
    """Starts herdd with stderr on a file and JOURNAL_STREAM naming that file."""
    err = open(tmp_path / "stderr", "wb")
    st = os.fstat(err.fileno())
    env = clean_env(JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
    from conftest import HERDD_BIN

    p = subprocess.Popen([str(HERDD_BIN), *args], stdout=err, stderr=err, env=env)
    try:
        duration_fn()
    finally:
        stop_process_tree(p, 15)
        err.close()
    return (tmp_path / "stderr").read_bytes(), p.returncode


def test_structured_journal_fields(tmp_path):
    port = free_ports(1)[0]
    args = ["--workers", "2", "--listen", f"{LOCALHOST}:{port}"]
    if JOURNAL_SOCKET.exists():
        # A real journald: read our entries back.
        # A duration: journald shows no readiness to wait on; 0.6 s covers "ready" after the
        # first answer.
        text, rc = run_with_journal_stream(tmp_path, args, lambda: (wait_http(port), http_get(port), time.sleep(0.6)))
        out = subprocess.run(["journalctl", "-o", "json", "--since", "-2min", "SYSLOG_IDENTIFIER=herdd"],
                             capture_output=True, text=True, timeout=30).stdout
        entries = [json.loads(l) for l in out.splitlines() if l.strip()]
    else:
        JOURNAL_SOCKET.parent.mkdir(parents=True, exist_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(JOURNAL_SOCKET))
        sock.settimeout(0.2)
        got: list[bytes] = []
        stop = threading.Event()

        def receive():
            while not stop.is_set():
                try:
                    got.append(sock.recv(1 << 20))
                except socket.timeout:
                    pass

        t = threading.Thread(target=receive, daemon=True)
        t.start()
        try:
            def serve_until_ready():
                wait_http(port)
                http_get(port)
                # Every worker serves ("ready" comes after the first answer).
                wait_until(lambda: any(b"HERDD_EVENT=ready\n" in d for d in list(got)), 10, what="ready in the journal")
            text, rc = run_with_journal_stream(tmp_path, args, serve_until_ready)
        finally:
            stop.set()
            t.join(2)
            # herdd has exited: what it sent is in the socket; take the rest here.
            sock.setblocking(False)
            while True:
                try:
                    got.append(sock.recv(1 << 20))
                except BlockingIOError:
                    break
            sock.close()
            JOURNAL_SOCKET.unlink()
            try:
                JOURNAL_SOCKET.parent.rmdir()
                JOURNAL_SOCKET.parent.parent.rmdir()
            except OSError:
                pass
        entries = [{k: v[0] for k, v in decode_native(d).items()} for d in got]
    assert rc == 0
    # Nothing went to stderr as text: the journal got it all.
    assert b"event=" not in text, text[:500]
    events = {}
    for e in entries:
        events.setdefault(e.get("HERDD_EVENT"), []).append(e)
    for ev in ("start", "worker-spawned", "ready", "stop", "worker-exited", "worker-listener-counters", "exit"):
        assert ev in events, (ev, sorted(k for k in events if k))
    start = events["start"][0]
    assert start["SYSLOG_IDENTIFIER"] == "herdd" and start["HERDD_ROLE"] == "master" and start["PRIORITY"] == "6"
    assert "herdd" in start["MESSAGE"] and start["HERDD_VERSION"]
    spawned = events["worker-spawned"][0]
    assert spawned["HERDD_WORKER_ID"] in ("0", "1") and spawned["HERDD_GENERATION"] == "1"
    counters = events["worker-listener-counters"][0]
    assert counters["HERDD_ROLE"] == "worker" and counters["HERDD_LISTENER"] == "http"
    assert int(counters["HERDD_PID"]) != int(start["HERDD_PID"])
    exited = events["worker-exited"][0]
    assert exited["HERDD_REASON"] == "stop" and exited["HERDD_EXIT_STATUS"] == "exit 0"
