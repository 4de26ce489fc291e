//! Known vectors for each decoder (built as InfluxDB's encoders lay them out), and damaged
//! inputs that must give errors, not panics.

use super::*;

/// MSB-first bit writer, the mirror of `BitReader`, for building Gorilla vectors.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    bits: usize,
}

impl BitWriter {
    fn write(&mut self, value: u64, count: u32) {
        for bit in (0..count).rev() {
            if self.bits.is_multiple_of(8) {
                self.bytes.push(0);
            }
            if (value >> bit) & 1 == 1 {
                let last = self.bytes.len() - 1;
                self.bytes[last] |= 0x80 >> (self.bits % 8);
            }
            self.bits += 1;
        }
    }
}

/// InfluxDB's float encoder (`float.go`), for vectors: leading zeros capped at 31, 64
/// significant bits written as 0, the end marker after the last value.
fn encode_floats(values: &[f64]) -> Vec<u8> {
    let mut writer = BitWriter::default();
    let mut previous = 0u64;
    let (mut leading, mut trailing) = (u32::MAX, 0u32);
    for (index, value) in values
        .iter()
        .map(|v| v.to_bits())
        .chain([FLOAT_END])
        .enumerate()
    {
        if index == 0 {
            writer.write(value, 64);
            previous = value;
            continue;
        }
        let xor = value ^ previous;
        previous = value;
        if xor == 0 {
            writer.write(0, 1);
            continue;
        }
        writer.write(1, 1);
        let (mut new_leading, new_trailing) = (xor.leading_zeros(), xor.trailing_zeros());
        if new_leading >= 32 {
            new_leading = 31;
        }
        if leading != u32::MAX && new_leading >= leading && new_trailing >= trailing {
            writer.write(0, 1);
            writer.write(xor >> trailing, 64 - leading - trailing);
        } else {
            leading = new_leading;
            trailing = new_trailing;
            writer.write(1, 1);
            writer.write(u64::from(leading), 5);
            let significant = 64 - leading - trailing;
            writer.write(u64::from(significant & 63), 6);
            writer.write(xor >> trailing, significant);
        }
    }
    let mut bytes = vec![0x10];
    bytes.extend(writer.bytes);
    bytes
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

#[test]
fn simple8b_words() {
    let mut out = Vec::new();
    simple8b::decode_word(0, &mut out);
    assert_eq!(out, vec![1; 240]);
    out.clear();
    simple8b::decode_word((15 << 60) | 12345, &mut out);
    assert_eq!(out, vec![12345]);
    out.clear();
    // Selector 14: two 30-bit values, the first in the low bits.
    simple8b::decode_word((14 << 60) | (7 << 30) | 5, &mut out);
    assert_eq!(out, vec![5, 7]);
    out.clear();
    // Selector 2: sixty 1-bit values.
    simple8b::decode_word((2 << 60) | 0b1011, &mut out);
    assert_eq!(&out[..5], &[1, 1, 0, 1, 0]);
    assert_eq!(out.len(), 60);
    assert!(simple8b::decode_all(&[0; 7], &mut out, 1000).is_err());
    assert!(simple8b::decode_all(&[0; 16], &mut Vec::new(), 300).is_err());
}

#[test]
fn timestamps_uncompressed_packed_and_rle() {
    // Uncompressed: deltas, the first being the first time (pre-1970 here).
    let mut raw = vec![0x00];
    for delta in [-5_000_000_000i64, 1, u32::MAX as i64 * 1000] {
        raw.extend_from_slice(&delta.to_be_bytes());
    }
    let mut out = Vec::new();
    decode_timestamps(&raw, &mut out).unwrap();
    assert_eq!(
        out,
        vec![
            -5_000_000_000,
            -4_999_999_999,
            -4_999_999_999 + u32::MAX as i64 * 1000
        ]
    );

    // Packed with divisor 10^9 (whole seconds): first time, then deltas 1 s and 3 s.
    let mut packed = vec![0x19];
    packed.extend_from_slice(&1_000_000_000_000_000_000i64.to_be_bytes());
    packed.extend_from_slice(&((14u64 << 60) | (3 << 30) | 1).to_be_bytes());
    out.clear();
    decode_timestamps(&packed, &mut out).unwrap();
    assert_eq!(
        out,
        vec![
            1_000_000_000_000_000_000,
            1_000_000_001_000_000_000,
            1_000_000_004_000_000_000
        ]
    );

    // RLE with divisor 10^1: first 1000, delta 10×10, 4 times.
    let mut rle = vec![0x21];
    rle.extend_from_slice(&1000i64.to_be_bytes());
    rle.extend_from_slice(&[10, 4]);
    out.clear();
    decode_timestamps(&rle, &mut out).unwrap();
    assert_eq!(out, vec![1000, 1100, 1200, 1300]);

    // RLE claiming 2^40 timestamps, an unknown encoding, and short input are errors.
    let mut huge = vec![0x20];
    huge.extend_from_slice(&0i64.to_be_bytes());
    huge.extend_from_slice(&[1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20]);
    assert!(decode_timestamps(&huge, &mut Vec::new()).is_err());
    assert!(decode_timestamps(&[0x30, 0, 0], &mut Vec::new()).is_err());
    assert!(decode_timestamps(&[0x10, 0, 0], &mut Vec::new()).is_err());
    assert!(decode_timestamps(&[0x00, 0, 0], &mut Vec::new()).is_err());
}

#[test]
fn integers_uncompressed_packed_and_rle() {
    let values = [-3i64, 4, i64::MAX, i64::MIN];
    let mut raw = vec![0x00];
    let mut previous = 0i64;
    for value in values {
        raw.extend_from_slice(&zigzag(value.wrapping_sub(previous)).to_be_bytes());
        previous = value;
    }
    let mut out = Vec::new();
    decode_integers(&raw, &mut out).unwrap();
    assert_eq!(out, values);

    // Packed: zigzag(-3) = 5 first, then deltas +1 (zigzag 2) and -2 (zigzag 3).
    let mut packed = vec![0x10];
    packed.extend_from_slice(&5u64.to_be_bytes());
    packed.extend_from_slice(&((14u64 << 60) | (3 << 30) | 2).to_be_bytes());
    out.clear();
    decode_integers(&packed, &mut out).unwrap();
    assert_eq!(out, vec![-3, -2, -4]);

    // RLE: first 10 (zigzag 20), delta -1 (zigzag 1), repeated 3 times: 4 values.
    let mut rle = vec![0x20];
    rle.extend_from_slice(&20u64.to_be_bytes());
    rle.extend_from_slice(&[1, 3]);
    out.clear();
    decode_integers(&rle, &mut out).unwrap();
    assert_eq!(out, vec![10, 9, 8, 7]);

    // Unsigned: the same bytes read as uint64; u64::MAX is int64 -1.
    let mut unsigned_raw = vec![0x00];
    unsigned_raw.extend_from_slice(&zigzag(-1).to_be_bytes());
    unsigned_raw.extend_from_slice(&zigzag(1).to_be_bytes());
    let mut unsigned = Vec::new();
    decode_unsigned(&unsigned_raw, &mut unsigned).unwrap();
    assert_eq!(unsigned, vec![u64::MAX, 0]);

    assert!(decode_integers(&[0x00, 1, 2, 3], &mut Vec::new()).is_err());
    assert!(decode_integers(&[0x20, 0, 0, 0, 0, 0, 0, 0, 0, 1], &mut Vec::new()).is_err());
    assert!(decode_integers(&[0x50], &mut Vec::new()).is_err());
}

#[test]
fn floats_gorilla() {
    // One value, 1.0: 64 bits of it, then the end marker XOR 1.0 = 0x4008000000000001
    // (1 leading zero, 63 significant bits) after the control bits 1, 1.
    let mut writer = BitWriter::default();
    writer.write(1f64.to_bits(), 64);
    writer.write(0b11, 2);
    writer.write(1, 5);
    writer.write(63, 6);
    writer.write(0x4008_0000_0000_0001, 63);
    let mut one = vec![0x10];
    one.extend(writer.bytes);
    assert_eq!(one, encode_floats(&[1.0]));
    let mut out = Vec::new();
    decode_floats(&one, 1, &mut out).unwrap();
    assert_eq!(out, vec![1.0]);

    let values = [
        12.5,
        12.5,
        12.75,
        -0.0,
        f64::INFINITY,
        f64::MIN_POSITIVE / 2.0,
        1e300,
        -1e-300,
        3.0,
        3.0,
        0.1,
        0.2,
        0.30000000000000004,
        f64::MAX,
        f64::MIN,
        42.0,
    ];
    let encoded = encode_floats(&values);
    out.clear();
    decode_floats(&encoded, values.len(), &mut out).unwrap();
    assert_eq!(
        out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );

    // Asking for more values than the block holds, or a block cut short, is an error.
    assert!(decode_floats(&encoded, values.len() + 1, &mut Vec::new()).is_err());
    assert!(decode_floats(&encoded[..encoded.len() / 2], values.len(), &mut Vec::new()).is_err());
    assert!(decode_floats(&[0x20, 0, 0, 0, 0, 0, 0, 0, 0], 1, &mut Vec::new()).is_err());
}

#[test]
fn booleans_bit_packed() {
    let mut out = Vec::new();
    decode_booleans(&[0x10, 10, 0b1010_0000, 0b0100_0000], &mut out).unwrap();
    assert_eq!(
        out,
        vec![
            true, false, true, false, false, false, false, false, false, true
        ]
    );
    assert!(decode_booleans(&[0x10, 17, 0xff, 0xff], &mut Vec::new()).is_err());
    assert!(decode_booleans(&[0x10, 0x80], &mut Vec::new()).is_err());
}

#[test]
fn strings_snappy() {
    let values = ["", "with \"quotes\"\nand newline", "ünïcødé ✓", "x"];
    let mut plain = Vec::new();
    for value in values {
        plain.push(value.len() as u8);
        plain.extend_from_slice(value.as_bytes());
    }
    let mut block = vec![0x10];
    block.extend(snap::raw::Encoder::new().compress_vec(&plain).unwrap());
    let mut out = Vec::new();
    decode_strings(&block, &mut out).unwrap();
    assert_eq!(out, values);

    // A length running past the data, and bytes that are not snappy.
    let mut past = vec![0x10];
    past.extend(snap::raw::Encoder::new().compress_vec(&[5, b'a']).unwrap());
    assert!(decode_strings(&past, &mut Vec::new()).is_err());
    assert!(decode_strings(&[0x10, 0xff, 0xff, 0xff, 0xff, 0x0f, 1], &mut Vec::new()).is_err());
}

#[test]
fn blocks_pair_times_with_values() {
    let mut timestamps = vec![0x21];
    timestamps.extend_from_slice(&1000i64.to_be_bytes());
    timestamps.extend_from_slice(&[10, 3]);
    let mut block = vec![1, timestamps.len() as u8];
    block.extend_from_slice(&timestamps);
    block.push(0x20);
    block.extend_from_slice(&20u64.to_be_bytes());
    block.extend_from_slice(&[1, 2]);
    let decoded = decode_block(&block).unwrap();
    assert_eq!(decoded.times, vec![1000, 1100, 1200]);
    assert_eq!(decoded.values, Values::Integer(vec![10, 9, 8]));

    // Three timestamps with two values is damage, not two rows.
    let mut short = block.clone();
    let last = short.len() - 1;
    short[last] = 1;
    assert!(decode_block(&short).is_err());
    // An unknown block type, and a timestamp length past the block.
    let mut unknown = block.clone();
    unknown[0] = 9;
    assert!(decode_block(&unknown).is_err());
    assert!(decode_block(&[0, 100, 1]).is_err());
    assert!(decode_block(&[]).is_err());
}

#[test]
fn random_bytes_never_panic() {
    // A deterministic xorshift: the fuzz targets go further, this runs in every `cargo test`.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let length = (next() % 64) as usize;
        let bytes: Vec<u8> = (0..length).map(|_| next() as u8).collect();
        let _ = decode_block(&bytes);
        let _ = decode_timestamps(&bytes, &mut Vec::new());
        let _ = decode_integers(&bytes, &mut Vec::new());
        let _ = decode_floats(&bytes, length, &mut Vec::new());
        let _ = decode_booleans(&bytes, &mut Vec::new());
        let _ = decode_strings(&bytes, &mut Vec::new());
    }
}
