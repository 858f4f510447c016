#!/usr/bin/env bash
# Checks that an edit to the C shim (Sources/CHerdSys/include/shim.h) rebuilds every Swift module
# that imports CHerdSys, so the tests can never run a binary built against an older header.
# (With the former .systemLibrary target, SwiftPM did not track the header: an incremental build
# after an edit recompiled nothing.) Only touches the header's mtime; run by test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
header=Sources/CHerdSys/include/shim.h
bin="$(swift build --show-bin-path)/herdd"
log=$(mktemp /tmp/herdd-shim-rebuild.XXXXXX)
trap 'rm -f "$log"' EXIT

swift build --product herdd >/dev/null
swift build --product herdd -v >"$log" 2>&1
if grep -q 'swift-frontend -frontend -c .*Sources/HerdD/' "$log"; then
    echo "FAIL: a second build with nothing changed still compiled HerdD" >&2; exit 1
fi
before=$(stat -c %Y "$bin")
sleep 1  # mtime granularity
touch "$header"
swift build --product herdd -v >"$log" 2>&1
fail=0
grep -q 'clang .*Sources/CHerdSys/shim.c' "$log" || { echo "FAIL: shim.c not recompiled after touching $header" >&2; fail=1; }
# Every Swift target with a file that imports the shim must recompile.
users=$(grep -rl '^import CHerdSys' Sources --include='*.swift' | cut -d/ -f2 | sort -u)
[ -n "$users" ] || { echo "FAIL: no Swift file imports CHerdSys" >&2; exit 1; }
for module in $users; do
    grep -q "swift-frontend -frontend -c .*Sources/$module/" "$log" \
        || { echo "FAIL: $module (imports CHerdSys) not recompiled after touching $header" >&2; fail=1; }
done
after=$(stat -c %Y "$bin")
[ "$before" != "$after" ] || { echo "FAIL: $bin not relinked" >&2; fail=1; }
[ $fail -eq 0 ] && echo "ok: touching $header recompiled shim.c and" $users "and relinked herdd"
exit $fail
