#!/usr/bin/env bash
# Checks a built herdd .deb (packaging/build-deb.sh) without installing it: Depends limited
# to libc6 and libsystemd0 (libstdc++ and libgcc, which the static Swift runtime needs, are
# linked statically too); files, conffile, unit files, maintainer scripts; lintian without errors.
#   Tests/packaging/test_deb.sh [out/herdd_VERSION_ARCH.deb]
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEB="${1:-$(ls -t "$REPO"/out/herdd_*.deb 2>/dev/null | head -1)}"
[ -f "$DEB" ] || { echo "test_deb: no .deb (run packaging/build-deb.sh first)"; exit 2; }
passed=0; failed=0
ok()   { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
check() { local what="$1"; shift; if "$@"; then ok "$what"; else fail "$what"; fi; }
echo "== $DEB"
ctl="$(mktemp -d)"; trap 'rm -rf "$ctl"' EXIT
dpkg-deb -e "$DEB" "$ctl"
files="$(dpkg-deb -c "$DEB" | awk '{print $6}')"

deps="$(dpkg-deb -f "$DEB" Depends)"
echo "     Depends: $deps"
extra="$(printf '%s\n' "$deps" | tr ',' '\n' | sed 's/^ *//; s/ .*//' | grep -vxE 'libc6|libsystemd0' || true)"
check "Depends only libc6, libsystemd0 (got: $deps)" test -z "$extra"
check "Depends has libsystemd0 and libc6" bash -c "grep -q 'libsystemd0' <<<'$deps' && grep -q 'libc6' <<<'$deps'"
check "Section httpd" test "$(dpkg-deb -f "$DEB" Section)" = httpd
for f in ./usr/bin/herdd ./etc/herdd/herdd.conf ./lib/systemd/system/herdd.service \
         ./lib/systemd/system/herdd.socket ./lib/systemd/system/herdd-metrics.socket \
         ./usr/share/man/man8/herdd.8.gz ./usr/share/doc/herdd/copyright; do
    check "contains $f" grep -qxF "$f" <<<"$files"
done
check "conffile /etc/herdd/herdd.conf" grep -qxF /etc/herdd/herdd.conf "$ctl/conffiles"
check "postinst enables the sockets" grep -q "deb-systemd-helper enable 'herdd.socket'" "$ctl/postinst"
check "postinst starts only the sockets" grep -q "deb-systemd-invoke start 'herdd-metrics.socket' 'herdd.socket'" "$ctl/postinst"
check "postinst never starts/restarts herdd.service" bash -c "! grep -E 'deb-systemd-invoke (start|restart).*herdd.service' '$ctl/postinst'"
check "postinst hot-upgrades a running herdd (USR2 to the main pid)" grep -q 'kill --kill-who=main --signal=USR2 herdd.service' "$ctl/postinst"
check "prerm stops herdd.service only on remove" grep -q "stop 'herdd.service'" "$ctl/prerm"
check "postrm purge removes /etc/herdd" grep -q 'rmdir --ignore-fail-on-non-empty /etc/herdd' "$ctl/postrm"
tmpx="$(mktemp -d)"; dpkg-deb -x "$DEB" "$tmpx"
check "herdd --version runs" "$tmpx/usr/bin/herdd" --version
check "binary is stripped" bash -c "! readelf -S '$tmpx/usr/bin/herdd' | grep -q '\.symtab'"
check "binary has BIND_NOW" bash -c "readelf -d '$tmpx/usr/bin/herdd' | grep -qE 'BIND_NOW|FLAGS_1.*NOW'"
# Packed relative relocations (build-release.sh) need glibc 2.36; the package must say so.
check "binary has packed relocations (DT_RELR)" bash -c "readelf -d '$tmpx/usr/bin/herdd' | grep -q '(RELR)'"
check "Depends libc6 (>= 2.36) for DT_RELR" bash -c "grep -q 'libc6 (>= 2.36)' <<<'$deps'"
rm -rf "$tmpx"
if command -v lintian >/dev/null; then
    lint="$(lintian --fail-on error "$DEB" 2>&1)"; rc=$?
    printf '%s\n' "$lint" | sed 's/^/     /'
    check "lintian: no errors" test "$rc" = 0
else
    echo "     lintian not installed: skipped"
fi
echo "deb: $passed passed, $failed failed"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
