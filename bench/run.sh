#!/usr/bin/env bash
# Reader throughput against InfluxDB's own export of the same windows, in the same run.
#
#   bash bench/run.sh [--rows N] [--concurrency C]
#
# Starts a private influxd on free ports, loads a deterministic data set (bench/generate.py),
# then alternates: (a) the raw baseline, every window exported through /query (chunked
# MessagePack, as the reader asks for it) with curl to /dev/null, C windows at a time; (b)
# influx2td's reader on the same windows at the same concurrency (query, decode, encode into
# batches; no bus). Prints a table and writes target/bench/reader.json.
set -euo pipefail
cd "$(dirname "$0")/.."

rows=1000000
concurrency=4
while [ $# -gt 0 ]; do
    case "$1" in
        --rows) rows="$2"; shift 2 ;;
        --concurrency) concurrency="$2"; shift 2 ;;
        *) echo "usage: bash bench/run.sh [--rows N] [--concurrency C]" >&2; exit 2 ;;
    esac
done

command -v influxd >/dev/null || { echo "influxd not found: bash .ci/run installs it" >&2; exit 1; }
cargo build --release -q -p influx2td-bench -p influx2td

source bench/lib.sh
work=$(mktemp -d)
start_influxd "$work"
trap 'kill $influxd_pid 2>/dev/null; wait $influxd_pid 2>/dev/null; rm -rf "$work"' EXIT

start_ns=1700000000000000000
echo "loading $rows rows ..."
load_rows bench "$rows" "$start_ns"
points_per_series=$((rows / 128))
end_ns=$((start_ns + points_per_series * 10000000000))
window_ns=3600000000000
loaded=$(curl -sf -G "$url/query" --data-urlencode "db=bench" --data-urlencode 'q=SELECT count(usage) FROM cpu,mem,disk,net' | python3 -c 'import json,sys; print(sum(s["values"][0][1] for s in json.load(sys.stdin)["results"][0]["series"]))')
echo "loaded $loaded rows ($((end_ns - start_ns)) ns of data, windows of 1h)"

windows="$work/windows.txt"
for m in cpu mem disk net; do
    s=$start_ns
    while [ "$s" -lt "$end_ns" ]; do
        e=$((s + window_ns)); [ "$e" -gt "$end_ns" ] && e=$end_ns
        echo "SELECT *::field FROM \"bench\"..\"$m\" WHERE time >= $s AND time < $e GROUP BY *" >> "$windows"
        s=$e
    done
done
window_count=$(wc -l < "$windows")

raw_export() {
    local t0 t1
    t0=$(date +%s.%N)
    tr '\n' '\0' < "$windows" | xargs -0 -P "$concurrency" -I{} curl -sf -G "$url/query" \
        -H 'Accept: application/x-msgpack' --data-urlencode 'db=bench' --data-urlencode 'epoch=ns' \
        --data-urlencode 'chunked=true' --data-urlencode 'chunk_size=10000' --data-urlencode "q={}" -o /dev/null
    t1=$(date +%s.%N)
    python3 -c "print($t1 - $t0)"
}

reader_run() {
    /usr/bin/time -v -o "$work/time.txt" target/release/reader-bench --url "$url" --database bench \
        --measurements cpu,mem,disk,net --begin "$start_ns" --end "$end_ns" --window "$window_ns" \
        --concurrency "$concurrency" > "$work/reader.json"
    rss_kib=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
    python3 -c "import json; r=json.load(open('$work/reader.json')); print(r['seconds'], r['rows'], $rss_kib)"
}

best_raw=999999; best_reader=999999; reader_rows=0; reader_rss=0
for round in 1 2; do
    raw=$(raw_export)
    read -r seconds rows_read rss <<< "$(reader_run)"
    echo "round $round: raw export ${raw}s, reader ${seconds}s (${rows_read} rows, peak RSS ${rss} KiB)"
    best_raw=$(python3 -c "print(min($best_raw, $raw))")
    best_reader=$(python3 -c "print(min($best_reader, $seconds))")
    reader_rows=$rows_read; reader_rss=$(python3 -c "print(max($reader_rss, $rss))")
done

# influx2td end to end into the file target: embedded (one process), then over NATS (three).
# Runs a command with the job's environment, replacing the calling (sub)shell, so that `$!` of
# `job_env ... &` is the command's own pid. Call it in ( ) in the foreground.
job_env() {
    exec env INFLUX2TD_SOURCE_URL="$url" INFLUX2TD_BUCKET=bench INFLUX2TD_JOB="$1" \
        INFLUX2TD_BEGIN="$(python3 -c "import datetime; print(datetime.datetime.fromtimestamp($start_ns/1e9, datetime.timezone.utc).isoformat())")" \
        INFLUX2TD_END="$(python3 -c "import datetime; print(datetime.datetime.fromtimestamp($end_ns/1e9, datetime.timezone.utc).isoformat())")" \
        INFLUX2TD_WINDOW=1h INFLUX2TD_READ_CONCURRENCY="$concurrency" INFLUX2TD_LOG_LEVEL=warn \
        INFLUX2TD_TARGET_DSN="file://$work/target-$1" INFLUX2TD_TARGET_DATABASE=bench \
        INFLUX2TD_STATE_DIR="$work/state" "${@:2}"
}
rss_of() { awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$1"; }
t0=$(date +%s.%N)
(job_env embedded /usr/bin/time -v -o "$work/embedded.time" target/release/influx2td run)
embedded_seconds=$(python3 -c "print($(date +%s.%N) - $t0)")
embedded_rss=$(rss_of "$work/embedded.time")

if command -v nats-server >/dev/null; then
    start_nats "$work"
    trap 'kill $influxd_pid $nats_pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
    # Roles started directly (no wrapper) so that their pids take the signal; peak RSS from
    # /proc (VmHWM) just before they stop. One reader and one writer, then two of each (a job
    # of its own, so its own streams).
    peak() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }
    nats_job() { # pairs -> sets nats_seconds_<pairs>, nats_rss_<pairs>
        local pairs=$1 pids=() reader_rss=0 writer_rss=0
        for _ in $(seq "$pairs"); do
            job_env "nats$pairs" INFLUX2TD_NATS_URL="$nats_url" target/release/influx2td reader &
            pids+=("r:$!")
            job_env "nats$pairs" INFLUX2TD_NATS_URL="$nats_url" target/release/influx2td writer &
            pids+=("w:$!")
        done
        local t0; t0=$(date +%s.%N)
        (job_env "nats$pairs" INFLUX2TD_NATS_URL="$nats_url" /usr/bin/time -v -o "$work/coordinator$pairs.time" target/release/influx2td coordinator)
        printf -v "nats_seconds_$pairs" '%s' "$(python3 -c "print($(date +%s.%N) - $t0)")"
        for entry in "${pids[@]}"; do
            local rss; rss=$(peak "${entry#*:}")
            if [[ $entry == r:* ]]; then
                reader_rss=$(( rss > reader_rss ? rss : reader_rss ))
            else
                writer_rss=$(( rss > writer_rss ? rss : writer_rss ))
            fi
            kill -TERM "${entry#*:}"
        done
        wait "${pids[@]#*:}" || true
        printf -v "nats_rss_$pairs" '%s' "coordinator $(rss_of "$work/coordinator$pairs.time") MiB, reader $reader_rss MiB, writer $writer_rss MiB"
    }
    nats_job 1
    nats_job 2
    nats_seconds=$nats_seconds_1; nats_rss=$nats_rss_1
    nats2_seconds=$nats_seconds_2; nats2_rss=$nats_rss_2
else
    nats_seconds=0; nats_rss="nats-server not installed"; nats2_seconds=0; nats2_rss=""
fi
# Into a real TDengine, when there is one: embedded run, then `verify` compares the counts.
tdengine_seconds=0; tdengine_rss=0
if [ -n "${TDENGINE_DSN:-}" ]; then
    tdengine_database="influx2td_bench_$(date +%s)"
    t0=$(date +%s.%N)
    (job_env tdengine INFLUX2TD_TARGET_DSN="$TDENGINE_DSN" INFLUX2TD_TARGET_DATABASE="$tdengine_database" \
        INFLUX2TD_TARGET_CREATE_DATABASE=true /usr/bin/time -v -o "$work/tdengine.time" target/release/influx2td run)
    tdengine_seconds=$(python3 -c "print($(date +%s.%N) - $t0)")
    tdengine_rss=$(rss_of "$work/tdengine.time")
    (job_env tdengine INFLUX2TD_TARGET_DSN="$TDENGINE_DSN" INFLUX2TD_TARGET_DATABASE="$tdengine_database" \
        target/release/influx2td verify > "$work/tdengine.verify") || { cat "$work/tdengine.verify"; exit 1; }
    echo "TDengine database $tdengine_database verified against the source"
fi
writer_json=$(target/release/writer-bench --rows 2000000)

mkdir -p target/bench
python3 - "$embedded_seconds" "$embedded_rss" "$nats_seconds" "$nats_rss" "$writer_json" "$tdengine_seconds" "$tdengine_rss" "$nats2_seconds" "$nats2_rss" <<'PY'
import json, sys
embedded, embedded_rss, nats, nats_rss, writer, tdengine, tdengine_rss, nats2, nats2_rss = sys.argv[1:]
open("target/bench/end_to_end.json", "w").write(json.dumps({
    "nats_2x2_seconds": float(nats2), "nats_2x2_peak_rss": nats2_rss,
    "embedded_seconds": float(embedded), "embedded_peak_rss_mib": int(embedded_rss),
    "tdengine_seconds": float(tdengine), "tdengine_peak_rss_mib": int(tdengine_rss),
    "nats_seconds": float(nats), "nats_peak_rss": nats_rss,
    "writer_statement_building": json.loads(writer),
}, indent=2))
PY

python3 - "$loaded" "$reader_rows" "$best_raw" "$best_reader" "$reader_rss" "$window_count" "$concurrency" <<'PY'
import json, platform, os, sys
loaded, reader_rows, raw, reader, rss, windows, concurrency = sys.argv[1:]
loaded, reader_rows, windows, concurrency = int(loaded), int(reader_rows), int(windows), int(concurrency)
raw, reader, rss = float(raw), float(reader), int(rss)
if reader_rows != loaded:
    sys.exit(f"reader read {reader_rows} rows, the data set has {loaded}")
result = {
    "rows": loaded, "windows": windows, "concurrency": concurrency,
    "raw_export_seconds": raw, "raw_export_rows_per_second": loaded / raw,
    "reader_seconds": reader, "reader_rows_per_second": loaded / reader,
    "ratio_to_raw": raw / reader, "reader_peak_rss_mib": rss / 1024,
    "cpus": os.cpu_count(), "machine": platform.machine(),
}
e2e = json.load(open("target/bench/end_to_end.json"))
result["end_to_end"] = e2e
json.dump(result, open("target/bench/reader.json", "w"), indent=2)
print()
print(f"| what | seconds | rows/s | peak RSS |")
print(f"|---|---|---|---|")
print(f"| raw export (curl, /query msgpack, {concurrency} at a time) | {raw:.2f} | {loaded/raw:,.0f} | - |")
print(f"| influx2td reader (decode + encode batches) | {reader:.2f} | {loaded/reader:,.0f} | {rss/1024:.0f} MiB |")
embedded = e2e["embedded_seconds"]
print(f"| influx2td run, embedded (read + write into the file target) | {embedded:.2f} | {loaded/embedded:,.0f} | {e2e['embedded_peak_rss_mib']} MiB |")
if e2e["nats_seconds"]:
    nats = e2e["nats_seconds"]
    print(f"| influx2td over NATS (coordinator + reader + writer) | {nats:.2f} | {loaded/nats:,.0f} | {e2e['nats_peak_rss']} |")
if e2e["nats_2x2_seconds"]:
    nats2 = e2e["nats_2x2_seconds"]
    print(f"| influx2td over NATS (coordinator + 2 readers + 2 writers) | {nats2:.2f} | {loaded/nats2:,.0f} | {e2e['nats_2x2_peak_rss']} (largest of each) |")
if e2e["tdengine_seconds"]:
    tdengine = e2e["tdengine_seconds"]
    print(f"| influx2td run, embedded, into TDengine (TDENGINE_DSN) | {tdengine:.2f} | {loaded/tdengine:,.0f} | {e2e['tdengine_peak_rss_mib']} MiB |")
writer = e2e["writer_statement_building"]
print(f"\nreader / raw export = {raw/reader:.2f}x; embedded end to end / raw export = {raw/embedded:.2f}x  ({loaded:,} rows, {windows} windows)")
print(f"writer statement building: {writer['rows_per_second_per_core']:,.0f} rows/s on one core")
PY
