# Lanes for test.sh: sequences of steps that run side by side, each step timed, its output
# in a file of its own and shown in full when it fails. Sourced by test.sh, which sets LOGS.
#   lane NAME FUNCTION    run FUNCTION in the background as lane NAME
#   step TITLE CMD...     (inside a lane) run CMD, time it, keep its output in $LOGS/NAME.N.log;
#                         the lane stops if it fails (a build the next steps need)
#   check TITLE CMD...    the same, but the lane goes on after a failure (a test: the next
#                         steps do not need it, and their failures are worth seeing too)
#   signal EVENT          (inside a lane) tell waiting lanes that EVENT happened
#   await EVENT...        (inside a lane) wait until every EVENT happened; fails if its lane died
#   finish_lanes          wait for every lane, print the step table and failed steps' output;
#                         exits non-zero when any lane failed
LANE_PIDS=()
LANE_NAMES=()
CI_START=$(date +%s)

lane() {
    local name="$1" fn="$2"
    ( LANE="$name"; STEP_NO=0; "$fn" ) &
    LANE_PIDS+=("$!")
    LANE_NAMES+=("$name")
}

step() { STEP_STOPS=1 run_step "$@"; }
check() { STEP_STOPS=0 run_step "$@"; }

run_step() {
    local title="$1"; shift
    STEP_NO=$((STEP_NO + 1))
    local log="$LOGS/$LANE.$STEP_NO.log" t0 rc=0
    t0=$(date +%s)
    echo "== [$LANE +$((t0 - CI_START))s] $title"
    # In the background and then waited for: a function run here keeps `set -e` (in the left
    # side of `||` bash would ignore it for the whole function). The subshell's EXIT trap
    # writes `times`: the CPU time of every process of the step it waited for (a build's
    # compiler jobs included), whether the step passed or not.
    ( trap 'times >"$log.cpu"' EXIT; "$@" ) >"$log" 2>&1 &
    wait $! || rc=$?
    local t1 cpu; t1=$(date +%s)
    cpu=$(cpu_seconds "$log.cpu")
    printf '%6ss  %-9s %-40s %6ss %7ss  %s\n' "$((t0 - CI_START))" "$LANE" "$title" "$((t1 - t0))" "$cpu" \
        "$([ $rc -eq 0 ] && echo ok || echo "FAILED (exit $rc)")" >>"$LOGS/times"
    if [ $rc -ne 0 ]; then
        printf '%s\t%s\n' "$title" "$log" >>"$LOGS/failed"
        echo "== [$LANE] FAILED: $title (exit $rc, $((t1 - t0)) s; output at the end and in $log)"
        if [ "$STEP_STOPS" = 1 ]; then
            echo "$LANE: $title" >>"$LOGS/stopped"
            return $rc
        fi
        return 0
    fi
    echo "== [$LANE +$((t1 - CI_START))s] done: $title ($((t1 - t0)) s)"
}

# cpu_seconds FILE: user + system seconds of the children in the output of `times` (its second
# line, e.g. "1m2.500s 0m3.250s"), rounded; "?" if there is none.
cpu_seconds() {
    awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] }
                   printf "%d", t + 0.5; found = 1 }
         END { if (!found) printf "?" }' "$1" 2>/dev/null || printf '?'
}

signal() { touch "$LOGS/event.$1"; }

await() {
    local event t0; t0=$(date +%s)
    for event in "$@"; do
        until [ -e "$LOGS/event.$event" ]; do
            # A lane that stopped (a failed build) never signals what comes after it.
            [ ! -s "$LOGS/stopped" ] || { echo "== [$LANE] $event will not come (a lane stopped)"; return 1; }
            sleep 2
        done
    done
    echo "== [$LANE] waited $(( $(date +%s) - t0 )) s for: $*"
}

finish_lanes() {
    local i status=0 rc
    for i in "${!LANE_PIDS[@]}"; do
        rc=0; wait "${LANE_PIDS[$i]}" || rc=$?
        [ $rc -eq 0 ] || { echo "== lane ${LANE_NAMES[$i]} failed (exit $rc)"; status=1; }
    done
    if [ -s "$LOGS/failed" ]; then
        status=1
        local title log
        while IFS=$'\t' read -r title log; do
            echo; echo "==================== FAILED: $title ($log) ===================="
            cat "$log"
        done <"$LOGS/failed"
    fi
    echo; echo "== steps (started at, lane, step, took, CPU time, result); total $(( $(date +%s) - CI_START )) s"
    sort -n "$LOGS/times" 2>/dev/null || true
    awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+s$/ && $(i + 1) ~ /^[0-9]+s$/) { cpu += $(i + 1); break } }
         END { printf "== CPU time of all steps: %d s (%.0f s on 2 cores)\n", cpu, cpu / 2 }' "$LOGS/times" 2>/dev/null || true
    if [ $status -eq 0 ]; then echo "== all lanes passed"; else echo "== FAILED (steps above)"; fi
    return $status
}
