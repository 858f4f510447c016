"""The parts of bench/run (herdd's benchmark), one module per concern:

    common.py       run-wide state (commands, anomalies, started processes), logging,
                    HTTP probes, Prometheus parsing, number formatting
    prepare.py      installing the peers (apt/pip), finding or building herdd as shipped,
                    machine facts
    servers.py      Server (a peer's master and workers, on herdtest.ProcessTree), Peers (the
                    command lines of herdd, nginx, gunicorn)
    load.py         the sequential client, wrk (command lines, running, parsing), snapshots of
                    context switches / CPU / metrics and their deltas
    herd.py         section 1, the herd meter
    throughput.py   section 2, throughput and latency
    startup.py      start -> READY=1
    connections.py  idle keep-alive connections (the clients are bench/idle_conns.py)
    blocking.py     blocking handlers
    asyncbench.py   async handlers, against Hummingbird 2 (bench/hummingbird-peer)
    appbench.py     your own server (notes-api's routes), against Hummingbird 2 (bench/app)
    overloadbench.py  --max-queue-time under overload, against gunicorn sync
    report.py       derived tables (load distribution, memory), the printed report, the JSON

Processes, ports, the notify socket and cleanup come from Tests/support/herdtest.py, shared with
the integration tests; this package puts it on sys.path.
"""

import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO = BENCH_DIR.parent
if str(REPO / "Tests" / "support") not in sys.path:
    sys.path.insert(0, str(REPO / "Tests" / "support"))
