//! The block decoders on any bytes: a whole block (type, timestamps, values), and each
//! encoding alone (timestamps, floats, integers, unsigned, booleans, strings).
#![no_main]

use influx2td_tsm::encoding::{
    decode_block, decode_booleans, decode_floats, decode_integers, decode_strings,
    decode_timestamps, decode_unsigned,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(block) = decode_block(data) {
        assert_eq!(block.times.len(), block.values.len());
        assert!(block.times.windows(2).all(|pair| pair[0] < pair[1]));
    }
    let mut times = Vec::new();
    let _ = decode_timestamps(data, &mut times);
    let _ = decode_floats(data, times.len(), &mut Vec::new());
    let _ = decode_floats(data, data.len(), &mut Vec::new());
    let _ = decode_integers(data, &mut Vec::new());
    let _ = decode_unsigned(data, &mut Vec::new());
    let _ = decode_booleans(data, &mut Vec::new());
    let _ = decode_strings(data, &mut Vec::new());
});
