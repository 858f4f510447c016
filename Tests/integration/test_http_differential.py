"""Differential test of herdd's HTTP/1.1 parser against llhttp (issue 14).

Every request of the corpus (http_corpus.py: >= 500 cases, hand-written and deterministic
mutations) is framed by llhttp in its strict default mode (httptools, the Python bindings) and by
a running herdd with the debug handler (every answer says `X-Body-Length`, the body length herdd
framed). A verdict is the list of body lengths of the requests accepted in order, then `error`
(the parser refused the rest) or `end` (the bytes ran out, mid-request or not). The verdicts must
be equal, except where a rule of http_deviations.txt, next to this file, says why herdd differs.
"""

from __future__ import annotations

import codecs
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import httptools
import pytest

import http_corpus
from conftest import LOCALHOST, free_ports

DEVIATIONS = Path(__file__).with_name("http_deviations.txt")


# ---------------------------------------------------------------------------------------------
# llhttp's verdict

class _Collector:
    def __init__(self):
        self.bodies: list[int] = []
        self.current: int | None = None
        self.keep_alive: list[bool] = []
        self.parser = None

    def on_message_begin(self):
        self.current = 0

    def on_body(self, body: bytes):
        self.current += len(body)

    def on_message_complete(self):
        self.bodies.append(self.current)
        self.keep_alive.append(self.parser.should_keep_alive())
        self.current = None


def llhttp_verdict(data: bytes) -> tuple:
    c = _Collector()
    p = httptools.HttpRequestParser(c)
    c.parser = p
    final = "end"
    try:
        p.feed_data(data)
    except httptools.HttpParserUpgrade:
        final = "end"   # CONNECT or Upgrade: llhttp stops parsing HTTP there
    except httptools.HttpParserError:
        final = "error"
    # A server closes after a message that does not keep the connection alive; what follows
    # is never parsed (llhttp reports it as "Data after Connection: close").
    for i, ka in enumerate(c.keep_alive):
        if not ka:
            return (tuple(c.bodies[: i + 1]), "end")
    return (tuple(c.bodies), final)


# ---------------------------------------------------------------------------------------------
# herdd's verdict

def _responses(data: bytes) -> list[tuple[int, int | None]]:
    """(status, X-Body-Length) of each final response in a stream (bodies by Content-Length)."""
    out = []
    i = 0
    while i < len(data):
        end = data.find(b"\r\n\r\n", i)
        assert end >= 0, f"incomplete response head: {data[i:]!r}"
        lines = data[i:end].split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            headers[k.strip().lower()] = v.strip()
        i = end + 4
        if 100 <= status < 200:
            continue
        assert b"content-length" in headers, f"response without Content-Length: {data[:end]!r}"
        i += int(headers[b"content-length"])
        xbl = headers.get(b"x-body-length")
        out.append((status, int(xbl) if xbl is not None else None))
    return out


def herdd_verdict(port: int, data: bytes) -> tuple:
    with socket.create_connection((LOCALHOST, port), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = bytearray()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
    bodies = []
    for status, length in _responses(bytes(got)):
        if status >= 400:
            return (tuple(bodies), "error")
        assert length is not None, f"accepted without X-Body-Length: {bytes(got)!r}"
        bodies.append(length)
    return (tuple(bodies), "end")


# ---------------------------------------------------------------------------------------------
# deviations

@dataclass
class Rule:
    line: int
    kind: str
    ids: re.Pattern | None
    content: re.Pattern | None
    reason: str
    used: list[str] = field(default_factory=list)

    def matches(self, case_id: str, data: bytes) -> bool:
        return ((self.ids is None or self.ids.fullmatch(case_id) is not None)
                and (self.content is None or self.content.search(data) is not None))


def load_rules() -> list[Rule]:
    rules = []
    for n, raw in enumerate(DEVIATIONS.read_text().splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in raw.split(" | ")]
        assert len(parts) == 4, f"{DEVIATIONS.name}:{n}: want 'kind | ids | bytes | reason': {raw!r}"
        kind, ids, content, reason = parts
        assert kind in ("stricter", "laxer", "pending"), f"{DEVIATIONS.name}:{n}: kind {kind!r}"
        assert reason, f"{DEVIATIONS.name}:{n}: a deviation needs a reason"
        rules.append(Rule(n, kind,
                          None if ids == "-" else re.compile(ids),
                          None if content == "-" else re.compile(codecs.escape_decode(content.encode())[0], re.S),
                          reason))
    return rules


def kind_of(herdd: tuple, ll: tuple, completed: tuple | None = None) -> str:
    """stricter: herdd accepts a prefix of what llhttp accepts, then refuses; laxer: the reverse;
    pending: llhttp refused at a byte of a line that herdd judges when the line (or the head)
    is complete, and herdd does refuse it when `completed` (the input followed by CRLF CRLF)
    gives it that chance."""
    hb, hf = herdd
    lb, lf = ll
    if hb == lb and hf == "end" and lf == "error" and completed == (hb, "error"):
        return "pending"
    if len(hb) <= len(lb) and lb[: len(hb)] == hb and hf == "error":
        return "stricter"
    if len(lb) <= len(hb) and hb[: len(lb)] == lb and lf == "error":
        return "laxer"
    return "framing"   # different body lengths: never acceptable


# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus():
    cases = http_corpus.build()
    assert len(cases) >= 500
    return cases


def test_llhttp_is_strict(corpus):
    # The reference must be llhttp's strict mode: these are refused there (lenient flags off).
    by_id = dict(corpus)
    for case in ("lf-chunk-all", "ws-chunk-size-space", "cl-repeat-equal", "te-trailing-comma", "lf-head-all"):
        assert llhttp_verdict(by_id[case])[1] == "error", case


def test_herdd_frames_like_llhttp(herd_factory, corpus):
    port, = free_ports(1)
    h = herd_factory(["--workers", "1", "--listen", f"{LOCALHOST}:{port}", "--handler", "http=debug",
                      "--header-timeout", "5"])
    h.wait_workers(1)
    rules = load_rules()
    unexplained = []
    for case_id, data in corpus:
        ll = llhttp_verdict(data)
        hd = herdd_verdict(port, data)
        if hd == ll:
            continue
        kind = kind_of(hd, ll, herdd_verdict(port, data + b"\r\n\r\n") if hd[0] == ll[0] else None)
        rule = next((r for r in rules if r.kind == kind and r.matches(case_id, data)), None)
        if rule is None:
            unexplained.append(f"{case_id} [{kind}] herdd={hd} llhttp={ll} {data[:300]!r}")
        else:
            rule.used.append(case_id)
    report = "\n".join(unexplained)
    assert not unexplained, f"{len(unexplained)} of {len(corpus)} cases differ without a listed reason:\n{report}"
    equal = len(corpus) - sum(len(r.used) for r in rules)
    print(f"{len(corpus)} cases: {equal} equal verdicts; deviations: "
          + ", ".join(f"line {r.line} ({r.kind}) {len(r.used)}" for r in rules))
    stale = [f"line {r.line}: {r.reason}" for r in rules if not r.used]
    assert not stale, "deviation rules that no case needs any more:\n" + "\n".join(stale)
    # Nobody crashed on the way.
    assert h.events("worker-exited") == [], h.log_tail()
