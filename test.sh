#!/usr/bin/env bash
# Runs every herdd test: unit tests (swift test), build checks (C shim rebuild, no raw system
# call outside the system layer, test hooks out of release builds, mutation list, DocC), the
# Examples/notes-api server's tests, the Hummingbird bridge's (Integrations/HerdHummingbird),
# Examples/todos-pg's (postgres-nio against a PostgreSQL cluster of its own), integration tests
# on the real binary (pytest, Tests/integration) and the packaging suite (.deb, lintian, systemd end to end). Installs
# what it needs first. Used as-is by .ci/run.
set -euo pipefail
cd "$(dirname "$0")"

need_apt=()
dpkg -s libsystemd-dev >/dev/null 2>&1 || need_apt+=(libsystemd-dev)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v systemd-socket-activate >/dev/null || need_apt+=(systemd)
command -v curl >/dev/null || need_apt+=(curl)
# /etc/mime.types (static handler types), SQLite for Examples/notes-api (GRDB).
dpkg -s media-types >/dev/null 2>&1 || need_apt+=(media-types)
dpkg -s libsqlite3-dev >/dev/null 2>&1 || need_apt+=(libsqlite3-dev)
command -v strings >/dev/null || need_apt+=(binutils)
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

echo "== swift build (debug) and unit tests"
swift build --build-tests
swift test --skip-build

echo "== the C shim: an edit to Sources/CHerdSys/include/shim.h rebuilds its users"
Tests/shim-rebuild.sh

echo "== the system layer: no raw system call outside Sources/HerdSys"
Tests/syscall-check.sh

echo "== swift build -c release (names can resolve in debug and not in release)"
swift build -c release --product herdd
# Fault-injection hooks (HERDD_TEST_*) are compiled into debug builds only (the tests need them).
# (grep reads a file, not a pipe from strings: with pipefail, grep -q quitting early would fail
# the pipeline with SIGPIPE.)
strings "$(swift build --show-bin-path)/herdd" > .build/strings-debug.txt
strings "$(swift build -c release --show-bin-path)/herdd" > .build/strings-release.txt
grep -q HERDD_TEST_WORKER_EXIT_AT_START .build/strings-debug.txt \
    || { echo "FAIL: the debug binary lacks the test hooks" >&2; exit 1; }
if grep -q HERDD_TEST_ .build/strings-release.txt; then
    echo "FAIL: the release binary contains HERDD_TEST_* test hooks" >&2; exit 1
fi

echo "== mutation list still applies (the mutation run itself: Tests/mutants/run.sh, slow)"
Tests/mutants/run.sh --check

echo "== documentation: DocC catalogs of Herd, Handlers and HerdHTTP (swift-docc-plugin)"
swift package --allow-writing-to-directory .build/docs generate-documentation \
    --target Herd --target Handlers --target HerdHTTP --output-path .build/docs --warnings-as-errors >/dev/null
test -f .build/docs/Herd.doccarchive/data/documentation/herd/herdserver.json
test -f .build/docs/Handlers.doccarchive/data/documentation/handlers/handler.json
test -f .build/docs/HerdHTTP.doccarchive/data/documentation/herdhttp/httprequest.json
test -f .build/docs/Herd.doccarchive/data/documentation/herd/router.json

echo "== Examples/notes-api: a server of its own on the Herd library (GRDB, SQLite)"
(cd Examples/notes-api && swift build --build-tests && swift test --skip-build)
NOTES_API_BIN="$(cd Examples/notes-api && swift build --show-bin-path)/notes-api" \
    python3 -m pytest -q Examples/notes-api/tests

echo "== Integrations/HerdHummingbird: Hummingbird 2's router served by herdd (debug build only: a few minutes)"
(cd Integrations/HerdHummingbird && swift build --build-tests && swift test --skip-build)
HB_EXAMPLE_BIN="$(cd Integrations/HerdHummingbird && swift build --show-bin-path)/hb-example" \
    python3 -m pytest -q Integrations/HerdHummingbird/tests

echo "== Examples/todos-pg: async routes on postgres-nio + AsyncHTTPClient, a real PostgreSQL (first build: minutes)"
(cd Examples/todos-pg && swift build)
TODOS_PG_BIN="$(cd Examples/todos-pg && swift build --show-bin-path)/todos-pg" \
    python3 -m pytest -q Examples/todos-pg/tests

echo "== integration tests (real binary, systemd-socket-activate, 127.0.0.1 only)"
HERDD_BIN="$(swift build --show-bin-path)/herdd" python3 -m pytest -q Tests/integration

echo "== ThreadSanitizer: herdd built with --sanitize=thread, the dispatch/fairness/drain/upgrade tests, no report"
Tests/tsan.sh

echo "== packaging: systemd units, .deb build + lintian, end-to-end under a real systemd (nspawn)"
Tests/packaging/run_all.sh
