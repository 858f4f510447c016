"""Issue 14: the statuses herdd answers where request smuggling lives (the verdicts themselves are
compared with llhttp in test_http_differential.py); each is followed by a close."""

from __future__ import annotations

from conftest import LOCALHOST, free_ports, http_get, raw_exchange

P = b"POST /echo HTTP/1.1\r\nHost: x\r\n"
TE = P + b"Transfer-Encoding: chunked\r\n\r\n"

CASES = [
    ("bare LF in the head", b"GET / HTTP/1.1\nHost: x\n\n", 400),
    ("bare LF ending one field", b"GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n", 400),
    ("bare LF in chunked framing", TE + b"5\nhello\n0\n\n", 400),
    ("bare LF after chunk data", TE + b"5\r\nhello\n0\r\n\r\n", 400),
    ("whitespace after chunk size", TE + b"5 \r\nhello\r\n0\r\n\r\n", 400),
    ("malformed chunk extension", TE + b"5; a=b\r\nhello\r\n0\r\n\r\n", 400),
    ("Transfer-Encoding: chunked,", P + b"Transfer-Encoding: chunked,\r\n\r\n0\r\n\r\n", 400),
    ("Transfer-Encoding: ,chunked", P + b"Transfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n", 400),
    ("Transfer-Encoding: \\tchunked\\t", P + b"Transfer-Encoding: \tchunked\t\r\n\r\n0\r\n\r\n", 400),
    ("Transfer-Encoding: gzip (chunked not final)", P + b"Transfer-Encoding: gzip\r\n\r\n", 400),
    ("Transfer-Encoding: gzip, chunked", P + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    ("Content-Length: 5, 5", P + b"Content-Length: 5, 5\r\n\r\nhello", 400),
    ("repeated equal Content-Length", P + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400),
    ("Content-Length in trailers", TE + b"0\r\nContent-Length: 5\r\n\r\n", 400),
    ("CONNECT", b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501),
    ("GET *", b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("target with <", b"GET /a<b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("target with backtick", b"GET /a`b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("target with #", b"GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("absolute-form authority differs from Host", b"GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n", 400),
    ("Host: a b", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    ("Host: a/../b", b"GET / HTTP/1.1\r\nHost: a/../b\r\n\r\n", 400),
    ("empty Host on HTTP/1.1", b"GET / HTTP/1.1\r\nHost:\r\n\r\n", 400),
]


def test_smuggling_statuses(herd_factory):
    port, = free_ports(1)
    h = herd_factory(["--workers", "1", "--listen", f"{LOCALHOST}:{port}", "--handler", "http=debug"])
    h.wait_workers(1)
    wrong = {}
    for name, data, want in CASES:
        got = raw_exchange(port, data, timeout=5, shutdown_write=True)
        head = got.split(b"\r\n\r\n", 1)[0]
        if not head.startswith(b"HTTP/1.1 %d " % want) or b"\r\nConnection: close" not in head:
            wrong[name] = (want, head[:120])
    assert wrong == {}, f"wrong answers (want, got): {wrong}"
    # What stays accepted: OPTIONS *, absolute-form with the Host's authority, a leading empty line.
    for data in (b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", b"GET http://x:8/echo HTTP/1.1\r\nHost: X:8\r\n\r\n",
                 b"\r\nGET /echo HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"):
        got = raw_exchange(port, data, timeout=5, shutdown_write=True)
        assert got.startswith(b"HTTP/1.1 200 "), (data, got[:200])
    assert h.events("worker-exited") == [] and http_get(port, "/").status == 200
