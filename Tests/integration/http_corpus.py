"""The corpus of the differential parser test (test_http_differential.py): hand-written cases
(issue 14's list, the request-smuggling catalogue: CL.TE, TE.CL, TE.TE obfuscations, header
name and value oddities, chunk-size oddities, request-line and target oddities) and
deterministic mutations of valid requests. Each case is (id, bytes); ids are stable."""

from __future__ import annotations

import random

H = b"Host: h\r\n"
SEED = 20261126
MUTATIONS = 420


def post(headers: bytes, body: bytes = b"", target: bytes = b"/echo") -> bytes:
    return b"POST " + target + b" HTTP/1.1\r\n" + H + headers + b"\r\n" + body


def chunked(body: bytes, te: bytes = b"Transfer-Encoding: chunked\r\n") -> bytes:
    return post(te, body)


def get(target: bytes = b"/echo", headers: bytes = H, version: bytes = b"HTTP/1.1") -> bytes:
    return b"GET " + target + b" " + version + b"\r\n" + headers + b"\r\n"


NEXT = b"GET /echo HTTP/1.1\r\nHost: h\r\n\r\n"           # a second request after the first
SMUGGLED = b"GET /admin HTTP/1.1\r\nHost: h\r\n\r\n"
BODY5 = b"5\r\nhello\r\n0\r\n\r\n"


def valid_cases() -> list[tuple[str, bytes]]:
    c = [
        ("valid-get", get()),
        ("valid-get-query", get(b"/echo?a=1&b=%20&c=/?x")),
        ("valid-get-pipelined", get() + get(b"/echo?2") + get(b"/echo?3")),
        ("valid-post-cl", post(b"Content-Length: 5\r\n", b"hello")),
        ("valid-post-cl0", post(b"Content-Length: 0\r\n")),
        ("valid-post-cl-leading-zero", post(b"Content-Length: 005\r\n", b"hello")),
        ("valid-post-cl-pipelined", post(b"Content-Length: 5\r\n", b"hello") + NEXT),
        ("valid-chunked", chunked(BODY5)),
        ("valid-chunked-two", chunked(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")),
        ("valid-chunked-upper-hex", chunked(b"A\r\n0123456789\r\n0\r\n\r\n")),
        ("valid-chunked-lower-hex", chunked(b"a\r\n0123456789\r\n0\r\n\r\n")),
        ("valid-chunked-leading-zeros", chunked(b"0005\r\nhello\r\n000\r\n\r\n")),
        ("valid-chunked-empty", chunked(b"0\r\n\r\n")),
        ("valid-chunked-trailer", chunked(b"5\r\nhello\r\n0\r\nX-T: v\r\nY: w\r\n\r\n")),
        ("valid-chunked-ext", chunked(b"5;a=b\r\nhello\r\n0\r\n\r\n")),
        ("valid-chunked-ext-flag", chunked(b"5;a\r\nhello\r\n0;z\r\n\r\n")),
        ("valid-chunked-ext-quoted", chunked(b'5;a="b c;d"\r\nhello\r\n0\r\n\r\n')),
        ("valid-chunked-ext-escaped", chunked(b'5;a="\\"x\\""\r\nhello\r\n0\r\n\r\n')),
        ("valid-chunked-ext-many", chunked(b"5;a=1;b=2;c\r\nhello\r\n0\r\n\r\n")),
        ("valid-chunked-ext-empty-value", chunked(b"5;a=\r\nhello\r\n0\r\n\r\n")),
        ("valid-chunked-pipelined", chunked(BODY5) + NEXT),
        ("valid-te-case", chunked(BODY5, b"Transfer-Encoding: ChUnKeD\r\n")),
        ("valid-te-spaces", chunked(BODY5, b"Transfer-Encoding:   chunked  \r\n")),
        ("valid-te-leading-tab", chunked(BODY5, b"Transfer-Encoding:\tchunked\r\n")),
        ("valid-http10", b"GET /echo HTTP/1.0\r\n\r\n"),
        ("valid-http10-host", b"GET /echo HTTP/1.0\r\nHost: h\r\n\r\n"),
        ("valid-http10-keepalive", b"GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + NEXT),
        ("valid-http10-cl", b"POST /echo HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc"),
        ("valid-close", b"GET /echo HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"),
        ("valid-leading-crlf", b"\r\n" + get()),
        ("valid-leading-lf", b"\n" + get()),
        ("valid-methods", b"".join(m + b" /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx"
                                   for m in (b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"POST"))),
        ("valid-options-asterisk", b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"),
        ("valid-absolute-form", get(b"http://h/echo?q")),
        ("valid-absolute-form-port", get(b"http://h:8080/echo", b"Host: h:8080\r\n")),
        ("valid-absolute-form-case", get(b"HTTP://H/echo")),
        ("valid-host-port", get(headers=b"Host: example.com:8080\r\n")),
        ("valid-host-ipv4", get(headers=b"Host: 127.0.0.1:80\r\n")),
        ("valid-host-ipv6", get(headers=b"Host: [::1]:8080\r\n")),
        ("valid-value-obs-text", get(headers=H + b"X: caf\xc3\xa9\r\n")),
        ("valid-value-quotes", get(headers=H + b'X: "a,b" ; c=d\r\n')),
        ("valid-value-empty", get(headers=H + b"X:\r\n")),
        ("valid-value-tabs", get(headers=H + b"X:\tv\t\r\n")),
        ("valid-name-tchars", get(headers=H + b"!#$%&'*+-.^_`|~09AZaz: v\r\n")),
        ("valid-target-subdelims", get(b"/echo/a-._~!$&'()*+,;=:@%41")),
        ("valid-target-brackets", get(b"/echo?a[]=1")),
        ("valid-expect", post(b"Expect: 100-continue\r\nContent-Length: 2\r\n", b"ok")),
        ("valid-many-headers", get(headers=H + b"".join(b"X-%d: %d\r\n" % (i, i) for i in range(40)))),
        ("valid-connection-list", get(headers=H + b"Connection: keep-alive, Foo\r\n") + NEXT),
    ]
    return c


def issue_cases() -> list[tuple[str, bytes]]:
    c = [
        # bare LF in chunked framing (Go CVE-2025-22871 class)
        ("lf-chunk-all", chunked(b"5\nhello\n0\n\n")),
        ("lf-chunk-after-data", chunked(b"5\r\nhello\n0\r\n\r\n")),
        ("lf-chunk-size-line", chunked(b"5\nhello\r\n0\r\n\r\n")),
        ("lf-chunk-last-size", chunked(b"5\r\nhello\r\n0\n\r\n")),
        ("lf-chunk-final", chunked(b"5\r\nhello\r\n0\r\n\n")),
        ("lf-chunk-trailer", chunked(b"5\r\nhello\r\n0\r\nT: v\n\r\n")),
        ("lf-chunk-ext", chunked(b"5;a=b\nhello\r\n0\r\n\r\n")),
        ("lf-chunk-smuggle", chunked(b"5\nhello\n0\n\n" + SMUGGLED)),
        ("cr-chunk-size", chunked(b"5\rhello\r\n0\r\n\r\n")),
        ("cr-chunk-after-data", chunked(b"5\r\nhello\r0\r\n\r\n")),
        ("crcr-chunk-size", chunked(b"5\r\r\nhello\r\n0\r\n\r\n")),
        # whitespace after chunk size, chunk extensions
        ("ws-chunk-size-space", chunked(b"5 \r\nhello\r\n0\r\n\r\n")),
        ("ws-chunk-size-tab", chunked(b"5\t\r\nhello\r\n0\r\n\r\n")),
        ("ws-chunk-size-before-ext", chunked(b"5 ;a=b\r\nhello\r\n0\r\n\r\n")),
        ("ws-chunk-last-size", chunked(b"5\r\nhello\r\n0 \r\n\r\n")),
        ("ws-chunk-size-leading", chunked(b" 5\r\nhello\r\n0\r\n\r\n")),
        ("ext-space-after-semicolon", chunked(b"5; a=b\r\nhello\r\n0\r\n\r\n")),
        ("ext-space-around-equals", chunked(b"5;a = b\r\nhello\r\n0\r\n\r\n")),
        ("ext-empty", chunked(b"5;\r\nhello\r\n0\r\n\r\n")),
        ("ext-no-name", chunked(b"5;=b\r\nhello\r\n0\r\n\r\n")),
        ("ext-space-in-value", chunked(b"5;a=b c\r\nhello\r\n0\r\n\r\n")),
        ("ext-double-equals", chunked(b"5;a=b=c\r\nhello\r\n0\r\n\r\n")),
        ("ext-unterminated-quote", chunked(b'5;a="b\r\nhello\r\n0\r\n\r\n')),
        ("ext-after-quote", chunked(b'5;a="b"c\r\nhello\r\n0\r\n\r\n')),
        ("ext-ctl-in-quote", chunked(b'5;a="\x01"\r\nhello\r\n0\r\n\r\n')),
        ("ext-nul", chunked(b"5;a\x00\r\nhello\r\n0\r\n\r\n")),
        ("ext-no-semicolon", chunked(b"5a=b\r\nhello\r\n0\r\n\r\n")),
        ("ext-comma", chunked(b"5,a\r\nhello\r\n0\r\n\r\n")),
        ("ext-high-byte-name", chunked(b"5;\xc3\xa9\r\nhello\r\n0\r\n\r\n")),
        # Transfer-Encoding list oddities
        ("te-trailing-comma", chunked(BODY5, b"Transfer-Encoding: chunked,\r\n")),
        ("te-leading-comma", chunked(BODY5, b"Transfer-Encoding: ,chunked\r\n")),
        ("te-tabs", chunked(BODY5, b"Transfer-Encoding: \tchunked\t\r\n")),
        ("te-trailing-tab", chunked(BODY5, b"Transfer-Encoding: chunked\t\r\n")),
        ("te-double-comma", chunked(BODY5, b"Transfer-Encoding: gzip,,chunked\r\n")),
        ("te-gzip-chunked", chunked(BODY5, b"Transfer-Encoding: gzip, chunked\r\n")),
        ("te-chunked-gzip", chunked(BODY5, b"Transfer-Encoding: chunked, gzip\r\n")),
        ("te-gzip", chunked(BODY5, b"Transfer-Encoding: gzip\r\n")),
        ("te-identity", chunked(BODY5, b"Transfer-Encoding: identity\r\n")),
        ("te-chunked-twice-list", chunked(BODY5, b"Transfer-Encoding: chunked, chunked\r\n")),
        ("te-chunked-twice-fields", chunked(BODY5, b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n")),
        ("te-gzip-then-chunked-fields", chunked(BODY5, b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n")),
        ("te-chunked-then-gzip-fields", chunked(BODY5, b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n")),
        ("te-empty", chunked(BODY5, b"Transfer-Encoding:\r\n")),
        ("te-param", chunked(BODY5, b"Transfer-Encoding: chunked;q=1\r\n")),
        ("te-quoted", chunked(BODY5, b'Transfer-Encoding: "chunked"\r\n')),
        ("te-http10", b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" + BODY5),
        # Content-Length
        ("cl-list-equal", post(b"Content-Length: 5, 5\r\n", b"hello")),
        ("cl-list-differ", post(b"Content-Length: 5, 6\r\n", b"hello!")),
        ("cl-repeat-equal", post(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello")),
        ("cl-repeat-differ", post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!")),
        ("cl-plus", post(b"Content-Length: +5\r\n", b"hello")),
        ("cl-minus", post(b"Content-Length: -5\r\n", b"hello")),
        ("cl-hex", post(b"Content-Length: 0x5\r\n", b"hello")),
        ("cl-space-inside", post(b"Content-Length: 1 2\r\n", b"x" * 12)),
        ("cl-empty", post(b"Content-Length:\r\n", b"hello")),
        ("cl-trailing-space", post(b"Content-Length: 5 \r\n", b"hello")),
        ("cl-tab", post(b"Content-Length:\t5\t\r\n", b"hello")),
        ("cl-overflow", post(b"Content-Length: 18446744073709551616\r\n", b"hello")),
        ("cl-letters", post(b"Content-Length: 5a\r\n", b"hello")),
        ("cl-comma-only", post(b"Content-Length: ,\r\n", b"hello")),
        # request targets, CONNECT, asterisk
        ("connect-authority", b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n"),
        ("connect-origin", b"CONNECT /echo HTTP/1.1\r\nHost: h\r\n\r\n"),
        ("asterisk-get", get(b"*")),
        ("asterisk-post", post(b"Content-Length: 0\r\n", target=b"*")),
        ("authority-form-get", get(b"h:80")),
        ("relative-target", get(b"echo")),
        ("absolute-host-mismatch", get(b"http://a/echo", b"Host: b\r\n")),
        ("absolute-port-mismatch", get(b"http://h:81/echo", b"Host: h\r\n")),
        ("absolute-userinfo", get(b"http://u@h/echo")),
        ("absolute-empty-authority", get(b"http:///echo")),
        ("absolute-no-host-http10", b"GET http://h/echo HTTP/1.0\r\n\r\n"),
        # Host values
        ("host-space", get(headers=b"Host: a b\r\n")),
        ("host-path", get(headers=b"Host: a/../b\r\n")),
        ("host-empty", get(headers=b"Host:\r\n")),
        ("host-empty-http10", b"GET /echo HTTP/1.0\r\nHost:\r\n\r\n"),
        ("host-missing", b"GET /echo HTTP/1.1\r\n\r\n"),
        ("host-twice", get(headers=b"Host: h\r\nHost: h\r\n")),
        ("host-twice-differ", get(headers=b"Host: a\r\nHost: b\r\n")),
        ("host-userinfo", get(headers=b"Host: u@h\r\n")),
        ("host-bad-port", get(headers=b"Host: h:8a\r\n")),
        ("host-two-ports", get(headers=b"Host: h:80:80\r\n")),
        ("host-unclosed-ipv6", get(headers=b"Host: [::1\r\n")),
        ("host-bad-pct", get(headers=b"Host: a%zz\r\n")),
        ("host-high-byte", get(headers=b"Host: caf\xc3\xa9\r\n")),
        ("host-underscore", get(headers=b"Host: a_b.example\r\n")),
        # bare LF / CR in the head
        ("lf-head-all", b"GET /echo HTTP/1.1\nHost: h\n\n"),
        ("lf-head-request-line", b"GET /echo HTTP/1.1\nHost: h\r\n\r\n"),
        ("lf-head-field", b"GET /echo HTTP/1.1\r\nHost: h\nX: y\r\n\r\n"),
        ("lf-head-end", b"GET /echo HTTP/1.1\r\nHost: h\r\n\n"),
        ("lf-head-smuggle-te", b"POST /echo HTTP/1.1\r\nHost: h\r\nX: y\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello"),
        ("cr-head-request-line", b"GET /echo HTTP/1.1\rHost: h\r\n\r\n"),
        ("cr-head-value", get(headers=H + b"X: a\rb\r\n")),
        ("cr-head-end", b"GET /echo HTTP/1.1\r\nHost: h\r\n\r\r\n"),
    ]
    for ch in b'<>"{}|^`#\\':
        c.append((f"target-char-{ch:02x}", get(b"/echo/a" + bytes([ch]) + b"b")))
        c.append((f"target-query-char-{ch:02x}", get(b"/echo?a" + bytes([ch]) + b"b")))
    for ch in (0x00, 0x01, 0x09, 0x7F, 0x80, 0xC3, 0xFF):
        c.append((f"target-byte-{ch:02x}", get(b"/echo/a" + bytes([ch]) + b"b")))
    c.append(("target-pct-invalid", get(b"/echo/%zz")))
    c.append(("target-pct-utf8-invalid", get(b"/echo/%ff")))
    return c


def smuggling_cases() -> list[tuple[str, bytes]]:
    c = [
        ("cl-te", post(b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\nG")),
        ("te-cl", post(b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", b"8\r\nSMUGGLED\r\n0\r\n\r\n")),
        ("cl-te-smuggle", post(b"Content-Length: 35\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n" + SMUGGLED)),
        ("te-cl-smuggle", post(b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", b"5c\r\n" + SMUGGLED + b"\r\n0\r\n\r\n")),
        ("cl-cl", post(b"Content-Length: 0\r\nContent-Length: 35\r\n", SMUGGLED)),
    ]
    te_variants = {
        "xchunked": b"Transfer-Encoding: xchunked\r\n",
        "space-before-colon": b"Transfer-Encoding : chunked\r\n",
        "tab-before-colon": b"Transfer-Encoding\t: chunked\r\n",
        "leading-space-name": b" Transfer-Encoding: chunked\r\n",
        "obs-fold": b"Transfer-Encoding:\r\n chunked\r\n",
        "obs-fold-after-x": b"X: y\r\n Transfer-Encoding: chunked\r\n",
        "chunk": b"Transfer-Encoding: chunk\r\n",
        "underscore": b"Transfer_Encoding: chunked\r\n",
        "vtab": b"Transfer-Encoding: \x0bchunked\r\n",
        "formfeed": b"Transfer-Encoding: \x0cchunked\r\n",
        "nul-after": b"Transfer-Encoding: chunked\x00\r\n",
        "nul-in-name": b"Transfer-Enc\x00oding: chunked\r\n",
        "lf-in-name": b"Transfer-Encoding\n: chunked\r\n",
        "second-x": b"Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n",
        "first-x": b"Transfer-Encoding: x\r\nTransfer-Encoding: chunked\r\n",
        "comma-x": b"Transfer-Encoding: chunked, x\r\n",
        "x-comma": b"Transfer-Encoding: x, chunked\r\n",
        "quoted": b'Transfer-Encoding: "chunked"\r\n',
        "cow": b"Transfer-Encoding: chunked\r\nTransfer-encoding: cow\r\n",
        "upper": b"TRANSFER-ENCODING: CHUNKED\r\n",
        "high-byte": b"Transfer-Encoding: chunked\xff\r\n",
        "unicode-k": b"Transfer-Encoding: chun\xe2\x84\xaaed\r\n",
        "identity-chunked": b"Transfer-Encoding: identity, chunked\r\n",
        "space-comma": b"Transfer-Encoding: chunked ,\r\n",
        "semicolon": b"Transfer-Encoding: chunked;\r\n",
        "crlf-value": b"Transfer-Encoding: \r\n",
    }
    for name, te in te_variants.items():
        # TE.TE: with Content-Length too (front end by one, back end by the other), and alone.
        c.append((f"tete-{name}-cl", post(te + b"Content-Length: 4\r\n", b"5c\r\n" + SMUGGLED + b"\r\n0\r\n\r\n")))
        c.append((f"tete-{name}", post(te, b"5\r\nhello\r\n0\r\n\r\n" + NEXT)))
    cl_variants = {
        "space-before-colon": b"Content-Length : 5\r\n",
        "leading-space-name": b" Content-Length: 5\r\n",
        "obs-fold": b"Content-Length:\r\n 5\r\n",
        "vtab": b"Content-Length: \x0b5\r\n",
        "nul": b"Content-Length: 5\x00\r\n",
        "underscore": b"Content_Length: 5\r\n",
        "upper": b"CONTENT-LENGTH: 5\r\n",
        "unicode-digit": b"Content-Length: \xd9\xa5\r\n",
        "decimal-point": b"Content-Length: 5.0\r\n",
        "exponent": b"Content-Length: 5e0\r\n",
        "quoted": b'Content-Length: "5"\r\n',
    }
    for name, cl in cl_variants.items():
        c.append((f"clcl-{name}", post(cl, b"hello" + NEXT)))
    return c


def header_oddities() -> list[tuple[str, bytes]]:
    c = []
    for ch in list(range(0x00, 0x20)) + [0x7F, 0x80, 0xFF]:
        if ch in (0x0A, 0x0D):
            continue
        c.append((f"value-byte-{ch:02x}", get(headers=H + b"X: a" + bytes([ch]) + b"b\r\n")))
    for ch in b' \t"(),/:;<=>?@[\\]{}\x00\x01\x7f\x80':
        c.append((f"name-byte-{ch:02x}", get(headers=H + b"X" + bytes([ch]) + b"Y: v\r\n")))
    c += [
        ("name-empty", get(headers=H + b": v\r\n")),
        ("name-no-colon", get(headers=H + b"X\r\n")),
        ("name-space-before-colon", get(headers=H + b"X : v\r\n")),
        ("value-colon", get(headers=H + b"X: a:b:c\r\n")),
        ("value-leading-spaces", get(headers=H + b"X:      v\r\n")),
        ("obs-fold-first", get(headers=b" X: v\r\n" + H)),
        ("obs-fold-value", get(headers=H + b"X: a\r\n b\r\n")),
        ("obs-fold-tab", get(headers=H + b"X: a\r\n\tb\r\n")),
        ("value-long", get(headers=H + b"X: " + b"v" * 8000 + b"\r\n")),
        ("name-long", get(headers=H + b"X" * 2000 + b": v\r\n")),
        ("connection-close-then-more", b"GET /echo HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n" + NEXT),
        ("http10-then-more", b"GET /echo HTTP/1.0\r\n\r\n" + NEXT),
    ]
    return c


def chunk_size_oddities() -> list[tuple[str, bytes]]:
    sizes = {
        "0x-prefix": b"0x5", "minus": b"-5", "plus": b"+5", "underscore": b"0_5", "g": b"5g",
        "empty": b"", "space-only": b" ", "huge": b"FFFFFFFFFFFFFFFFF", "int64": b"7FFFFFFFFFFFFFFF",
        "uint64": b"FFFFFFFFFFFFFFFF", "many-zeros": b"0" * 40 + b"5", "arabic-digit": b"\xd9\xa5",
        "fullwidth": b"\xef\xbc\x95", "nul": b"5\x00", "uppercase-X": b"0X5", "decimal": b"5.0",
        "semicolon-only": b";", "two-numbers": b"5 5",
    }
    c = []
    for name, size in sizes.items():
        c.append((f"chunk-size-{name}", chunked(size + b"\r\nhello\r\n0\r\n\r\n")))
    c += [
        ("chunk-data-short", chunked(b"5\r\nhell\r\n0\r\n\r\n")),
        ("chunk-data-long", chunked(b"5\r\nhello!\r\n0\r\n\r\n")),
        ("chunk-missing-last", chunked(b"5\r\nhello\r\n")),
        ("chunk-missing-final-crlf", chunked(b"5\r\nhello\r\n0\r\n")),
        ("chunk-trailer-bad-name", chunked(b"5\r\nhello\r\n0\r\nX Y: v\r\n\r\n")),
        ("chunk-trailer-obs-fold", chunked(b"5\r\nhello\r\n0\r\nX: v\r\n w\r\n\r\n")),
        ("chunk-trailer-no-colon", chunked(b"5\r\nhello\r\n0\r\nXY\r\n\r\n")),
        ("chunk-trailer-ctl", chunked(b"5\r\nhello\r\n0\r\nX: \x01\r\n\r\n")),
        ("chunk-trailer-cl", chunked(b"5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n")),
        ("chunk-trailer-then-next", chunked(b"5\r\nhello\r\n0\r\nX: v\r\n\r\n" + NEXT)),
        ("chunk-zero-then-data", chunked(b"0\r\nhello\r\n\r\n")),
        ("chunk-after-last-data", chunked(b"0\r\n\r\n5\r\nhello\r\n")),
    ]
    return c


def request_line_oddities() -> list[tuple[str, bytes]]:
    lines = {
        "double-space": b"GET  /echo HTTP/1.1", "tab-separator": b"GET\t/echo HTTP/1.1",
        "trailing-space": b"GET /echo HTTP/1.1 ", "lowercase-method": b"get /echo HTTP/1.1",
        "unknown-method": b"FOO /echo HTTP/1.1", "lowercase-version": b"GET /echo http/1.1",
        "http09": b"GET /echo HTTP/0.9", "http12": b"GET /echo HTTP/1.2", "http20": b"GET /echo HTTP/2.0",
        "http1": b"GET /echo HTTP/1", "http11x": b"GET /echo HTTP/1.1x", "no-version": b"GET /echo",
        "no-target": b"GET  HTTP/1.1", "pri": b"PRI * HTTP/2.0", "method-only": b"GET",
        "leading-space": b" GET /echo HTTP/1.1", "method-digit": b"G3T /echo HTTP/1.1",
    }
    return [(f"request-line-{k}", v + b"\r\n" + H + b"\r\n") for k, v in lines.items()]


SEEDS = [
    get(),
    post(b"Content-Length: 5\r\n", b"hello"),
    chunked(b"5;a=b\r\nhello\r\n3\r\nabc\r\n0\r\nT: v\r\n\r\n"),
    post(b"Content-Length: 3\r\n", b"abc") + chunked(BODY5),
    get(b"/echo?x=1", H + b"Connection: keep-alive\r\nAccept: */*\r\n") + get(),
]
INTERESTING = [b"\r", b"\n", b" ", b"\t", b":", b";", b",", b"0", b"f", b"\x00", b"\x7f", b"\x80", b'"',
               b"\r\n", b"\r\n\r\n", b"Transfer-Encoding: chunked\r\n", b"Content-Length: 3\r\n", b"chunked"]


def mutations(n: int = MUTATIONS) -> list[tuple[str, bytes]]:
    rng = random.Random(SEED)
    out = []
    seen = set()
    i = 0
    while len(out) < n:
        data = bytearray(SEEDS[i % len(SEEDS)])
        i += 1
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(len(data))
            op = rng.randrange(5)
            if op == 0:
                data[pos] = rng.randrange(256)
            elif op == 1:
                del data[pos]
            elif op == 2:
                data[pos:pos] = rng.choice(INTERESTING)
            elif op == 3:
                data[pos] = rng.choice(INTERESTING)[0]
            else:  # duplicate a line
                s = data.rfind(b"\n", 0, pos) + 1
                e = data.find(b"\n", pos)
                if e > s:
                    data[s:s] = data[s:e + 1]
        b = bytes(data)
        # Keep away from the debug handler's side effects, HEAD (no response body to frame) and
        # repeats.
        if any(x in b for x in (b"/hang", b"/exit", b"/sleep", b"/stream", b"HEAD")) or b in seen:
            continue
        seen.add(b)
        out.append((f"mut-{len(out):04d}", b))
    return out


def build() -> list[tuple[str, bytes]]:
    cases = (valid_cases() + issue_cases() + smuggling_cases() + header_oddities() + chunk_size_oddities()
             + request_line_oddities() + mutations())
    ids = [k for k, _ in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    return cases
