"""The static handler's fast ways (issue 25): files above 8 KiB sent by sendfile from the open-file
cache's own fd (shared, no dup per response) and smaller ones from memory with the head in one
send; a connection of a handler that cannot block served before it is registered in epoll, so a
`Connection: close` request that came with the handshake costs no epoll_ctl. Each must give the
same bytes as the slow ways, whatever the size, the order of arrival or the pipelining."""

import os
import re
import socket
import struct
import sys
import time

import pytest

from conftest import LOCALHOST, free_port, parse_responses, raw_exchange
from herdtest import settled, tcp_socket_info

# Around the memory/sendfile limit (8 KiB), the bench's sizes, an empty file and a large one.
SIZES = [0, 1, 1024, 8191, 8192, 8193, 16384, 16385, 300_000]


def content(size):
    return bytes((i * 31 + i // 251) % 256 for i in range(size))


@pytest.fixture
def site(herd_factory, tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    for size in SIZES:
        (root / f"f{size}.bin").write_bytes(content(size))
    port = free_port()
    herd_factory(["--workers", "2", "--listen", f"{LOCALHOST}:{port}", "--handler", f"http=static:{root}"])
    return root, port


def test_every_size_pipelined_twice_on_one_connection(site):
    # Twice: the first request of each path is a miss (the lookup), the second a hit (the
    # cache's bytes or its shared fd). HEAD in between must send no body of either kind.
    _, port = site
    reqs = b""
    for size in SIZES:
        path = f"/f{size}.bin".encode()
        reqs += b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        reqs += b"HEAD " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        reqs += b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    reqs += b"GET /f1.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with socket.create_connection((LOCALHOST, port), timeout=10) as s:
        s.sendall(reqs)
        data = b""
        while chunk := s.recv(1 << 20):
            data += chunk
    # parse_responses treats the first N as HEAD only: split by hand instead.
    out, i = [], 0
    for size in SIZES:
        for is_head in (False, True, False):
            end = data.index(b"\r\n\r\n", i) + 4
            head = data[i:end].decode("latin-1")
            assert head.startswith("HTTP/1.1 200"), head
            assert f"Content-Length: {size}\r\n" in head, head
            i = end
            if not is_head:
                out.append(data[i:i + size])
                i += size
    assert out == [content(s) for s in SIZES for _ in (0, 1)]
    last = parse_responses(data[i:])
    assert len(last) == 1 and last[0].body == content(1)


def test_ranges_of_a_sendfile_file(site):
    _, port = site
    whole = content(16385)
    for spec, part in [("0-0", whole[:1]), ("8192-16384", whole[8192:]), ("-5", whole[-5:]), ("100-", whole[100:])]:
        data = raw_exchange(port, f"GET /f16385.bin HTTP/1.1\r\nHost: x\r\nRange: bytes={spec}\r\n"
                                  "Connection: close\r\n\r\n".encode())
        (r,) = parse_responses(data)
        assert r.status == 206 and r.body == part, spec


def test_request_after_the_accept_and_with_it(site):
    # Served first: the request is usually in when the connection is accepted. When it is not
    # (the client waits after connecting), the read says EAGAIN and the registration that
    # follows must still report it when it comes.
    _, port = site
    for delay in (0, 0.2):
        with socket.create_connection((LOCALHOST, port), timeout=5) as s:
            if delay:
                time.sleep(delay)  # accepted by now, with nothing to read
            s.sendall(b"GET /f8193.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            # Keep-alive: a second request on the same connection after a pause.
            data = b""
            while data.count(b"HTTP/1.1 200") < 1 or len(data) < 8193:
                data += s.recv(65536)
            time.sleep(delay)
            s.sendall(b"GET /f1024.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            while chunk := s.recv(65536):
                data += chunk
        a, b = parse_responses(data)
        assert (a.status, a.body, b.status, b.body) == (200, content(8193), 200, content(1024)), delay


def test_half_of_a_request_then_the_rest(site):
    # The first read after the accept finds half a head: the rest comes as a later event.
    _, port = site
    with socket.create_connection((LOCALHOST, port), timeout=5) as s:
        s.sendall(b"GET /f16384.bin HT")
        time.sleep(0.2)
        s.sendall(b"TP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    (r,) = parse_responses(data)
    assert r.status == 200 and r.body == content(16384)


def test_many_close_connections_at_once(site):
    # Connection: close requests racing the accepts (some in before it, some after): every one
    # answered in full.
    _, port = site
    socks = []
    for i in range(64):
        s = socket.create_connection((LOCALHOST, port), timeout=10)
        s.sendall(f"GET /f{SIZES[i % len(SIZES)]}.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        socks.append((s, SIZES[i % len(SIZES)]))
    for s, size in socks:
        with s:
            data = b""
            while chunk := s.recv(1 << 20):
                data += chunk
        (r,) = parse_responses(data)
        assert r.status == 200 and r.body == content(size)


SO_TIMESTAMPNS = 35  # asm-generic/socket.h (SCM_TIMESTAMPNS, the control message, has the same number)


def _capture_lo():
    """A raw socket seeing every packet on lo (root or CAP_NET_RAW), or None."""
    try:
        cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
    except (PermissionError, OSError, AttributeError):
        return None
    try:
        cap.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE: a MiB arrives at once
    except OSError:
        cap.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
    cap.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)  # each packet's arrival time (recvmsg)
    cap.bind(("lo", 0))
    cap.setblocking(False)
    return cap


def _drain(cap):
    """Drops every packet captured so far."""
    while True:
        try:
            cap.recvfrom(1 << 17)
        except BlockingIOError:
            return


# The first bytes of a `Connection: close` response with a file, where the head's segment would show.
HEAD_SPAN = 256 << 10

# A gap before a data segment at least this long means a timer sent it, not the worker's call.
TIMER_GAP = 0.002  # seconds: the tail-loss probe's floor (TCP_TIMEOUT_MIN, 2 jiffies at HZ=1000)


def _server_data_segments(cap, server_port, client_port):
    """(sequence number, payload size, excuse) of the TCP data segments of one connection sent
    from `server_port` to `client_port`, in capture order, retransmissions included. The excuse
    says why the kernel may have cut the segment short whatever the server asked, else None:
    - "window": it ends exactly at the right edge of a receive window the client advertised (its
      ACK number plus its scaled window): a client starved of CPU reads late and its window
      closes. Any edge advertised so far, not only the last: an ACK the capture saw may still sit
      in the socket's backlog while the worker's sendfile holds the socket, so the kernel cut at
      the edge before it.
    - "timer": it follows a gap of TIMER_GAP or more since the previous data segment: the kernel
      sent it from a timer (the tail-loss probe transmits with Nagle and cork off, so a partial
      corked skb goes out) while the client, starved of CPU, had not yet ACKed."""
    out, wscale, edges, last = [], 0, set(), None
    for from_server, seq, ack, window, size, flags, scale, t in _connection_segments(cap, server_port, client_port):
        if not from_server:
            if flags & 0x02 and scale is not None:
                wscale = scale  # the client's SYN: its window scale (not applied to the SYN's window)
            elif flags & 0x10:
                edges.add((ack + (window << wscale)) % (1 << 32))
        elif size > 0:
            excuse = ("window" if (seq + size) % (1 << 32) in edges
                      else "timer" if last is not None and t - last >= TIMER_GAP else None)
            out.append((seq, size, excuse))
            last = t
    return out


def _first_transmissions(segments):
    """(size, excuse) of the segments in sequence order, each range once (a retransmission of
    bytes already seen is dropped), and the number of distinct bytes they cover."""
    if not segments:
        return [], 0
    base = segments[0][0]
    seen = {}  # offset from `base` -> (size, excuse), first transmission
    covered = []  # disjoint [start, end) ranges, sorted
    for seq, size, excuse in segments:
        start = (seq - base) % (1 << 32)
        if start >= 1 << 31:
            start -= 1 << 32  # before `base` (its first transmission was not captured first)
        end = start + size
        if any(a <= start and end <= b for a, b in covered):
            continue  # a retransmission of bytes already seen
        seen.setdefault(start, (size, excuse))
        merged = [(a, b) for a, b in covered if b < start or a > end]
        joined = [(a, b) for a, b in covered if not (b < start or a > end)]
        merged.append((min([start] + [a for a, _ in joined]), max([end] + [b for _, b in joined])))
        covered = sorted(merged)
    return [seen[k] for k in sorted(seen)], sum(b - a for a, b in covered)


@pytest.mark.serial
def test_large_file_with_connection_close_leaves_in_full_segments(site):
    # `Connection: close` with a file above 64 KiB goes under TCP_CORK (nginx's tcp_nopush):
    # with TCP_NODELAY and MSG_MORE alone, the head shared an skb with the first 64 KiB of the
    # file and left as a segment of its own (32768, 32768, 255, 47616, ...), one more per
    # response for the client to take (docs/static.md, "The 1 MB Connection: close gap").
    root, port = site
    (root / "big.bin").write_bytes(content(1 << 20))
    cap = _capture_lo()
    if cap is None:
        pytest.skip("no packet capture on lo (needs CAP_NET_RAW)")
    checked, missed = 0, []
    with cap:
        for attempt in range(3):  # the first request of the path is a miss (the lookup)
            _drain(cap)
            with socket.create_connection((LOCALHOST, port), timeout=10) as s:
                client_port = s.getsockname()[1]
                s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = b""
                while chunk := s.recv(1 << 20):
                    data += chunk
            (r,) = parse_responses(data)
            assert r.status == 200 and r.body == content(1 << 20)
            time.sleep(0.1)
            # This connection's segments only (not another's on the same server port), each
            # sequence range once: under load, retransmissions were counted twice.
            segments = _server_data_segments(cap, port, client_port)
            sizes, covered = _first_transmissions(segments)
            print(f"attempt {attempt}: {len(segments)} segments captured, {len(sizes)} first "
                  f"transmissions, {covered} of {len(data)} bytes, excused "
                  f"{[(n, excuse) for n, excuse in sizes if excuse]}", file=sys.stderr)
            if covered != len(data):
                missed.append(f"attempt {attempt}: {covered} of {len(data)} bytes")
                continue  # the capture missed packets: the next attempt may see them all
            checked += 1
            # The head alone would leave as a segment of a few hundred bytes within the first
            # skbs of the response (255 bytes at offset 64 KiB without the cork), so every segment
            # that starts in the first HEAD_SPAN bytes is a full one (the MSS here is tens of
            # KiB), but one the kernel cut short whatever the server asked, which is excused
            # (_server_data_segments): at the client's window edge (371 and 873 bytes with a TSan
            # build beside busy loops) or sent by a timer. Not further on: there the kernel
            # itself sometimes pushes a corked partial skb with the window open (1032 bytes with
            # PSH at offset 900 KiB, 1085 bytes as the 20th segment: 2 in 190 runs of that TSan
            # setup; 0 in 60 with this bound), which neither the head nor the cork decide; those
            # are printed.
            offsets = [sum(n for n, _ in sizes[:i]) for i in range(len(sizes))]
            unexcused = [(i, off, n) for i, ((n, excuse), off) in enumerate(zip(sizes[:-1], offsets))
                         if n <= 4096 and not excuse]
            short = [(i, n) for i, off, n in unexcused if off < HEAD_SPAN]
            if len(short) < len(unexcused):
                print(f"attempt {attempt}: short segments past the head's span (index, offset, size): "
                      f"{[u for u in unexcused if u[1] >= HEAD_SPAN]}", file=sys.stderr)
            assert not short, (attempt, short, sizes)
    if checked == 0:
        pytest.skip(f"the capture missed packets on every attempt ({'; '.join(missed)})")


def _server_segments(cap, server_port, client_port):
    """(sequence number, payload size, FIN set) of every TCP segment of one connection sent from
    `server_port` to `client_port`, in capture order, retransmissions included."""
    return [(seq, size, bool(flags & 0x01))
            for from_server, seq, _, _, size, flags, _, _ in _connection_segments(cap, server_port, client_port)
            if from_server]


def _connection_segments(cap, server_port, client_port):
    """Every TCP segment of one connection captured so far, both ways, in capture order:
    (sent by the server, sequence number, ACK number, window as sent, payload size, flags,
    window scale option or None, capture time in seconds of CLOCK_REALTIME)."""
    out = []
    while True:
        try:
            pkt, ancillary, _, addr = cap.recvmsg(1 << 17, socket.CMSG_SPACE(16))
        except BlockingIOError:
            return out
        t = None
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                sec, nsec = struct.unpack("qq", value[:16])
                t = sec + nsec / 1e9
        assert t is not None, "the capture gave no timestamp (SO_TIMESTAMPNS)"
        if addr[2] == socket.PACKET_OUTGOING or len(pkt) < 14 + 20:
            continue  # on lo each packet shows twice: out and in
        ip = pkt[14:]
        if ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        ihl = (ip[0] & 15) * 4
        total = int.from_bytes(ip[2:4], "big")
        tcp = ip[ihl:]
        if len(tcp) < 20:
            continue
        ports = (int.from_bytes(tcp[0:2], "big"), int.from_bytes(tcp[2:4], "big"))
        if ports not in ((server_port, client_port), (client_port, server_port)):
            continue
        header = (tcp[12] >> 4) * 4
        out.append((ports[0] == server_port, int.from_bytes(tcp[4:8], "big"), int.from_bytes(tcp[8:12], "big"),
                    int.from_bytes(tcp[14:16], "big"), total - ihl - header, tcp[13], _window_scale(tcp[20:header]), t))


def _window_scale(options):
    """The window scale option's shift in a TCP header's options, or None."""
    i = 0
    while i < len(options):
        kind = options[i]
        if kind == 0:
            return None  # end of the options
        if kind == 1:
            i += 1  # no-operation
            continue
        if i + 1 >= len(options) or options[i + 1] < 2:
            return None
        if kind == 3 and options[i + 1] == 3 and i + 2 < len(options):
            return options[i + 2]
        i += options[i + 1]
    return None


@pytest.mark.serial
@pytest.mark.parametrize("size", [1024, 16384, 300_000])
def test_connection_close_response_carries_its_fin(site, size):
    # A `Connection: close` response's last bytes wait for the close (MSG_MORE on an in-memory
    # body, TCP_CORK on a sendfile one), so the FIN rides in the last data segment, as with
    # nginx's tcp_nopush: no segment of its own (one fewer per exchange for both sides).
    root, port = site
    cap = _capture_lo()
    if cap is None:
        pytest.skip("no packet capture on lo (needs CAP_NET_RAW)")
    path = f"/f{size}.bin"
    # The first request of a path is a miss (the lookup); every exchange must carry its FIN.
    with cap:
        for attempt in range(3):
            _drain(cap)
            with socket.create_connection((LOCALHOST, port), timeout=10) as s:
                client_port = s.getsockname()[1]
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                data = b""
                while chunk := s.recv(1 << 20):
                    data += chunk
            (r,) = parse_responses(data)
            assert r.status == 200 and r.body == content(size)
            time.sleep(0.1)
            segs = _server_segments(cap, port, client_port)
            fins = [n for _, n, fin in segs if fin]
            data_segs = [n for _, n, _ in segs if n > 0]
            print(f"attempt {attempt}: {segs}", file=sys.stderr)
            assert sum(data_segs) >= len(data), (attempt, segs)  # the capture saw every byte
            assert fins and all(n > 0 for n in fins), (attempt, segs)


# notsent-lowat: once a connection's socket has been full, the worker's refills keep at most the
# setting unsent beyond what the kernel can send at once (TCP_NOTSENT_LOWAT). Seen from outside
# with ss: a client with a small locked receive buffer (so a small window) reads half of a large
# file, then stops. The first fill of the socket (before the limit is set, at the first EAGAIN)
# is long gone by then; the server's unsent bytes ("notsent") stay below the setting plus one
# skb (the kernel checks the limit before it starts a new one, of up to 64 KiB). With the
# system's value they are most of a send buffer, which the kernel grows to megabytes here.
BIG = 16 << 20


def _unsent_bytes(server_port, client_port):
    out = tcp_socket_info(f"sport = :{server_port} and dport = :{client_port}")
    m = re.search(r"notsent:(\d+)", out)
    assert "cwnd:" in out, f"no such socket in ss's answer: {out!r}"
    return int(m.group(1)) if m else 0


@pytest.mark.parametrize("setting, most, least", [(None, 16384 + 65536, 0), ("32k", 32768 + 65536, 0),
                                                  ("0", None, 512 << 10)])
def test_refills_leave_little_unsent(herd_factory, tmp_path, setting, most, least):
    root = tmp_path / "www"
    root.mkdir()
    body = os.urandom(BIG)
    (root / "big.bin").write_bytes(body)
    port = free_port()
    herd_factory(["--workers", "1", "--listen", f"{LOCALHOST}:{port}", "--handler", f"http=static:{root}"]
                 + (["--notsent-lowat", setting] if setting is not None else []))
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)  # locked: no window growth
    s.settimeout(10)
    with s:
        s.connect((LOCALHOST, port))
        s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        client_port = s.getsockname()[1]
        data = b""
        while len(data) < BIG // 2:
            chunk = s.recv(1 << 20)
            assert chunk, "closed early"
            data += chunk
        # The client stops reading: its window closes and the server's socket stops moving
        # (three equal samples over half a second, at most 5 s).
        last = settled(lambda: _unsent_bytes(port, client_port), tolerance=0, interval=0.25, timeout=5)
        if most is not None:
            assert last <= most, f"{last} bytes unsent with notsent-lowat {setting or 'default'}"
        if least is not None:
            assert last >= least, f"only {last} bytes unsent without a limit: the test shows nothing here"
        # Nothing is lost on the way: the whole file arrives once the client reads on.
        while chunk := s.recv(1 << 20):
            data += chunk
    (r,) = parse_responses(data)
    assert r.status == 200 and len(r.body) == BIG and r.body == body
