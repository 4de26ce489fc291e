# Shared by bench/run.sh and bench/soak.sh: a private influxd (and nats-server) on free ports
# in a work directory, and the deterministic data set loaded into it. Source it, then call.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_influxd DIR: influxd with its store in DIR; sets influxd_pid and url.
start_influxd() {
    local dir=$1 http_port rpc_port
    http_port=$(free_port); rpc_port=$(free_port)
    cat > "$dir/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$rpc_port"
[meta]
  dir = "$dir/meta"
[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  query-log-enabled = false
  # Written points go to TSM files a second after the writes stop, as historical data is.
  cache-snapshot-write-cold-duration = "1s"
[coordinator]
  query-timeout = "0s"
[http]
  bind-address = "127.0.0.1:$http_port"
  log-enabled = false
  max-body-size = 0
[monitor]
  store-enabled = false
[logging]
  level = "warn"
CONF
    influxd run -config "$dir/influxdb.conf" > "$dir/influxd.log" 2>&1 &
    influxd_pid=$!
    url="http://127.0.0.1:$http_port"
    for _ in $(seq 100); do curl -sf "$url/ping" >/dev/null && break; sleep 0.1; done
}

# start_nats DIR: nats-server with JetStream stored in DIR; sets nats_pid, nats_url, nats_monitor.
start_nats() {
    local dir=$1 port
    port=$(free_port); nats_monitor=$(free_port)
    nats-server -js -a 127.0.0.1 -p "$port" -m "$nats_monitor" -sd "$dir/nats" > "$dir/nats.log" 2>&1 &
    nats_pid=$!
    nats_url="nats://127.0.0.1:$port"
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$nats_monitor/healthz" >/dev/null && break; sleep 0.1; done
}

# load_rows DATABASE ROWS START_NS: bench/generate.py's data set (128 series, a point every
# 10 s) into DATABASE of the influxd at $url.
load_rows() {
    curl -sf -XPOST "$url/query" --data-urlencode "q=CREATE DATABASE $1" >/dev/null
    python3 bench/generate.py "$2" "$3" | split -l 100000 --filter "curl -sf -XPOST '$url/write?db=$1&precision=ns' --data-binary @- " -
}

# wait_for_tsm: until influxd's in-memory cache is empty (everything written is in TSM files):
# reads of historical data are reads of TSM files, and cost influxd about half as much.
wait_for_tsm() {
    for _ in $(seq 120); do
        local bytes
        bytes=$(curl -sf "$url/debug/vars" | python3 -c '
import json, sys
print(sum(v["values"].get("memBytes", 0) for v in json.load(sys.stdin).values() if isinstance(v, dict) and v.get("name") == "tsm1_cache"))')
        [ "$bytes" = 0 ] && return 0
        sleep 0.5
    done
    echo "influxd still holds points in its cache" >&2
}
