"""The static bench's paired statistics (bench/herdbench/staticbench.py): pure logic, no server."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "herdbench"))
import staticbench  # noqa: E402


def test_paired_summary_of_a_steady_lead():
    s = staticbench.paired_summary([1.10, 1.12, 1.08, 1.11, 1.09, 1.13])
    assert s.median == 1.105 and s.ahead == 6 and s.rounds == 6
    # Every resample's median lies within the rounds' range, so the interval does too.
    assert 1.08 <= s.low <= s.median <= s.high <= 1.13
    assert s.low > 1.0
    assert str(s) == f"1.10 ({s.low:.2f}-{s.high:.2f}), 6/6 ahead"


def test_paired_summary_of_parity_spans_one():
    # The 1 MB close rounds of the 2026-12-04 section: a median below 1 whose interval reaches 1.
    rounds = [0.983, 0.963, 1.077, 0.927, 0.923, 0.909, 0.953, 0.924, 0.940, 1.080]
    s = staticbench.paired_summary(rounds)
    assert s.ahead == 2 and s.rounds == 10
    assert s.low < s.median < 1.0 < s.high


def test_paired_summary_is_repeatable_and_skips_missing_rounds():
    rounds = [0.9, 1.3, None, 1.0, 1.1]
    assert staticbench.paired_summary(rounds) == staticbench.paired_summary(rounds)
    assert staticbench.paired_summary(rounds).rounds == 4
    assert staticbench.paired_summary([]) is None and staticbench.paired_summary([None]) is None
    one = staticbench.paired_summary([0.97])
    assert (one.median, one.low, one.high, one.ahead) == (0.97, 0.97, 0.97, 0)


def test_table_shows_interval_and_rounds_ahead():
    results = {"1m.bin close c8": {"nginx": [(100.0, 10.0), (200.0, 10.0)],
                                   "herdd": [(110.0, 9.0), (190.0, 11.0)]}}
    lines = staticbench.table(results, ["nginx", "herdd"]).splitlines()
    assert lines[1] == "|" + "---|" * 8
    assert lines[2].startswith("| 1m.bin close c8 | 150 | 10.0 | 150 | 10.0 | 1.00 | ")
    assert "1/2 ahead" in lines[2] and "(0.95-1.10)" in lines[2]
