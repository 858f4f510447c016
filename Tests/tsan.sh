#!/usr/bin/env bash
# ThreadSanitizer lane (issue 24): builds herdd with --sanitize=thread (its own scratch path,
# .build-tsan, ignored by git) and runs the integration tests where two threads meet (the
# worker's event loop and its dispatch watcher) or a connection's life spans turns and processes:
# dispatch, fairness/streams, drain, upgrade, produced bodies (a producer on another thread
# wakes the loop), overload (the watcher answers 503s). Every TSan report is written to a file
# of its own
# (TSAN_OPTIONS log_path, one per process); any report fails the lane, even if the tests pass.
#   Tests/tsan.sh [-m MARKS] [files...]   (default: the seven files below; MARKS: pytest's -m,
#                                          e.g. "not serial": test.sh runs the files' serial
#                                          tests alone at the end, the others beside the compiles)
#   Tests/tsan.sh --build-only            (the build alone: test.sh's release lane)
set -euo pipefail
cd "$(dirname "$0")/.."
# No index store: nobody browses this build, and indexing costs compile time. (A build with
# tests needs it on Linux: XCTest discovery reads it; this one has none.)
swift build --sanitize=thread --scratch-path .build-tsan --disable-index-store --product herdd
[ "${1:-}" = --build-only ] && exit 0
bin="$(swift build --sanitize=thread --scratch-path .build-tsan --disable-index-store --show-bin-path)/herdd"
reports="$(mktemp -d /tmp/herdd-tsan.XXXXXX)"
files=(Tests/integration/test_dispatch.py Tests/integration/test_http_fairness.py
       Tests/integration/test_drain.py Tests/integration/test_upgrade.py Tests/integration/test_upgrade_handshake.py
       Tests/integration/test_streamed_body.py Tests/integration/test_overload.py)
marks=()
if [ "${1:-}" = -m ]; then marks=(-m "$2"); shift 2; fi
[ $# -gt 0 ] && files=("$@")
status=0
# atexit_sleep_ms=50 (TSan's default is 1000): every exit would otherwise take a second more,
# and a worker that exits at its graceful-timeout margin would meet the master's SIGKILL.
HERDD_BIN="$bin" TSAN_OPTIONS="log_path=$reports/report halt_on_error=0 second_deadlock_stack=1 atexit_sleep_ms=50" \
    python3 -m pytest -q "${marks[@]}" "${files[@]}" || status=$?
if compgen -G "$reports/report*" >/dev/null; then
    echo "FAIL: ThreadSanitizer reports (in $reports):" >&2
    cat "$reports"/report* >&2
    exit 1
fi
rm -rf "$reports"
echo "ThreadSanitizer: no report"
exit $status
