#!/usr/bin/env bash
# influx2td against InfluxDB's own export of the same data, side by side in one run.
#
#   bash bench/run.sh [--rows N] [--measurements M] [--rounds R] [--shape wide|small]
#   TDENGINE_DSN=taos://localhost:6030 bash bench/run.sh ...   # also into a real TDengine
#
# Starts a private influxd (and nats-server) on free ports and loads a deterministic data set
# (bench/generate.py): by default ("wide") M measurements (2) x 32 series over 24 hours, fields
# float, integer, string and boolean, N rows (1,008,000); "small" is the shape of many IoT and
# Telegraf databases: 500 measurements x 10 series x 20 hourly points (100,000 rows). Then, for
# R rounds (3), alternating, each of:
#   export     InfluxDB's own export: `SELECT * FROM m GROUP BY *`, chunked MessagePack, with
#              curl to /dev/null, the measurements one after the other (wide), or one query for
#              all of them (small: `SELECT * FROM /.*/ GROUP BY *`);
#   reader     influx2td's reader alone over the job's windows (query, decode, encode batches);
#   file       `influx2td run` into the file target;
#   tdengine   `influx2td run` into TDengine (with TDENGINE_DSN);
#   nats       coordinator + reader + writer over nats-server, into TDengine (or the file target);
#   tsm-reader, tsm-file, tsm-tdengine
#              the reader alone, and `run` into each target, with `source.kind = "tsm"`: the
#              same windows read from influxd's TSM files and WAL instead of its query engine
#              (influxd keeps running; its CPU meanwhile is measured);
# the job with its defaults (window 60m, read and write concurrency 50, batch size 5000).
# Reports medians: rows/s, the ratio to the export, CPU-seconds per million rows of influx2td,
# influxd and taosd, peak RSS, and for the readers values (rows x fields) per CPU-second;
# writes target/bench/run.json and prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."

rows=1008000
measurements=2
rounds=3
shape=wide
while [ $# -gt 0 ]; do
    case "$1" in
        --rows) rows="$2"; shift 2 ;;
        --measurements) measurements="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --shape) shape="$2"; shift 2 ;;
        *) echo "usage: bash bench/run.sh [--rows N] [--measurements M] [--rounds R] [--shape wide|small]" >&2; exit 2 ;;
    esac
done
case "$shape" in
    wide) ;;
    small) rows=100000 ;;
    *) echo "--shape is wide or small" >&2; exit 2 ;;
esac

command -v influxd >/dev/null || { echo "influxd not found: bash .ci/run installs it" >&2; exit 1; }
cargo build --release -q -p influx2td-bench -p influx2td

source bench/lib.sh
work=$(mktemp -d)
start_influxd "$work"
pids_to_stop="$influxd_pid"
trap 'kill $pids_to_stop 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

start_ns=1700000000000000000
day_ns=86400000000000
end_ns=$((start_ns + day_ns))
echo "loading $rows rows ($shape) ..."
curl -sf -XPOST "$url/query" --data-urlencode "q=CREATE DATABASE bench" >/dev/null
python3 bench/generate.py "$rows" "$start_ns" --shape "$shape" --measurements "$measurements" --span-ns "$day_ns" | split -l 50000 --filter "curl -sf -XPOST '$url/write?db=bench&precision=ns' --data-binary @- " -
wait_for_tsm
names=$(curl -sf -G "$url/query" --data-urlencode "db=bench" --data-urlencode 'q=SHOW MEASUREMENTS' | python3 -c 'import json,sys; print(",".join(v[0] for v in json.load(sys.stdin)["results"][0]["series"][0]["values"]))')
loaded=$(curl -sf -G "$url/query" --data-urlencode "db=bench" --data-urlencode 'q=SELECT count(usage) FROM /.*/' | python3 -c 'import json,sys; print(sum(s["values"][0][1] for s in json.load(sys.stdin)["results"][0]["series"]))')
echo "loaded $loaded rows in $(echo "$names" | tr ',' '\n' | wc -l) measurements"

# CPU seconds (user + system) a process has used so far.
cpu_of() { python3 -c "import sys; f=open('/proc/$1/stat').read().rsplit(')',1)[1].split(); print((int(f[11])+int(f[12]))/100)"; }
taosd_pid=$(pgrep -x taosd || true)
taosd_cpu() { if [ -n "$taosd_pid" ]; then cpu_of "$taosd_pid"; else echo 0; fi; }
now() { date +%s.%N; }
# Peak RSS (MiB) and CPU seconds of a command run under /usr/bin/time -v.
time_rss() { awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$1"; }
time_cpu() { awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {print u+s}' "$1"; }
results="$work/results.jsonl"
record() { # what seconds influx2td_cpu influxd_cpu taosd_cpu rss values
    python3 -c "import json,sys; a=sys.argv; print(json.dumps(dict(what=a[1], seconds=float(a[2]), influx2td_cpu=float(a[3]), influxd_cpu=float(a[4]), taosd_cpu=float(a[5]), rss_mib=float(a[6]), values=int(a[7]))))" "$@" >> "$results"
}
# Runs one measured phase: before/after CPU of influxd and taosd around "$@".
phase() { # what time-file command...
    local what=$1 timefile=$2; shift 2
    local influxd0 taosd0 t0 seconds
    influxd0=$(cpu_of "$influxd_pid"); taosd0=$(taosd_cpu); t0=$(now)
    "$@"
    seconds=$(python3 -c "print($(now) - $t0)")
    local influx2td_cpu=0 rss=0 values=0
    if [ -s "$timefile" ]; then influx2td_cpu=$(time_cpu "$timefile"); rss=$(time_rss "$timefile"); fi
    # The reader alone reports how many values it read.
    if [ -s "$timefile.json" ]; then values=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['values'])" "$timefile.json"); rm -f "$timefile.json"; fi
    record "$what" "$seconds" "$influx2td_cpu" "$(python3 -c "print($(cpu_of "$influxd_pid") - $influxd0)")" "$(python3 -c "print($(taosd_cpu) - $taosd0)")" "$rss" "$values"
    echo "  $what: ${seconds}s"
}

export_all() {
    local queries=()
    if [ "$shape" = small ]; then
        queries=('SELECT * FROM /.*/ GROUP BY *')
    else
        for m in ${names//,/ }; do queries+=("SELECT * FROM \"$m\" GROUP BY *"); done
    fi
    for q in "${queries[@]}"; do
        curl -sf -G "$url/query" -H 'Accept: application/x-msgpack' --data-urlencode 'db=bench' \
            --data-urlencode 'epoch=ns' --data-urlencode 'chunked=true' --data-urlencode 'chunk_size=10000' \
            --data-urlencode "q=$q" -o /dev/null
    done
}

iso() { python3 -c "import datetime; print(datetime.datetime.fromtimestamp($1/1e9, datetime.timezone.utc).isoformat())"; }
begin_iso=$(iso "$start_ns"); end_iso=$(iso "$end_ns")
# Runs a command with the job's environment (defaults otherwise), replacing the calling shell.
job_env() { # job dsn command...
    local job=$1 dsn=$2; shift 2
    exec env INFLUX2TD_SOURCE_URL="$url" INFLUX2TD_BUCKET=bench INFLUX2TD_JOB="$job" \
        INFLUX2TD_BEGIN="$begin_iso" INFLUX2TD_END="$end_iso" INFLUX2TD_LOG_LEVEL=warn \
        INFLUX2TD_TARGET_DSN="$dsn" INFLUX2TD_TARGET_DATABASE="$database" \
        INFLUX2TD_TARGET_CREATE_DATABASE=true INFLUX2TD_STATE_DIR="$work/state" "$@"
}
database=bench
run_into() { # job dsn time-file
    (job_env "$1" "$2" /usr/bin/time -v -o "$3" target/release/influx2td run)
}
# The same job with the TSM source: influxd's files, read where they lie.
tsm_env=(INFLUX2TD_SOURCE_KIND=tsm INFLUX2TD_SOURCE_DATA_DIR="$work/data" INFLUX2TD_SOURCE_WAL_DIR="$work/wal")
run_tsm_into() { # job dsn time-file
    (job_env "$1" "$2" env "${tsm_env[@]}" /usr/bin/time -v -o "$3" target/release/influx2td run)
}
nats_job() { # job dsn time-file: coordinator, reader and writer processes; CPU of all three
    local job=$1 dsn=$2 timefile=$3 reader writer
    (job_env "$job" "$dsn" env INFLUX2TD_NATS_URL="$nats_url" /usr/bin/time -v -o "$timefile.reader" target/release/influx2td reader) &
    reader=$!
    (job_env "$job" "$dsn" env INFLUX2TD_NATS_URL="$nats_url" /usr/bin/time -v -o "$timefile.writer" target/release/influx2td writer) &
    writer=$!
    local status=0
    (job_env "$job" "$dsn" env INFLUX2TD_NATS_URL="$nats_url" /usr/bin/time -v -o "$timefile.coordinator" target/release/influx2td coordinator) || status=$?
    pkill -TERM -P "$reader" 2>/dev/null || true; pkill -TERM -P "$writer" 2>/dev/null || true
    wait "$reader" "$writer" || true
    [ "$status" = 0 ] || { echo "the coordinator failed ($status)" >&2; return "$status"; }
    python3 - "$timefile" <<'PY'
import re, sys
base = sys.argv[1]
cpu = rss = 0.0
for role in ("coordinator", "reader", "writer"):
    text = open(f"{base}.{role}").read()
    cpu += float(re.search(r"User time \(seconds\): ([\d.]+)", text)[1]) + float(re.search(r"System time \(seconds\): ([\d.]+)", text)[1])
    rss = max(rss, float(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)[1]) / 1024)
open(base, "w").write(f"\tUser time (seconds): {cpu}\n\tSystem time (seconds): 0\n\tMaximum resident set size (kbytes): {int(rss * 1024)}\n")
PY
}
reader_alone() { # time-file concurrency [reader-bench options...]
    local timefile=$1 concurrency=$2; shift 2
    /usr/bin/time -v -o "$timefile" target/release/reader-bench --url "$url" --database bench \
        --measurements "$names" --begin "$start_ns" --end "$end_ns" --window 3600000000000 \
        --concurrency "$concurrency" "$@" > "$timefile.json"
}

# Drops a TDengine database the benchmark made (each run makes its own).
drop_database() {
    python3 -c "import taos; taos.connect().execute('DROP DATABASE IF EXISTS \`$1\`')" 2>/dev/null \
        || taos -s "DROP DATABASE IF EXISTS \`$1\`" >/dev/null 2>&1 \
        || echo "  (could not drop TDengine database $1: drop it by hand)" >&2
}

have_nats=false
if command -v nats-server >/dev/null; then
    start_nats "$work"; pids_to_stop="$pids_to_stop $nats_pid"; have_nats=true
fi
td_dsn=${TDENGINE_DSN:-}
for round in $(seq "$rounds"); do
    echo "round $round"
    phase export "" export_all
    phase reader "$work/reader.time" reader_alone "$work/reader.time" 50
    # The reader alone on the TSM files: as many windows at once as there are cores, as the
    # reader role reads them.
    phase tsm-reader "$work/tsm-reader.time" reader_alone "$work/tsm-reader.time" "$(nproc)" \
        --tsm-data-dir "$work/data" --tsm-wal-dir "$work/wal"
    rm -rf "$work/state" "$work/target"
    phase file "$work/file.time" run_into "file-$round" "file://$work/target" "$work/file.time"
    rm -rf "$work/state" "$work/target"
    phase tsm-file "$work/tsm-file.time" run_tsm_into "tsm-file-$round" "file://$work/target" "$work/tsm-file.time"
    if [ -n "$td_dsn" ]; then
        database="influx2td_bench_$$_$round"
        rm -rf "$work/state"
        phase tdengine "$work/td.time" run_into "td-$round" "$td_dsn" "$work/td.time"
        if [ "$round" = "$rounds" ]; then
            (job_env "td-$round" "$td_dsn" target/release/influx2td verify > "$work/verify.txt") || { cat "$work/verify.txt"; exit 1; }
            echo "  verify: TDengine database $database equals the source"
        fi
        drop_database "$database"
        database="influx2td_bench_tsm_$$_$round"
        rm -rf "$work/state"
        phase tsm-tdengine "$work/tsm-td.time" run_tsm_into "tsm-td-$round" "$td_dsn" "$work/tsm-td.time"
        if [ "$round" = "$rounds" ]; then
            # verify asks InfluxDB's query engine: the files read gave what InfluxDB answers.
            (job_env "tsm-td-$round" "$td_dsn" target/release/influx2td verify > "$work/verify.txt") || { cat "$work/verify.txt"; exit 1; }
            echo "  verify: TDengine database $database (TSM source) equals the source"
        fi
        drop_database "$database"
    fi
    if $have_nats; then
        nats_dsn=${td_dsn:-file://$work/nats-target}
        database="influx2td_bench_nats_$$_$round"
        rm -rf "$work/state"
        phase nats "$work/nats.time" nats_job "nats-$round" "$nats_dsn" "$work/nats.time"
        if [ -n "$td_dsn" ]; then drop_database "$database"; fi
    fi
    database=bench
done

mkdir -p target/bench
python3 - "$results" "$loaded" "$shape" "$rounds" "${td_dsn:+tdengine}" <<'PY'
import json, statistics, sys
path, rows, shape, rounds, tdengine = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
by = {}
for line in open(path):
    entry = json.loads(line)
    by.setdefault(entry["what"], []).append(entry)
median = lambda entries, key: statistics.median(e[key] for e in entries)
export = median(by["export"], "seconds")
labels = {
    "export": "InfluxDB's own export (curl, chunked MessagePack)",
    "reader": "influx2td reader alone (query, decode, encode)",
    "file": "influx2td run into the file target",
    "tdengine": "influx2td run into TDengine (native, binding)",
    "nats": "influx2td over NATS (coordinator + reader + writer)" + (" into TDengine" if tdengine else " into the file target"),
    "tsm-reader": "influx2td reader alone on the TSM files (decode, encode)",
    "tsm-file": "influx2td run, TSM source, into the file target",
    "tsm-tdengine": "influx2td run, TSM source, into TDengine",
}
report = {"rows": rows, "shape": shape, "rounds": rounds, "results": {}}
print(f"\n{rows:,} rows ({shape}), medians of {rounds} rounds\n")
print("| what | seconds | rows/s | × export | influx2td CPU-s / M rows | influxd CPU-s / M rows | taosd CPU-s / M rows | peak RSS | values / CPU-s |")
print("|---|---|---|---|---|---|---|---|---|")
for what in ["export", "reader", "file", "tdengine", "nats", "tsm-reader", "tsm-file", "tsm-tdengine"]:
    if what not in by:
        continue
    entries = by[what]
    seconds = median(entries, "seconds")
    per_million = lambda key: median(entries, key) / (rows / 1e6)
    row = {
        "seconds": seconds, "rows_per_second": rows / seconds, "ratio_to_export": export / seconds,
        "influx2td_cpu_per_million": per_million("influx2td_cpu"), "influxd_cpu_per_million": per_million("influxd_cpu"),
        "taosd_cpu_per_million": per_million("taosd_cpu"), "peak_rss_mib": max(e["rss_mib"] for e in entries),
        "rounds_seconds": [e["seconds"] for e in entries],
        # Values read per CPU-second of influx2td (the reader alone: one core's rate).
        "values_per_cpu_second": statistics.median(e["values"] / e["influx2td_cpu"] for e in entries) if entries[0]["values"] and entries[0]["influx2td_cpu"] else 0,
    }
    report["results"][what] = row
    cells = [labels[what], f"{seconds:.2f}", f"{rows/seconds:,.0f}", f"{export/seconds:.2f}"]
    # influxd's CPU is measured in every phase (0.00 is a measurement: the TSM source does
    # not ask it anything); influx2td's not in the export's, taosd's only where it writes.
    cells.append(f"{row['influx2td_cpu_per_million']:.2f}" if what != "export" else "-")
    cells.append(f"{row['influxd_cpu_per_million']:.2f}")
    cells.append(f"{row['taosd_cpu_per_million']:.2f}" if what in ("tdengine", "tsm-tdengine") or (what == "nats" and tdengine) else "-")
    cells.append(f"{row['peak_rss_mib']:.0f} MiB" if row["peak_rss_mib"] else "-")
    cells.append(f"{row['values_per_cpu_second']/1e6:.2f} M" if row["values_per_cpu_second"] else "-")
    print("| " + " | ".join(cells) + " |")
json.dump(report, open("target/bench/run.json", "w"), indent=2)
PY
