#!/usr/bin/env bash
# End-to-end test of the herdd Debian package under a real systemd: boots a Debian 12
# container with systemd-nspawn (private network: only its own loopback), installs the
# .deb and exercises socket activation, Type=notify status, journald fields, reload, hot
# upgrade (SIGUSR2, and a package upgrade when a second .deb is given), restart after
# kill -9, graceful stop, restart and remove (also after one and two hot upgrades, when the
# master is no longer systemd's child), the watchdog after an upgrade, purge. Every wait is bounded; all traffic stays inside the
# container's loopback.
#
#   Tests/packaging/e2e_systemd.sh [HERDD_DEB [HERDD_DEB2 [APP_DEB]]]
#
# HERDD_DEB defaults to the newest out/herdd_*.deb (packaging/build-deb.sh). HERDD_DEB2, a
# higher version (e.g. HERDD_DEB_VERSION=0.1.0-2 HERDD_BUILD_TAG=... build-deb.sh), adds the
# package-upgrade test. APP_DEB, an own server's package (notes-api, from test_app_deb.sh with
# HERDD_APP_DEB_KEEP), adds its stop and remove after hot upgrades and its purge (the rootfs
# lacks libsqlite3-0: its .deb is fetched on the host with apt-get download). The Debian 12 rootfs is debootstrap'ed once and cached as
# $HERDD_E2E_CACHE (default /var/tmp/herdd-rootfs-bookworm.tar.gz); each run unpacks a fresh copy.
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${HERDD_E2E_CACHE:-/var/tmp/herdd-rootfs-bookworm.tar.gz}"
MIRROR="${HERDD_E2E_MIRROR:-http://deb.debian.org/debian}"

DEB="${1:-$(ls -t "$REPO"/out/herdd_*.deb 2>/dev/null | head -1)}"
DEB2="${2:-}"
APP_DEB="${3:-}"
[ -f "$DEB" ] || { echo "e2e: no .deb (run packaging/build-deb.sh first)"; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "e2e: needs root"; exit 2; }

need=()
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v nsenter >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
    echo "== installing ${need[*]}"
    apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" || exit 2
fi

passed=0; failed=0
ok()   { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
check() { local what="$1"; shift; if "$@"; then ok "$what"; return 0; else fail "$what"; return 1; fi; }
note() { echo "     $*"; }

# --- rootfs -------------------------------------------------------------------------------
if [ ! -s "$CACHE" ]; then
    echo "== debootstrap Debian 12 into a cache ($CACHE)"
    tmp="$(mktemp -d /var/tmp/herdd-debootstrap.XXXXXX)"
    # mktemp makes the directory 0700, and tar stores "./" with that mode: the container's / would
    # be closed to every non-root service (dbus-daemon could not read its config, boot stalls).
    chmod 755 "$tmp"
    timeout 1200 debootstrap --variant=minbase \
        --include=systemd,systemd-sysv,dbus,curl,procps,iproute2,ca-certificates,libsystemd0 \
        bookworm "$tmp" "$MIRROR" >/tmp/herdd-debootstrap.log 2>&1 \
        || { echo "e2e: debootstrap failed, see /tmp/herdd-debootstrap.log"; rm -rf "$tmp"; exit 2; }
    tar -C "$tmp" -czf "$CACHE.part" . && mv "$CACHE.part" "$CACHE"
    rm -rf "$tmp"
fi
ROOT="$(mktemp -d /var/tmp/herdd-e2e-root.XXXXXX)"
BOOT_LOG="$ROOT.boot.log"
NSPAWN_PID=""
cleanup() {
    if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
        kill -TERM "$NSPAWN_PID" 2>/dev/null   # nspawn asks the container's systemd to halt
        for _ in $(seq 1 30); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.5; done
        kill -KILL "$NSPAWN_PID" 2>/dev/null
        wait "$NSPAWN_PID" 2>/dev/null
    fi
    if grep -q " $ROOT" /proc/mounts; then umount -R "$ROOT" 2>/dev/null || umount -lR "$ROOT" 2>/dev/null; fi
    rm -rf --one-file-system "$ROOT"
    if [ "$failed" -gt 0 ] && [ -s "$BOOT_LOG" ]; then
        echo "== container console (last 30 lines)"; tail -30 "$BOOT_LOG"
    fi
    rm -f "$BOOT_LOG"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
tar -C "$ROOT" -xzf "$CACHE"
chmod 755 "$ROOT"   # whatever mode the cache recorded for "./" (older caches: 0700)
echo herdd-e2e > "$ROOT/etc/hostname"
cp "$DEB" "$ROOT/root/herdd1.deb"
[ -n "$DEB2" ] && cp "$DEB2" "$ROOT/root/herdd2.deb"
if [ -n "$APP_DEB" ]; then
    cp "$APP_DEB" "$ROOT/root/app.deb"
    APP="$(dpkg-deb -f "$APP_DEB" Package)"
    # Its libraries that the minimal rootfs lacks (same Debian release as the host).
    mkdir -p "$ROOT/root/app-deps"
    (cd "$ROOT/root/app-deps" && apt-get download -q libsqlite3-0 >/dev/null 2>&1) \
        || { echo "e2e: apt-get download libsqlite3-0 failed"; exit 2; }
fi

# --- boot -----------------------------------------------------------------------------------
# --register=no --keep-unit: no machined/dbus on the host needed (the host's PID 1 need not be
# systemd). --private-network: the container has only its own loopback. timeout: a bound on
# the whole container lifetime.
timeout 900 systemd-nspawn -q --register=no --keep-unit --private-network --console=passive \
    -D "$ROOT" -b >"$BOOT_LOG" 2>&1 &
NSPAWN_PID=$!
LEADER=""
for _ in $(seq 1 100); do
    # the container's PID 1: child of systemd-nspawn (itself the child of timeout); an
    # intermediate "outer child" exists briefly
    ns="$(pgrep -P "$NSPAWN_PID" -x systemd-nspawn | head -1)"
    [ -n "$ns" ] && LEADER="$(pgrep -P "$ns" | head -1)"
    [ -n "$LEADER" ] && [ "$(cat /proc/"$LEADER"/comm 2>/dev/null)" = systemd ] && break
    LEADER=""
    sleep 0.2
done
[ -n "$LEADER" ] || { echo "e2e: systemd-nspawn did not start"; cat "$BOOT_LOG"; exit 1; }
cin() { nsenter -t "$LEADER" -a "$@"; }
# herdd_procs: true if a herdd master or worker runs: "herdd: master", "herdd: worker N" (their
# titles), or the command line they start with (/usr/bin/herdd, "herdd worker ..."); matched
# on the start of the command line: pgrep -f would match the bash -c text itself.
sh_in() { nsenter -t "$LEADER" -a /bin/bash -c "herdd_procs() { ps -eo args= | grep -Eq '^(/usr/bin/herdd|herdd worker|herdd: )'; }; $1"; }
state=""
for _ in $(seq 1 60); do
    state="$(cin systemctl is-system-running 2>/dev/null)"
    case "$state" in running|degraded) break ;; esac
    sleep 1
done
if [[ "$state" =~ ^(running|degraded)$ ]]; then
    ok "container booted systemd ($state, $(cin systemctl --version | head -1))"
else
    fail "container systemd state '$state' after 60 s"; cat "$BOOT_LOG"; exit 1
fi

curl_in() { cin curl -sS -m "${CURL_MAX_TIME:-5}" "$@"; }
mainpid() { cin systemctl show -p MainPID --value herdd.service; }
# Bounded request loop: SECONDS_ seconds of sequential requests; prints "ok bad".
load_loop() { # seconds url [curl --max-time, default 3]
    sh_in "ok=0; bad=0; end=\$((SECONDS+$1)); while [ \$SECONDS -lt \$end ]; do
             if curl -fsS -m ${3:-3} -o /dev/null '$2'; then ok=\$((ok+1)); else bad=\$((bad+1)); fi; done
           echo \"\$ok \$bad\""
}
wait_until() { # seconds command...: polls every 0.5 s
    local n=$(( $1 * 2 )); shift
    for _ in $(seq 1 "$n"); do "$@" && return 0; sleep 0.5; done
    return 1
}

# --- install ----------------------------------------------------------------------------------
echo "== install $(basename "$DEB")"
if out="$(cin env DEBIAN_FRONTEND=noninteractive timeout 120 apt-get install -y -q /root/herdd1.deb 2>&1)"; then
    ok "apt install ./$(basename "$DEB") (offline: every Depends already in the base system)"
else
    fail "apt install"; printf '%s\n' "$out" | tail -20 | sed 's/^/     /'; exit 1
fi
check "herdd.socket and herdd-metrics.socket enabled" \
    test "$(cin systemctl is-enabled herdd.socket herdd-metrics.socket | tr '\n' ' ')" = "enabled enabled "
check "sockets listening after install" \
    sh_in "systemctl is-active -q herdd.socket herdd-metrics.socket && ss -Hltn | grep -q ':8080 ' && ss -Hltn | grep -q '127.0.0.1:9100 '"
check "herdd.service not started by the install (socket activation)" \
    test "$(cin systemctl is-active herdd.service)" = inactive

# --- socket activation, status, journal ----------------------------------------------------
body="$(curl_in http://127.0.0.1:8080/)"
check "first request activates herdd and is served (got '$body')" test "$body" = hello
check "herdd.service active (READY=1)" wait_until 10 sh_in "systemctl is-active -q herdd.service"
status="$(cin systemctl status herdd.service --no-pager 2>&1)"
statusline="$(printf '%s\n' "$status" | sed -n 's/^ *Status: //p')"
note "Status: $statusline"
check "systemctl status shows the STATUS= line" grep -q workers <<<"$statusline"
check "TriggeredBy both sockets" sh_in "systemctl status herdd --no-pager | grep -A1 TriggeredBy | grep -q herdd-metrics.socket"
m="$(curl_in http://127.0.0.1:9100/metrics)"
check "metrics socket served by the master (/metrics)" grep -q '^herdd_' <<<"$m"
check "herdd status (metrics socket)" sh_in "herdd status | grep -q 'master pid'"
events="$(cin journalctl -u herdd.service -o json --no-pager | grep -o '"HERDD_EVENT":"[^"]*"' | sort -u | tr '\n' ' ')"
note "journal HERDD_EVENT values: $events"
check "journalctl -o json has HERDD_EVENT fields (start, ready)" \
    sh_in "journalctl -u herdd -o json --no-pager | grep -q '\"HERDD_EVENT\":\"ready\"'"
MP="$(mainpid)"
note "main pid $MP: $(cin ps -o user=,pid=,args= -p "$MP")"
check "runs as a transient non-root user (DynamicUser)" test "$(cin ps -o uid= -p "$MP" | tr -d ' ')" -ne 0
check "sandbox: NoNewPrivs=1, Seccomp=2, no capabilities" \
    sh_in "grep -q '^NoNewPrivs:[[:space:]]*1' /proc/$MP/status && grep -q '^Seccomp:[[:space:]]*2' /proc/$MP/status && grep -q '^CapEff:[[:space:]]*0000000000000000' /proc/$MP/status"

# --- reload (SIGHUP): new config applied, zero failed requests --------------------------------
sh_in "sed -i 's/^handler = http=hello/handler = http=debug/' /etc/herdd/herdd.conf"
load_loop 6 http://127.0.0.1:8080/ >/tmp/herdd-e2e-load.$$ &
LP=$!
sleep 1
if ! check "systemctl reload herdd" cin timeout 30 systemctl reload herdd.service; then
    cin journalctl -u herdd.service --no-pager -n 15 2>&1 | sed 's/^/     /'
fi
wait "$LP"; read -r good bad </tmp/herdd-e2e-load.$$
note "requests during reload: $good ok, $bad failed"
check "reload: zero failed requests ($good ok)" test "$bad" = 0 -a "$good" -gt 0
check "reload: same main pid" test "$(mainpid)" = "$MP"
check "reload: new config serves (debug handler /sleep/10)" \
    wait_until 10 sh_in "curl -fsS -m 5 -o /dev/null http://127.0.0.1:8080/sleep/10"
check "reload: journal has the reload" sh_in "journalctl -u herdd -o json --no-pager | grep -q '\"HERDD_EVENT\":\"reload'"

# --- hot upgrade (SIGUSR2 to the master), zero failed requests ---------------------------------
load_loop 10 http://127.0.0.1:8080/sleep/20 >/tmp/herdd-e2e-load.$$ &
LP=$!
sleep 2
cin systemctl kill --kill-who=main -s USR2 herdd.service
wait "$LP"; read -r good bad </tmp/herdd-e2e-load.$$
note "requests during the USR2 upgrade: $good ok, $bad failed"
check "USR2 upgrade: zero failed requests ($good ok)" test "$bad" = 0 -a "$good" -gt 0
MP2="$(mainpid)"
check "USR2 upgrade: systemd follows the new MAINPID ($MP -> $MP2)" test "$MP2" != "$MP" -a "$MP2" != 0
check "USR2 upgrade: old master gone, service active" \
    wait_until 40 sh_in "! kill -0 $MP 2>/dev/null && systemctl is-active -q herdd"
note "Status after upgrade: $(cin systemctl show -p StatusText --value herdd.service)"
check "process titles: main pid is 'herdd: master' (comm), workers 'herdd: worker N' in the unit's cgroup" \
    sh_in "[ \"\$(cat /proc/$MP2/comm)\" = 'herdd: master' ] && systemctl status herdd --no-pager | grep -q 'herdd: worker 0'"

# --- an aborted upgrade is invisible to systemd: unit stays active, main pid unchanged ---------
# upgrade-timeout 0.001 s: the new master (a real herdd) cannot be ready in time; the old one
# stops it. The new master never talked to systemd (NotifyAccess=main would ignore it anyway).
sh_in "cp /etc/herdd/herdd.conf /tmp/herdd.conf.pre-abort && echo 'upgrade-timeout = 0.001' >> /etc/herdd/herdd.conf"
check "aborted upgrade: reload picks up upgrade-timeout 0.001 (herdd reload, no --pid, from a shell)" \
    cin env -u MAINPID timeout 60 herdd reload
MP="$(mainpid)"
restarts="$(cin systemctl show -p NRestarts --value herdd.service)"
t_abort="$(cin date +%s)"   # journal checks below look only at what follows (the upgrade before
                            # this one logged systemd's "Supervising process ..." a moment ago)
sleep 1
load_loop 6 http://127.0.0.1:8080/ >/tmp/herdd-e2e-load.$$ &
LP=$!
sleep 1
if cin timeout 60 herdd upgrade --unit herdd >/tmp/herdd-e2e-up.$$ 2>&1; then
    fail "aborted upgrade: herdd upgrade --unit herdd should exit 1"
else
    ok "aborted upgrade: herdd upgrade --unit herdd reports the failure ($(tail -1 /tmp/herdd-e2e-up.$$))"
fi
rm -f /tmp/herdd-e2e-up.$$
wait "$LP"; read -r good bad </tmp/herdd-e2e-load.$$
note "requests during the aborted upgrade: $good ok, $bad failed"
check "aborted upgrade: zero failed requests ($good ok)" test "$bad" = 0 -a "$good" -gt 0
sleep 2
check "aborted upgrade: unit active, same main pid ($MP), no restart" \
    sh_in "systemctl is-active -q herdd && [ \"\$(systemctl show -p MainPID --value herdd)\" = $MP ] && [ \"\$(systemctl show -p NRestarts --value herdd)\" = $restarts ]"
check "aborted upgrade: the journal says why (upgrade-failed)" \
    sh_in "journalctl -u herdd -o json --no-pager --since @$t_abort | grep -q '\"HERDD_EVENT\":\"upgrade-failed\"'"
if ! check "aborted upgrade: systemd saw no new main pid" \
    sh_in "! journalctl --no-pager --since @$t_abort | grep -qiE 'new main pid|supervising process'"; then
    cin journalctl --no-pager --since "@$t_abort" 2>&1 | grep -iE 'main pid|supervising' | sed 's/^/     /'
fi
check "aborted upgrade: still serving" sh_in "curl -fsS -m 5 -o /dev/null http://127.0.0.1:8080/"
sh_in "cp /tmp/herdd.conf.pre-abort /etc/herdd/herdd.conf"
check "aborted upgrade: config restored (herdd reload --unit herdd)" cin timeout 60 herdd reload --unit herdd

# --- package upgrade: postinst hot-upgrades the running server ------------------------------
if [ -n "$DEB2" ]; then
    v1="$(curl_in http://127.0.0.1:9100/status | head -1)"
    MP="$(mainpid)"
    load_loop 12 http://127.0.0.1:8080/sleep/20 >/tmp/herdd-e2e-load.$$ &
    LP=$!
    sleep 2
    if out="$(cin env DEBIAN_FRONTEND=noninteractive timeout 120 apt-get install -y -q /root/herdd2.deb 2>&1)"; then
        ok "apt install ./$(basename "$DEB2") (upgrade)"
    else
        fail "apt install ./$(basename "$DEB2")"; printf '%s\n' "$out" | tail -20 | sed 's/^/     /'
    fi
    wait "$LP"; read -r good bad </tmp/herdd-e2e-load.$$
    note "requests during the package upgrade: $good ok, $bad failed"
    check "package upgrade: zero failed requests ($good ok)" test "$bad" = 0 -a "$good" -gt 0
    wait_until 40 sh_in "! kill -0 $MP 2>/dev/null"
    v2="$(curl_in http://127.0.0.1:9100/status | head -1)"
    note "before: $v1"; note "after:  $v2"
    newver="$(cin herdd --version)"
    check "package upgrade: new master ($(mainpid)) runs the new binary ($newver)" \
        sh_in "[ \"\$(systemctl show -p MainPID --value herdd)\" != $MP ] && curl -fsS -m 5 http://127.0.0.1:9100/status | head -1 | grep -qF 'herdd $newver '"
    check "package upgrade: sockets were not restarted (service stayed active)" \
        test "$(cin systemctl show -p NRestarts --value herdd.service)" = 0
fi

# --- kill -9 of the master: systemd restarts it ---------------------------------------------
MP="$(mainpid)"
restarts="$(cin systemctl show -p NRestarts --value herdd.service)"
# New connections during the restart queue in the socket systemd holds: none may be refused
# (curl exit 7). Requests in flight on the killed workers may fail; those are counted apart.
sh_in "refused=0; other=0; ok=0; end=\$((SECONDS+6)); while [ \$SECONDS -lt \$end ]; do
         curl -fsS -m 5 -o /dev/null http://127.0.0.1:8080/ 2>/dev/null; rc=\$?
         case \$rc in 0) ok=\$((ok+1));; 7) refused=\$((refused+1));; *) other=\$((other+1));; esac; done
       echo \"\$ok \$refused \$other\"" >/tmp/herdd-e2e-k9.$$ &
KP=$!
sleep 1
cin kill -9 "$MP"
wait "$KP"; read -r k9ok k9refused k9other </tmp/herdd-e2e-k9.$$; rm -f /tmp/herdd-e2e-k9.$$
note "requests around kill -9: $k9ok ok, $k9refused refused, $k9other failed in flight"
check "kill -9 master: no connection refused while systemd restarts it ($k9ok ok)" test "$k9refused" = 0 -a "$k9ok" -gt 0
check "kill -9 master: restarted by systemd within 30 s" \
    wait_until 30 sh_in "p=\$(systemctl show -p MainPID --value herdd); [ \"\$p\" != 0 ] && [ \"\$p\" != $MP ] && systemctl is-active -q herdd"
check "kill -9 master: NRestarts incremented" test "$(cin systemctl show -p NRestarts --value herdd.service)" -gt "$restarts"
check "kill -9 master: serving again" wait_until 10 sh_in "curl -fsS -m 3 -o /dev/null http://127.0.0.1:8080/"

# --- stop drains in-flight requests ------------------------------------------------------------
sh_in "curl -sS -m 20 -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/sleep/3000 >/tmp/drain.code 2>&1" &
CP=$!
sleep 0.7
t0=$SECONDS
check "systemctl stop herdd (within TimeoutStopSec)" cin timeout 45 systemctl stop herdd.service
took=$((SECONDS - t0))
wait "$CP"
code="$(cin cat /tmp/drain.code 2>/dev/null)"
note "stop took ${took}s; in-flight /sleep/3000 got '$code'"
check "stop: the in-flight request completed (200)" test "$code" = 200
check "stop: unit result success" test "$(cin systemctl show -p Result --value herdd.service)" = success
check "stop: service inactive, no herdd process left" \
    sh_in "[ \"\$(systemctl is-active herdd.service)\" = inactive ] && ! herdd_procs"
if ! check "stop: sockets still listening, next request re-activates herdd" \
    sh_in "systemctl is-active -q herdd.socket && curl -fsS -m 10 -o /dev/null http://127.0.0.1:8080/ &&
           for i in \$(seq 1 20); do systemctl is-active -q herdd && exit 0; sleep 0.5; done; exit 1"; then
    cin systemctl status --no-pager herdd.service herdd.socket 2>&1 | sed 's/^/     /'
fi

# --- stop, restart, graceful timeout and watchdog after hot upgrades ----------------------------
# After a hot upgrade the master is not systemd's child; systemd 252 does not wait for such a
# main process, so without ExecStop=herdd stop its SIGTERM is followed at once by SIGKILL to the
# cgroup (request lost, result 'signal'). Each case has a request in flight on the old master
# (started before the last upgrade, still draining) and one on the new master.
ensure_active() {
    curl_in -o /dev/null http://127.0.0.1:8080/ >/dev/null 2>&1
    wait_until 20 sh_in "systemctl is-active -q herdd.service"
}
# bg_request NAME MS: GET /sleep/MS in the background; its status code lands in /tmp/NAME.code
bg_request() {
    sh_in "curl -sS -m 60 -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/sleep/$2 >/tmp/$1.code 2>/dev/null" &
}
code_of() { cin cat "/tmp/$1.code" 2>/dev/null; }
# upgrade_n N TAG: N hot upgrades (herdd upgrade --unit herdd waits for each); before the last
# one, GET /sleep/$OLD_MS (default 4000) as TAG-old (it stays in flight on the old master).
# Sets BG_OLD.
upgrade_n() {
    local i mp0; mp0="$(mainpid)"
    for i in $(seq 1 "$1"); do
        if [ "$i" = "$1" ]; then bg_request "$2-old" "${OLD_MS:-4000}"; BG_OLD=$!; sleep 0.7; fi
        cin timeout 60 herdd upgrade --unit herdd >/dev/null 2>&1 || return 1
    done
    [ "$(mainpid)" != "$mp0" ]
}
# stopped_cleanly T0: unit inactive with result success ("Deactivated successfully"), no herdd
# process, no SIGKILL and no failure since T0
stopped_cleanly() {
    sh_in "[ \"\$(systemctl show -p ActiveState --value herdd)\" = inactive ] &&
           [ \"\$(systemctl show -p Result --value herdd)\" = success ] && ! herdd_procs &&
           journalctl -u herdd --no-pager --since @$1 | grep -q 'Deactivated successfully' &&
           ! journalctl -u herdd --no-pager --since @$1 | grep -qE 'SIGKILL|Failed with result'"
}
for n in 1 2; do
    ensure_active || fail "after $n upgrade(s): herdd did not re-activate"
    check "after $n upgrade(s): herdd upgrade --unit herdd, new main pid" upgrade_n "$n" "stop$n"
    bg_request "stop$n-new" 2500; BG_NEW=$!; sleep 0.7
    t_stop="$(cin date +%s)"; t0=$(date +%s%N)
    check "after $n upgrade(s): systemctl stop herdd" cin timeout 60 systemctl stop herdd.service
    took_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    wait "$BG_OLD" "$BG_NEW"
    note "stop after $n upgrade(s) took ${took_ms} ms; in flight: old master '$(code_of "stop$n-old")', new master '$(code_of "stop$n-new")'"
    check "after $n upgrade(s): stop answered both in-flight requests (200 200)" \
        test "$(code_of "stop$n-old") $(code_of "stop$n-new")" = "200 200"
    check "after $n upgrade(s): stop waited for the drain (${took_ms} ms >= 1500)" test "$took_ms" -ge 1500
    if ! check "after $n upgrade(s): unit inactive, result success, nothing left, no SIGKILL" stopped_cleanly "$t_stop"; then
        cin journalctl --no-pager --since "@$t_stop" 2>&1 | grep -E 'herdd|Kill|result' | tail -15 | sed 's/^/     /'
    fi
done

# graceful-timeout honoured: 2 s, a request that would take 20 s
sh_in "cp /etc/herdd/herdd.conf /tmp/herdd.conf.gt && echo 'graceful-timeout = 2' >> /etc/herdd/herdd.conf"
ensure_active
check "graceful-timeout 2: herdd upgrade --unit herdd" upgrade_n 1 gt
bg_request gt-new 20000; BG_NEW=$!; sleep 0.7
t_stop="$(cin date +%s)"; t0=$(date +%s%N)
check "graceful-timeout 2 after an upgrade: systemctl stop herdd" cin timeout 60 systemctl stop herdd.service
took_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
wait "$BG_OLD" "$BG_NEW"
note "stop with graceful-timeout 2 took ${took_ms} ms; /sleep/20000 got '$(code_of gt-new)'"
check "graceful-timeout 2: stop took 2-8 s (${took_ms} ms), the 20 s request was cut" \
    test "$took_ms" -ge 1900 -a "$took_ms" -lt 8000 -a "$(code_of gt-new)" != 200
check "graceful-timeout 2: unit inactive, result success, nothing left" stopped_cleanly "$t_stop"
sh_in "cp /tmp/herdd.conf.gt /etc/herdd/herdd.conf"

# restart: in-flight requests answered, new connections meanwhile wait in systemd's socket
for n in 1 2; do
    ensure_active || fail "restart after $n upgrade(s): herdd did not re-activate"
    check "restart after $n upgrade(s): herdd upgrade --unit herdd" upgrade_n "$n" "rs$n"
    MP="$(mainpid)"
    bg_request "rs$n-new" 2500; BG_NEW=$!
    load_loop 6 http://127.0.0.1:8080/ 20 >/tmp/herdd-e2e-load.$$ &
    LP=$!
    sleep 0.7
    check "restart after $n upgrade(s): systemctl restart herdd" cin timeout 60 systemctl restart herdd.service
    wait "$BG_OLD" "$BG_NEW" "$LP"; read -r good bad </tmp/herdd-e2e-load.$$
    note "restart after $n upgrade(s): in flight '$(code_of "rs$n-old") $(code_of "rs$n-new")', during it $good ok, $bad failed"
    check "restart after $n upgrade(s): in-flight requests answered (200 200), zero failed ($good ok)" \
        test "$(code_of "rs$n-old") $(code_of "rs$n-new") $bad" = "200 200 0" -a "$good" -gt 0
    check "restart after $n upgrade(s): active with a new main pid" \
        sh_in "systemctl is-active -q herdd && p=\$(systemctl show -p MainPID --value herdd) && [ \"\$p\" != 0 ] && [ \"\$p\" != $MP ]"
done

# the watchdog still kills a hung master after an upgrade (WatchdogSec=10)
ensure_active
check "watchdog: herdd upgrade --unit herdd" cin timeout 60 herdd upgrade --unit herdd
MP="$(mainpid)"
restarts="$(cin systemctl show -p NRestarts --value herdd.service)"
t_wd="$(cin date +%s)"
cin kill -STOP "$MP"
# Bound: WatchdogSec=10, then SIGABRT to a stopped master that may sit out TimeoutAbortSec (=
# TimeoutStopSec=35) before SIGKILL, then RestartSec=1 and the new start (seen: over 40 s on a
# loaded machine, while the journal already said 'Watchdog timeout').
check "watchdog after an upgrade: hung master ($MP) killed, unit restarted" \
    wait_until 75 sh_in "p=\$(systemctl show -p MainPID --value herdd); [ \"\$p\" != 0 ] && [ \"\$p\" != $MP ] && systemctl is-active -q herdd && ! kill -0 $MP 2>/dev/null"
check "watchdog after an upgrade: the journal says 'Watchdog timeout', NRestarts incremented" \
    sh_in "journalctl --no-pager --since @$t_wd | grep -qi 'watchdog timeout' && [ \"\$(systemctl show -p NRestarts --value herdd)\" -gt $restarts ]"
check "watchdog after an upgrade: serving again" wait_until 10 sh_in "curl -fsS -m 3 -o /dev/null http://127.0.0.1:8080/"

# --- SIGUSR2 to the whole cgroup (systemctl kill without --kill-who=main) ------------------------
# Workers ignore the master's signals, so this upgrades as well, with zero failed requests.
MP="$(mainpid)"
load_loop 8 http://127.0.0.1:8080/ >/tmp/herdd-e2e-load.$$ &
LP=$!
sleep 1
cin systemctl kill -s USR2 herdd.service
wait "$LP"; read -r good bad </tmp/herdd-e2e-load.$$
note "requests during 'systemctl kill -s USR2' (all processes): $good ok, $bad failed"
check "USR2 to every process: zero failed requests ($good ok)" test "$bad" = 0 -a "$good" -gt 0
if ! check "USR2 to every process: new main pid, old master gone" \
    wait_until 40 sh_in "p=\$(systemctl show -p MainPID --value herdd); [ \"\$p\" != 0 ] && [ \"\$p\" != $MP ] && ! kill -0 $MP 2>/dev/null"; then
    cin journalctl -u herdd.service --no-pager -n 25 2>&1 | sed 's/^/     /'
fi
check "USR2 to every process: no process died of it" \
    sh_in "! journalctl -u herdd --no-pager --since -15s | grep -qE 'signal 12|upgrade failed'"

# --- a reload that fails is reported by systemctl reload (ExecReload=herdd reload) ------------
sh_in "cp /etc/herdd/herdd.conf /tmp/herdd.conf.good && echo 'workers = many' >> /etc/herdd/herdd.conf"
if cin timeout 60 systemctl reload herdd.service >/dev/null 2>&1; then
    fail "broken config: systemctl reload should fail"
else
    ok "broken config: systemctl reload fails"
fi
check "broken config: the reason is in the journal" \
    sh_in "journalctl -u herdd --no-pager --since -30s | grep -q 'workers: expected an integer'"
check "broken config: still active and serving" sh_in "systemctl is-active -q herdd && curl -fsS -m 5 -o /dev/null http://127.0.0.1:8080/"
sh_in "cp /tmp/herdd.conf.good /etc/herdd/herdd.conf"
check "fixed config: systemctl reload succeeds" cin timeout 60 systemctl reload herdd.service

# --- remove (after two hot upgrades, a request in flight) and purge ----------------------------------
ensure_active
# Longer requests: apt-get takes a few seconds before its prerm stops the service.
OLD_MS=9000 check "remove: two hot upgrades first" upgrade_n 2 rm
bg_request rm-new 7000; BG_NEW=$!; sleep 0.7
t_stop="$(cin date +%s)"
if out="$(cin env DEBIAN_FRONTEND=noninteractive timeout 120 apt-get remove -y -q herdd 2>&1)"; then
    ok "apt remove herdd"
else
    fail "apt remove herdd"; printf '%s\n' "$out" | tail -20 | sed 's/^/     /'
fi
wait "$BG_OLD" "$BG_NEW"
check "remove after two upgrades: in-flight requests answered ($(code_of rm-old) $(code_of rm-new))" \
    test "$(code_of rm-old) $(code_of rm-new)" = "200 200"
# The unit file is gone now: the journal tells how it stopped.
if ! check "remove: nothing left, journal says 'Deactivated successfully', no SIGKILL, no failure" \
    sh_in "! herdd_procs && journalctl -u herdd --no-pager --since @$t_stop | grep -q 'Deactivated successfully' &&
           ! journalctl -u herdd --no-pager --since @$t_stop | grep -qE 'SIGKILL|Failed with result'"; then
    cin journalctl -u herdd --no-pager --since "@$t_stop" 2>&1 | tail -15 | sed 's/^/     /'
    cin ps -eo pid,args 2>&1 | grep -E 'herdd' | sed 's/^/     /'
fi
if out="$(cin env DEBIAN_FRONTEND=noninteractive timeout 120 apt-get purge -y -q herdd 2>&1)"; then
    ok "apt purge herdd"
else
    fail "apt purge herdd"; printf '%s\n' "$out" | tail -20 | sed 's/^/     /'
fi
check "purge: nothing listening on 8080/9100, no herdd process" \
    wait_until 40 sh_in "! ss -Hltn | grep -qE ':8080 |:9100 ' && ! herdd_procs"
check "purge: /etc/herdd and unit symlinks gone" \
    sh_in "[ ! -e /etc/herdd ] && [ ! -e /etc/systemd/system/sockets.target.wants/herdd.socket ] && [ ! -e /lib/systemd/system/herdd.service ]"

# --- an own server's package (Herd library): stop and remove after hot upgrades, purge -------
if [ -n "$APP_DEB" ]; then
    echo "== install $(basename "$APP_DEB") ($APP)"
    app_deps=(); for f in "$ROOT"/root/app-deps/*.deb; do app_deps+=("/root/app-deps/$(basename "$f")"); done
    if out="$(cin env DEBIAN_FRONTEND=noninteractive timeout 120 apt-get install -y -q /root/app.deb "${app_deps[@]}" 2>&1)"; then
        ok "apt install $APP"
    else
        fail "apt install $APP"; printf '%s\n' "$out" | tail -20 | sed 's/^/     /'
    fi
    app_pid() { cin systemctl show -p MainPID --value "$APP.service"; }
    app_up() {
        cin curl -fsS -m 5 -o /dev/null http://127.0.0.1:8080/health >/dev/null 2>&1
        wait_until 20 sh_in "systemctl is-active -q $APP.service"
    }
    app_upgrades() { # N: hot upgrades with the app's own command (`NAME upgrade --unit NAME`)
        local i p0; p0="$(app_pid)"
        for i in $(seq 1 "$1"); do cin timeout 60 "$APP" upgrade --unit "$APP" >/dev/null 2>&1 || return 1; done
        [ "$(app_pid)" != "$p0" ]
    }
    # The first request starts the service; READY=1 follows when all its workers serve.
    check "$APP: activated by POST /notes, stored" sh_in "curl -fsS -m 5 -X POST -H 'Content-Type: application/json' \
        -d '{\"title\":\"e2e\"}' http://127.0.0.1:8080/notes | grep -q e2e"
    check "$APP: active" wait_until 20 sh_in "systemctl is-active -q $APP.service"
    check "$APP: two hot upgrades ($APP upgrade --unit $APP)" app_upgrades 2
    t_stop="$(cin date +%s)"
    check "$APP after two upgrades: systemctl stop" cin timeout 60 systemctl stop "$APP.service"
    if ! check "$APP after two upgrades: inactive, result success, no SIGKILL, nothing left" \
        sh_in "[ \"\$(systemctl show -p Result --value $APP)\" = success ] &&
               [ \"\$(systemctl show -p ActiveState --value $APP)\" = inactive ] &&
               journalctl -u $APP --no-pager --since @$t_stop | grep -q 'Deactivated successfully' &&
               ! journalctl -u $APP --no-pager --since @$t_stop | grep -qE 'SIGKILL|Failed with result' &&
               ! ps -eo args= | grep -Eq '^(/usr/bin/$APP|$APP: )'"; then
        cin journalctl -u "$APP" --no-pager --since "@$t_stop" 2>&1 | tail -12 | sed 's/^/     /'
    fi
    app_up || fail "$APP did not re-activate"
    check "$APP: the note survived the stop" sh_in "curl -fsS -m 5 http://127.0.0.1:8080/notes | grep -q e2e"
    check "$APP: one more hot upgrade before remove" app_upgrades 1
    t_stop="$(cin date +%s)"
    if out="$(cin env DEBIAN_FRONTEND=noninteractive timeout 120 apt-get remove -y -q "$APP" 2>&1)"; then
        ok "apt remove $APP"
    else
        fail "apt remove $APP"; printf '%s\n' "$out" | tail -20 | sed 's/^/     /'
    fi
    check "$APP remove after an upgrade: 'Deactivated successfully', no SIGKILL, nothing left, data kept" \
        sh_in "journalctl -u $APP --no-pager --since @$t_stop | grep -q 'Deactivated successfully' &&
               ! journalctl -u $APP --no-pager --since @$t_stop | grep -qE 'SIGKILL|Failed with result' &&
               ! ps -eo args= | grep -Eq '^(/usr/bin/$APP|$APP: )' && [ -e /var/lib/private/$APP/notes.sqlite ]"
    if out="$(cin env DEBIAN_FRONTEND=noninteractive timeout 120 apt-get purge -y -q "$APP" 2>&1)"; then
        ok "apt purge $APP"
    else
        fail "apt purge $APP"; printf '%s\n' "$out" | tail -20 | sed 's/^/     /'
    fi
    check "$APP purge: /etc/$APP, /var/lib/$APP and /var/lib/private/$APP gone" \
        sh_in "[ ! -e /etc/$APP ] && [ ! -e /var/lib/$APP ] && [ ! -L /var/lib/$APP ] && [ ! -e /var/lib/private/$APP ]"
fi

rm -f /tmp/herdd-e2e-load.$$
echo "e2e: $passed passed, $failed failed"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
