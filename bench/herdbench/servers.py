"""The servers bench/run measures: herdd, nginx and gunicorn, each started in a temp dir of its
own on free ports, with herdtest's process trees (their workers ended by PID and start time)."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from herdtest import HerddProcess, ProcessTree, free_port

from .common import LOGDIR, STARTED, COMMANDS, http_ok, record, scrape_metrics


class Server:
    """A peer started by bench/run: its master (a herdtest.ProcessTree; for herdd a
    herdtest.HerddProcess with a notify socket of its own) and workers (the master's children),
    the ports it serves hello on, the signal that stops it, its /metrics port (herdd)."""

    def __init__(self, tree, workers, ports, stop_sig, metrics_port=None):
        self.tree, self.name, self.pid = tree, tree.name, tree.pid
        self.nworkers, self.ports, self.stop_sig, self.metrics_port = workers, ports, stop_sig, metrics_port
        self.ready_s = None
        STARTED.add(self)

    @classmethod
    def herdd(cls, binary, args, workers, ports, workdir, name, metrics_port=None):
        record("server", [binary] + args, name=name)
        tree = HerddProcess(binary, args, workdir=workdir, name=name, log_path=Path(workdir) / f"{name}.log")
        return cls(tree, workers, ports, signal.SIGQUIT, metrics_port)

    @classmethod
    def process(cls, name, cmd, workers, ports, workdir, stop_sig):
        record("server", cmd, name=name)
        tree = ProcessTree(cmd, cwd=workdir, log_path=Path(workdir) / f"{name}.log", name=name)
        return cls(tree, workers, ports, stop_sig)

    def workers(self):
        return self.tree.children()

    def wait_ready(self, timeout=20.0):
        """READY=1 on the notify socket when there is one (herdd); then all workers present and
        every port answering an HTTP GET with 200."""
        deadline = time.monotonic() + timeout
        if isinstance(self.tree, HerddProcess):
            self.ready_s = self.tree.wait_ready(timeout)
        self.tree.wait_until(lambda: len(self.workers()) >= self.nworkers and all(http_ok(p) for p in self.ports),
                             max(0.1, deadline - time.monotonic()), "workers answering on every port")
        if self.ready_s is None:
            self.ready_s = time.monotonic() - self.tree.t0
        return self

    def tail(self, n=2000):
        return self.tree.tail(n)

    def stop(self):
        self.tree.stop(self.stop_sig, timeout=8, leftovers=3)
        try:  # keep the server logs of the last run next to the results
            LOGDIR.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.tree.log_path, LOGDIR / f"{self.tree.log_path.parent.name}.log")
        except OSError:
            pass
        STARTED.discard(self)

    def metrics(self):
        """/metrics parsed; None without a metrics port or when three scrapes fail."""
        return scrape_metrics(self.name, self.pid, self.metrics_port) if self.metrics_port else None


HELLO_APP = ('def app(environ, start_response):\n'
             '    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "6")])\n'
             '    return [b"hello\\n"]\n')


class Peers:
    """Starts the peers, each in its own temp dir under `tmp`: herdd (the binary measured),
    nginx, gunicorn."""

    def __init__(self, herdd, nginx, tmp):
        self.herdd, self.nginx, self.tmp = str(herdd), nginx, Path(tmp)
        self.seq = 0
        serve_help = subprocess.run([self.herdd, "help", "serve"], capture_output=True, text=True).stdout
        self.herdd_has_balance = "--balance" in serve_help
        help_text = subprocess.run([sys.executable, "-m", "gunicorn", "--help"], capture_output=True, text=True).stdout
        self.gunicorn_no_ctl = "--no-control-socket" in help_text

    def workdir(self, name):
        self.seq += 1
        d = self.tmp / f"{self.seq:02d}-{name}"
        d.mkdir()
        return d

    def start_herdd(self, name, workers, handlers, extra=(), binary=None, dirname=None):
        """herdd (`binary`, default the one measured) with a listener per (listener name,
        handler) on a free port each, and a metrics listener."""
        d = self.workdir(dirname or name)
        ports = [free_port() for _ in handlers]
        mport = free_port()
        args = ["--workers", str(workers)]
        for (lname, handler), p in zip(handlers, ports):
            args += ["--listen", f"127.0.0.1:{p},name={lname}", "--handler", f"{lname}={handler}"]
        args += ["--listen", f"127.0.0.1:{mport},name=metrics", "--handler", "metrics=metrics"] + list(extra)
        return Server.herdd(str(binary or self.herdd), args, workers, ports, d, name, metrics_port=mport)

    def herdd_server(self, workers, nlisten, mode="exclusive", name=None, balance=None):
        """herdd serving hello on `nlisten` listeners, --accept-mode `mode`."""
        extra = ["--accept-mode", mode] + (["--balance", balance] if balance else [])
        return self.start_herdd(name or f"herdd-{mode}", workers, [(f"l{i}", "hello") for i in range(nlisten)], extra)

    def nginx_server(self, workers, nlisten, *, dirname="nginx", note="", worker_connections=4096,
                     keepalive_timeout=65, backlog=1024, nofile=None):
        """nginx answering `hello` on `nlisten` listeners, accept_mutex off (each worker in
        every listener's wait queue, as herdd's workers are)."""
        d = self.workdir(dirname)
        ports = [free_port() for _ in range(nlisten)]
        listens = "\n".join(f"        listen 127.0.0.1:{p} backlog={backlog};" for p in ports)
        temps = "\n".join(f"    {k}_temp_path {d}/{k};" for k in
                          ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        conf = f"""# generated by bench/run{f' ({note})' if note else ''}
worker_processes {workers};{f'{chr(10)}worker_rlimit_nofile {nofile};' if nofile else ''}
pid {d}/nginx.pid;
error_log {d}/error.log warn;
{"user root;" if os.geteuid() == 0 else ""}
events {{
    worker_connections {worker_connections};
    accept_mutex off;
}}
http {{
    access_log off;
{temps}
    default_type text/plain;
    keepalive_requests 1000000;
    keepalive_timeout {keepalive_timeout};
    server {{
{listens}
        location / {{ return 200 "hello\\n"; }}
    }}
}}
"""
        (d / "nginx.conf").write_text(conf)
        cmd = [self.nginx, "-p", str(d), "-e", str(d / "error.log"), "-c", str(d / "nginx.conf"),
               "-g", "daemon off;"]
        srv = Server.process("nginx", cmd, workers, ports, d, signal.SIGTERM)
        COMMANDS[-1]["config"] = conf
        return srv

    def gunicorn_server(self, workers, nlisten, *, name="gunicorn", app=HELLO_APP, module="hello_app",
                        threads=None, extra=()):
        """gunicorn -k sync (or gthread with `threads`) running the WSGI `app` on `nlisten` binds."""
        d = self.workdir(name)
        ports = [free_port() for _ in range(nlisten)]
        (d / f"{module}.py").write_text(app)
        cmd = [sys.executable, "-m", "gunicorn", "-w", str(workers)]
        cmd += ["-k", "gthread", "--threads", str(threads)] if threads else ["-k", "sync"]
        cmd += ["--backlog", "1024", "--chdir", str(d), "--worker-tmp-dir", str(d), "--log-level", "warning"]
        cmd += list(extra)
        if self.gunicorn_no_ctl:
            cmd.append("--no-control-socket")
        for p in ports:
            cmd += ["--bind", f"127.0.0.1:{p}"]
        cmd.append(f"{module}:app")
        srv = Server.process(name, cmd, workers, ports, d, signal.SIGINT)
        COMMANDS[-1]["app"] = app
        return srv
