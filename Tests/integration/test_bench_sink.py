"""The static bench's `sink` client (bench/herdbench/sink.c), which discards response bodies in the
kernel (recv MSG_TRUNC) so that a 20 MB run measures the servers and not the client's copy
(docs/static.md). Its figures enter the bench's ratios: it must count what was served, no more,
and report a broken exchange rather than count it."""

import sys
from pathlib import Path

import pytest

from conftest import LOCALHOST, free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "herdbench"))
import staticbench  # noqa: E402

SIZE = 3_000_000  # a few MiB: several MSG_TRUNC reads per response


@pytest.fixture
def served(herd_factory, tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "big.bin").write_bytes(bytes(range(256)) * (SIZE // 256) + b"x" * (SIZE % 256))
    port = free_port()
    herd_factory(["--workers", "2", "--listen", f"{LOCALHOST}:{port}", "--handler", f"http=static:{root}"])
    return staticbench.build_sink(str(tmp_path)), port


def test_sink_counts_the_bytes_of_the_responses_it_completed(served):
    sink, port = served
    run = staticbench.sink(sink, port, "big.bin", 3, 1)
    assert run.err is None, run.err
    assert run.requests >= 3, run
    assert 0.9 < run.seconds < 3, run
    # Every completed response's body and head, plus at most one partial response per connection.
    head_max = 512
    assert run.requests * SIZE <= run.bytes <= (run.requests + 3) * (SIZE + head_max), run
    # The rate counts the bytes, partial responses included.
    assert staticbench.rate(run, SIZE) == pytest.approx(run.bytes / SIZE / run.seconds)


def test_sink_reports_a_response_that_is_not_a_200(served):
    sink, port = served
    run = staticbench.sink(sink, port, "missing.bin", 2, 1)
    assert run.requests == 0, run
    assert run.err is not None and run.err.startswith("sink errors: "), run
    assert "not a 200 with a Content-Length" in run.err, run


def test_sink_refuses_bad_arguments(served):
    sink, port = served
    run = staticbench.sink(sink, port, "big.bin", 0, 1)
    assert run.requests == 0 and run.bytes == 0, run
    assert run.err is not None and "sink failed (2)" in run.err and "bad port, connection count or duration" in run.err, run
