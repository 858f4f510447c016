"""Command line: usage errors (64), configuration errors (78), --help, --version; a Herd
program's refusals (70)."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import HERDD_BIN, free_port, run_herdd


def test_bad_workers_value():
    r = run_herdd(["--workers", "abc", "--listen", f"127.0.0.1:{free_port()}"])
    assert r.returncode == 64, r
    assert "workers" in r.stderr and "abc" in r.stderr, r.stderr


def test_bad_listen_address():
    r = run_herdd(["--listen", "nonsense"])
    assert r.returncode == 64, r
    assert "nonsense" in r.stderr, r.stderr


def test_unknown_handler():
    r = run_herdd(["--listen", f"127.0.0.1:{free_port()}", "--handler", "http=nope"])
    assert r.returncode == 78, r
    assert "nope" in r.stderr, r.stderr


def test_unknown_flag():
    r = run_herdd(["--no-such-flag"])
    assert r.returncode == 64, r
    assert "no-such-flag" in r.stderr, r.stderr


def test_bad_config_file(tmp_path):
    cfg = tmp_path / "herdd.conf"
    cfg.write_text("workers = 2\nthis line is garbage\n")
    r = run_herdd(["--config", str(cfg), "--listen", f"127.0.0.1:{free_port()}"])
    assert r.returncode == 78, r
    assert str(cfg) in r.stderr, r.stderr
    r = run_herdd(["--config", str(tmp_path / "missing.conf"), "--listen", f"127.0.0.1:{free_port()}"])
    assert r.returncode == 78, r


def test_help_and_version():
    r = run_herdd(["--help"])
    assert r.returncode == 0, r
    assert "USAGE" in r.stdout or "Usage" in r.stdout, r.stdout
    r = run_herdd(["serve", "--help"])
    assert r.returncode == 0, r
    for flag in ("--listen", "--handler", "--workers", "--accept-mode", "--timeout", "--max-requests"):
        assert flag in r.stdout, (flag, r.stdout)
    r = run_herdd(["--version"])
    assert r.returncode == 0, r
    assert re.fullmatch(r"\s*\d+\.\d+\.\d+\S*\s*", r.stdout), r.stdout


# HerdServer.main's refusals, on a real Herd program (Tests/probes/HerdMainProbe, built beside
# herdd by `swift build`): a name or thread count that cannot work ends the program before any
# logger or argument parser exists, with exit code 70 (EX_SOFTWARE) and one line on stderr.
PROBE_BIN = Path(os.environ.get("HERD_PROBE_BIN", str(HERDD_BIN.parent / "HerdMainProbe")))
NAME_RULE = "the program's name must be non-empty, without ':', '=', ',' or spaces, and not 'metrics'"


def run_probe(name, threads, args):
    assert PROBE_BIN.is_file(), f"no {PROBE_BIN}: run `swift build` (or set HERD_PROBE_BIN)"
    env = dict(os.environ, HERD_PROBE_NAME=name, HERD_PROBE_THREADS=str(threads))
    return subprocess.run([str(PROBE_BIN)] + args, env=env, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("name,threads,message", [
    ("my app", 1, f"my app: {NAME_RULE}"),
    ("my:app", 1, f"my:app: {NAME_RULE}"),
    ("metrics", 1, f"metrics: {NAME_RULE}"),
    ("", 1, f": {NAME_RULE}"),
    ("my-app", 0, "my-app: threadsPerWorker must be 1...64, not 0"),
    ("my-app", 65, "my-app: threadsPerWorker must be 1...64, not 65"),
])
def test_app_main_refuses(name, threads, message):
    r = run_probe(name, threads, ["--version"])
    assert r.returncode == 70, r
    assert r.stderr == message + "\n", r.stderr
    assert r.stdout == "", r.stdout


def test_app_main_accepts_the_bounds():
    # The same program with valid values runs (its --version): the refusals above come from
    # the values, not from the probe.
    for threads in (1, 64):
        r = run_probe("my-app", threads, ["--version"])
        assert r.returncode == 0, r
        assert r.stdout.strip() == "0.0.1", r.stdout
