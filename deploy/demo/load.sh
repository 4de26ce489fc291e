#!/bin/sh
# Writes a small demo data set into InfluxDB 1.x: 3 measurements x 8 hosts, a point every 10 s
# over the day before 2024-01-02 (about 25,000 rows), once.
set -eu
url="${INFLUXDB_URL:-http://influxdb:8086}"
until curl -fsS "$url/ping" >/dev/null; do sleep 1; done
curl -fsS -XPOST "$url/query" --data-urlencode "q=CREATE DATABASE demo" >/dev/null
start=1704067200  # 2024-01-01T00:00:00Z
for m in cpu mem disk; do
    i=0
    body=""
    while [ $i -lt 8640 ]; do
        t=$((start + i * 10))
        h=$((i % 8))
        body="$body$m,host=host-$h usage=$((i % 100)).5,count=${i}i,up=true $t
"
        i=$((i + 1))
        if [ $((i % 2000)) -eq 0 ]; then
            printf '%s' "$body" | curl -fsS -XPOST "$url/write?db=demo&precision=s" --data-binary @- >/dev/null
            body=""
        fi
    done
    printf '%s' "$body" | curl -fsS -XPOST "$url/write?db=demo&precision=s" --data-binary @- >/dev/null
done
echo "demo data loaded"
