#!/usr/bin/env bash
# The packaging tests, in order: unit checks, build the .deb (and a second, tagged version of
# it for the package-upgrade test), check the .deb, then the end-to-end test under a real
# systemd (systemd-nspawn). Called by test.sh.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
rm -f out/herdd_*.deb
Tests/packaging/test_units.sh
packaging/build-deb.sh
deb1="$(ls out/herdd_0.1.0-1_*.deb)"
HERDD_DEB_VERSION=0.1.0-2 HERDD_BUILD_TAG=e2e0000000000002 \
    HERDD_BIN="$REPO/.build-release-static/release/herdd" HERDD_NO_LINTIAN=1 packaging/build-deb.sh
deb2="$(ls out/herdd_0.1.0-2_*.deb)"
Tests/packaging/test_deb.sh "$deb1"
rm -f out/notes-api_*.deb
# a user's server (Examples/notes-api) packaged with these units; kept for the e2e test
HERDD_APP_DEB_KEEP="$REPO/out" Tests/packaging/test_app_deb.sh
app_deb="$(ls out/notes-api_1.0.0-1_*.deb)"
Tests/packaging/e2e_systemd.sh "$deb1" "$deb2" "$app_deb"
