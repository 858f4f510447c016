#!/usr/bin/env bash
# The system layer holds every raw system call (docs/design.md, "The system layer"): fails if a Swift file under
# Sources/ outside Sources/HerdSys calls one directly - a libc syscall wrapper by name (also as
# Glibc.name), a herd_* function of the C shim other than its atomics and flag constants, or
# reads errno. Calls through the layer (`Sys.close(fd)`, `epoll.add(...)`), methods of the same
# name (`conn.close()`, `SystemdNotify.send("...")`, `write(level: ...)`) and declarations
# (`func send(`) are not raw calls. Comments and string literals are ignored. Run by test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 - "$@" <<'PY'
import re
import sys
from pathlib import Path

LAYER = Path("Sources/HerdSys")
CALLS = """epoll_create epoll_create1 epoll_ctl epoll_wait epoll_pwait accept accept4 send recv sendto
recvfrom sendmsg recvmsg sendfile fcntl setsockopt getsockopt getpeername getsockname kill
waitpid wait pipe pipe2 socketpair socket bind listen connect close read write writev readv
pread pwrite open openat fstat lstat stat mmap munmap ftruncate memfd_create signalfd
pthread_sigmask sigprocmask prctl shutdown dup dup2 dup3 ioctl unlink rename readlink""".split()
# Functions of the C shim that are no system calls: atomics on the scoreboard, flag values.
SHIM_OK = re.compile(r"herd_(load64|store64|sock_(stream|seqpacket|nonblock|cloexec)|epoll(in|out|et|rdhup|hup|err|exclusive))$")
# Names that are also common Swift method names: raw only when called unqualified with an fd or
# pointer first (checked below); `accept(i)` is MetricsServer's method, `wait`/`stat`/`pipe`/
# `dup` are plain words, so they count only as `Glibc.name(`.
QUALIFIED_ONLY = {"accept", "wait", "stat", "pipe", "dup"}

call_re = re.compile(r"(?P<qual>\b(?:Glibc|CHerdSys)\s*\.\s*)?(?<![\w$])(?P<name>[A-Za-z_]\w*)\s*\(")
errno_re = re.compile(r"(?<![\w.$])errno\b(?!\s*:)")


def strip(text: str) -> str:
    """Blanks comments and the contents of string literals, keeping line numbers."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j]))
            i = j
        elif text.startswith('"""', i):
            j = text.find('"""', i + 3)
            j = n if j < 0 else j + 3
            out.append('""' + "".join(ch if ch == "\n" else " " for ch in text[i + 2:j - 2]) + '""')
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"' and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append('"' + " " * max(0, j - i - 1) + '"')
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def raw_calls(path: Path):
    text = strip(path.read_text())
    for lineno, line in enumerate(text.split("\n"), 1):
        for m in call_re.finditer(line):
            name, qual = m.group("name"), m.group("qual")
            before = line[: m.start()].rstrip()
            after = line[m.end():].lstrip()
            if name.startswith("herd_"):
                if not SHIM_OK.match(name):
                    yield lineno, name
                continue
            if name not in CALLS:
                continue
            if qual:
                yield lineno, f"Glibc.{name}" if "Glibc" in qual else f"CHerdSys.{name}"
                continue
            if name in QUALIFIED_ONLY:
                continue
            if before.endswith(".") or re.search(r"\bfunc$", before) or before.endswith("case"):
                continue  # a method (`conn.close()`), a declaration, an enum case pattern
            if after.startswith(")") or after.startswith('"') or re.match(r"[A-Za-z_]\w*\s*:(?!:)", after):
                continue  # `close()`, `send("...")`, `write(level: ...)`: Swift methods, not libc
            yield lineno, name
        for m in errno_re.finditer(line):
            yield lineno, "errno"


def main() -> int:
    bad = []
    for path in sorted(Path("Sources").rglob("*.swift")):
        if LAYER in path.parents:
            continue
        bad += [f"{path}:{line}: {name}" for line, name in raw_calls(path)]
    if bad:
        print("FAIL: raw system calls outside the system layer (Sources/HerdSys); call the layer instead:", file=sys.stderr)
        print("\n".join("  " + b for b in bad), file=sys.stderr)
        return 1
    n = sum(1 for p in Path("Sources").rglob("*.swift") if LAYER not in p.parents)
    print(f"syscall-check: no raw system call in {n} Swift files outside {LAYER}")
    return 0


sys.exit(main())
PY
