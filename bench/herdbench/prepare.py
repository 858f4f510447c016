"""Setup of a bench/run: the peers installed (apt/pip), herdd found or built as shipped, the
machine described for the results."""

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import REPO
from .common import log


def sh(cmd, **kw):
    return subprocess.run(cmd, check=False, **kw)


def ensure_tools(skip_install):
    """apt: nginx-light (or nginx), wrk, a C compiler (gcc, for the static section's sink client,
    if neither cc nor Swift's clang is there); pip: gunicorn. Only what is missing."""
    apt_missing = []
    if not (shutil.which("cc") or shutil.which("clang") or shutil.which("gcc")):
        apt_missing.append("gcc")
    if not shutil.which("wrk"):
        apt_missing.append("wrk")
    if not (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")):
        apt_missing.append("nginx-light")
    if apt_missing:
        if skip_install:
            sys.exit(f"missing {apt_missing} and --no-install given")
        log(f"installing {apt_missing} with apt-get")
        pre = [] if os.geteuid() == 0 else ["sudo"]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        sh(pre + ["apt-get", "update", "-qq"], env=env)
        r = sh(pre + ["apt-get", "install", "-y", "-qq"] + apt_missing, env=env)
        if r.returncode != 0 and "nginx-light" in apt_missing:
            apt_missing = [p if p != "nginx-light" else "nginx" for p in apt_missing]
            r = sh(pre + ["apt-get", "install", "-y", "-qq"] + apt_missing, env=env)
        if r.returncode != 0:
            sys.exit(f"apt-get install {apt_missing} failed")
    if sh([sys.executable, "-c", "import gunicorn"], capture_output=True).returncode != 0:
        if skip_install:
            sys.exit("gunicorn missing and --no-install given")
        log("installing gunicorn with pip")
        r = sh([sys.executable, "-m", "pip", "install", "-q", "gunicorn"])
        if r.returncode != 0:
            sys.exit("pip install gunicorn failed")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    return nginx


def find_or_build_herdd(args):
    """--herdd PATH, else the shipped build (packaging/build-release.sh: static Swift runtime, lld
    with packed relocations, as in the .deb) in .build-release-static/, built if missing or
    --build. If the working tree does not build (others are editing it), build the committed
    HEAD from `git archive` in /tmp."""
    if args.herdd:
        p = Path(args.herdd).resolve()
        if not os.access(p, os.X_OK):
            sys.exit(f"--herdd {p}: not executable")
        return p, "given"
    build = REPO / "packaging/build-release.sh"
    binary = REPO / ".build-release-static/release/herdd"
    if binary.exists() and not args.build:
        return binary, "existing shipped build (packaging/build-release.sh)"
    log("building herdd as shipped: packaging/build-release.sh")
    r = sh([str(build)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=sys.stderr)
    if r.returncode == 0 and binary.exists():
        return binary, "shipped build (packaging/build-release.sh) of the working tree"
    rev = sh(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    src = Path(tempfile.gettempdir()) / f"herdd-bench-src-{rev}"
    log(f"working tree does not build; building committed HEAD {rev} in {src}")
    if not (src / "Package.swift").exists():
        src.mkdir(parents=True, exist_ok=True)
        arch = subprocess.Popen(["git", "archive", "HEAD"], cwd=REPO, stdout=subprocess.PIPE)
        sh(["tar", "-x", "-C", str(src)], stdin=arch.stdout)
        arch.wait()
    b = src / ".build-release-static/release/herdd"
    if b.exists():
        return b, f"shipped build of HEAD {rev} in {src} (working tree did not build)"
    r = sh([str(src / "packaging/build-release.sh"), str(src)], cwd=src, stdout=subprocess.DEVNULL, stderr=sys.stderr)
    if r.returncode != 0 or not b.exists():
        sys.exit("could not build herdd")
    return b, f"shipped build of HEAD {rev} (working tree did not build)"


def machine_info(herdd, how):
    def cmd_out(c):
        try:
            return subprocess.run(c, capture_output=True, text=True, timeout=10).stdout.strip() or \
                subprocess.run(c, capture_output=True, text=True, timeout=10).stderr.strip()
        except (OSError, subprocess.TimeoutExpired):
            return None
    cpu = None
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    rev = cmd_out(["git", "-C", str(REPO), "rev-parse", "HEAD"])
    dirty = cmd_out(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
    return {
        "nproc": os.cpu_count(), "kernel": platform.release(), "cpu": cpu,
        "loadavg_start": open("/proc/loadavg").read().split()[:3],
        "mem_total_kib": next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), None),
        "os": (cmd_out(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"])),
        "herdd_binary": str(herdd), "herdd_binary_source": how,
        "herdd_binary_mtime": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(os.path.getmtime(herdd))),
        "git_head": rev, "git_dirty_files": dirty.splitlines() if dirty else [],
        "nginx": cmd_out([shutil.which("nginx") or "/usr/sbin/nginx", "-v"]),
        "wrk": (cmd_out(["wrk", "--version"]) or "").splitlines()[0:1],
        "gunicorn": cmd_out([sys.executable, "-m", "gunicorn", "--version"]),
        "python": platform.python_version(),
        "somaxconn": open("/proc/sys/net/core/somaxconn").read().strip(),
    }
