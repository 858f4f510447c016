"""notes-api end to end: the example's own executable as herdd's master and workers, on 127.0.0.1.

NOTES_API_BIN is the built executable (test.sh sets it). The server is started with a config
file (`handler = http=notes:DB`), two workers and a metrics listener, like a deployment would.
"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest

BIN = os.environ.get("NOTES_API_BIN", "")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data
    finally:
        c.close()


def request_json(port, method, path, payload=None, content_type="application/json"):
    body = None if payload is None else (payload if isinstance(payload, (bytes, str)) else json.dumps(payload))
    headers = {"Content-Type": content_type} if body is not None else {}
    status, headers, data = request(port, method, path, body, headers)
    return status, headers, (json.loads(data) if data else None)


class Server:
    def __init__(self, tmp_path, db):
        assert BIN and os.access(BIN, os.X_OK), "set NOTES_API_BIN to the built notes-api executable"
        self.port, self.metrics = free_port(), free_port()
        self.config = tmp_path / "notes.conf"
        self.config.write_text(
            "workers = 2\n"
            f"listen = 127.0.0.1:{self.port}, name=http\n"
            f"listen = 127.0.0.1:{self.metrics}, name=metrics\n"
            f"handler = http=notes:{db}\n"
            "handler = metrics=metrics\n")
        self.log = open(tmp_path / "server.log", "ab")
        self.proc = subprocess.Popen([BIN, "--config", str(self.config)], stdout=self.log, stderr=self.log,
                                     start_new_session=True)
        wait_until_answers(self.proc, self.port, "/health")

    def stop(self):
        stop(self.proc)
        self.log.close()
        return self.proc.returncode


def wait_until_answers(proc, port, path, deadline=20):
    """Waits (bounded) until `path` answers 200, failing if the master exits meanwhile."""
    end = time.monotonic() + deadline
    while True:
        assert proc.poll() is None, f"notes-api exited with {proc.returncode}"
        try:
            if request(port, "GET", path)[0] == 200:
                return
        except OSError:
            pass
        assert time.monotonic() < end, f"notes-api did not answer {path} within {deadline} s"
        time.sleep(0.1)


def stop(proc):
    """SIGTERM to the master we started, then its process group by force after 20 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path, tmp_path / "notes.sqlite")
    yield s
    s.stop()


def test_post_get_list_delete(server):
    p = server.port
    status, headers, note = request_json(p, "POST", "/notes", {"title": "buy milk", "body": "2 litres"})
    assert status == 201, note
    assert headers["content-type"] == "application/json"
    assert note["title"] == "buy milk" and note["body"] == "2 litres" and isinstance(note["id"], int)
    assert headers["location"] == f"/notes/{note['id']}"
    status, _, got = request_json(p, "GET", f"/notes/{note['id']}")
    assert status == 200 and got == note
    request_json(p, "POST", "/notes", {"title": "second"})
    status, _, listing = request_json(p, "GET", "/notes")
    assert status == 200 and [n["title"] for n in listing["notes"]] == ["second", "buy milk"]
    status, _, listing = request_json(p, "GET", "/notes?limit=1")
    assert [n["title"] for n in listing["notes"]] == ["second"]
    status, _, data = request(p, "DELETE", f"/notes/{note['id']}")
    assert status == 204 and data == b""
    assert request_json(p, "GET", f"/notes/{note['id']}")[0] == 404


@pytest.mark.parametrize("method,path,payload,ctype,status", [
    ("GET", "/nowhere", None, None, 404),
    ("GET", "/notes/12345", None, None, 404),
    ("POST", "/notes", "{broken", "application/json", 400),
    ("POST", "/notes", {"body": "no title"}, "application/json", 400),
    ("POST", "/notes", {"title": "  "}, "application/json", 422),
    ("POST", "/notes", {"title": "x"}, "text/plain", 415),
    ("GET", "/notes?limit=500", None, None, 400),
    ("PATCH", "/notes", None, None, 405),
])
def test_errors_are_json(server, method, path, payload, ctype, status):
    got, headers, body = request_json(server.port, method, path, payload, content_type=ctype)
    assert got == status, body
    assert headers["content-type"] == "application/json"
    assert body["status"] == status and isinstance(body["error"], str)


def test_body_over_max_body_is_refused_by_herdd(server):
    status, _, _ = request(server.port, "POST", "/notes", body=b"x" * (2 << 20),
                           headers={"Content-Type": "application/json"})
    assert status == 413


def test_every_worker_runs_the_handler_and_metrics_count_it(server):
    # Every handler response comes from a worker process: the user's executable started by the
    # master as `/proc/self/exe worker ...`, with the handler registered in main.swift.
    # Both workers waiting on the listener first (a worker that died at start is respawned
    # after a back-off; sequential connections before that all go to the other one).
    def idle_workers():
        text = request(server.metrics, "GET", "/metrics")[2].decode()
        m = re.search(r'^herdd_workers\{state="idle"\} (\S+)$', text, re.M)
        return float(m.group(1)) if m else 0.0
    end = time.monotonic() + 10
    while idle_workers() < 2:
        assert time.monotonic() < end, "two idle workers within 10 s"
        time.sleep(0.05)  # poll interval of the bounded wait above
    pids = set()
    for _ in range(80):
        status, headers, health = request_json(server.port, "GET", "/health")
        assert status == 200 and health["status"] == "ok"
        pids.add(health["pid"])
    assert server.proc.pid not in pids
    assert len(pids) == 2, pids
    # Handler state lives in the workers: each has the database open, the master never opened it.
    def open_files(pid):
        return {os.path.realpath(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    for pid in pids:
        assert any(f.endswith("notes.sqlite") for f in open_files(pid)), pid
    assert not any("notes.sqlite" in f for f in open_files(server.proc.pid))
    for pid in pids:
        # The worker's title replaces its argv (as nginx does), with the program's own name.
        title = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[0]
        assert title.startswith(b"notes-api: worker "), title
        assert open(f"/proc/{pid}/comm").read().strip().startswith("notes-api: w")
        assert os.path.realpath(f"/proc/{pid}/exe") == os.path.realpath(BIN)
    _, _, metrics = request(server.metrics, "GET", "/metrics")
    assert b'herdd_workers{state="idle"}' in metrics
    served = sum(float(line.split()[-1]) for line in metrics.decode().splitlines()
                 if line.startswith("herdd_requests_total{") and 'code="2xx"' in line)
    assert served >= 80, metrics.decode()


def test_data_survives_a_restart_and_reload(tmp_path):
    db = tmp_path / "notes.sqlite"
    s = Server(tmp_path, db)
    try:
        status, _, note = request_json(s.port, "POST", "/notes", {"title": "kept"})
        assert status == 201
        os.kill(s.proc.pid, signal.SIGHUP)  # reload: new workers open the database again
        deadline = time.monotonic() + 20
        while b"event=reload-done generation=2" not in open(tmp_path / "server.log", "rb").read():
            assert time.monotonic() < deadline, "no second generation after SIGHUP"
            time.sleep(0.1)
        assert request_json(s.port, "GET", f"/notes/{note['id']}")[2] == note
    finally:
        assert s.stop() == 0
    s = Server(tmp_path, db)
    try:
        assert request_json(s.port, "GET", f"/notes/{note['id']}")[2] == note
    finally:
        assert s.stop() == 0


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def test_hot_upgrade_of_the_own_executable(tmp_path):
    """SIGUSR2: the master starts the executable found on disk (this one) with the sockets;
    the new master's workers serve the handler, the old master leaves, nothing is lost."""
    s = Server(tmp_path, tmp_path / "notes.sqlite")
    pgid = s.proc.pid
    new_pid = None
    try:
        status, _, note = request_json(s.port, "POST", "/notes", {"title": "before the upgrade"})
        assert status == 201
        os.kill(s.proc.pid, signal.SIGUSR2)
        assert s.proc.wait(timeout=40) == 0  # the old master exits once the new one serves
        log = open(tmp_path / "server.log", "rb").read().decode(errors="replace")
        assert "event=upgrade-done" in log, log[-2000:]
        new_pid = int(re.search(r"event=upgrade-start.*?new_pid=(\d+)", log).group(1))
        assert pid_alive(new_pid)
        assert os.path.realpath(f"/proc/{new_pid}/exe") == os.path.realpath(BIN)
        pids = {request_json(s.port, "GET", "/health")[2]["pid"] for _ in range(40)}
        for pid in pids:
            assert open(f"/proc/{pid}/stat").read().split(") ", 1)[1].split()[1] == str(new_pid)
        assert request_json(s.port, "GET", f"/notes/{note['id']}")[2] == note
        os.kill(new_pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while pid_alive(new_pid):
            assert time.monotonic() < deadline, "new master did not stop"
            time.sleep(0.1)
    finally:
        s.log.close()
        try:
            os.killpg(pgid, signal.SIGKILL)  # anything left of this test's process group
        except ProcessLookupError:
            pass


def test_bad_handler_specs_are_configuration_errors(tmp_path):
    for spec, message in [("http=notes", "needs a database path"), ("http=nope", "notes-api"),
                          (f"http=notes-api:{tmp_path}/missing/notes.sqlite", "does not exist")]:
        r = subprocess.run([BIN, "--listen", f"127.0.0.1:{free_port()}", "--handler", spec],
                           capture_output=True, timeout=30, cwd=tmp_path)
        assert r.returncode == 78, r
        assert message in r.stderr.decode(), r.stderr
    # The master only checks the path: it never opened (created) a database.
    assert not (tmp_path / "notes.sqlite").exists()
    r = subprocess.run([BIN, "--version"], capture_output=True, timeout=30)
    assert r.returncode == 0 and r.stdout.strip() == b"1.0.0", r
    r = subprocess.run([BIN, "--help"], capture_output=True, timeout=30)
    assert r.returncode == 0 and b"USAGE: notes-api" in r.stdout and b"Notes JSON API" in r.stdout, r
    # From a shell, control commands look for the master in the program's own runtime directory.
    env = {k: v for k, v in os.environ.items() if k not in ("RUNTIME_DIRECTORY", "MAINPID")}
    r = subprocess.run([BIN, "reload"], capture_output=True, timeout=30, env=env)
    assert r.returncode != 0 and b"no notes-api master found: open(/run/notes-api/scoreboard)" in r.stderr, r


def test_serves_its_api_with_no_flags_under_its_own_name(tmp_path):
    """`notes-api --listen ADDR` and nothing else: the app's router, ./notes.sqlite, its name."""
    port = free_port()
    log = open(tmp_path / "server.log", "ab")
    proc = subprocess.Popen([BIN, "--listen", f"127.0.0.1:{port}", "--workers", "2"], cwd=tmp_path,
                            stdout=log, stderr=log, start_new_session=True)
    try:
        wait_until_answers(proc, port, "/health")
        status, headers, note = request_json(port, "POST", "/notes", {"title": "no flags"})
        assert status == 201 and headers["x-request-id"], (status, headers)
        assert (tmp_path / "notes.sqlite").exists()
        assert request_json(port, "GET", "/notes?limit=%31")[2]["notes"] == [note]
        status, headers, _ = request(port, "HEAD", "/health")
        assert status == 200
        assert open(f"/proc/{proc.pid}/cmdline", "rb").read().split(b"\0")[0] == b"notes-api: master"
        text = open(tmp_path / "server.log", "rb").read().decode(errors="replace")
        assert "notes-api 1.0.0 master starting" in text and "herdd[" not in text, text[-2000:]
    finally:
        stop(proc)
        log.close()
    assert proc.returncode == 0


def test_master_never_opens_the_database(tmp_path):
    """The master only checks the path; each worker opens the database after it started. With
    the workers' start held back (a debug-build hook), the master is up and no file exists."""
    port = free_port()
    log = open(tmp_path / "server.log", "ab")
    env = dict(os.environ, HERDD_TEST_WORKER_START_DELAY="3")
    proc = subprocess.Popen([BIN, "--listen", f"127.0.0.1:{port}", "--workers", "1"], cwd=tmp_path,
                            stdout=log, stderr=log, start_new_session=True, env=env)
    try:
        deadline = time.monotonic() + 20
        while b"event=worker-spawned" not in open(tmp_path / "server.log", "rb").read():
            assert proc.poll() is None and time.monotonic() < deadline, "no worker spawned"
            time.sleep(0.05)
        assert not (tmp_path / "notes.sqlite").exists(), "the master opened the database"
        wait_until_answers(proc, port, "/notes")
        assert (tmp_path / "notes.sqlite").exists()
    finally:
        stop(proc)
        log.close()
