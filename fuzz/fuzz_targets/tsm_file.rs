//! A TSM file as the TSM source opens it: header, footer, the whole index checked, then every
//! block of every key read (CRC, decode, type and time checks). Any bytes end in points or an
//! error naming the file.
#![no_main]

use influx2td_tsm::TsmFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = TsmFile::from_bytes("000000001-000000001.tsm", data.to_vec()) else {
        return;
    };
    let keys: Vec<Vec<u8>> = file.keys().map(|(key, _)| key.to_vec()).collect();
    for key in keys {
        if let Ok(Some((field_type, entries))) = file.entries(&key) {
            for entry in entries {
                if let Ok(points) = file.read_block(field_type, &entry) {
                    assert_eq!(points.times.len(), points.values.len());
                }
            }
        }
    }
});
