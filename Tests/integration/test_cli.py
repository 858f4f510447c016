"""Command line: usage errors (64), configuration errors (78), --help, --version."""

import re

from conftest import free_port, run_herdd


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
