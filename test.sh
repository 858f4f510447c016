#!/usr/bin/env bash
# Runs every herdd test: unit tests (swift test), build checks (C shim rebuild, no raw system
# call outside the system layer, test hooks out of release builds, mutation list, DocC), the
# Examples/notes-api server's tests, the Hummingbird bridge's (Integrations/HerdHummingbird),
# Examples/todos-pg's (postgres-nio against a PostgreSQL cluster of its own), integration tests
# on the real binary (pytest, Tests/integration), ThreadSanitizer, and the packaging suite
# (.deb, lintian, systemd end to end). Installs what it needs first. Used as-is by .ci/run.
#
# Four lanes run side by side (the machine has 2 cores; a lane that waits on a test leaves
# the CPU to a lane that compiles). Each step's output goes to .build-ci/LANE.N.log, shown in
# full when the step fails; the table of step times is printed at the end (.build-ci/times).
# A failed build stops its lane; a failed test does not. The exit code is non-zero when any
# step of any lane failed. Stage times: docs/testing.md (Tests/ci/lanes.sh: step, check).
#   herdd     debug build, unit tests, shim rebuild, syscall check, mutation list, DocC,
#             integration tests (the files marked serial in Tests/integration/conftest.py run
#             alone, after the other lanes' compiles; the rest under pytest-xdist), the short
#             fuzzing run (Tests/fuzz/run.sh), TSan's serial tests
#   release   the shipped (static) release build, once: the strings check and the .deb use it;
#             the app .deb's binary; the ThreadSanitizer build and its tests not marked serial;
#             packaging: units, .deb + lintian, the app .deb, end to end under systemd
#   examples  notes-api, HerdHummingbird, todos-pg: one scratch path (.build-examples), so
#             herdd's modules and swift-nio & co. compile once for the three packages (the
#             longest lane: nothing else goes here)
#   ex-tests  the pytest suites of notes-api and HerdHummingbird, beside the next build
set -euo pipefail
cd "$(dirname "$0")"

need_apt=()
dpkg -s libsystemd-dev >/dev/null 2>&1 || need_apt+=(libsystemd-dev)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v systemd-socket-activate >/dev/null || need_apt+=(systemd)
command -v curl >/dev/null || need_apt+=(curl)
# ss: a socket's unsent bytes (test_static_sendfile.py, notsent-lowat).
command -v ss >/dev/null || need_apt+=(iproute2)
# /etc/mime.types (static handler types), SQLite for Examples/notes-api (GRDB).
dpkg -s media-types >/dev/null 2>&1 || need_apt+=(media-types)
dpkg -s libsqlite3-dev >/dev/null 2>&1 || need_apt+=(libsqlite3-dev)
command -v strings >/dev/null || need_apt+=(binutils)
# A C compiler for the bench's sink client (test_bench_sink.py); Swift's clang does.
command -v cc >/dev/null || command -v clang >/dev/null || command -v gcc >/dev/null || need_apt+=(gcc)
# PostgreSQL for Examples/todos-pg's tests (they run their own cluster on a unix socket).
dpkg -s postgresql >/dev/null 2>&1 || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "== installing ${need_apt[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi
python3 -c 'import pytest' 2>/dev/null || python3 -m pip install -q pytest
python3 -c 'import prometheus_client, pytest_timeout' 2>/dev/null || python3 -m pip install -q prometheus_client pytest-timeout
# httptools: Python bindings of llhttp, the reference parser of the differential test (test_http_differential.py).
python3 -c 'import httptools' 2>/dev/null || python3 -m pip install -q httptools
python3 -c 'import brotli' 2>/dev/null || python3 -m pip install -q brotli  # .br siblings in test_static.py
python3 -c 'import xdist' 2>/dev/null || python3 -m pip install -q pytest-xdist  # the parallel integration tests

. Tests/ci/lanes.sh
LOGS=.build-ci
rm -rf "$LOGS" && mkdir -p "$LOGS"
EXAMPLES_SCRATCH="$PWD/.build-examples"

# Every check in one lane reads the debug build; the shim check relinks it, so it runs before
# anything else uses the binary.
herdd_lane() {
    step "debug build" swift build --build-tests
    check "unit tests" swift test --skip-build
    step "shim rebuild" Tests/shim-rebuild.sh
    check "syscall check" Tests/syscall-check.sh
    check "mutation list applies" Tests/mutants/run.sh --check
    check "debug binary has the test hooks" check_hooks debug "$(swift build --show-bin-path)/herdd"
    check "DocC" docc_check
    local bin; bin="$(swift build --show-bin-path)/herdd"
    check "integration (xdist)" env HERDD_BIN="$bin" python3 -m pytest -q -n 3 -m "not serial" Tests/integration
    # libFuzzer targets (-sanitize=fuzzer,address; docs/fuzzing.md): the crash inputs found so
    # far replayed, then 5 s of fuzzing each. Here, while the examples lane (the longest)
    # still compiles: this lane would only wait.
    check "fuzzing (5 s per target)" Tests/fuzz/run.sh --seconds 5
    # The timing-sensitive tests (latency, fairness, balance, memory, the herd meter, paced
    # uploads) run alone, once no other lane compiles (the packaging suite may still run);
    # so do the ThreadSanitizer lane's (its other tests ran in the release lane).
    await examples-built release-built example-tests-done
    check "integration (serial)" env HERDD_BIN="$bin" python3 -m pytest -q -m serial Tests/integration
    check "ThreadSanitizer (serial tests)" Tests/tsan.sh -m serial
}

# One release build, the one that ships (static runtime, lld: packaging/build-release.sh); the
# hooks check reads it and build-deb.sh finds it up to date.
release_lane() {
    step "static release build" packaging/build-release.sh
    # A name can resolve in debug and not in release: this build is the release check too.
    check "release binary lacks the test hooks" check_hooks release .build-release-static/release/herdd
    check "release binary has its hot functions together" Tests/packaging/check_hot_layout.py .build-release-static/release/herdd
    step "app .deb build (notes-api, static)" build_app_release
    # Here, not in the examples lane: that one is the longest. Its tests that are not
    # timing-sensitive run now, beside the compiles; the serial ones at the end (herdd lane).
    step "TSan build" Tests/tsan.sh --build-only
    check "ThreadSanitizer (not serial)" Tests/tsan.sh -m "not serial"
    signal release-built
    check "packaging" Tests/packaging/run_all.sh
}

examples_lane() {
    step "notes-api build" example_build Examples/notes-api --build-tests
    check "notes-api swift test" example_unit Examples/notes-api
    signal notes-api-built
    step "HerdHummingbird build" example_build Integrations/HerdHummingbird --build-tests
    check "HerdHummingbird swift test" example_unit Integrations/HerdHummingbird
    signal hummingbird-built
    step "todos-pg build" example_build Examples/todos-pg
    check "todos-pg pytest" example_pytest Examples/todos-pg TODOS_PG_BIN todos-pg
    signal examples-built
}

# The examples' pytest suites use no SwiftPM (which would wait for the scratch path's lock
# while the next example builds): each runs here, beside the next build, off the examples
# lane (the longest).
example_tests_lane() {
    await notes-api-built
    check "notes-api pytest" example_pytest Examples/notes-api NOTES_API_BIN notes-api
    await hummingbird-built
    check "HerdHummingbird pytest" example_pytest Integrations/HerdHummingbird HB_EXAMPLE_BIN hb-example
    signal example-tests-done
}

# check_hooks debug|release BINARY: fault-injection hooks (HERDD_TEST_*) are compiled into debug
# builds only. (grep reads a file, not a pipe from strings: with pipefail, grep -q quitting
# early would fail the pipeline with SIGPIPE.)
check_hooks() {
    strings "$2" > "$LOGS/strings-$1.txt"
    if [ "$1" = debug ]; then
        grep -q HERDD_TEST_WORKER_EXIT_AT_START "$LOGS/strings-$1.txt" \
            || { echo "FAIL: the debug binary lacks the test hooks" >&2; return 1; }
    elif grep -q HERDD_TEST_ "$LOGS/strings-$1.txt"; then
        echo "FAIL: the release binary contains HERDD_TEST_* test hooks" >&2; return 1
    fi
}

# DocC catalogs of Herd, Handlers and HerdHTTP (swift-docc-plugin; it reuses the debug build).
docc_check() {
    swift package --allow-writing-to-directory .build/docs generate-documentation \
        --target Herd --target Handlers --target HerdHTTP --output-path .build/docs --warnings-as-errors >/dev/null
    test -f .build/docs/Herd.doccarchive/data/documentation/herd/herdserver.json
    test -f .build/docs/Handlers.doccarchive/data/documentation/handlers/handler.json
    test -f .build/docs/HerdHTTP.doccarchive/data/documentation/herdhttp/httprequest.json
    test -f .build/docs/Herd.doccarchive/data/documentation/herd/router.json
}

# The notes-api binary the app .deb ships (test_app_deb.sh builds it the same way; this
# build makes that one an up-to-date check), while the herdd lane still runs tests.
build_app_release() {
    packaging/build-release.sh "$PWD/Examples/notes-api" "$PWD/Examples/notes-api/.build-release-static" notes-api >/dev/null
}

# example_build DIR [ARGS]: the three example packages share one scratch path: each depends
# on herdd by path, two of them on the same swift-nio, and each would compile them again.
example_build() {
    local dir="$1"; shift
    (cd "$dir" && swift build --scratch-path "$EXAMPLES_SCRATCH" "$@")
}

# example_unit DIR: its unit tests (`swift test`; the package has a Tests directory).
example_unit() {
    (cd "$1" && swift test --skip-build --scratch-path "$EXAMPLES_SCRATCH")
}

# example_pytest DIR BINVAR PRODUCT: its pytest suite against its executable (the debug build's
# path in the scratch directory, without asking SwiftPM).
example_pytest() {
    local dir="$1" var="$2" product="$3"
    env "$var=$EXAMPLES_SCRATCH/debug/$product" python3 -m pytest -q "$dir/tests"
}

lane herdd herdd_lane
lane release release_lane
lane examples examples_lane
lane ex-tests example_tests_lane
finish_lanes
