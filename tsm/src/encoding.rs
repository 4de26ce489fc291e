//! Decoders for the block encodings InfluxDB 1.x writes (`tsdb/engine/tsm1/{timestamp,float,
//! int,bool,string,encoding}.go`, `simple8b`). Every decoder checks lengths before it reads and
//! caps what it allocates, so damaged bytes give a [`DecodeError`], never a panic or a huge
//! allocation.

use crate::error::DecodeError;
use crate::{FieldType, Values};

/// The most points one block may hold. InfluxDB writes at most 1000 (a few times that in
/// aggressive compactions); anything far above is damage, not data.
pub const MAX_POINTS_PER_BLOCK: usize = 1 << 20;

/// Snappy expands at most ~21× (a 3-byte copy of 64 bytes); a stated length above this bound
/// is damage, and refusing it keeps a damaged header from allocating gigabytes.
fn check_snappy_length(compressed: &[u8]) -> Result<usize, DecodeError> {
    let length = snap::raw::decompress_len(compressed)
        .map_err(|error| DecodeError::new(format!("bad snappy header: {error}")))?;
    if length > compressed.len().saturating_mul(32) + 64 {
        return Err(DecodeError::new(format!(
            "snappy data of {} bytes claims {length} bytes decompressed",
            compressed.len()
        )));
    }
    Ok(length)
}

/// Decompresses snappy's block format (not its framed stream), as Go's `snappy.Decode`.
pub fn snappy_decompress(compressed: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let length = check_snappy_length(compressed)?;
    let mut out = vec![0; length];
    let written = snap::raw::Decoder::new()
        .decompress(compressed, &mut out)
        .map_err(|error| DecodeError::new(format!("bad snappy data: {error}")))?;
    out.truncate(written);
    Ok(out)
}

/// Reads an unsigned LEB128 varint (Go's `binary.Uvarint`): the value and the bytes it took.
pub fn read_uvarint(bytes: &[u8]) -> Result<(u64, usize), DecodeError> {
    let mut value: u64 = 0;
    for (index, &byte) in bytes.iter().enumerate().take(10) {
        if index == 9 && byte > 1 {
            return Err(DecodeError::new("varint overflows 64 bits"));
        }
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte < 0x80 {
            return Ok((value, index + 1));
        }
    }
    Err(DecodeError::new("truncated varint"))
}

pub(crate) fn be_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let slice = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_be_bytes(slice.try_into().ok()?))
}

pub(crate) fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let slice = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(slice.try_into().ok()?))
}

pub(crate) fn be_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let slice = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes(slice.try_into().ok()?))
}

fn check_count(count: usize, what: &str) -> Result<(), DecodeError> {
    if count > MAX_POINTS_PER_BLOCK {
        return Err(DecodeError::new(format!(
            "{what} block claims {count} values, more than {MAX_POINTS_PER_BLOCK}"
        )));
    }
    Ok(())
}

pub mod simple8b {
    //! Simple-8b: a 4-bit selector in the top bits says how many values of how many bits the
    //! other 60 bits hold, lowest value in the lowest bits; selectors 0 and 1 mean 240 or 120
    //! ones (jwilder/encoding, which InfluxDB vendors).

    use super::DecodeError;

    /// (values per word, bits per value) for each selector.
    const SELECTORS: [(usize, u32); 16] = [
        (240, 0),
        (120, 0),
        (60, 1),
        (30, 2),
        (20, 3),
        (15, 4),
        (12, 5),
        (10, 6),
        (8, 7),
        (7, 8),
        (6, 10),
        (5, 12),
        (4, 15),
        (3, 20),
        (2, 30),
        (1, 60),
    ];

    /// The most values one word holds.
    pub const MAX_VALUES_PER_WORD: usize = 240;

    /// Appends the values packed in `word` to `out`.
    pub fn decode_word(word: u64, out: &mut Vec<u64>) {
        let (count, bits) = SELECTORS[(word >> 60) as usize];
        if bits == 0 {
            out.resize(out.len() + count, 1);
            return;
        }
        let mask = (1u64 << bits) - 1;
        out.extend((0..count as u32).map(|index| (word >> (index * bits)) & mask));
    }

    /// Decodes big-endian 8-byte words until `bytes` ends, refusing more than `limit` values.
    pub fn decode_all(bytes: &[u8], out: &mut Vec<u64>, limit: usize) -> Result<(), DecodeError> {
        if !bytes.len().is_multiple_of(8) {
            return Err(DecodeError::new(format!(
                "simple8b data of {} bytes is not whole words",
                bytes.len()
            )));
        }
        for chunk in bytes.chunks_exact(8) {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            decode_word(u64::from_be_bytes(word), out);
            if out.len() > limit {
                return Err(DecodeError::new(format!(
                    "simple8b data holds more than {limit} values"
                )));
            }
        }
        Ok(())
    }
}

/// Timestamps (`timestamp.go`): the 4 high bits of the first byte say the encoding, the low 4
/// the power of ten every delta was divided by. Uncompressed: 8-byte deltas (the first is the
/// first time), unscaled. Packed: the first time, then simple8b-packed scaled deltas. RLE: the
/// first time, the scaled delta and the count as varints.
pub fn decode_timestamps(bytes: &[u8], out: &mut Vec<i64>) -> Result<(), DecodeError> {
    let Some(&header) = bytes.first() else {
        return Ok(());
    };
    // Four bits of exponent: at most 10^15, which fits.
    let divisor = 10u64.pow(u32::from(header & 0x0f));
    match header >> 4 {
        0 => {
            let body = &bytes[1..];
            if !body.len().is_multiple_of(8) {
                return Err(DecodeError::new(
                    "uncompressed timestamps are not whole 8-byte values",
                ));
            }
            check_count(body.len() / 8, "timestamp")?;
            let mut last = 0u64;
            out.reserve(body.len() / 8);
            for (index, chunk) in body.chunks_exact(8).enumerate() {
                let mut delta = [0; 8];
                delta.copy_from_slice(chunk);
                let delta = u64::from_be_bytes(delta);
                last = if index == 0 {
                    delta
                } else {
                    last.wrapping_add(delta)
                };
                out.push(last as i64);
            }
            Ok(())
        }
        1 => {
            let first = be_u64(bytes, 1)
                .ok_or_else(|| DecodeError::new("packed timestamps shorter than 9 bytes"))?;
            let mut deltas = Vec::new();
            simple8b::decode_all(&bytes[9..], &mut deltas, MAX_POINTS_PER_BLOCK - 1)?;
            out.reserve(deltas.len() + 1);
            out.push(first as i64);
            let mut last = first;
            for delta in deltas {
                last = last.wrapping_add(delta.wrapping_mul(divisor));
                out.push(last as i64);
            }
            Ok(())
        }
        2 => {
            let first = be_u64(bytes, 1)
                .ok_or_else(|| DecodeError::new("RLE timestamps shorter than 9 bytes"))?;
            let (delta, used) = read_uvarint(&bytes[9..])?;
            let (count, used_count) = read_uvarint(&bytes[9 + used..])?;
            if 9 + used + used_count != bytes.len() {
                return Err(DecodeError::new("trailing bytes after RLE timestamps"));
            }
            let count = usize::try_from(count).unwrap_or(usize::MAX);
            check_count(count, "timestamp")?;
            let delta = delta.wrapping_mul(divisor);
            out.reserve(count);
            let mut value = first;
            for _ in 0..count {
                out.push(value as i64);
                value = value.wrapping_add(delta);
            }
            Ok(())
        }
        other => Err(DecodeError::new(format!(
            "unknown timestamp encoding {other}"
        ))),
    }
}

/// Go's `ZigZagDecode`.
pub fn zigzag_decode(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// Integers (`int.go`): zigzag-encoded deltas (the first from 0). Uncompressed: 8 bytes each.
/// Packed: the first 8 bytes raw, then simple8b words. RLE: the first value (8 bytes), the
/// delta and the number of repeats as varints. Arithmetic wraps as Go's int64 does, which is
/// what makes the same decoder right for unsigned blocks.
pub fn decode_integers(bytes: &[u8], out: &mut Vec<i64>) -> Result<(), DecodeError> {
    let Some(&header) = bytes.first() else {
        return Ok(());
    };
    let body = &bytes[1..];
    match header >> 4 {
        0 => {
            if !body.len().is_multiple_of(8) {
                return Err(DecodeError::new(
                    "uncompressed integers are not whole 8-byte values",
                ));
            }
            check_count(body.len() / 8, "integer")?;
            out.reserve(body.len() / 8);
            let mut last = 0i64;
            for chunk in body.chunks_exact(8) {
                let mut raw = [0; 8];
                raw.copy_from_slice(chunk);
                last = last.wrapping_add(zigzag_decode(u64::from_be_bytes(raw)));
                out.push(last);
            }
            Ok(())
        }
        1 => {
            if body.is_empty() {
                return Ok(());
            }
            let first = be_u64(body, 0)
                .ok_or_else(|| DecodeError::new("packed integers shorter than 8 bytes"))?;
            let mut deltas = Vec::with_capacity(body.len());
            simple8b::decode_all(&body[8..], &mut deltas, MAX_POINTS_PER_BLOCK - 1)?;
            out.reserve(deltas.len() + 1);
            let mut last = zigzag_decode(first);
            out.push(last);
            for delta in deltas {
                last = last.wrapping_add(zigzag_decode(delta));
                out.push(last);
            }
            Ok(())
        }
        2 => {
            let first = be_u64(body, 0)
                .ok_or_else(|| DecodeError::new("RLE integers shorter than 8 bytes"))?;
            let (delta, used) = read_uvarint(&body[8..])?;
            let (repeats, used_repeats) = read_uvarint(&body[8 + used..])?;
            if 8 + used + used_repeats != body.len() {
                return Err(DecodeError::new("trailing bytes after RLE integers"));
            }
            let count = usize::try_from(repeats)
                .ok()
                .and_then(|repeats| repeats.checked_add(1))
                .unwrap_or(usize::MAX);
            check_count(count, "integer")?;
            let (first, delta) = (zigzag_decode(first), zigzag_decode(delta));
            out.reserve(count);
            let mut value = first;
            for _ in 0..count {
                out.push(value);
                value = value.wrapping_add(delta);
            }
            Ok(())
        }
        other => Err(DecodeError::new(format!(
            "unknown integer encoding {other}"
        ))),
    }
}

/// Unsigned integers: InfluxDB writes them through the integer encoder as `int64(v)` and reads
/// them back as `uint64(v)`.
pub fn decode_unsigned(bytes: &[u8], out: &mut Vec<u64>) -> Result<(), DecodeError> {
    let mut signed = Vec::new();
    decode_integers(bytes, &mut signed)?;
    out.extend(signed.into_iter().map(|value| value as u64));
    Ok(())
}

/// The marker InfluxDB's float encoder ends a block with (a NaN no arithmetic produces).
const FLOAT_END: u64 = 0x7FF8_0000_0000_0001;

/// Reads big-endian bit fields, most significant bit first.
struct BitReader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl BitReader<'_> {
    /// Reads `count` (1..=64) bits, or `None` past the end.
    fn read(&mut self, count: u32) -> Option<u64> {
        debug_assert!((1..=64).contains(&count));
        let end = self.position.checked_add(count as usize)?;
        if end > self.bytes.len() * 8 {
            return None;
        }
        let byte = self.position / 8;
        let shift = (self.position % 8) as u32;
        let window = match self.bytes.get(byte..byte + 16) {
            Some(sixteen) => u128::from_be_bytes(sixteen.try_into().ok()?),
            None => {
                let mut padded = [0u8; 16];
                let tail = &self.bytes[byte..];
                padded[..tail.len()].copy_from_slice(tail);
                u128::from_be_bytes(padded)
            }
        };
        self.position = end;
        Some(((window << shift) >> (128 - count)) as u64)
    }

    fn bit(&mut self) -> Option<bool> {
        self.read(1).map(|bit| bit == 1)
    }
}

/// Floats (`float.go`): Facebook Gorilla's XOR encoding. After a header byte, the first value
/// in 64 bits; then per value a 0 bit (same as before) or 1 and either 0 (XOR with the previous
/// leading/trailing zero counts) or 1, 5 bits of leading zeros and 6 of significant bits
/// (0 meaning 64), then the significant bits. [`FLOAT_END`] ends the block. Decodes exactly
/// `count` values (the block's timestamp count).
pub fn decode_floats(bytes: &[u8], count: usize, out: &mut Vec<f64>) -> Result<(), DecodeError> {
    let Some(&header) = bytes.first() else {
        return if count == 0 {
            Ok(())
        } else {
            Err(DecodeError::new("empty float data for a non-empty block"))
        };
    };
    if header >> 4 != 1 {
        return Err(DecodeError::new(format!(
            "unknown float encoding {}",
            header >> 4
        )));
    }
    check_count(count, "float")?;
    let short = || DecodeError::new(format!("float data ends before {count} values"));
    let mut reader = BitReader {
        bytes: &bytes[1..],
        position: 0,
    };
    let mut value = reader.read(64).ok_or_else(short)?;
    if count == 0 {
        return Ok(());
    }
    if value == FLOAT_END {
        return Err(short());
    }
    out.reserve(count);
    out.push(f64::from_bits(value));
    let (mut leading, mut trailing) = (0u32, 0u32);
    for _ in 1..count {
        if !reader.bit().ok_or_else(short)? {
            out.push(f64::from_bits(value));
            continue;
        }
        if reader.bit().ok_or_else(short)? {
            leading = reader.read(5).ok_or_else(short)? as u32;
            let mut significant = reader.read(6).ok_or_else(short)? as u32;
            if significant == 0 {
                significant = 64;
            }
            trailing = 64u32.checked_sub(leading + significant).ok_or_else(|| {
                DecodeError::new(format!(
                    "float with {leading} leading and {significant} significant bits"
                ))
            })?;
        }
        let significant = 64 - leading - trailing;
        let bits = reader.read(significant).ok_or_else(short)?;
        value ^= bits << trailing;
        if value == FLOAT_END {
            return Err(short());
        }
        out.push(f64::from_bits(value));
    }
    Ok(())
}

/// Booleans (`bool.go`): a header byte, the count as a varint, then one bit per value, most
/// significant bit first.
pub fn decode_booleans(bytes: &[u8], out: &mut Vec<bool>) -> Result<(), DecodeError> {
    if bytes.is_empty() {
        return Ok(());
    }
    let (count, used) = read_uvarint(&bytes[1..])?;
    let bits = &bytes[1 + used..];
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    if count > bits.len().saturating_mul(8) {
        return Err(DecodeError::new(format!(
            "boolean block claims {count} values in {} bytes",
            bits.len()
        )));
    }
    out.extend((0..count).map(|index| bits[index / 8] & (0x80 >> (index % 8)) != 0));
    Ok(())
}

/// Strings (`string.go`): a header byte, then snappy (block format) of every value as a varint
/// length and its bytes.
pub fn decode_strings(bytes: &[u8], out: &mut Vec<String>) -> Result<(), DecodeError> {
    if bytes.is_empty() {
        return Ok(());
    }
    let data = snappy_decompress(&bytes[1..])?;
    let mut position = 0;
    while position < data.len() {
        let (length, used) = read_uvarint(&data[position..])?;
        let start = position + used;
        let end = usize::try_from(length)
            .ok()
            .and_then(|length| start.checked_add(length))
            .filter(|&end| end <= data.len())
            .ok_or_else(|| DecodeError::new("string value runs past its block"))?;
        let value = std::str::from_utf8(&data[start..end])
            .map_err(|_| DecodeError::new("string value is not UTF-8"))?;
        out.push(value.to_owned());
        position = end;
    }
    check_count(out.len(), "string")
}

/// One decoded block: its field type, times (ascending) and values.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub times: Vec<i64>,
    pub values: Values,
}

/// Decodes a block as stored after its CRC (`encoding.go`): a type byte, the length of the
/// timestamp data as a varint, the timestamps, then the values. The value and timestamp
/// counts must agree.
pub fn decode_block(bytes: &[u8]) -> Result<Block, DecodeError> {
    let Some(&type_byte) = bytes.first() else {
        return Err(DecodeError::new("empty block"));
    };
    let field_type = FieldType::from_block_type(type_byte)
        .ok_or_else(|| DecodeError::new(format!("unknown block type {type_byte}")))?;
    let (timestamps_length, used) = read_uvarint(&bytes[1..])?;
    let timestamps_start = 1 + used;
    let timestamps_end = usize::try_from(timestamps_length)
        .ok()
        .and_then(|length| timestamps_start.checked_add(length))
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| DecodeError::new("timestamp data runs past the block"))?;
    let mut times = Vec::new();
    decode_timestamps(&bytes[timestamps_start..timestamps_end], &mut times)?;
    let value_bytes = &bytes[timestamps_end..];
    let values = match field_type {
        FieldType::Float => {
            let mut values = Vec::new();
            decode_floats(value_bytes, times.len(), &mut values)?;
            Values::Float(values)
        }
        FieldType::Integer => {
            let mut values = Vec::new();
            decode_integers(value_bytes, &mut values)?;
            Values::Integer(values)
        }
        FieldType::Unsigned => {
            let mut values = Vec::new();
            decode_unsigned(value_bytes, &mut values)?;
            Values::Unsigned(values)
        }
        FieldType::Boolean => {
            let mut values = Vec::new();
            decode_booleans(value_bytes, &mut values)?;
            Values::Boolean(values)
        }
        FieldType::String => {
            let mut values = Vec::new();
            decode_strings(value_bytes, &mut values)?;
            Values::String(values)
        }
    };
    if values.len() != times.len() {
        return Err(DecodeError::new(format!(
            "block has {} timestamps but {} values",
            times.len(),
            values.len()
        )));
    }
    if times.windows(2).any(|pair| pair[0] >= pair[1]) {
        return Err(DecodeError::new("block timestamps are not ascending"));
    }
    Ok(Block { times, values })
}

#[cfg(test)]
mod tests;
