"""hb-example end to end: one Hummingbird router (Sources/HBExampleApp) on herdd's master and
prefork workers, and the same executable on Hummingbird's own server, on 127.0.0.1.

HB_EXAMPLE_BIN is the built executable (test.sh sets it). Every behaviour test runs against
both servers (the `server` fixture is parametrized): what the bridge must keep is what
Hummingbird's own server does.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "Tests" / "support"))
from herdtest import free_ports, http_request, wait_until  # noqa: E402


def request(port: int, method: str, path: str, body=None, headers=None, timeout: float = 10):
    """One request: (status, headers with lowercase names, body bytes)."""
    r = http_request(port, method, path, body=body, headers=headers, timeout=timeout)
    return r.status, {k.lower(): v for k, v in r.headers}, r.body

BIN = os.environ.get("HB_EXAMPLE_BIN", "")


class Server:
    def __init__(self, tmp_path, kind):
        assert BIN and os.access(BIN, os.X_OK), "set HB_EXAMPLE_BIN to the built hb-example executable"
        self.kind = kind
        self.port, self.metrics = free_ports(2)
        public = tmp_path / "public"
        public.mkdir()
        (public / "hello.txt").write_text("static file from FileMiddleware\n")
        env = dict(os.environ, HB_EXAMPLE_PUBLIC=str(public))
        if kind == "herdd":
            args = [BIN, "--listen", f"127.0.0.1:{self.port},name=http",
                    "--listen", f"127.0.0.1:{self.metrics},name=metrics", "--handler", "metrics=metrics",
                    "--default-handler", "app", "--workers", "2"]
        else:
            args = [BIN, "hummingbird", "127.0.0.1", str(self.port)]
        self.log_path = tmp_path / "server.log"
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log, env=env, start_new_session=True)
        try:
            wait_until(self.answers, 30, 0.1, f"hb-example ({kind}) to answer")
        except BaseException:
            self.stop()  # a server that never answered is still ours to end
            raise

    def answers(self):
        assert self.proc.poll() is None, f"hb-example ({self.kind}) exited with {self.proc.returncode}"
        try:
            return request(self.port, "GET", "/")[0] == 200
        except OSError:
            return False

    def stop(self):
        """SIGTERM to the server's process group (ours: start_new_session), which also holds a
        master started by a hot upgrade after the first one exited; SIGKILL after 20 s."""
        pgid = self.proc.pid
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 20
        while group_alive(pgid) and time.monotonic() < deadline:
            self.proc.poll()
            time.sleep(0.1)
        if group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()
        return self.proc.returncode


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.fixture(params=["herdd", "hummingbird"])
def server(request, tmp_path):
    s = Server(tmp_path, request.param)
    yield s
    s.stop()


@pytest.fixture
def herdd(tmp_path):
    s = Server(tmp_path, "herdd")
    yield s
    assert s.stop() == 0


def test_text_and_json_routes(server):
    status, headers, body = request(server.port, "GET", "/")
    assert (status, body) == (200, b"hello from hummingbird\n")
    assert headers["content-type"].startswith("text/plain")
    status, headers, body = request(server.port, "GET", "/todos/7")
    assert status == 200
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert json.loads(body) == {"id": 7, "title": "todo 7", "done": False}
    status, _, body = request(server.port, "POST", "/todos", json.dumps({"id": 0, "title": "x", "done": True}),
                              {"Content-Type": "application/json"})
    assert status == 201 and json.loads(body) == {"id": 101, "title": "x", "done": True}


def test_request_body_echo(server):
    payload = os.urandom(300_000)
    status, headers, body = request(server.port, "POST", "/echo", payload)
    assert status == 200
    assert headers["x-body-bytes"] == str(len(payload))
    assert body == payload


def test_request_body_streams_in_as_sent(server):
    """The route iterates request.body: it sees the first chunk while the client still holds
    the rest back (on herdd as on Hummingbird's own server)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 200000\r\n\r\n" + b"a" * 1000)
        time.sleep(1.0)  # the first part waits on the server while the rest is not sent
        last_sent = time.time()
        s.sendall(b"b" * 199_000)
        s.settimeout(10)
        data = b""
        while b"}" not in data:
            more = s.recv(65536)
            assert more, data
            data += more
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    report = json.loads(body)
    assert report["bytes"] == 200_000 and report["chunks"] >= 2, report
    assert report["firstChunkAt"] < last_sent - 0.5, (report, last_sent)


def test_request_body_collect_up_to(server):
    status, _, body = request(server.port, "POST", "/upload-collect", b"x" * 50_000)
    assert (status, body) == (200, b"50000\n")
    status, _, _ = request(server.port, "POST", "/upload-collect", b"x" * 150_000)
    assert status == 413


def test_streamed_response(server):
    status, headers, body = request(server.port, "GET", "/stream/50")
    assert status == 200
    assert body.decode() == "".join(f"part {i}\n" for i in range(50))
    # A body of unknown length streams (each write as it comes), so it is chunked.
    assert headers.get("transfer-encoding") == "chunked", headers


def test_errors(server):
    assert request(server.port, "GET", "/nowhere")[0] == 404
    assert request(server.port, "GET", "/todos/500")[0] == 404
    assert request(server.port, "GET", "/todos/abc")[0] == 400
    status, _, body = request(server.port, "GET", "/fail")
    assert status == 500 and body == b""


def test_cors(server):
    _, headers, _ = request(server.port, "GET", "/todos/1", headers={"Origin": "https://app.example"})
    assert headers["access-control-allow-origin"] == "https://app.example"
    status, headers, _ = request(server.port, "OPTIONS", "/todos", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
    assert status == 204
    assert headers["access-control-allow-methods"] == "GET, POST, OPTIONS"
    assert headers["access-control-allow-headers"] == "content-type, authorization"


def test_bearer_auth(server):
    assert request(server.port, "GET", "/secure/me")[0] == 401
    assert request(server.port, "GET", "/secure/me", headers={"Authorization": "Bearer wrong"})[0] == 401
    status, _, body = request(server.port, "GET", "/secure/me", headers={"Authorization": "Bearer letmein"})
    assert status == 200 and json.loads(body) == {"name": "ada"}


def test_file_middleware(server):
    status, headers, body = request(server.port, "GET", "/hello.txt")
    assert status == 200 and body == b"static file from FileMiddleware\n"
    assert headers["content-type"].startswith("text/plain")


def test_request_logs(server):
    request(server.port, "GET", "/todos/3")
    wait_until(lambda: re.search(rb"hb\.request\.method=GET hb\.request\.path=/todos/3", server.log_path.read_bytes()),
               10, 0.1, "LogRequestsMiddleware's line")


def test_herdd_workers_answer_and_metrics_count(herdd):
    # Every answer comes from one of the two workers (the example's own executable, started
    # by the master), never from the master.
    pids = set()
    for _ in range(60):
        status, _, body = request(herdd.port, "GET", "/server")
        m = re.fullmatch(rb"herdd worker=(\d) pid=(\d+) listener=http peer=127\.0\.0\.1:\d+\n", body)
        assert status == 200 and m, body
        pids.add(int(m.group(2)))
    assert herdd.proc.pid not in pids and len(pids) == 2, pids
    _, _, metrics = request(herdd.metrics, "GET", "/metrics")
    served = sum(float(v) for v in re.findall(rb'^herdd_requests_total\{[^}]*\} (\S+)$', metrics, re.M))
    assert served >= 60, metrics[:2000]


def test_herdd_hot_upgrade_keeps_serving(herdd):
    # SIGUSR2: a new master from the same executable takes the sockets over while the app
    # keeps answering; the old master drains and exits 0. Its successor is in our process
    # group, which the fixture ends.
    old = {int(m) for m in re.findall(rb"pid=(\d+)", b"".join(request(herdd.port, "GET", "/server")[2] for _ in range(20)))}
    herdd.proc.send_signal(signal.SIGUSR2)
    deadline = time.monotonic() + 40
    answered = 0
    while herdd.proc.poll() is None:
        status, _, body = request(herdd.port, "GET", "/todos/2")
        assert status == 200 and json.loads(body)["id"] == 2
        answered += 1
        assert time.monotonic() < deadline, "the old master did not exit within 40 s of SIGUSR2"
        time.sleep(0.02)
    assert herdd.proc.returncode == 0 and answered > 0
    status, _, body = request(herdd.port, "GET", "/server")
    m = re.search(rb"pid=(\d+)", body)
    assert status == 200 and m and int(m.group(1)) not in old, (body, old)
