#!/usr/bin/env bash
# A .deb of a user's own server (Examples/notes-api, built on the Herd library) made by
# `packaging/build-deb.sh --package ...` (build-app-deb.sh): builds it, then checks without
# installing: files and conffile, units renamed and valid (systemd-analyze verify, security
# exposure <= 2.0 in a scratch root), the config's handler, Depends (libsqlite3-0 found by
# dpkg-shlibdeps), maintainer scripts, lintian, and that the packaged binary serves the API
# as master and worker on 127.0.0.1.
#   Tests/packaging/test_app_deb.sh [DEB]   (without DEB: build it first)
# HERDD_APP_DEB_KEEP=DIR keeps a copy of the built .deb in DIR (run_all.sh hands it to the
# systemd end-to-end test).
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
NAME=notes-api
MAX_EXPOSURE="${HERDD_MAX_EXPOSURE:-2.0}"
DEB="${1:-}"
OUT=""
if [ -z "$DEB" ]; then
    OUT="$(mktemp -d /tmp/herdd-app-deb.XXXXXX)"
    "$REPO/packaging/build-deb.sh" --package "$NAME" --source "$REPO/Examples/notes-api" \
        --handler "notes:/var/lib/$NAME/notes.sqlite" --version 1.0.0-1 \
        --description "notes JSON API (herdd example)" --maintainer "herdd developers <herdd@example.org>" \
        --out "$OUT" || { echo "FAIL build-deb.sh --package $NAME"; exit 1; }
    DEB="$(ls "$OUT/${NAME}_1.0.0-1_"*.deb)"
    if [ -n "${HERDD_APP_DEB_KEEP:-}" ]; then mkdir -p "$HERDD_APP_DEB_KEEP" && cp "$DEB" "$HERDD_APP_DEB_KEEP/"; fi
fi
passed=0; failed=0
ok()   { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
check() { local what="$1"; shift; if "$@"; then ok "$what"; else fail "$what"; fi; }
echo "== $DEB"
ROOT="$(mktemp -d /tmp/herdd-app-root.XXXXXX)"; ctl="$ROOT.ctl"; mkdir -p "$ctl"
srv=""
cleanup() {
    [ -n "$srv" ] && kill "$srv" 2>/dev/null; wait 2>/dev/null
    rm -rf "$ROOT" "$ctl"; [ -z "$OUT" ] || rm -rf "$OUT"
}
trap cleanup EXIT
dpkg-deb -e "$DEB" "$ctl"
dpkg-deb -x "$DEB" "$ROOT"
files="$(dpkg-deb -c "$DEB" | awk '{print $6}')"

check "Package: $NAME" test "$(dpkg-deb -f "$DEB" Package)" = "$NAME"
for f in "./usr/bin/$NAME" "./etc/$NAME/$NAME.conf" "./lib/systemd/system/$NAME.service" \
         "./lib/systemd/system/$NAME.socket" "./lib/systemd/system/$NAME-metrics.socket" \
         "./usr/share/man/man8/$NAME.8.gz" "./usr/share/doc/$NAME/copyright"; do
    check "contains $f" grep -qxF "$f" <<<"$files"
done
check "no herdd file names" bash -c "! grep -q herdd <<<'$files'"
check "conffile /etc/$NAME/$NAME.conf" grep -qxF "/etc/$NAME/$NAME.conf" "$ctl/conffiles"
conf="$ROOT/etc/$NAME/$NAME.conf"
check "config: handler = http=notes:/var/lib/$NAME/notes.sqlite" grep -qxF "handler = http=notes:/var/lib/$NAME/notes.sqlite" "$conf"
check "config: handler = metrics=metrics" grep -qxF "handler = metrics=metrics" "$conf"
unit="$ROOT/lib/systemd/system/$NAME.service"
check "ExecStart=/usr/bin/$NAME --config /etc/$NAME/$NAME.conf" grep -qxF "ExecStart=/usr/bin/$NAME --config /etc/$NAME/$NAME.conf" "$unit"
check "ExecReload=/usr/bin/$NAME reload" grep -qxF "ExecReload=/usr/bin/$NAME reload" "$unit"
check "ExecStop=/usr/bin/$NAME stop (graceful stop after a hot upgrade)" grep -qxF "ExecStop=/usr/bin/$NAME stop" "$unit"
for line in "StateDirectory=$NAME" "RuntimeDirectory=$NAME" "DynamicUser=yes" "Type=notify" "NotifyAccess=main" \
            "Requires=$NAME.socket $NAME-metrics.socket" "ProtectSystem=strict"; do
    check "unit: $line" grep -qxF "$line" "$unit"
done
check "sockets name their service" bash -c "grep -qxF 'Service=$NAME.service' '$ROOT/lib/systemd/system/$NAME.socket' && grep -qxF 'Service=$NAME.service' '$ROOT/lib/systemd/system/$NAME-metrics.socket'"
check "units and scripts never mention herdd's names" bash -c "! grep -l -e 'herdd\.' -e '/herdd' '$ROOT/lib/systemd/system/'$NAME* '$ctl/postinst' '$ctl/prerm' '$ctl/postrm'"
check "postrm purge removes the state directory (/var/lib/$NAME, /var/lib/private/$NAME)" \
    grep -qF "rm -rf \"/var/lib/$NAME\" \"/var/lib/private/$NAME\"" "$ctl/postrm"
check "postinst hot-upgrades a running $NAME" grep -q "kill --kill-who=main --signal=USR2 $NAME.service" "$ctl/postinst"
check "postinst enables the sockets" grep -q "deb-systemd-helper enable '$NAME.socket'" "$ctl/postinst"
deps="$(dpkg-deb -f "$DEB" Depends)"; echo "     Depends: $deps"
for d in libsqlite3-0 libsystemd0 "libc6 (>= 2.36)"; do
    check "Depends has $d" grep -qF "$d" <<<"$deps"
done

# systemd-analyze on the packaged units, in a scratch root with the host's units.
cp -a /lib/systemd/system/. "$ROOT/lib/systemd/system/" 2>/dev/null
mkdir -p "$ROOT/bin" && cp /bin/kill "$ROOT/bin/kill"
if out="$(systemd-analyze verify --man=no --root="$ROOT" "$NAME.socket" "$NAME-metrics.socket" "$NAME.service" 2>&1)" && [ -z "$out" ]; then
    ok "systemd-analyze verify: clean"
else
    fail "systemd-analyze verify:"; printf '%s\n' "$out" | sed 's/^/     /'
fi
score="$(systemd-analyze security --offline=yes --root="$ROOT" "$NAME.service" 2>&1 \
    | sed -n "s/.*Overall exposure level for $NAME.service: \([0-9.]*\).*/\1/p")"
check "systemd-analyze security: exposure ${score:-?} <= $MAX_EXPOSURE" \
    python3 -c "import sys; sys.exit(0 if float('${score:-99}') <= float('$MAX_EXPOSURE') else 1)"

if command -v lintian >/dev/null; then
    lint="$(lintian --fail-on error "$DEB" 2>&1)"; rc=$?
    printf '%s\n' "$lint" | sed 's/^/     /'
    check "lintian: no errors" test "$rc" = 0
fi

# The packaged binary serves: master + 1 worker (the same executable), POST then GET.
bin="$ROOT/usr/bin/$NAME"
check "$NAME --version" "$bin" --version
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$bin" --workers 1 --listen "127.0.0.1:$port" --handler "http=notes:$ROOT/notes.sqlite" 2>"$ROOT/server.log" &
srv=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
created="$(curl -s -X POST -H 'Content-Type: application/json' -d '{"title":"from the deb"}' "http://127.0.0.1:$port/notes")"
check "packaged binary: POST /notes -> $created" grep -q '"title":"from the deb"' <<<"$created"
check "packaged binary: GET /notes lists it" bash -c "curl -s 'http://127.0.0.1:$port/notes' | grep -q 'from the deb'"
kill -TERM "$srv"; wait "$srv"; rc=$?; srv=""
check "packaged binary: graceful stop exit 0" test "$rc" = 0
echo "app deb: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
