#!/usr/bin/env python3
"""Makes packaging/hot-functions.txt, the link order of herdd's hot functions (docs/static.md,
"Hot functions together"), from perf profiles of a release binary:

    flock /tmp/herdd-bench.lock python3 bench/hot_functions.py BINARY [OUT]

Three workloads, 5 s each on `--workers 2` (the static handler's 1 MB file with
`Connection: close`, wrk -c8; its 1 KB file keep-alive, wrk -c50; hello keep-alive, wrk -c50):
the workers are sampled with `perf record -e cpu-clock --call-graph fp`, and every function of
the binary on a sampled stack (the leaf and its callers) gets the share of its workload's samples
it was on; the three shares are added and the functions listed by that weight, hottest first.
packaging/build-release.sh links them in that order at the start of .text (lld's
--symbol-ordering-file, with each Swift function in its own section: -function-sections), so the
code a request runs lies on a few dozen pages instead of a few hundred spread over 5 MiB.

Left out: functions of the Swift runtime's Swift.o that share its one unsplit 1.6 MB `.text`
section (a listed one would drag the whole section to the front). Functions renamed since the
list was made are not found at link time and stay where they are (lld is told not to warn):
regenerate after a change to the request path. Every process it starts is ended by PID.
"""
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "bench" / "herdbench"), str(REPO / "Tests" / "support")]
import staticbench as sb  # noqa: E402
from herdtest import free_port, process_group_pids  # noqa: E402

SECS = 5


def unsplit_runtime_functions():
    """Functions of libswiftCore.a's Swift.o in its plain `.text` section (not movable alone)."""
    swift = shutil.which("swift")
    if not swift:
        return set()
    lib = Path(os.path.realpath(swift)).parents[1] / "lib/swift_static/linux/libswiftCore.a"
    if not lib.exists():
        return set()
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["ar", "x", str(lib), "Swift.o"], cwd=d, check=True)
        out = subprocess.run(["objdump", "-t", os.path.join(d, "Swift.o")], capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        f = line.split()  # address, flags, section, size, [.hidden], name
        if len(f) >= 6 and ".text" in f[1:5] and "F" in f[1:4]:
            names.add(f[-1])
    return names


def profile(binary, root, tmp, handler, path, conns, close, data):
    port = free_port()
    cmd = [binary, "--workers", "2", "--listen", f"127.0.0.1:{port}"] + (["--handler", handler] if handler else [])
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        sb.wait_port(port)
        sb.wrk(port, path, conns, 1, close)
        pids = process_group_pids(p.pid)
        perf = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "10000", "--call-graph", "fp",
                                 "-o", data, "-p", ",".join(map(str, pids))],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        n, _ = sb.wrk(port, path, conns, SECS, close)
        perf.send_signal(signal.SIGINT)
        perf.wait()
        return n
    finally:
        sb.stop(p)


def weights(data, binary):
    """Per function of `binary`: the share of the samples whose stack it was on."""
    out = subprocess.run(["perf", "script", "-i", data, "-F", "ip,sym,dso", "--no-demangle"],
                         capture_output=True, text=True).stdout
    name = os.path.basename(binary)
    on = collections.Counter()
    samples = 0
    for block in out.split("\n\n"):
        seen = set()
        for line in block.splitlines():
            m = re.match(r"\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$", line)
            if not m or os.path.basename(m.group(2)) != name:
                continue
            sym = re.sub(r"\+0x[0-9a-f]+$", "", m.group(1))
            if sym != "[unknown]":
                seen.add(sym)
        if block.strip():
            samples += 1
        on.update(seen)
    return {s: c / max(samples, 1) for s, c in on.items()}


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binary = os.path.abspath(sys.argv[1])
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else REPO / "packaging" / "hot-functions.txt"
    tmp, root = sb.make_root()
    total = collections.Counter()
    try:
        for label, handler, path, conns, close in [
            ("1 MB close c8", f"http=static:{root}", "1m.bin", 8, True),
            ("1 KB keep-alive c50", f"http=static:{root}", "1k.bin", 50, False),
            ("hello keep-alive c50", None, "", 50, False),
        ]:
            data = os.path.join(tmp, "perf.data")
            n = profile(binary, root, tmp, handler, path, conns, close, data)
            w = weights(data, binary)
            print(f"{label}: {n} requests, {len(w)} functions sampled", file=sys.stderr)
            total.update(w)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    skip = unsplit_runtime_functions()
    listed = [s for s, _ in total.most_common() if s not in skip]
    header = ("# herdd's hot functions, hottest first: the link order of packaging/build-release.sh.\n"
              "# Made by bench/hot_functions.py (its docstring says how and why); regenerate after a\n"
              "# change to the request path. Names not in the binary are ignored.\n")
    out.write_text(header + "".join(s + "\n" for s in listed))
    print(f"{out}: {len(listed)} functions ({len(total) - len(listed)} of Swift.o's unsplit .text left out)", file=sys.stderr)


if __name__ == "__main__":
    main()
