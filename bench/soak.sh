#!/usr/bin/env bash
# Soak: a job over NATS (coordinator, 2 readers, 2 writers) while processes are killed with
# SIGKILL and started again at random every few seconds; at the end `influx2td verify` must find
# the target equal to the source, and every role's memory must have stayed flat.
#
#   bash bench/soak.sh [--rows N] [--kill-every S]     # full size: --rows 10000000
#
# Defaults: 1,000,000 rows, a kill every 1-4 s (S=4). The release binary is built unless
# SOAK_BINARY names one (CI passes the debug binary its tests built). Prints the figures and
# writes target/bench/soak.json: rows, restarts per role, duration, peak RSS per role in the
# first and the second half of the run.
set -euo pipefail
cd "$(dirname "$0")/.."

rows=1000000
kill_every=4
while [ $# -gt 0 ]; do
    case "$1" in
        --rows) rows="$2"; shift 2 ;;
        --kill-every) kill_every="$2"; shift 2 ;;
        *) echo "usage: bash bench/soak.sh [--rows N] [--kill-every S]" >&2; exit 2 ;;
    esac
done
command -v influxd >/dev/null || { echo "influxd not found: bash .ci/run installs it" >&2; exit 1; }
command -v nats-server >/dev/null || { echo "nats-server not found: bash .ci/run installs it" >&2; exit 1; }
if [ -z "${SOAK_BINARY:-}" ]; then
    cargo build --release -q -p influx2td
    SOAK_BINARY=target/release/influx2td
fi
bin=$(realpath "$SOAK_BINARY")

source bench/lib.sh
work=$(mktemp -d)
pids_to_kill=()
cleanup() {
    for pid in "${pids_to_kill[@]}" $(jobs -p); do kill -9 "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
start_influxd "$work"
pids_to_kill+=("$influxd_pid")
start_nats "$work"
pids_to_kill+=("$nats_pid")

start_ns=1700000000000000000
echo "loading $rows rows ..."
load_rows soak "$rows" "$start_ns"
end_ns=$((start_ns + rows / 128 * 10000000000))
iso() { python3 -c "import datetime; print(datetime.datetime.fromtimestamp($1/1e9, datetime.timezone.utc).isoformat())"; }

export INFLUX2TD_SOURCE_URL="$url" INFLUX2TD_BUCKET=soak INFLUX2TD_JOB=soak \
    INFLUX2TD_BEGIN="$(iso $start_ns)" INFLUX2TD_END="$(iso $end_ns)" INFLUX2TD_WINDOW=1h \
    INFLUX2TD_NATS_URL="$nats_url" INFLUX2TD_ACK_WAIT=3s INFLUX2TD_LEASE_TTL=3s \
    INFLUX2TD_TARGET_DSN="file://$work/target" INFLUX2TD_TARGET_DATABASE=soak \
    INFLUX2TD_LOG_LEVEL=warn

# Role slots: coordinator, reader-1, reader-2, writer-1, writer-2. pid, restarts, peak RSS
# (MiB) in the first and second half, per role.
declare -A pid restarts
declare -A peak_first peak_second
slots=(coordinator reader-1 reader-2 writer-1 writer-2)
start() {
    local slot=$1 role=${1%-*}
    "$bin" "$role" >> "$work/$slot.log" 2>&1 &
    pid[$slot]=$!
}
for slot in "${slots[@]}"; do restarts[$slot]=0; start "$slot"; done
# Running, not exited (an exited child stays a zombie until waited for).
alive() { local state; state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1; [[ $state != Z* ]]; }

t0=$(date +%s)
next_kill=$((t0 + 1 + RANDOM % kill_every))
half=first
status=running
while [ "$status" = running ]; do
    sleep 0.5
    now=$(date +%s)
    # Memory of every process, per role.
    for slot in "${slots[@]}"; do
        role=${slot%-*}
        rss=$(awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/${pid[$slot]}/status" 2>/dev/null || echo 0)
        if [ "$half" = first ]; then
            [ "$rss" -gt "${peak_first[$role]:-0}" ] && peak_first[$role]=$rss
        else
            [ "$rss" -gt "${peak_second[$role]:-0}" ] && peak_second[$role]=$rss
        fi
    done
    # The coordinator exits 0 when every window is written (the kills below restart it at
    # once, so a coordinator found gone has exited by itself).
    if ! alive "${pid[coordinator]}"; then
        if wait "${pid[coordinator]}"; then status=done; break; fi
        echo "soak: the coordinator failed" >&2
        tail -n 20 "$work"/*.log >&2
        exit 1
    fi
    if [ "$now" -ge "$next_kill" ]; then
        victim=${slots[$((RANDOM % ${#slots[@]}))]}
        kill -9 "${pid[$victim]}" 2>/dev/null || true
        wait "${pid[$victim]}" 2>/dev/null || true
        restarts[$victim]=$((restarts[$victim] + 1))
        start "$victim"
        next_kill=$((now + 1 + RANDOM % kill_every))
    fi
    # The second half of the run starts when half the rows are checkpointed.
    if [ "$half" = first ] && [ $((now % 2)) -eq 0 ]; then
        written=$("$bin" status --json 2>/dev/null | python3 -c 'import json,sys; print(sum(m.get("rows_written",0) for m in json.load(sys.stdin)["measurements"].values()))' 2>/dev/null || echo 0)
        [ "${written:-0}" -ge $((rows / 2)) ] && half=second
    fi
    if [ $((now - t0)) -gt 3600 ]; then
        echo "soak: the job did not finish within an hour" >&2
        tail -n 20 "$work"/*.log >&2
        exit 1
    fi
done
seconds=$(( $(date +%s) - t0 ))
for slot in reader-1 reader-2 writer-1 writer-2; do kill -TERM "${pid[$slot]}"; done
wait "${pid[reader-1]}" "${pid[reader-2]}" "${pid[writer-1]}" "${pid[writer-2]}" || true

echo "verify ..."
if ! "$bin" verify > "$work/verify.txt" 2>&1; then
    cat "$work/verify.txt" >&2
    echo "soak: the target does not equal the source" >&2
    exit 1
fi
total_restarts=0
for slot in "${slots[@]}"; do total_restarts=$((total_restarts + restarts[$slot])); done
mkdir -p target/bench
python3 - "$rows" "$seconds" "$total_restarts" > target/bench/soak.json <<PY
import json, sys
rows, seconds, restarts = map(int, sys.argv[1:4])
print(json.dumps({
    "rows": rows, "seconds": seconds, "restarts": restarts,
    "restarts_per_slot": {$(for s in "${slots[@]}"; do printf '"%s": %s, ' "$s" "${restarts[$s]}"; done)},
    "peak_rss_mib_first_half": {$(for r in coordinator reader writer; do printf '"%s": %s, ' "$r" "${peak_first[$r]:-0}"; done)},
    "peak_rss_mib_second_half": {$(for r in coordinator reader writer; do printf '"%s": %s, ' "$r" "${peak_second[$r]:-0}"; done)},
    "verify": "equal",
}, indent=2))
PY
cat target/bench/soak.json
# Bounded and flat: every role under 256 MiB, and its peak in the second half at most half as
# much again as in the first, + 16 MiB. (A reader's peak follows how many windows it happens
# to hold at once, up to read_concurrency, so a short run varies by tens of percent; a leak
# grows with the rows moved.)
for role in coordinator reader writer; do
    first=${peak_first[$role]:-0} second=${peak_second[$role]:-0}
    if [ "$first" -gt 256 ] || [ "$second" -gt 256 ]; then
        echo "soak: $role used more than 256 MiB ($first, then $second MiB)" >&2
        exit 1
    fi
    if [ "$first" -gt 0 ] && [ "$second" -gt $((first * 3 / 2 + 16)) ]; then
        echo "soak: $role memory grew from $first MiB to $second MiB" >&2
        exit 1
    fi
done
grep -E "^(measurement|[a-z_]+ +influxdb)" "$work/verify.txt" | head -20 || true
