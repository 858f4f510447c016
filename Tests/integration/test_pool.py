"""Dynamic pool (issue 3, optional part): --min-spare / --max-spare / --max-workers."""

from __future__ import annotations

import threading

from conftest import LOCALHOST, free_ports, http_get, run_herdd


def test_dynamic_pool_grows_when_no_worker_is_idle_and_shrinks_back(herd_factory):
    port = free_ports(1)[0]
    h = herd_factory(["--workers", "1", "--min-spare", "1", "--max-spare", "1", "--max-workers", "3",
                      "--listen", f"{LOCALHOST}:{port}", "--handler", "http=debug"])
    h.wait_workers(1)
    results = []
    t = threading.Thread(target=lambda: results.append(http_get(port, "/sleep/3000", timeout=15).status))
    t.start()
    # The only worker is busy: no idle worker left, below min-spare 1 -> the master adds one.
    grown = h.wait_log("resize", timeout=5, reason="min-spare")[0]
    assert grown["workers"] == "2"
    h.wait_workers(2, timeout=5)
    assert http_get(port, "/").status == 200  # served by the new idle worker meanwhile
    t.join(15)
    assert results == [200]
    # Both idle now, above max-spare 1 -> back to --workers 1.
    shrunk = h.wait_log("resize", timeout=6, reason="max-spare")[0]
    assert shrunk["workers"] == "1"
    h.wait_workers(1, timeout=10)
    assert h.stop() == 0


def test_pool_settings_are_checked(tmp_path):
    p = run_herdd(["--workers", "4", "--max-workers", "2"])
    assert p.returncode == 64 and "max-workers" in p.stderr
    p = run_herdd(["--min-spare", "3", "--max-spare", "2"])
    assert p.returncode == 64 and "min-spare" in p.stderr
