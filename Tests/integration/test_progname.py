"""Issue 27: the process title must not change what libc reads from argv[0].

glibc's `program_invocation_short_name` (syslog(3)'s default identifier: libdispatch logs through
it) points into argv[0]'s memory; the title `herdd: master` overwrites that memory in place, so
"/.../herdd" read "ster" in the journal. The test reads the variable out of the running master
and a worker through /proc/PID/mem (they are the test's descendants): the libc symbol's address
from `nm -D` plus the libc mapping's base in /proc/PID/maps.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import HERDD_BIN, LOCALHOST, free_ports, proc_cmdline


def libc_symbol_value(pid: int, symbol: str) -> int:
    """The pointer stored in libc's data symbol `symbol` in process `pid`."""
    base, path = None, None
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 6 and Path(parts[5]).name.startswith("libc.so") and int(parts[2], 16) == 0:
            base, path = int(parts[0].split("-")[0], 16), parts[5]
            break
    assert base is not None, f"no libc mapping in /proc/{pid}/maps"
    out = subprocess.run(["nm", "-D", "--defined-only", path], capture_output=True, text=True, check=True).stdout
    offsets = [int(l.split()[0], 16) for l in out.splitlines() if l.split()[-1].split("@")[0] == symbol]
    assert offsets, f"{symbol} not in {path}"
    with open(f"/proc/{pid}/mem", "rb") as mem:
        mem.seek(base + offsets[0])
        return int.from_bytes(mem.read(8), "little")


def c_string_at(pid: int, address: int) -> str:
    with open(f"/proc/{pid}/mem", "rb") as mem:
        mem.seek(address)
        return mem.read(256).split(b"\0", 1)[0].decode()


def test_title_leaves_glibc_program_names_intact(herd_factory):
    port = free_ports(1)[0]
    h = herd_factory(["--workers", "1", "--listen", f"{LOCALHOST}:{port}"])
    worker = h.wait_workers(1)[0]
    for pid, title in ((h.pid, "herdd: master"), (worker, "herdd: worker 0")):
        assert proc_cmdline(pid)[0] == title  # the title is set
        short = c_string_at(pid, libc_symbol_value(pid, "program_invocation_short_name"))
        full = c_string_at(pid, libc_symbol_value(pid, "program_invocation_name"))
        assert short == Path(HERDD_BIN).name, (pid, short)
        assert Path(full).name == Path(HERDD_BIN).name, (pid, full)
    assert h.stop() == 0
