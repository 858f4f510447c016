"""The static bench's `sink` client (bench/herdbench/sink.c), which discards response bodies in the
kernel (recv MSG_TRUNC) so that a 20 MB run measures the servers and not the client's copy
(docs/static.md). Its figures enter the bench's ratios: it must count what was served, no more,
and report a broken exchange rather than count it."""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import LOCALHOST, free_port, metrics_listener
from herdtest import metric

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "herdbench"))
import staticbench  # noqa: E402

SIZE = 3_000_000  # a few MiB: several MSG_TRUNC reads per response


@pytest.fixture
def served(herd_factory, tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "big.bin").write_bytes(bytes(range(256)) * (SIZE // 256) + b"x" * (SIZE % 256))
    port, mport = free_port(), free_port()
    herd_factory(["--workers", "2", "--listen", f"{LOCALHOST}:{port}", "--handler", f"http=static:{root}"]
                 + metrics_listener(mport))
    return staticbench.build_sink(str(tmp_path)), port, mport


def accepted(mport):
    return metric(mport, "herdd_connections_accepted_total", listener="http")


def test_sink_counts_the_bytes_of_the_responses_it_completed(served):
    sink, port, mport = served
    run = staticbench.sink(sink, port, "big.bin", 3, 1)
    assert run.err is None, run.err
    assert run.requests >= 3, run
    assert 0.9 < run.seconds < 3, run
    # Every completed response's body and head, plus at most one partial response per connection.
    head_max = 512
    assert run.requests * SIZE <= run.bytes <= (run.requests + 3) * (SIZE + head_max), run
    # The rate counts the bytes, partial responses included.
    assert staticbench.rate(run, SIZE) == pytest.approx(run.bytes / SIZE / run.seconds)


def test_sink_keep_alive_uses_its_connections_only(served):
    sink, port, mport = served
    before = accepted(mport)
    run = staticbench.sink(sink, port, "big.bin", 3, 1)
    assert run.err is None and run.requests >= 6, run
    assert accepted(mport) - before == 3


def test_sink_close_opens_a_connection_per_request(served):
    """`close`: one request per connection with `Connection: close` (the server's head must
    say it too), counted as in keep-alive; each response on a connection of its own."""
    sink, port, mport = served
    before = accepted(mport)
    run = staticbench.sink(sink, port, "big.bin", 3, 1, close=True)
    assert run.err is None, run.err
    assert run.requests >= 6, run
    head_max = 512
    assert run.requests * SIZE <= run.bytes <= (run.requests + 3) * (SIZE + head_max), run
    # The completed ones, each on its own connection, plus up to the 3 open at the end.
    n = accepted(mport) - before
    assert run.requests <= n <= run.requests + 3, (n, run)


def test_sink_reports_a_response_that_is_not_a_200(served):
    sink, port, mport = served
    run = staticbench.sink(sink, port, "missing.bin", 2, 1)
    assert run.requests == 0, run
    assert run.err is not None and run.err.startswith("sink errors: "), run
    assert "not a 200 with a Content-Length" in run.err, run


def test_sink_refuses_bad_arguments(served):
    sink, port, mport = served
    run = staticbench.sink(sink, port, "big.bin", 0, 1)
    assert run.requests == 0 and run.bytes == 0, run
    assert run.err is not None and "sink failed (2)" in run.err and "bad port, connection count or duration" in run.err, run
    # A sixth argument other than `close`: the usage, not a keep-alive run.
    p = subprocess.run([sink, str(port), "big.bin", "1", "1", "closed"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and "usage: sink PORT PATH CONNECTIONS SECONDS [close]" in p.stderr, p
