//! Tombstone files (`tsdb/engine/tsm1/tombstone.go`): the deletes recorded against one TSM
//! file, beside it as `GGGGGGGGG-SSSSSSSSS.tombstone`.
//!
//! - v1 (no header): newline-separated keys, each deleted for all time.
//! - v2 (header `0x00001502`): entries of key length (4 bytes), key, min and max time (8 each).
//! - v3 (`0x00001503`): one gzip stream of v2 entries.
//! - v4 (`0x00001504`, what 1.5+ writes): gzip streams of v2 entries appended one per batch of
//!   deletes.
//!
//! A delete covers the key's points with `min <= time <= max`.

use std::io::Read as _;
use std::path::Path;

use crate::Error;
use crate::encoding::{be_u32, be_u64};

const V2_HEADER: u32 = 0x1502;
const V3_HEADER: u32 = 0x1503;
const V4_HEADER: u32 = 0x1504;

/// One delete: `key`'s points with `min_time <= time <= max_time` are gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    pub key: Vec<u8>,
    pub min_time: i64,
    pub max_time: i64,
}

/// Reads a tombstone file (read-only).
pub fn read(path: &Path) -> Result<Vec<Tombstone>, Error> {
    let bytes = std::fs::read(path).map_err(|error| Error::io(path, error))?;
    parse(path, &bytes)
}

/// Parses the bytes of a tombstone file; `name` names it in errors.
pub fn parse(name: &Path, bytes: &[u8]) -> Result<Vec<Tombstone>, Error> {
    // As InfluxDB does: fewer than 4 bytes, or an unknown header, is the text format.
    let header = be_u32(bytes, 0);
    match header {
        Some(V2_HEADER) => parse_entries(name, &bytes[4..]),
        // A v4 file with nothing after its header has no deletes yet (Go's gzip reader says EOF).
        Some(V3_HEADER | V4_HEADER) if bytes.len() == 4 => Ok(Vec::new()),
        Some(V3_HEADER | V4_HEADER) => {
            let mut entries = Vec::new();
            // `MultiGzDecoder` reads every appended gzip member, v3's single one included.
            flate2::read::MultiGzDecoder::new(&bytes[4..])
                .read_to_end(&mut entries)
                .map_err(|error| Error::corrupt(name, format!("bad gzip data: {error}")))?;
            parse_entries(name, &entries)
        }
        _ => Ok(parse_v1(bytes)),
    }
}

fn parse_v1(bytes: &[u8]) -> Vec<Tombstone> {
    bytes
        .split(|&byte| byte == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| Tombstone {
            key: line.strip_suffix(b"\r").unwrap_or(line).to_vec(),
            min_time: i64::MIN,
            max_time: i64::MAX,
        })
        .collect()
}

fn parse_entries(name: &Path, bytes: &[u8]) -> Result<Vec<Tombstone>, Error> {
    let mut tombstones = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let truncated =
            || Error::corrupt(name, format!("tombstone entry at {position} is truncated"));
        let key_length = be_u32(bytes, position).ok_or_else(truncated)? as usize;
        let key_start = position + 4;
        let key_end = key_start.checked_add(key_length).ok_or_else(truncated)?;
        let key = bytes.get(key_start..key_end).ok_or_else(truncated)?;
        let min_time = be_u64(bytes, key_end).ok_or_else(truncated)? as i64;
        let max_time = be_u64(bytes, key_end + 8).ok_or_else(truncated)? as i64;
        tombstones.push(Tombstone {
            key: key.to_vec(),
            min_time,
            max_time,
        });
        position = key_end + 16;
    }
    Ok(tombstones)
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn entry(key: &[u8], min: i64, max: i64) -> Vec<u8> {
        let mut bytes = (key.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(&min.to_be_bytes());
        bytes.extend_from_slice(&max.to_be_bytes());
        bytes
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn reads_every_version() {
        let name = Path::new("000000001-000000001.tombstone");
        let v1 = parse(name, b"cpu,host=a#!~#value\n\nmem#!~#free\n").unwrap();
        assert_eq!(v1.len(), 2);
        assert_eq!(
            (v1[1].key.as_slice(), v1[1].min_time, v1[1].max_time),
            (&b"mem#!~#free"[..], i64::MIN, i64::MAX)
        );

        let mut v2 = V2_HEADER.to_be_bytes().to_vec();
        v2.extend(entry(b"k1", -5, 10));
        v2.extend(entry(b"k2", 1, 2));
        let v2 = parse(name, &v2).unwrap();
        assert_eq!(
            v2[0],
            Tombstone {
                key: b"k1".to_vec(),
                min_time: -5,
                max_time: 10
            }
        );
        assert_eq!(v2.len(), 2);

        let mut v3 = V3_HEADER.to_be_bytes().to_vec();
        v3.extend(gzip(&[entry(b"k1", 0, 1), entry(b"k2", 2, 3)].concat()));
        assert_eq!(parse(name, &v3).unwrap().len(), 2);

        let mut v4 = V4_HEADER.to_be_bytes().to_vec();
        v4.extend(gzip(&entry(b"k1", 0, 1)));
        v4.extend(gzip(&entry(b"k3", 7, 9)));
        let v4 = parse(name, &v4).unwrap();
        assert_eq!(v4.len(), 2);
        assert_eq!(
            v4[1],
            Tombstone {
                key: b"k3".to_vec(),
                min_time: 7,
                max_time: 9
            }
        );

        // A v4 file with only its header: no deletes yet.
        assert!(parse(name, &V4_HEADER.to_be_bytes()).unwrap().is_empty());
    }

    #[test]
    fn truncated_entries_are_corrupt_and_name_the_file() {
        let name = Path::new("/data/db/rp/1/000000001-000000001.tombstone");
        let mut v2 = V2_HEADER.to_be_bytes().to_vec();
        v2.extend(entry(b"key", 0, 1));
        v2.pop();
        let error = parse(name, &v2).unwrap_err();
        assert!(matches!(error, Error::Corrupt { .. }), "{error}");
        assert!(
            error.to_string().contains("000000001-000000001.tombstone"),
            "{error}"
        );

        let mut v4 = V4_HEADER.to_be_bytes().to_vec();
        let member = gzip(&entry(b"key", 0, 1));
        v4.extend_from_slice(&member[..member.len() - 3]);
        assert!(matches!(parse(name, &v4), Err(Error::Corrupt { .. })));
    }
}
