"""static:/DIR the way people deploy it (issue 25): a root symlink flipped to a new release is
followed within the stated 1 s validity with 0 errors under load, `;dotfiles=deny` refuses
/.git/config and /.env, and charset only where the type implies UTF-8 (or as configured)."""

import http.client
import os
import shutil
import subprocess
import threading
import time

from conftest import LOCALHOST, free_port, http_request, parse_responses, raw_exchange, wait_until

VALIDITY = 1.0  # StaticRoot.validityNanos; docs/static.md ("What it serves") states it


def start(herd_factory, spec):
    port = free_port()
    herd_factory(["--workers", "2", "--listen", f"{LOCALHOST}:{port}", "--handler", f"http={spec}"])
    return port


def keep_alive_load(port, path, results, stop, seconds=15.0, max_requests=20000):
    """GETs `path` on one keep-alive connection (reconnecting on close) until `stop`, appending
    (time the request was sent, status, body); bounded: at most `max_requests` requests and
    `seconds`."""
    conn = http.client.HTTPConnection(LOCALHOST, port, timeout=5)
    end = time.monotonic() + seconds
    for _ in range(max_requests):
        if stop.is_set() or time.monotonic() > end:
            break
        sent = time.monotonic()
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            results.append((sent, r.status, r.read()))
        except (OSError, http.client.HTTPException) as e:
            results.append((sent, 0, repr(e).encode()))
            conn.close()
            conn = http.client.HTTPConnection(LOCALHOST, port, timeout=5)
    conn.close()


def start_load(port, path, results, stop, connections=4, seconds=15.0):
    """`connections` threads of keep_alive_load (several connections: both workers answer)."""
    threads = [threading.Thread(target=keep_alive_load, args=(port, path, results, stop, seconds))
               for _ in range(connections)]
    for t in threads:
        t.start()
    return threads


def test_release_symlink_flip_under_load(herd_factory, tmp_path):
    for n in ("1", "2"):
        (tmp_path / f"release-{n}").mkdir()
        (tmp_path / f"release-{n}" / "v.txt").write_text(f"release {n}\n")
    os.symlink("release-1", tmp_path / "current")
    port = start(herd_factory, f"static:{tmp_path / 'current'}")
    assert http_request(port, "GET", "/v.txt").body == b"release 1\n"

    results = []  # (time, status, body)
    stop = threading.Event()
    threads = start_load(port, "/v.txt", results, stop)
    try:
        # The load runs (release 1 served) before the deploy.
        wait_until(lambda: sum(1 for _, s, _ in results[-50:] if s == 200) >= 20, 10, what="load on release 1")
        # The usual atomic deploy.
        os.symlink("release-2", tmp_path / "current.tmp")
        os.rename(tmp_path / "current.tmp", tmp_path / "current")
        flipped = time.monotonic()
        # Wait (with a deadline) until load has run well past the validity period.
        deadline = flipped + VALIDITY + 5
        while time.monotonic() < deadline and not any(t > flipped + VALIDITY + 0.5 for t, _, _ in results[-50:]):
            time.sleep(0.05)  # poll interval of the bounded wait
        # Then the old release is deleted, as a deploy script does.
        for f in (tmp_path / "release-1").iterdir():
            f.unlink()
        (tmp_path / "release-1").rmdir()
        removed = time.monotonic()
        while time.monotonic() < removed + 5 and not any(t > removed + 0.3 for t, _, _ in results[-50:]):
            time.sleep(0.05)  # poll interval of the bounded wait
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=20)
    errors = [(t, s, b) for t, s, b in results if s != 200 or b not in (b"release 1\n", b"release 2\n")]
    assert not errors, errors[:5]
    late_old = [t - flipped for t, _, b in results if b == b"release 1\n" and t > flipped + VALIDITY + 0.2]
    assert not late_old, f"old release served {late_old[:3]} s after the flip"
    assert any(b == b"release 2\n" and t > removed for t, _, b in results)
    assert len(results) > 100


def test_dotfiles_refused_when_configured(herd_factory, tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("[core]\n")
    (tmp_path / ".env").write_text("SECRET=1\n")
    (tmp_path / "index.html").write_text("<p>\n")
    deny = start(herd_factory, f"static:{tmp_path};dotfiles=deny")
    for path in ("/.git/config", "/.env", "/.git/", "/x/../.env", "/%2egit/config", "/.%65nv"):
        assert http_request(deny, "GET", path).status == 404, path
    assert http_request(deny, "GET", "/").status == 200
    allow = start(herd_factory, f"static:{tmp_path}")
    assert http_request(allow, "GET", "/.env").body == b"SECRET=1\n"


def test_charset_only_where_implied_or_configured(herd_factory, tmp_path):
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "a.svg").write_text("<svg/>")
    (tmp_path / "a.png").write_bytes(b"x")
    port = start(herd_factory, f"static:{tmp_path}")
    types = {p: http_request(port, "GET", p).header("Content-Type") for p in ("/latin1.txt", "/a.json", "/a.svg", "/a.png")}
    assert types == {"/latin1.txt": "text/plain", "/a.json": "application/json; charset=utf-8",
                     "/a.svg": "image/svg+xml; charset=utf-8", "/a.png": "image/png"}
    latin = start(herd_factory, f"static:{tmp_path};charset=iso-8859-1")
    assert http_request(latin, "GET", "/latin1.txt").header("Content-Type") == "text/plain; charset=iso-8859-1"
    assert http_request(latin, "GET", "/a.png").header("Content-Type") == "image/png"


def parse_multipart(content_type, body):
    boundary = content_type.split("boundary=", 1)[1].encode()
    parts = []
    for chunk in body.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.partition(b"\r\n\r\n")
        assert data.endswith(b"\r\n")
        fields = dict(line.split(b": ", 1) for line in head.strip(b"\r\n").split(b"\r\n"))
        parts.append((fields[b"Content-Range"].decode(), fields[b"Content-Type"].decode(), data[:-2]))
    return parts


def test_multipart_byteranges_raw_and_curl(herd_factory, tmp_path):
    data = bytes(range(256)) * 40  # 10240 bytes, every byte value (CRLF and "--" inside parts)
    (tmp_path / "d.bin").write_bytes(data)
    port = start(herd_factory, f"static:{tmp_path}")
    raw = raw_exchange(port, b"GET /d.bin HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1,100-199,-5\r\nConnection: close\r\n\r\n")
    (r,) = parse_responses(raw)
    assert r.status == 206
    ctype = r.header("Content-Type")
    assert ctype.startswith("multipart/byteranges; boundary=")
    assert int(r.header("Content-Length")) == len(r.body)
    assert parse_multipart(ctype, r.body) == [
        ("bytes 0-1/10240", "application/octet-stream", data[0:2]),
        ("bytes 100-199/10240", "application/octet-stream", data[100:200]),
        ("bytes 10235-10239/10240", "application/octet-stream", data[-5:]),
    ]
    # Refused sets (CVE-2011-3192): overlapping or too many ranges get the whole file.
    for spec in ("0-100,50-150", ",".join(f"{i * 10}-{i * 10}" for i in range(17))):
        r = http_request(port, "GET", "/d.bin", headers={"Range": "bytes=" + spec})
        assert r.status == 200 and r.body == data, spec
    # One unsatisfiable among satisfiable ones is dropped; all unsatisfiable: 416.
    r = http_request(port, "GET", "/d.bin", headers={"Range": "bytes=0-0,99999-"})
    assert r.status == 206 and r.header("Content-Range") == "bytes 0-0/10240" and r.body == data[:1]
    assert http_request(port, "GET", "/d.bin", headers={"Range": "bytes=99999-,88888-"}).status == 416
    if shutil.which("curl"):
        out = subprocess.run(["curl", "-sS", "-i", "-r", "0-9,20-29", f"http://{LOCALHOST}:{port}/d.bin"],
                             capture_output=True, timeout=30)
        assert out.returncode == 0, out.stderr
        head, _, body = out.stdout.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 206")
        ctype = next(l.split(b": ", 1)[1].decode() for l in head.split(b"\r\n") if l.lower().startswith(b"content-type:"))
        assert [p[2] for p in parse_multipart(ctype, body)] == [data[0:10], data[20:30]]


# ---- the open-file cache (docs/static.md): a change is seen within the 1 s validity -----------

SEEN_WITHIN = VALIDITY + 0.1  # a request sent this long after a change gets the new state


def watch_change(port, paths, change):
    """Load on each of `paths` (2 connections each, so both workers answer), `change()` once
    load runs, and load on until well past the validity. Returns (changed_at, {path: results})."""
    results = {p: [] for p in paths}
    stop = threading.Event()
    threads = [t for p in paths for t in start_load(port, p, results[p], stop, connections=2, seconds=12)]
    try:
        wait_until(lambda: all(len(r) >= 10 for r in results.values()), 10, what="load before the change")
        change()
        changed = time.monotonic()
        wait_until(lambda: all(sum(1 for t, _, _ in r if t > changed + SEEN_WITHIN) >= 20 for r in results.values()),
                   10, what="load past the validity")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=20)
    return changed, results


def late(results, changed):
    return [(round(t - changed, 3), s, b[:40]) for t, s, b in results if t > changed + SEEN_WITHIN]


def test_replaced_file_is_served_new_within_the_validity(herd_factory, tmp_path):
    big_old, big_new = b"A" * 40000, b"B" * 50000  # above 16 KiB: cached as an open fd
    (tmp_path / "v.txt").write_bytes(b"old\n")       # small: cached in memory
    (tmp_path / "big.bin").write_bytes(big_old)
    port = start(herd_factory, f"static:{tmp_path}")

    def replace():
        for name, data in (("v.txt", b"new\n"), ("big.bin", big_new)):
            (tmp_path / (name + ".tmp")).write_bytes(data)
            os.rename(tmp_path / (name + ".tmp"), tmp_path / name)  # a new inode, as a deploy does

    changed, results = watch_change(port, ["/v.txt", "/big.bin"], replace)
    for path, old, new in (("/v.txt", b"old\n", b"new\n"), ("/big.bin", big_old, big_new)):
        assert all(s == 200 and b in (old, new) for _, s, b in results[path]), path
        stale = [x for x in late(results[path], changed) if x[2] != new[:40]]
        assert not stale, f"{path}: old content {stale[:3]} after the validity"


def test_deleted_file_404s_within_the_validity(herd_factory, tmp_path):
    (tmp_path / "v.txt").write_bytes(b"here\n")
    (tmp_path / "big.bin").write_bytes(b"C" * 40000)
    port = start(herd_factory, f"static:{tmp_path}")
    changed, results = watch_change(port, ["/v.txt", "/big.bin"],
                                    lambda: [(tmp_path / n).unlink() for n in ("v.txt", "big.bin")])
    for path, body in (("/v.txt", b"here\n"), ("/big.bin", b"C" * 40000)):
        assert all((s, b) == (200, body) or s == 404 for _, s, b in results[path]), path
        served = [x for x in late(results[path], changed) if x[1] != 404]
        assert not served, f"{path}: a deleted file served {served[:3]} after the validity"


def test_in_place_edit_is_seen_within_the_validity(herd_factory, tmp_path):
    path = tmp_path / "v.txt"
    path.write_bytes(b"first version\n")
    inode = path.stat().st_ino
    port = start(herd_factory, f"static:{tmp_path}")
    # Rewritten in place (O_TRUNC: same inode, new size and mtime).
    changed, results = watch_change(port, ["/v.txt"], lambda: path.write_bytes(b"second, a longer version\n"))
    assert not [x for x in late(results["/v.txt"], changed) if x[2] != b"second, a longer version\n"]
    # The same size, overwritten without truncation: only mtime (and ctime) change.
    def overwrite():
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, b"THIRD!", 0)
        finally:
            os.close(fd)
    changed, results = watch_change(port, ["/v.txt"], overwrite)
    assert path.stat().st_ino == inode
    assert not [x for x in late(results["/v.txt"], changed) if x[2] != b"THIRD!, a longer version\n"]
    assert all(s == 200 for _, s, _ in results["/v.txt"])


def worker_fds(pid, under):
    """The worker's open fds on files below `under` (the served directory)."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith(str(under) + "/")
        except FileNotFoundError:
            pass  # closed meanwhile
    return n


def test_no_fd_leak_beyond_the_cache_bounds(herd_factory, tmp_path):
    # StaticFileCache.Limits.standard: 1024 entries, 128 open fds (files above 16 KiB).
    fd_bound, entries = 128, 1024
    root = tmp_path / "www"  # apart from the log files herd_factory keeps in tmp_path
    root.mkdir()
    large = [f"big{i}.bin" for i in range(fd_bound + 72)]
    small = [f"s{i}.txt" for i in range(entries + 76)]
    for name in large:
        (root / name).write_bytes(name.encode() * 3000)
    for name in small:
        (root / name).write_bytes(name.encode())
    port = free_port()
    herd = herd_factory(["--workers", "1", "--listen", f"{LOCALHOST}:{port}", "--handler", f"http=static:{root}"])
    (worker,) = herd.worker_pids()
    conn = http.client.HTTPConnection(LOCALHOST, port, timeout=5)

    def get(name):
        conn.request("GET", "/" + name)
        r = conn.getresponse()
        assert r.status == 200 and r.read()[:len(name)] == name.encode(), name

    try:
        get(small[0])
        assert worker_fds(worker, root) == 0  # a small file is cached in memory, its fd closed
        for name in large:
            get(name)
        # The cache keeps the large files open, never more than its bound (a response's own
        # duplicate is closed once sent).
        # (waited for: the last response's duplicate may be closed just after the client read it)
        wait_until(lambda: worker_fds(worker, root) == fd_bound, 2, what=f"{fd_bound} cached fds")
        # More distinct entries than the entry bound: the least recently used (the large files)
        # are evicted and their fds closed.
        for name in small:
            get(name)
        wait_until(lambda: worker_fds(worker, root) == 0, 2, what="no cached fd")
    finally:
        conn.close()
