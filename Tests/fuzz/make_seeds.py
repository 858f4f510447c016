#!/usr/bin/env python3
"""Writes the seed corpora of the libFuzzer targets (Tests/fuzz/corpus/<target>/, committed).

Sources: the differential corpus (Tests/integration/http_corpus.py, its hand-written cases, not
its random mutations: libFuzzer mutates better) and values from the unit tests. Each seed is
named by the case it comes from. Run again after the corpus changes; docs/fuzzing.md explains
the input formats (the first bytes of a parser seed choose the piece sizes)."""

from __future__ import annotations

import pathlib
import shutil
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))
import http_corpus  # noqa: E402


def split_prefix(i: int, small_limits: bool = False) -> bytes:
    """Byte 0: how many piece sizes follow (0 = byte by byte), bit 7 = small limits."""
    n = i % 4
    sizes = bytes((i * 7 + k * 13) % 40 for k in range(n))
    return bytes([n | (0x80 if small_limits else 0)]) + sizes


def hand_written() -> list[tuple[str, bytes]]:
    c = http_corpus
    return (c.valid_cases() + c.issue_cases() + c.smuggling_cases() + c.header_oddities()
            + c.chunk_size_oddities() + c.request_line_oddities())


def seeds() -> dict[str, dict[str, bytes]]:
    out: dict[str, dict[str, bytes]] = {t: {} for t in
                                        ("FuzzHTTPParser", "FuzzChunked", "FuzzStaticHeaders", "FuzzConfig", "FuzzListen")}
    for i, (name, data) in enumerate(hand_written()):
        out["FuzzHTTPParser"][name] = split_prefix(i, small_limits=i % 5 == 0) + data
        if b"chunked" in data.lower() and b"\r\n\r\n" in data:
            body = data.split(b"\r\n\r\n", 1)[1]
            out["FuzzChunked"][name] = split_prefix(i, small_limits=i % 3 == 0) + body

    # Byte 0: 0 Range, 1 date, 2 entity tags, 3 Accept-Encoding; bytes 1-3: length (here 1000).
    length = (1000).to_bytes(3, "big")
    static = {
        "range": ["bytes=0-9", "bytes=20-", "bytes=-10", "bytes=5-9", "bytes=,0-1,,5-6,", "bytes=0-1,200-300",
                  "bytes=10-20,0-9", "bytes=0-10,5-20", "bytes=50-59, -10", "items=0-1,2-3", "bytes=0-,0-",
                  "bytes=200-,300-", "bytes=999999999999999999-"],
        "date": ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
                 "Thu, 31 Feb 2030 23:59:60 GMT"],
        "tags": ['"abc"', 'W/"abc", "def"', "*", ' "a,b" , W/"c"', '"x"garbage'],
        "accept-encoding": ["gzip, deflate, br", "gzip;q=0", "gzip; q=0.000", "*, br;q=0", "x-gzip", "identity",
                            "br;q=0.5, gzip;Q=1"],
    }
    for kind, (key, values) in enumerate(static.items()):
        for j, v in enumerate(values):
            out["FuzzStaticHeaders"][f"{key}-{j}"] = bytes([kind]) + length + v.encode()

    conf = (HERE.parent.parent / "packaging" / "herdd.conf").read_bytes()
    out["FuzzConfig"]["packaging-herdd.conf"] = conf
    out["FuzzConfig"]["all-keys"] = b"""# every key once
listen = 127.0.0.1:8080
listen = [::1]:8080,name=admin
listen = unix:/run/herdd.sock,name=app
handler = admin = metrics
handler = app = static:/srv/www;dotfiles=deny;charset=utf-8
default-handler = hello
workers = 4
max-workers = 8
min-spare = 1
max-spare = 2
backlog = 511
accept-mode = exclusive
balance = rotate
graceful-timeout = 30
timeout = 2.5
max-requests = 1000
max-requests-jitter = 50
keepalive-timeout = 5
header-timeout = 10
max-body = 4m
log-level = debug
body-timeout = 10
body-min-rate = 500
upgrade-timeout = 30
backlog-alarm = 0
access-log = on
multi-accept = off
defer-accept = on
notsent-lowat = 16k
worker-concurrency = 8
async-timeout = 30
max-queue-time = 250
trust-request-start = off
"""
    out["FuzzConfig"]["errors"] = b"workers = 2\nworkers = many\n\nbogus = 1\nno equals sign\n"

    out["FuzzListen"]["tests"] = b"127.0.0.1:9100,name=metrics\n[::1]:8080\nunix:/run/herdd.sock,name=app\n"
    out["FuzzListen"]["odd"] = b"0.0.0.0:80, name=a\n[::ffff:1.2.3.4]:65535\n1.2.3.4:0\nunix:rel\nhost:80\n"
    return out


def main() -> None:
    for target, files in seeds().items():
        d = HERE / "corpus" / target
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        for name, data in files.items():
            (d / name).write_bytes(data)
        print(f"{target}: {len(files)} seeds, {sum(map(len, files.values()))} bytes")


if __name__ == "__main__":
    main()
