"""static:/DIR as an nginx user expects it: ranges (curl -r, curl -C -), ETag and the conditional
requests, the directory redirect, precompressed siblings (curl --compressed), MIME types from
/etc/mime.types. Every status and header, HEAD included, with curl and with Python clients."""

import gzip
import os
import re
import subprocess

import brotli
import pytest

from conftest import LOCALHOST, free_port, http_request, parse_responses, raw_exchange, wait_until

DATA = bytes((i * 7 + i // 256) % 256 for i in range(10000))
CSS = b"body { color: red }\n" * 50
JS = b"console.log('hello');\n" * 40


@pytest.fixture
def site(herd_factory, tmp_path):
    root = tmp_path / "www"
    (root / "sub").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "my dir").mkdir()
    (root / "data.bin").write_bytes(DATA)
    (root / "a.css").write_bytes(CSS)
    (root / "a.css.gz").write_bytes(gzip.compress(CSS))
    (root / "app.js").write_bytes(JS)
    (root / "app.js.gz").write_bytes(gzip.compress(JS))
    (root / "app.js.br").write_bytes(brotli.compress(JS))
    (root / "page.txt").write_text("plain\n")
    (root / "sub" / "index.html").write_text("<h1>sub</h1>\n")
    (root / "my dir" / "index.html").write_text("<h1>spaced</h1>\n")
    for name in ("doc.odt", "font.woff2", "mod.wasm", "pic.PNG", "noext", "x.unknownext"):
        (root / name).write_bytes(b"x")
    port = free_port()
    herd_factory(["--workers", "2", "--listen", f"{LOCALHOST}:{port}", "--handler", f"http=static:{root}"])

    class Site:
        pass
    s = Site()
    s.root, s.port, s.url = root, port, f"http://{LOCALHOST}:{port}"
    return s


def req(site, path, method="GET", **headers):
    return http_request(site.port, method, path, headers={k.replace("_", "-"): v for k, v in headers.items()})


def etag_of(path):
    st = os.stat(path)
    return '"%x-%x-%x"' % (int(st.st_mtime), st.st_size, st.st_ino)


def curl(*args):
    r = subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


# ---- ranges ---------------------------------------------------------------------------------

def test_curl_range_requests(site):
    for spec, first, last in [("0-99", 0, 99), ("9990-", 9990, 9999), ("-100", 9900, 9999),
                              ("5000-5000", 5000, 5000), ("9000-20000", 9000, 9999)]:
        out = curl("-D", "-", "-r", spec, f"{site.url}/data.bin")
        head, _, body = out.partition(b"\r\n\r\n")
        head += b"\r\n"
        assert head.startswith(b"HTTP/1.1 206 Partial Content"), (spec, head)
        assert f"\r\nContent-Range: bytes {first}-{last}/10000\r\n".encode() in head, (spec, head)
        assert f"\r\nContent-Length: {last - first + 1}\r\n".encode() in head, (spec, head)
        assert b"\r\nAccept-Ranges: bytes\r\n" in head
        assert body == DATA[first:last + 1], spec


def test_curl_resumes_a_download(site, tmp_path):
    out = tmp_path / "data.part"
    out.write_bytes(DATA[:3217])  # an interrupted download
    code = curl("-C", "-", "-o", str(out), "-w", "%{http_code}", f"{site.url}/data.bin")
    assert code == b"206"
    assert out.read_bytes() == DATA
    # Already complete: curl asks for bytes=10000-, gets 416 and keeps the file as it is.
    code = subprocess.run(["curl", "-s", "-C", "-", "-o", str(out), "-w", "%{http_code}", f"{site.url}/data.bin"],
                          capture_output=True, timeout=30).stdout
    assert code == b"416" and out.read_bytes() == DATA


def test_range_statuses_and_headers(site):
    etag = etag_of(site.root / "data.bin")
    r = req(site, "/data.bin", Range="bytes=10000-")
    assert r.status == 416 and r.header("Content-Range") == "bytes */10000", r
    assert req(site, "/data.bin", Range="bytes=-0").status == 416
    assert req(site, "/page.txt", Range="bytes=0-").status == 206
    # Malformed or overlapping ranges, other units: the whole file (several ranges:
    # test_static_deploy.py, multipart/byteranges).
    for value in ("bytes=0-5,3-6", "bytes=5-1", "bytes=x-y", "items=0-1", "bytes=", "0-99"):
        r = req(site, "/data.bin", Range=value)
        assert r.status == 200 and r.body == DATA and r.header("Content-Range") is None, (value, r)
    # HEAD: Range does not apply; the headers of a plain GET.
    r = req(site, "/data.bin", "HEAD", Range="bytes=0-9")
    assert r.status == 200 and r.body == b"", r
    assert r.header("Content-Length") == "10000" and r.header("Accept-Ranges") == "bytes"
    assert r.header("ETag") == etag and r.header("Content-Range") is None
    # If-Range: a strong match or the exact Last-Modified date keeps the range; else 200.
    lm = req(site, "/data.bin", "HEAD").header("Last-Modified")
    for if_range, status in [(etag, 206), ('"stale"', 200), ("W/" + etag, 200), (lm, 206),
                             ("Mon, 01 Jan 2001 00:00:00 GMT", 200), ("garbage", 200)]:
        r = req(site, "/data.bin", Range="bytes=10-19", If_Range=if_range)
        assert r.status == status, (if_range, r)
        assert r.body == (DATA[10:20] if status == 206 else DATA)


# ---- validators -----------------------------------------------------------------------------

def test_etag_and_conditional_requests(site):
    path = site.root / "page.txt"
    etag = etag_of(path)
    r = req(site, "/page.txt")
    assert r.status == 200 and r.header("ETag") == etag, r
    assert re.fullmatch(r'"[0-9a-f]+-[0-9a-f]+-[0-9a-f]+"', etag)
    lm = r.header("Last-Modified")
    assert lm.endswith(" GMT")

    not_modified = [
        {"If-None-Match": etag},
        {"If-None-Match": f'"other", {etag}'},
        {"If-None-Match": "*"},
        {"If-None-Match": "W/" + etag},  # weak comparison
        {"If-Modified-Since": lm},
        {"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"},
    ]
    for headers in not_modified:
        for method in ("GET", "HEAD"):
            r = http_request(site.port, method, "/page.txt", headers=headers)
            assert r.status == 304 and r.body == b"", (method, headers, r)
            assert r.header("ETag") == etag and r.header("Last-Modified") == lm
            assert r.header("Content-Length") is None
    modified = [
        {"If-None-Match": '"other"'},
        # If-None-Match wins over If-Modified-Since, even when the date would say 304.
        {"If-None-Match": '"other"', "If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"},
        {"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"},
        {"If-Modified-Since": "not a date"},
        {"If-Match": etag},
        {"If-Unmodified-Since": lm},
    ]
    for headers in modified:
        r = http_request(site.port, "GET", "/page.txt", headers=headers)
        assert r.status == 200 and r.body == b"plain\n", (headers, r)
    for headers in ({"If-Match": '"other"'}, {"If-Match": "W/" + etag},
                    {"If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}):
        assert http_request(site.port, "GET", "/page.txt", headers=headers).status == 412, headers
    # A new version of the file: a new tag, the old one no longer matches (once the open-file
    # cache's 1 s validity has passed: docs/static.md).
    tmp = site.root / "page.txt.new"
    tmp.write_text("changed\n")
    os.replace(tmp, path)
    r = wait_until(lambda: (lambda r: r if r.status == 200 else None)(req(site, "/page.txt", If_None_Match=etag)),
                   3, what="the new version")
    assert r.body == b"changed\n" and r.header("ETag") == etag_of(path) != etag


def test_curl_conditional_get(site, tmp_path):
    out = tmp_path / "page.txt"
    assert curl("-o", str(out), "-R", "-w", "%{http_code}", f"{site.url}/page.txt") == b"200"
    # -z FILE sends If-Modified-Since from the file's mtime (-R kept the server's date).
    assert curl("-z", str(out), "-o", "/dev/null", "-w", "%{http_code}", f"{site.url}/page.txt") == b"304"
    etag_file = tmp_path / "etag"
    curl("--etag-save", str(etag_file), "-o", "/dev/null", f"{site.url}/page.txt")
    assert curl("--etag-compare", str(etag_file), "-o", "/dev/null", "-w", "%{http_code}",
                f"{site.url}/page.txt") == b"304"


# ---- directories ----------------------------------------------------------------------------

def test_directory_redirect_and_trailing_slash(site):
    for method in ("GET", "HEAD"):
        r = req(site, "/sub", method)
        assert r.status == 301 and r.header("Location") == "/sub/", (method, r)
    assert req(site, "/sub?a=1&b=2").header("Location") == "/sub/?a=1&b=2"
    assert req(site, "/my%20dir").header("Location") == "/my%20dir/"
    r = req(site, "/sub/")
    assert r.status == 200 and r.body == b"<h1>sub</h1>\n"
    assert r.header("Content-Type") == "text/html"
    assert req(site, "/my%20dir/").body == b"<h1>spaced</h1>\n"
    assert req(site, "/empty/").status == 404  # no index.html, no listing
    assert req(site, "/page.txt/").status == 404
    assert req(site, "/page.txt").status == 200
    # curl -L follows the redirect.
    assert curl("-L", f"{site.url}/sub") == b"<h1>sub</h1>\n"


# ---- precompressed siblings -----------------------------------------------------------------

def test_curl_compressed(site):
    out = curl("-D", "-", "--compressed", f"{site.url}/app.js")
    head, _, body = out.partition(b"\r\n\r\n")
    head += b"\r\n"
    assert body == JS  # curl decoded it
    assert b"\r\nContent-Encoding: br\r\n" in head and b"\r\nVary: Accept-Encoding\r\n" in head, head
    assert b"\r\nContent-Type: text/javascript; charset=utf-8\r\n" in head, head
    out = curl("-D", "-", "-H", "Accept-Encoding: gzip", "--compressed", f"{site.url}/a.css")
    head, _, body = out.partition(b"\r\n\r\n")
    head += b"\r\n"
    assert body == CSS and b"\r\nContent-Encoding: gzip\r\n" in head, head


def test_precompressed_siblings(site):
    gz, br = (site.root / "app.js.gz").read_bytes(), (site.root / "app.js.br").read_bytes()
    cases = [
        ("gzip", "gzip", gz), ("gzip, br", "br", br), ("br;q=0, gzip", "gzip", gz),
        ("x-gzip", "gzip", gz), ("*", "br", br), ("gzip;q=0", None, JS), ("identity", None, JS),
        ("deflate", None, JS),
    ]
    for accept, encoding, body in cases:
        for method in ("GET", "HEAD"):
            r = req(site, "/app.js", method, Accept_Encoding=accept)
            assert r.status == 200 and r.header("Content-Encoding") == encoding, (accept, r)
            assert r.header("Vary") == "Accept-Encoding", (accept, r)
            assert r.header("Content-Type") == "text/javascript; charset=utf-8"
            assert r.header("Content-Length") == str(len(body))
            assert r.body == (body if method == "GET" else b"")
    # Each representation has its own validators.
    sibling = {"gzip": "app.js.gz", "br": "app.js.br", None: "app.js"}
    for accept, encoding, _ in cases[:2] + cases[5:6]:
        assert req(site, "/app.js", Accept_Encoding=accept).header("ETag") == etag_of(site.root / sibling[encoding])
    # Without Accept-Encoding (http.client sends "identity"; a raw request sends none): the
    # file itself, no Vary.
    (r,) = parse_responses(raw_exchange(site.port, b"GET /app.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert r.body == JS and r.header("Content-Encoding") is None and r.header("Vary") is None
    # No sibling: no Vary.
    assert req(site, "/page.txt", Accept_Encoding="gzip").header("Vary") is None
    # Ranges and conditionals apply to the compressed representation.
    r = req(site, "/app.js", Accept_Encoding="gzip", Range="bytes=0-9")
    assert r.status == 206 and r.body == gz[:10] and r.header("Content-Range") == f"bytes 0-9/{len(gz)}"
    r = req(site, "/app.js", Accept_Encoding="gzip", If_None_Match=etag_of(site.root / "app.js.gz"))
    assert r.status == 304 and r.header("Vary") == "Accept-Encoding"


# ---- content types --------------------------------------------------------------------------

def mime_types_file():
    table = {}
    with open("/etc/mime.types") as f:
        for line in f:
            words = line.split("#", 1)[0].split()
            if len(words) >= 2 and "/" in words[0]:
                for ext in words[1:]:
                    table.setdefault(ext.lower(), words[0].lower())
    return table


def test_content_types_from_etc_mime_types(site):
    # test.sh installs media-types, which owns /etc/mime.types.
    table = mime_types_file()
    assert table["odt"] == "application/vnd.oasis.opendocument.text"
    for name, ext in [("doc.odt", "odt"), ("font.woff2", "woff2"), ("mod.wasm", "wasm"), ("pic.PNG", "png")]:
        r = req(site, "/" + name)
        assert r.status == 200 and r.header("Content-Type") == table[ext], (name, r)
    assert req(site, "/a.css").header("Content-Type") == "text/css"
    for name in ("noext", "x.unknownext"):
        assert req(site, "/" + name).header("Content-Type") == "application/octet-stream"


def test_other_methods_and_errors(site):
    r = req(site, "/page.txt", "POST")
    assert r.status == 405 and r.header("Allow") == "GET, HEAD"
    assert req(site, "/missing.txt").status == 404
    assert req(site, "/missing.txt", "HEAD").status == 404
