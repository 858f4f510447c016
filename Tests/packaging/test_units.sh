#!/usr/bin/env bash
# Static checks of systemd/herdd.service, herdd.socket, herdd-metrics.socket (no running
# systemd needed): `systemd-analyze verify` and `systemd-analyze security --offline=yes`
# (exposure must be <= 2.0, printed), plus the settings the packaging relies on.
# The units are checked inside a scratch root (--root) holding a copy of the host's
# systemd units, the three herdd units and a stand-in /usr/bin/herdd.
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
UNITS="$REPO/systemd"
MAX_EXPOSURE="${HERDD_MAX_EXPOSURE:-2.0}"

command -v systemd-analyze >/dev/null || {
    echo "== installing systemd (systemd-analyze)"
    apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd
}

passed=0; failed=0
ok()   { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }

ROOT="$(mktemp -d /tmp/herdd-units-root.XXXXXX)"
trap 'rm -rf "$ROOT"' EXIT
mkdir -p "$ROOT/usr/bin" "$ROOT/bin" "$ROOT/etc/herdd" "$ROOT/lib/systemd/system"
cp -a /lib/systemd/system/. "$ROOT/lib/systemd/system/"
cp "$UNITS/herdd.service" "$UNITS/herdd.socket" "$UNITS/herdd-metrics.socket" "$ROOT/lib/systemd/system/"
printf '#!/bin/sh\nexit 0\n' > "$ROOT/usr/bin/herdd"; chmod 755 "$ROOT/usr/bin/herdd"
cp /bin/kill "$ROOT/bin/kill"
cp "$REPO/packaging/herdd.conf" "$ROOT/etc/herdd/herdd.conf"

# 1. systemd-analyze verify (man pages are not checked: herdd(8) is in the package)
if out="$(systemd-analyze verify --man=no --root="$ROOT" herdd.socket herdd-metrics.socket herdd.service 2>&1)" && [ -z "$out" ]; then
    ok "systemd-analyze verify: clean"
else
    fail "systemd-analyze verify:"; printf '%s\n' "$out" | sed 's/^/     /'
fi

# 2. systemd-analyze security --offline=yes: exposure <= MAX_EXPOSURE
sec="$(systemd-analyze security --offline=yes --root="$ROOT" herdd.service 2>&1)"
score="$(printf '%s\n' "$sec" | sed -n 's/.*Overall exposure level for herdd.service: \([0-9.]*\).*/\1/p')"
echo "     exposure score: ${score:-?} (limit $MAX_EXPOSURE)"
printf '%s\n' "$sec" | grep '✗' | sed 's/^/     /'
if [ -n "$score" ] && awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }'; then
    ok "systemd-analyze security: exposure $score <= $MAX_EXPOSURE"
else
    fail "systemd-analyze security: exposure ${score:-unknown} > $MAX_EXPOSURE"
fi
# README.md (its install section) states the figure for Debian 12's systemd 252: keep it true.
readme_score="$(sed -n 's/.*`systemd-analyze security herdd.service`: \*\*\([0-9.]*\)\*\* (systemd 252.*/\1/p' "$REPO/README.md")"
if [ "$(systemd-analyze --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p')" = 252 ]; then
    if [ -n "$score" ] && [ "$readme_score" = "$score" ]; then
        ok "README states the measured exposure ($score, systemd 252)"
    else
        fail "README says exposure '${readme_score:-?}' for systemd 252, measured '${score:-?}'"
    fi
else
    echo "     README's exposure figure (${readme_score:-?}) is for systemd 252; this host differs: not compared"
fi

# 3. settings the packaging and herdd rely on
prop() { # unit key -> values of key= lines (last wins for scalars)
    sed -n "s/^$2=//p" "$UNITS/$1"
}
expect() { # unit key value
    local got; got="$(prop "$1" "$2" | tail -1)"
    if [ "$got" = "$3" ]; then ok "$1: $2=$3"; else fail "$1: $2 is '$got', expected '$3'"; fi
}
expect herdd.socket FileDescriptorName http
expect herdd.socket ListenStream 8080
expect herdd.socket Backlog 1024
expect herdd.socket Service herdd.service
expect herdd-metrics.socket FileDescriptorName metrics
expect herdd-metrics.socket ListenStream 127.0.0.1:9100
expect herdd-metrics.socket Service herdd.service
expect herdd.service Type notify
expect herdd.service NotifyAccess main
expect herdd.service ExecStart "/usr/bin/herdd --config /etc/herdd/herdd.conf"
expect herdd.service ExecReload '/usr/bin/herdd reload'
expect herdd.service ExecStop '/usr/bin/herdd stop'
expect herdd.service KillMode mixed
expect herdd.service TimeoutStopSec 35
expect herdd.service WatchdogSec 10
expect herdd.service Restart on-failure
expect herdd.service ProcSubset pid
expect herdd.service MemoryDenyWriteExecute yes
expect herdd.service CapabilityBoundingSet ""
for u in herdd.socket herdd-metrics.socket; do
    if prop herdd.service Requires | grep -qw "$u" && prop herdd.service After | grep -qw "$u"; then
        ok "herdd.service: Requires= and After= $u"
    else
        fail "herdd.service: missing Requires=/After= $u"
    fi
done
if grep -q '^PrivateNetwork=yes' "$UNITS/herdd.service"; then
    fail "herdd.service: PrivateNetwork=yes would cut herdd off the network"
else
    ok "herdd.service: no PrivateNetwork"
fi
# TimeoutStopSec must exceed the graceful-timeout of the packaged config (default 30)
gt="$(sed -n 's/^[[:space:]]*graceful-timeout[[:space:]]*=[[:space:]]*\([0-9.]*\).*/\1/p' "$REPO/packaging/herdd.conf" | tail -1)"
gt="${gt:-30}"
if awk -v g="$gt" -v t="$(prop herdd.service TimeoutStopSec | tail -1)" 'BEGIN { exit !(t > g) }'; then
    ok "TimeoutStopSec > graceful-timeout ($gt)"
else
    fail "TimeoutStopSec <= graceful-timeout ($gt)"
fi
# the packaged config maps both socket names
for h in 'http=' 'metrics=metrics'; do
    if grep -Eq "^[[:space:]]*handler[[:space:]]*=[[:space:]]*$h" "$REPO/packaging/herdd.conf"; then
        ok "herdd.conf: handler $h"
    else
        fail "herdd.conf: no 'handler = $h...'"
    fi
done

echo "units: $passed passed, $failed failed"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
