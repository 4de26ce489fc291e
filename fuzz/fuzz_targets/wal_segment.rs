//! A WAL segment as the TSM source replays it: snappy entries of writes, deletes and
//! delete-ranges. Any bytes end in entries (a torn tail ignored) or an error naming the file.
#![no_main]

use std::path::Path;

use influx2td_tsm::wal::{Entry, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(segment) = parse(Path::new("_00001.wal"), data) else {
        return;
    };
    assert!(segment.torn_tail_bytes <= data.len());
    for entry in segment.entries {
        if let Entry::Write(keys) = entry {
            for (_, points) in keys {
                assert_eq!(points.times.len(), points.values.len());
                assert!(points.times.windows(2).all(|pair| pair[0] < pair[1]));
            }
        }
    }
});
