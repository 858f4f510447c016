#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer + AddressSanitizer) of herdd's parsers: builds each target
# and runs it for N seconds on its seed corpus. docs/fuzzing.md describes the targets.
#
#   Tests/fuzz/run.sh [--seconds N] [target...]     (default: 3 s each, all targets)
#
# Prints per target the executions, executions/s and libFuzzer's coverage (cov: edges,
# ft: features, corpus size). Exits non-zero when a target crashes or breaks a property; the
# crashing input is saved as .build-fuzz/artifacts/<target>/crash-* (replay: the target's binary
# with that file as its argument). New inputs found go to .build-fuzz/corpus/<target> (not
# committed; Tests/fuzz/corpus/<target> holds the seeds, Tests/fuzz/make_seeds.py writes them).
set -euo pipefail
cd "$(dirname "$0")/../.."

ALL_TARGETS=(FuzzHTTPParser FuzzChunked FuzzStaticHeaders FuzzConfig FuzzListen)
seconds=3
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --seconds=*) seconds="${1#*=}"; shift ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")
for t in "${targets[@]}"; do
    [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || { echo "unknown target $t (known: ${ALL_TARGETS[*]})" >&2; exit 2; }
done

BUILD="${FUZZ_BUILD_PATH:-.build-fuzz}"  # a fresh path measures a cold run
# Package.swift declares the fuzz targets only with HERDD_FUZZ=1. Each product is built on its
# own: a whole-package build would also link herdd's own executable against libFuzzer's main.
export HERDD_FUZZ=1
for t in "${targets[@]}"; do
    swift build --build-path "$BUILD" --disable-index-store -Xswiftc -sanitize=fuzzer,address --product "$t" 2>&1 \
        | grep -v 'Cannot export local symbol' | grep -E 'error|warning: unre|Compiling|complete' | grep -v '^\[' || true
    [ -x "$BUILD/debug/$t" ] || { echo "build of $t failed" >&2; exit 1; }
done

# Swift's own crash backtracer reads the stack in a way ASan reports as a stack-buffer-underflow,
# which would hide the real failure: libFuzzer and ASan print the report themselves.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"

failed=()
for t in "${targets[@]}"; do
    work="$BUILD/corpus/$t"
    artifacts="$BUILD/artifacts/$t/"
    log="$BUILD/logs/$t.log"
    mkdir -p "$work" "$artifacts" "$(dirname "$log")"
    # Seeds, plus the inputs of fixed crashes (Tests/fuzz/regressions/<target>) so they are
    # replayed on every run.
    seeds=("Tests/fuzz/corpus/$t")
    [ -d "Tests/fuzz/regressions/$t" ] && seeds+=("Tests/fuzz/regressions/$t")
    start=$(date +%s)
    rc=0
    "$BUILD/debug/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
        -print_final_stats=1 -artifact_prefix="$artifacts" "$work" "${seeds[@]}" >"$log" 2>&1 || rc=$?
    took=$(( $(date +%s) - start ))
    # The last status line: "#RUNS <event> cov: N ft: N corp: N/SIZE ... exec/s: N".
    status=$(grep -aE '^#[0-9]+' "$log" | tail -1 || true)
    runs=$(grep -aoE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
    rate=$(grep -aoE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
    cov=$(sed -nE 's/.* cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+)\/.*/cov: \1 ft: \2 corpus: \3/p' <<<"$status")
    if [ "$rc" -eq 0 ]; then
        printf '%-18s ok     %ss  runs: %s  exec/s: %s  %s\n' "$t" "$took" "$runs" "$rate" "$cov"
    else
        printf '%-18s FAILED (exit %s) after %ss  runs: %s  %s\n' "$t" "$rc" "$took" "$runs" "$cov"
        grep -aE 'fuzz property violated|ERROR: (AddressSanitizer|libFuzzer)|Fatal error|SUMMARY' -A6 "$log" | head -40 || true
        ls "$artifacts" | sed "s|^|  artifact: $artifacts|" || true
        echo "  full log: $log"
        failed+=("$t")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} target(s), ${seconds}s each, no crash"
