#!/usr/bin/env bash
# Runs every fuzz target for a while (default 15 s each; `bash fuzz/run.sh 3600` for an hour
# each), starting from the committed seeds (fuzz/seeds/<target>) and the corpus grown by
# earlier runs (fuzz/corpus/<target>, not committed). Stable Rust: no sanitizer (`-s none`);
# libFuzzer still catches panics, hangs (-timeout), and any single allocation over 256 MiB or
# a process over 1 GiB (unbounded memory). A failing input is kept in fuzz/artifacts/<target>/
# and replays with `cargo fuzz run -s none <target> <file>`.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-15}
command -v cargo-fuzz > /dev/null || cargo install cargo-fuzz --locked
export RUSTUP_TOOLCHAIN=${RUSTUP_TOOLCHAIN:-stable}
cargo fuzz build -s none
for target in influxql_msgpack flux_csv config row_batch tsm_file tsm_block wal_segment tombstone; do
    mkdir -p "corpus/$target"
    echo "fuzz $target for ${seconds}s"
    cargo fuzz run -s none "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -malloc_limit_mb=256 \
        -print_final_stats=1 2>&1 | grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|Done)|ERROR|panicked|SUMMARY" || true
    # cargo fuzz exits non-zero on a finding; the pipe above hides it, the artifact does not.
    if compgen -G "artifacts/$target/*" > /dev/null; then
        echo "fuzz $target found a failing input:" artifacts/"$target"/* >&2
        exit 1
    fi
done
