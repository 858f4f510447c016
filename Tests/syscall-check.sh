#!/usr/bin/env bash
# The system layer holds every call that reaches the kernel or libsystemd
# (docs/design-system-layer.md). The rule is made structural, by the compiler, and this script
# checks the few facts the compiler relies on:
#
# 1. Outside Sources/HerdSys, Sources/HerdLibc and the C shim (Sources/CHerdSys), a Swift file
#    imports only modules of ALLOWED_IMPORTS: herdd's own modules and Swift libraries that do
#    not re-export libc. Glibc, CHerdSys, Foundation (which re-exports Glibc) or any new module
#    fail until they are added here on purpose. So a raw `open(...)`, `errno` or `sd_notify(...)`
#    outside the layer does not compile: there is no name list to keep up to date and nothing
#    a regular expression could miss (a call through a closure, a pointer, a shadowed name).
# 2. Sources/HerdLibc is the explicit allowlist of pure libc that code outside the layer may
#    use: every top-level declaration there must be a name of PURE_FUNCTIONS, CONSTANTS or
#    C_TYPES below, forwarding to the Glibc name of the same name (`Glibc.memchr(...)`,
#    `{ Glibc.EAGAIN }`, `= Glibc.stat`), and HerdLibc imports Glibc only.
# 3. Neither HerdSys nor HerdLibc re-exports a module (`@_exported import Glibc` would undo 1),
#    and HerdSys's top-level functions (the ones that are not `Sys.name`, so could pass for a
#    libc name) are the ones of HERDSYS_FREE_FUNCTIONS.
# Why not a scanner of call names (the former check): it needed a list of forbidden names and
# heuristics to tell `close(fd)` from `conn.close()`, and it let pthread_*, stat, realpath,
# sd_*, getenv, usleep ... through because they were not on the list. Comments and string
# literals are ignored. Run by test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 - "$@" <<'PY'
import re
import sys
from pathlib import Path

LAYER = {Path("Sources/HerdSys"), Path("Sources/HerdLibc"), Path("Sources/CHerdSys")}
ALLOWED_IMPORTS = {
    # herdd's modules (HerdLibc: the pure part of libc; HerdSys: the system calls)
    "HerdLibc", "HerdSys", "HerdHTTP", "Handlers", "HerdD", "Herd",
    # Swift libraries without libc re-exports (FoundationEssentials, unlike Foundation, has none)
    "Synchronization", "FoundationEssentials", "Logging", "ArgumentParser",
}
# Memory and string functions that make no system call and keep no state between calls;
# formatting and parsing of addresses and UTC calendar time.
PURE_FUNCTIONS = {"memchr", "memcmp", "memcpy", "memmove", "memset", "strlen", "strerror", "strsignal",
                  "inet_ntop", "inet_pton", "timegm"}
CONSTANTS = set("""
EAGAIN EWOULDBLOCK EINTR ECONNABORTED ECONNREFUSED ECONNRESET EEXIST EFBIG EINVAL ENOENT EPROTO
ESRCH EPIPE EBADF EMFILE ENFILE ENOBUFS ENOMEM EPERM ENOTDIR EACCES ELOOP ENAMETOOLONG EISDIR ENOSYS EXDEV
SIGCHLD SIGHUP SIGINT SIGKILL SIGPIPE SIGQUIT SIGTERM SIGTTIN SIGTTOU SIGUSR1 SIGUSR2 SIGSTOP SIGCONT
SIGALRM SIGABRT
AF_INET AF_INET6 AF_UNIX AF_UNSPEC SOL_SOCKET SO_REUSEADDR IPV6_V6ONLY TCP_NODELAY TCP_CORK TCP_DEFER_ACCEPT TCP_NOTSENT_LOWAT IPPROTO_IPV6 IPPROTO_TCP
MSG_DONTWAIT MSG_MORE MSG_NOSIGNAL SHUT_RD SHUT_WR SHUT_RDWR
O_CLOEXEC O_CREAT O_NOFOLLOW O_NONBLOCK O_RDONLY O_RDWR O_TRUNC O_WRONLY
STDIN_FILENO STDOUT_FILENO STDERR_FILENO INET_ADDRSTRLEN INET6_ADDRSTRLEN
S_IFMT S_IFDIR S_IFREG S_IFSOCK S_IFLNK
""".split())
C_TYPES = set("""pid_t mode_t off_t socklen_t sa_family_t sockaddr sockaddr_in sockaddr_in6 sockaddr_un
sockaddr_storage in_addr in6_addr iovec timespec tm stat""".split())
# HerdSys's API is `Sys.name(...)` plus types; these are its free functions.
HERDSYS_FREE_FUNCTIONS = {"sys", "sysIO", "sysRC", "sockaddrPointer", "monotonicNanos", "realtimeMicros",
                          "wallClockSeconds", "threadCPUNanos", "sharedLoad", "sharedStore"}

import_re = re.compile(r"^\s*(?:@[\w()]+\s+)*(?:(?:public|package|internal|fileprivate|private)\s+)?"
                       r"import\s+(?:(?:typealias|struct|class|enum|protocol|let|var|func)\s+)?([\w]+)", re.M)


def strip(text: str) -> str:
    """Blanks comments and the contents of string literals, keeping line numbers."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
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


def line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def in_layer(path: Path) -> bool:
    return any(d in path.parents for d in LAYER)


def check_imports(bad: list) -> int:
    n = 0
    for path in sorted(Path("Sources").rglob("*.swift")):
        if in_layer(path):
            continue
        n += 1
        text = strip(path.read_text())
        for m in import_re.finditer(text):
            if m.group(1) not in ALLOWED_IMPORTS:
                bad.append(f"{path}:{line_of(text, m.start())}: imports {m.group(1)}: outside the system layer only "
                           f"{', '.join(sorted(ALLOWED_IMPORTS))} (libc through HerdLibc's allowlist, calls through HerdSys)")
    return n


def top_level_declarations(text: str):
    """(keyword, name, line, the text up to the next top-level declaration) at brace depth 0."""
    depth, depths = 0, []
    for ch in text:
        depths.append(depth)
        depth += (ch == "{") - (ch == "}")
    keyword = re.compile(r"\b(func|var|let|typealias|struct|class|enum|extension|protocol|actor|macro|init|subscript|import)\b\s*(\w*)")
    found = [m for m in keyword.finditer(text) if depths[m.start()] == 0]
    for i, m in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        line_start = text.rfind("\n", 0, m.start()) + 1
        yield m.group(1), m.group(2), line_of(text, m.start()), text[line_start:m.start()], text[m.start():end]


def check_allowlist(bad: list) -> int:
    """Every top-level declaration of HerdLibc is an allowlisted forward to the same Glibc name."""
    kinds = {"func": ("PURE_FUNCTIONS", PURE_FUNCTIONS, r"\bGlibc\.{}\s*\("),
             "var": ("CONSTANTS", CONSTANTS, r"^var\s+{}\s*:\s*[\w.]+\s*\{{\s*Glibc\.{}\s*\}}\s*;?\s*(@[\w()]+\s*)*$"),
             "typealias": ("C_TYPES", C_TYPES, r"^typealias\s+{}\s*=\s*Glibc\.{}\s*;?\s*(@[\w()]+\s*)*$")}
    count = 0
    for path in sorted(Path("Sources/HerdLibc").rglob("*.swift")):
        text = strip(path.read_text())
        for kind, name, lineno, before, body in top_level_declarations(text):
            if kind == "import":
                if name != "Glibc":
                    bad.append(f"{path}:{lineno}: HerdLibc imports only Glibc, not {name}")
                continue
            if kind not in kinds or not re.search(r"\bpackage\s*$", before):
                bad.append(f"{path}:{lineno}: only `package func/var/typealias` forwards belong in HerdLibc: {kind} {name}")
                continue
            count += 1
            where, allowed, pattern = kinds[kind]
            if name not in allowed:
                bad.append(f"{path}:{lineno}: {name} is not in the allowlist ({where} of Tests/syscall-check.sh)")
                continue
            # The declaration alone: without the attributes and access of the next one.
            body = re.sub(r"\s*;?\s*((@[\w()]+|package|public|internal)\s*)*$", "", body)
            calls = re.findall(r"\bGlibc\.\w+\s*\(", body)
            ok = re.search(pattern.format(re.escape(name), re.escape(name)), body, re.S)
            if not ok or (kind == "func" and len(calls) != 1):
                bad.append(f"{path}:{lineno}: {name} must only forward to Glibc.{name}")
    return count


def check_layer(bad: list) -> None:
    for path in sorted(Path("Sources/HerdSys").rglob("*.swift")) + sorted(Path("Sources/HerdLibc").rglob("*.swift")):
        text = strip(path.read_text())
        for m in re.finditer(r"@_exported\s+import\s+(\w+)", text):
            bad.append(f"{path}:{line_of(text, m.start())}: re-exports {m.group(1)}; the layer exports only its own API")
        if Path("Sources/HerdSys") not in path.parents:
            continue
        for m in re.finditer(r"^(?:@[\w()]+\s+)*(?:public|package)\s+func\s+(\w+)", text, re.M):
            if m.group(1) not in HERDSYS_FREE_FUNCTIONS:
                bad.append(f"{path}:{line_of(text, m.start())}: free function {m.group(1)} in HerdSys: put calls in "
                           "`extension Sys` (or add it to HERDSYS_FREE_FUNCTIONS if it is no libc name)")


def main() -> int:
    bad: list = []
    files = check_imports(bad)
    forwards = check_allowlist(bad)
    check_layer(bad)
    if bad:
        print("FAIL: the system layer rule (docs/design-system-layer.md):", file=sys.stderr)
        print("\n".join("  " + b for b in bad), file=sys.stderr)
        return 1
    print(f"syscall-check: {files} Swift files outside the layer import no libc; HerdLibc forwards {forwards} allowlisted names")
    return 0


sys.exit(main())
PY
