"""Chaos under load, nothing lost (issue 24, part 3): 60 s of HUP, TTIN, TTOU, USR2, kill -9 and
SIGSTOP of workers (and --max-requests recycling) against keep-alive and `Connection: close`
clients of streams, uploads, static files and blocking handlers. The driver and the invariants
are in Tests/support/chaos.py (shared with `bench/run --only chaos`); docs/connections.md,
"Part 3: chaos". The seed is printed; HERDD_CHAOS_SEED replays one, HERDD_CHAOS_SECONDS changes
the length.
"""

from __future__ import annotations

import os

from conftest import HERDD_BIN

from chaos import ChaosRun


def test_chaos_under_load_nothing_lost(tmp_path):
    seed = os.environ.get("HERDD_CHAOS_SEED")
    run = ChaosRun(HERDD_BIN, tmp_path, seed=int(seed) if seed else None)
    try:
        run.run(float(os.environ.get("HERDD_CHAOS_SECONDS", "60")))
        report = run.report()
        print(report)
        bad = run.verdict()
        assert not bad, "\n".join(bad + [report, run.log_tail(40)])
        f = run.figures()
        # The chaos happened: every kind of action, kills that cut connections, recycling.
        assert {"hup", "usr2", "kill9", "stop"} <= set(f["chaos"]), f["chaos"]
        assert f["worker_exits"].get("max-requests", 0) > 0, f["worker_exits"]
        assert f["worker_exits"].get("timeout", 0) > 0, f["worker_exits"]
        assert f["final_exit"] == 0
        assert all(f["ok"].get(k, 0) > 20 for k in ("pid", "sleep", "stream", "echo", "static")), f["ok"]
    finally:
        run.close()
