//! How fast the TSM reader decodes on one core: reads every key of a shard directory (a
//! `data/<db>/<rp>/<id>` that influxd wrote) block by block and prints values/s per field type.
//!
//! `cargo run --release -p influx2td-tsm --example decode_speed -- <shard dir> [wal dir]`

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use influx2td_tsm::Shard;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let data_dir = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: decode_speed <shard dir> [wal dir]"))?;
    let wal_dir = args.next();
    let opened = Instant::now();
    let shard = Shard::open(Path::new(&data_dir), wal_dir.as_deref().map(Path::new))?;
    println!(
        "opened {} TSM files, {} keys in {:?}",
        shard.files().count(),
        shard.keys().count(),
        opened.elapsed()
    );
    // Twice: the first pass also warms the page cache, the second is what is reported.
    let mut per_type: BTreeMap<&str, (u64, Duration)> = BTreeMap::new();
    for pass in 0..2 {
        per_type.clear();
        for key in shard.keys() {
            let started = Instant::now();
            let points = shard
                .read_key(key.key(), i64::MIN, i64::MAX)?
                .unwrap_or_else(|| influx2td_tsm::Points::empty(key.field_type));
            let elapsed = started.elapsed();
            let entry = per_type.entry(key.field_type.name()).or_default();
            entry.0 += points.len() as u64;
            entry.1 += elapsed;
        }
        if pass == 1 {
            let mut total = (0, Duration::ZERO);
            for (field_type, (values, elapsed)) in &per_type {
                println!(
                    "{field_type:>8}: {values:>10} values in {elapsed:>10.3?} = {:>6.1} M values/s",
                    *values as f64 / elapsed.as_secs_f64() / 1e6
                );
                total.0 += values;
                total.1 += *elapsed;
            }
            println!(
                "     all: {:>10} values in {:>10.3?} = {:>6.1} M values/s (one thread)",
                total.0,
                total.1,
                total.0 as f64 / total.1.as_secs_f64() / 1e6
            );
        }
    }
    Ok(())
}
