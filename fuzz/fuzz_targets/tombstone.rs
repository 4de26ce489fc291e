//! A tombstone file in any of its four versions (text, binary, gzip, appended gzip). Any
//! bytes end in deletes or an error naming the file.
#![no_main]

use std::path::Path;

use influx2td_tsm::tombstone::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse(Path::new("000000001-000000001.tombstone"), data);
});
