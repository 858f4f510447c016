"""Chaos soak (`bench/run --only chaos`, issue 24 part 3): the driver of the integration test
Tests/integration/test_chaos.py (Tests/support/chaos.py) run for --chaos-seconds (default 600)
against the release build; prints the figures and the invariants that held or broke."""

import shutil
from pathlib import Path

from chaos import ChaosRun

from .common import LOGDIR


def section(herdd, cfg, tmp, log):
    workdir = Path(tmp) / "chaos"
    workdir.mkdir()
    run = ChaosRun(Path(herdd), workdir, seed=cfg.chaos_seed, log=log)
    try:
        run.run(cfg.chaos_seconds)
        # herdd's log (every master and worker of the run), kept beside the other servers' logs.
        LOGDIR.mkdir(parents=True, exist_ok=True)
        shutil.copy2(workdir / "herdd.log", LOGDIR / "chaos-herdd.log")
        bad = run.verdict()
        out = run.figures()
        out["broken_invariants"] = bad
        log(run.report())
        log("  invariants: " + ("all held" if not bad else "BROKEN:\n    " + "\n    ".join(bad)))
        return out
    finally:
        run.close()
