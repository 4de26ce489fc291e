//! WAL segments (`tsdb/engine/tsm1/wal.go`): `_NNNNN.wal` files of entries, each a type byte
//! (1 write, 2 delete, 3 delete-range), a 4-byte big-endian length, and that many bytes of
//! snappy (block format). Inside a write: per key a value type byte (1 float, 2 integer,
//! 3 boolean, 4 string, 5 unsigned), key length (2), key, count (4), then per value its time
//! (8) and value (8 bytes; 1 byte for a boolean; length (4) and bytes for a string). A delete
//! is the keys joined by newlines; a delete-range is min and max time (8 each) then per key its
//! length (4) and bytes.
//!
//! A segment whose last entry is cut short (influxd crashed, or is appending right now) ends
//! there, as InfluxDB's own replay truncates it; an entry that is complete but undecodable is
//! corrupt.

use std::path::Path;

use crate::encoding::{be_u16, be_u32, be_u64, snappy_decompress};
use crate::{Error, Points, Values};

/// One WAL entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// Points per key (`series key#!~#field`).
    Write(Vec<(String, Points)>),
    /// Keys deleted for all time.
    Delete(Vec<String>),
    /// Keys whose points with `min_time <= time <= max_time` are deleted.
    DeleteRange {
        keys: Vec<String>,
        min_time: i64,
        max_time: i64,
    },
}

/// A parsed segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub entries: Vec<Entry>,
    /// Bytes after the last complete entry (a write cut short), ignored as InfluxDB does.
    pub torn_tail_bytes: usize,
}

/// Reads a WAL segment (read-only).
pub fn read(path: &Path) -> Result<Segment, Error> {
    let bytes = std::fs::read(path).map_err(|error| Error::io(path, error))?;
    parse(path, &bytes)
}

/// Parses the bytes of a WAL segment; `name` names it in errors.
pub fn parse(name: &Path, bytes: &[u8]) -> Result<Segment, Error> {
    let mut entries = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let (Some(&entry_type), Some(length)) = (bytes.get(position), be_u32(bytes, position + 1))
        else {
            break;
        };
        let start = position + 5;
        let Some(compressed) = bytes.get(start..start + length as usize) else {
            break;
        };
        let corrupt =
            |detail: String| Error::corrupt(name, format!("entry at offset {position}: {detail}"));
        let data = snappy_decompress(compressed).map_err(|error| corrupt(error.0))?;
        let entry = match entry_type {
            1 => parse_write(&data),
            2 => parse_delete(&data),
            3 => parse_delete_range(&data),
            other => Err(format!("unknown entry type {other}")),
        }
        .map_err(corrupt)?;
        entries.push(entry);
        position = start + length as usize;
    }
    Ok(Segment {
        entries,
        torn_tail_bytes: bytes.len() - position,
    })
}

fn utf8(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| "key is not UTF-8".to_owned())
}

fn parse_write(data: &[u8]) -> Result<Entry, String> {
    let truncated = || "write entry is truncated".to_owned();
    let mut keys = Vec::new();
    let mut position = 0;
    while position < data.len() {
        let value_type = data[position];
        let key_length = usize::from(be_u16(data, position + 1).ok_or_else(truncated)?);
        let key_start = position + 3;
        let key = utf8(
            data.get(key_start..key_start + key_length)
                .ok_or_else(truncated)?,
        )?;
        let count = be_u32(data, key_start + key_length).ok_or_else(truncated)? as usize;
        position = key_start + key_length + 4;
        // Every value takes at least 9 bytes: a count beyond that is damage, not an allocation.
        if count == 0 || count > (data.len() - position) / 9 {
            return Err(format!("write entry claims {count} values for one key"));
        }
        let mut times = Vec::with_capacity(count);
        let next_time = |position: &mut usize| -> Result<i64, String> {
            let time = be_u64(data, *position).ok_or_else(truncated)? as i64;
            *position += 8;
            Ok(time)
        };
        let fixed = |position: &mut usize| -> Result<u64, String> {
            let value = be_u64(data, *position).ok_or_else(truncated)?;
            *position += 8;
            Ok(value)
        };
        let values = match value_type {
            1 | 2 | 5 => {
                let mut raw = Vec::with_capacity(count);
                for _ in 0..count {
                    times.push(next_time(&mut position)?);
                    raw.push(fixed(&mut position)?);
                }
                match value_type {
                    1 => Values::Float(raw.into_iter().map(f64::from_bits).collect()),
                    2 => Values::Integer(raw.into_iter().map(|value| value as i64).collect()),
                    _ => Values::Unsigned(raw),
                }
            }
            3 => {
                let mut values = Vec::with_capacity(count);
                for _ in 0..count {
                    times.push(next_time(&mut position)?);
                    values.push(*data.get(position).ok_or_else(truncated)? == 1);
                    position += 1;
                }
                Values::Boolean(values)
            }
            4 => {
                let mut values = Vec::with_capacity(count);
                for _ in 0..count {
                    times.push(next_time(&mut position)?);
                    let length = be_u32(data, position).ok_or_else(truncated)? as usize;
                    let start = position + 4;
                    let bytes = data.get(start..start + length).ok_or_else(truncated)?;
                    values.push(
                        String::from_utf8(bytes.to_vec())
                            .map_err(|_| "string value is not UTF-8".to_owned())?,
                    );
                    position = start + length;
                }
                Values::String(values)
            }
            other => return Err(format!("unknown value type {other}")),
        };
        keys.push((key, sort_points(times, values)));
    }
    Ok(Entry::Write(keys))
}

/// A write's values in the order they were written: sorted by time, the last of equal times
/// winning (as the cache deduplicates).
fn sort_points(times: Vec<i64>, values: Values) -> Points {
    if times.windows(2).all(|pair| pair[0] < pair[1]) {
        return Points { times, values };
    }
    let mut order: Vec<usize> = (0..times.len()).collect();
    order.sort_by_key(|&index| times[index]);
    // Of equal times keep the one written last (the highest index; the sort is stable).
    let keep: Vec<usize> = order
        .iter()
        .enumerate()
        .filter(|&(rank, &index)| {
            order
                .get(rank + 1)
                .is_none_or(|&next| times[next] != times[index])
        })
        .map(|(_, &index)| index)
        .collect();
    fn pick<T: Clone>(values: &[T], keep: &[usize]) -> Vec<T> {
        keep.iter().map(|&index| values[index].clone()).collect()
    }
    let values = match &values {
        Values::Float(values) => Values::Float(pick(values, &keep)),
        Values::Integer(values) => Values::Integer(pick(values, &keep)),
        Values::Unsigned(values) => Values::Unsigned(pick(values, &keep)),
        Values::Boolean(values) => Values::Boolean(pick(values, &keep)),
        Values::String(values) => Values::String(pick(values, &keep)),
    };
    Points {
        times: keep.iter().map(|&index| times[index]).collect(),
        values,
    }
}

fn parse_delete(data: &[u8]) -> Result<Entry, String> {
    if data.is_empty() {
        return Ok(Entry::Delete(Vec::new()));
    }
    data.split(|&byte| byte == b'\n')
        .map(utf8)
        .collect::<Result<_, _>>()
        .map(Entry::Delete)
}

fn parse_delete_range(data: &[u8]) -> Result<Entry, String> {
    let truncated = || "delete-range entry is truncated".to_owned();
    let min_time = be_u64(data, 0).ok_or_else(truncated)? as i64;
    let max_time = be_u64(data, 8).ok_or_else(truncated)? as i64;
    let mut keys = Vec::new();
    let mut position = 16;
    while position < data.len() {
        let length = be_u32(data, position).ok_or_else(truncated)? as usize;
        let start = position + 4;
        keys.push(utf8(
            data.get(start..start + length).ok_or_else(truncated)?,
        )?);
        position = start + length;
    }
    Ok(Entry::DeleteRange {
        keys,
        min_time,
        max_time,
    })
}

/// The segment number in `_00042.wal`, or `None` for another name.
pub fn segment_number(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix('_')?.strip_suffix(".wal")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(entry_type: u8, data: &[u8]) -> Vec<u8> {
        let compressed = snap::raw::Encoder::new().compress_vec(data).unwrap();
        let mut bytes = vec![entry_type];
        bytes.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
        bytes.extend(compressed);
        bytes
    }

    fn write_key(value_type: u8, key: &str, values: &[(i64, Vec<u8>)]) -> Vec<u8> {
        let mut bytes = vec![value_type];
        bytes.extend_from_slice(&(key.len() as u16).to_be_bytes());
        bytes.extend_from_slice(key.as_bytes());
        bytes.extend_from_slice(&(values.len() as u32).to_be_bytes());
        for (time, value) in values {
            bytes.extend_from_slice(&time.to_be_bytes());
            bytes.extend_from_slice(value);
        }
        bytes
    }

    #[test]
    fn parses_writes_deletes_and_ranges() {
        let mut write = write_key(
            1,
            "cpu#!~#v",
            &[
                (2, 1.5f64.to_bits().to_be_bytes().to_vec()),
                (1, 0.5f64.to_bits().to_be_bytes().to_vec()),
            ],
        );
        write.extend(write_key(
            2,
            "cpu#!~#i",
            &[(1, (-3i64).to_be_bytes().to_vec())],
        ));
        write.extend(write_key(3, "cpu#!~#b", &[(1, vec![1]), (2, vec![0])]));
        let mut string = 2u32.to_be_bytes().to_vec();
        string.extend_from_slice("ü".as_bytes());
        write.extend(write_key(4, "cpu#!~#s", &[(7, string)]));
        write.extend(write_key(
            5,
            "cpu#!~#u",
            &[(1, u64::MAX.to_be_bytes().to_vec())],
        ));
        let mut segment = frame(1, &write);
        segment.extend(frame(2, b"cpu#!~#v\ncpu#!~#i"));
        let mut range = 10i64.to_be_bytes().to_vec();
        range.extend_from_slice(&20i64.to_be_bytes());
        range.extend_from_slice(&3u32.to_be_bytes());
        range.extend_from_slice(b"a#b");
        segment.extend(frame(3, &range));

        let parsed = parse(Path::new("_00001.wal"), &segment).unwrap();
        assert_eq!(parsed.torn_tail_bytes, 0);
        let Entry::Write(keys) = &parsed.entries[0] else {
            panic!("{parsed:?}")
        };
        assert_eq!(
            keys[0].1,
            Points {
                times: vec![1, 2],
                values: Values::Float(vec![0.5, 1.5])
            }
        );
        assert_eq!(keys[1].1.values, Values::Integer(vec![-3]));
        assert_eq!(keys[2].1.values, Values::Boolean(vec![true, false]));
        assert_eq!(keys[3].1.values, Values::String(vec!["ü".into()]));
        assert_eq!(keys[4].1.values, Values::Unsigned(vec![u64::MAX]));
        assert_eq!(
            parsed.entries[1],
            Entry::Delete(vec!["cpu#!~#v".into(), "cpu#!~#i".into()])
        );
        assert_eq!(
            parsed.entries[2],
            Entry::DeleteRange {
                keys: vec!["a#b".into()],
                min_time: 10,
                max_time: 20
            }
        );
    }

    #[test]
    fn a_torn_last_entry_ends_the_segment_and_damage_is_corrupt() {
        let mut segment = frame(2, b"k1");
        let second = frame(2, b"k2");
        segment.extend_from_slice(&second[..second.len() - 1]);
        let parsed = parse(Path::new("_00002.wal"), &segment).unwrap();
        assert_eq!(parsed.entries, vec![Entry::Delete(vec!["k1".into()])]);
        assert_eq!(parsed.torn_tail_bytes, second.len() - 1);

        let write = write_key(1, "k", &[(1, vec![0; 8])]);
        let damaged = frame(1, &write[..write.len() - 3]);
        let error = parse(Path::new("/wal/db/rp/1/_00003.wal"), &damaged).unwrap_err();
        assert!(matches!(error, Error::Corrupt { .. }), "{error}");
        assert!(error.to_string().contains("_00003.wal"), "{error}");
    }

    #[test]
    fn later_duplicates_in_one_write_win() {
        let points = sort_points(vec![5, 1, 5], Values::Integer(vec![1, 2, 3]));
        assert_eq!(
            points,
            Points {
                times: vec![1, 5],
                values: Values::Integer(vec![2, 3])
            }
        );
        assert_eq!(segment_number(Path::new("/x/_00042.wal")), Some(42));
        assert_eq!(segment_number(Path::new("/x/00042.wal")), None);
    }
}
