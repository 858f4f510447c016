#!/usr/bin/env bash
# Stress mode for the tests that are sensitive to scheduling (issue 24): loops pytest over the
# dispatch, fairness and stream tests while CPU busy-loops compete with herdd for the cores.
# Not part of ./test.sh (it is long by design). Bounded: at most RUNS runs and MINUTES minutes;
# the busy-loops are this script's own children, ended by PID on exit, pass or fail.
#
#   Tests/stress.sh [--runs N] [--minutes M] [--busy K] [--] [pytest selection...]
#
# Default selection: test_http_fairness.py::test_long_stream_leaves_room_for_other_connections
# and the dispatch tests (test_dispatch.py). HERDD_BIN: the binary to test (default: the debug
# build). Prints one line per run and a summary "runs R, failures F"; exits 1 if any failed.
# Failed runs keep their pytest output in the directory printed at the start.
set -uo pipefail
cd "$(dirname "$0")/.."
runs=200 minutes=120 busy=3
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs="$2"; shift 2 ;;
        --minutes) minutes="$2"; shift 2 ;;
        --busy) busy="$2"; shift 2 ;;
        --) shift; break ;;
        *) break ;;
    esac
done
selection=("$@")
[ ${#selection[@]} -eq 0 ] && selection=(
    "Tests/integration/test_http_fairness.py::test_long_stream_leaves_room_for_other_connections"
    Tests/integration/test_dispatch.py)
export HERDD_BIN="${HERDD_BIN:-$(swift build --show-bin-path)/herdd}"
out="$(mktemp -d /tmp/herdd-stress.XXXXXX)"
echo "stress: $runs runs at most, $minutes min at most, $busy busy-loops; binary $HERDD_BIN; logs in $out"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT
# A signal ends the whole run (the EXIT trap ends the busy-loops). pytest runs in the background
# and is waited for, so that the trap runs at once instead of after the current run; it gets
# SIGINT, which lets its fixtures end the servers they started.
trap 'interrupted=1; [ -n "${run_pid:-}" ] && kill -INT "$run_pid" 2>/dev/null' INT TERM
interrupted=0
# Each busy-loop ends by itself after the time bound too (timeout), should this script be killed.
for _ in $(seq "$busy"); do
    timeout "$((minutes * 60 + 60))" python3 -c 'while True: pass' &
    pids+=($!)
done

end=$(( $(date +%s) + minutes * 60 ))
done_runs=0 failures=0
for i in $(seq "$runs"); do
    [ "$(date +%s)" -ge "$end" ] && { echo "stress: time bound reached"; break; }
    t0=$(date +%s)
    python3 -m pytest -q -x -p no:cacheprovider "${selection[@]}" > "$out/run-$i.log" 2>&1 &
    run_pid=$!
    wait "$run_pid"; rc=$?
    # A signal interrupts `wait`: wait again for pytest to finish its clean-up.
    [ "$interrupted" -eq 1 ] && { wait "$run_pid" 2>/dev/null; echo "stress: interrupted during run $i"; break; }
    if [ "$rc" -eq 0 ]; then
        echo "run $i: ok ($(( $(date +%s) - t0 )) s)"
        rm -f "$out/run-$i.log"
    else
        failures=$((failures + 1))
        echo "run $i: FAILED ($(( $(date +%s) - t0 )) s): $(grep -m1 -E '^(FAILED|ERROR)' "$out/run-$i.log")"
        echo "    $(grep -m1 -E '^E ' "$out/run-$i.log" | cut -c1-200)"
    fi
    done_runs=$i
done
echo "stress: runs $done_runs, failures $failures (busy-loops $busy, load $(cut -d' ' -f1-3 /proc/loadavg))"
[ "$failures" -eq 0 ]
