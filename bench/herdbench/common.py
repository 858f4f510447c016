"""Run-wide state and small helpers shared by every section of bench/run."""

import http.client
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import herdtest
from herdtest import Started, children_of, parse_prometheus

from . import BENCH_DIR

RESULTS = BENCH_DIR / "results"
LOGDIR = RESULTS / "last-logs"

COMMANDS = []  # every server and load command line, in order, for the JSON
ANOMALIES = []  # what went wrong during the run without stopping it, for the JSON and the report
STARTED = Started()  # every server and load process started, ended by PID at the end of main


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def record(kind, cmd, **extra):
    entry = {"kind": kind, "cmd": cmd if isinstance(cmd, str) else " ".join(_q(c) for c in cmd)}
    entry.update(extra)
    COMMANDS.append(entry)


def _q(s):
    s = str(s)
    return s if re.fullmatch(r"[\w@%+=:,./-]+", s) else "'" + s.replace("'", "'\\''") + "'"


def anomaly(**what):
    ANOMALIES.append(what)


def f(x, spec=".2f", none="-"):
    """A number for the tables; `none` when it is missing."""
    return none if x is None else format(x, spec)


# ----------------------------------------------------------------------------- HTTP probes

def http_get(port, path="/", timeout=3.0):
    """The body of a 200 response to GET `path` (text); RuntimeError for any other status,
    OSError when nothing answers."""
    try:
        r = herdtest.http_get(port, path, timeout=timeout)
    except http.client.HTTPException as e:
        raise RuntimeError(f"GET {path} on {port}: {e!r}")
    if r.status != 200:
        raise RuntimeError(f"GET {path} on {port}: {r.status} {r.reason}")
    return r.body.decode(errors="replace")


def http_ok(port, path="/"):
    try:
        http_get(port, path, timeout=1.0)
        return True
    except (OSError, RuntimeError):
        return False


# ----------------------------------------------------------------------------- /metrics

def scrape_metrics(name, pid, port):
    """/metrics of a herdd parsed; None (and an anomaly recorded) if three scrapes fail."""
    for attempt in range(3):
        t = time.monotonic()
        try:
            return parse_prometheus(http_get(port, "/metrics", timeout=5.0))
        except (OSError, RuntimeError) as e:
            anomaly(server=name, pid=pid, what="metrics scrape failed", attempt=attempt + 1, error=repr(e),
                    seconds=round(time.monotonic() - t, 3), workers=children_of(pid), at=time.strftime("%H:%M:%S"))
            log(f"  {name}: /metrics scrape failed ({e!r}), attempt {attempt + 1}")
    return None


def median_of(runs, key):
    """Median of `key` over a list of run results (dicts), ignoring runs without it; None if none."""
    xs = [x[key] for x in runs if x.get(key) is not None]
    return statistics.median(xs) if xs else None


def msum(metrics, name):
    return sum(v for (n, _), v in metrics.items() if n == name)


def mby(metrics, name, label):
    out = {}
    for (n, labels), v in metrics.items():
        if n == name:
            d = dict(labels)
            if label in d:
                out[d[label]] = v
    return out


# ----------------------------------------------------------------------------- peers built here

def swift_release_build(package_dir, what):
    """Release build of the Swift package in `package_dir` (its own .build): the directory of
    its binaries, or None if the build failed (logged with the end of its output)."""
    log(f"[{what}] building {package_dir.relative_to(package_dir.parents[1])} (release; the first build takes minutes)")
    r = subprocess.run(["swift", "build", "-c", "release", "--package-path", str(package_dir)],
                       capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        log(f"[{what}] build failed:\n" + r.stdout[-2000:] + r.stderr[-2000:])
        return None
    out = subprocess.run(["swift", "build", "-c", "release", "--package-path", str(package_dir), "--show-bin-path"],
                         capture_output=True, text=True).stdout.strip()
    return Path(out)
