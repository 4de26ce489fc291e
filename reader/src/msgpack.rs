//! Incremental MessagePack for InfluxDB's chunked `/query` responses: a resumable [`Framer`]
//! finds where each top-level value (one chunk) ends as bytes arrive, without re-reading what it
//! has already scanned, and a zero-copy [`Cursor`] decodes a complete chunk.
//!
//! Hand-written rather than taken from a crate: the general-purpose decoders parse a value only
//! once it is complete, and re-parsing a large chunk on every network read would be quadratic.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MsgpackError {
    #[error("invalid MessagePack marker 0x{marker:02x} at byte {offset}")]
    BadMarker { marker: u8, offset: usize },
    #[error("MessagePack nesting deeper than {limit} levels")]
    TooDeep { limit: usize },
    #[error("a MessagePack value of {bytes} bytes exceeds the limit of {limit} bytes")]
    TooLarge { bytes: u64, limit: u64 },
    #[error("expected {expected} at byte {offset}")]
    Unexpected {
        expected: &'static str,
        offset: usize,
    },
    #[error("MessagePack value ends early at byte {offset}")]
    Truncated { offset: usize },
    #[error("string at byte {offset} is not UTF-8")]
    NotUtf8 { offset: usize },
}

const MAX_DEPTH: usize = 32;

/// The shape of one marker: how many header bytes follow it and what comes after.
enum Shape {
    /// `header` bytes after the marker, then a payload of the length they give (or `fixed`).
    Scalar { fixed: usize },
    /// A length-prefixed payload; the length is a big-endian integer of `width` bytes.
    Sized { width: usize, extra: usize },
    /// A container whose element count is `count` (fixed) or a big-endian integer of `width`
    /// bytes; `per_entry` is 1 for arrays and 2 for maps.
    Container {
        width: usize,
        count: u64,
        per_entry: u64,
    },
}

fn shape(marker: u8) -> Option<Shape> {
    Some(match marker {
        0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => Shape::Scalar { fixed: 0 },
        0x80..=0x8f => Shape::Container {
            width: 0,
            count: u64::from(marker & 0x0f),
            per_entry: 2,
        },
        0x90..=0x9f => Shape::Container {
            width: 0,
            count: u64::from(marker & 0x0f),
            per_entry: 1,
        },
        0xa0..=0xbf => Shape::Sized {
            width: 0,
            extra: usize::from(marker & 0x1f),
        },
        0xc4 | 0xd9 => Shape::Sized { width: 1, extra: 0 },
        0xc5 | 0xda => Shape::Sized { width: 2, extra: 0 },
        0xc6 | 0xdb => Shape::Sized { width: 4, extra: 0 },
        // ext 8/16/32: length, then a type byte, then the data.
        0xc7 => Shape::Sized { width: 1, extra: 1 },
        0xc8 => Shape::Sized { width: 2, extra: 1 },
        0xc9 => Shape::Sized { width: 4, extra: 1 },
        0xca | 0xce | 0xd2 => Shape::Scalar { fixed: 4 },
        0xcb | 0xcf | 0xd3 => Shape::Scalar { fixed: 8 },
        0xcc | 0xd0 => Shape::Scalar { fixed: 1 },
        0xcd | 0xd1 => Shape::Scalar { fixed: 2 },
        // fixext 1/2/4/8/16: a type byte and the data.
        0xd4 => Shape::Scalar { fixed: 2 },
        0xd5 => Shape::Scalar { fixed: 3 },
        0xd6 => Shape::Scalar { fixed: 5 },
        0xd7 => Shape::Scalar { fixed: 9 },
        0xd8 => Shape::Scalar { fixed: 17 },
        0xdc => Shape::Container {
            width: 2,
            count: 0,
            per_entry: 1,
        },
        0xdd => Shape::Container {
            width: 4,
            count: 0,
            per_entry: 1,
        },
        0xde => Shape::Container {
            width: 2,
            count: 0,
            per_entry: 2,
        },
        0xdf => Shape::Container {
            width: 4,
            count: 0,
            per_entry: 2,
        },
        _ => return None,
    })
}

fn big_endian(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0, |value, byte| value << 8 | u64::from(*byte))
}

/// Finds the end of the top-level value at the start of a growing buffer, resuming where the last
/// call stopped.
#[derive(Debug)]
pub struct Framer {
    position: usize,
    /// Items still expected in each open container, innermost last.
    pending: Vec<u64>,
    started: bool,
    max_value_bytes: u64,
}

impl Framer {
    /// `max_value_bytes` bounds one top-level value (and so the buffer a caller keeps).
    pub fn new(max_value_bytes: u64) -> Self {
        Self {
            position: 0,
            pending: Vec::new(),
            started: false,
            max_value_bytes,
        }
    }

    /// Scans `buffer` (which starts at the value and only ever grows between calls). Returns the
    /// value's length once it is complete; `None` while more bytes are needed.
    pub fn scan(&mut self, buffer: &[u8]) -> Result<Option<usize>, MsgpackError> {
        loop {
            if self.started && self.pending.is_empty() {
                return Ok(Some(self.position));
            }
            if self.position as u64 > self.max_value_bytes {
                return Err(MsgpackError::TooLarge {
                    bytes: self.position as u64,
                    limit: self.max_value_bytes,
                });
            }
            let Some(&marker) = buffer.get(self.position) else {
                return Ok(None);
            };
            let shape = shape(marker).ok_or(MsgpackError::BadMarker {
                marker,
                offset: self.position,
            })?;
            let (length, children) = match shape {
                Shape::Scalar { fixed } => (1 + fixed as u64, 0),
                Shape::Sized { width: 0, extra } => (1 + extra as u64, 0),
                Shape::Sized { width, extra } => {
                    let Some(size) = buffer.get(self.position + 1..self.position + 1 + width)
                    else {
                        return Ok(None);
                    };
                    (1 + width as u64 + extra as u64 + big_endian(size), 0)
                }
                Shape::Container {
                    width: 0,
                    count,
                    per_entry,
                } => (1, count * per_entry),
                Shape::Container {
                    width, per_entry, ..
                } => {
                    let Some(count) = buffer.get(self.position + 1..self.position + 1 + width)
                    else {
                        return Ok(None);
                    };
                    (1 + width as u64, big_endian(count) * per_entry)
                }
            };
            let end = self.position as u64 + length;
            if end > self.max_value_bytes {
                return Err(MsgpackError::TooLarge {
                    bytes: end,
                    limit: self.max_value_bytes,
                });
            }
            if end > buffer.len() as u64 {
                return Ok(None);
            }
            self.position = end as usize;
            if let Some(parent) = self.pending.last_mut() {
                *parent -= 1;
            }
            if children > 0 {
                if self.pending.len() >= MAX_DEPTH {
                    return Err(MsgpackError::TooDeep { limit: MAX_DEPTH });
                }
                self.pending.push(children);
            }
            while self.pending.last() == Some(&0) {
                self.pending.pop();
            }
            self.started = true;
        }
    }

    /// Gets ready for the next value (the caller removed the previous one from its buffer).
    pub fn reset(&mut self) {
        self.position = 0;
        self.pending.clear();
        self.started = false;
    }

    /// Whether part of a value has been scanned.
    pub fn in_value(&self) -> bool {
        self.position > 0
    }
}

/// A scalar, or the header of a container, read by [`Cursor::value`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Item<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(&'a str),
    Bin(&'a [u8]),
    Array(usize),
    Map(usize),
    Ext,
}

/// Reads a complete MessagePack value without copying strings.
#[derive(Debug)]
pub struct Cursor<'a> {
    data: &'a [u8],
    position: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, position: 0 }
    }

    pub fn position(&self) -> usize {
        self.position
    }

    fn take(&mut self, count: usize) -> Result<&'a [u8], MsgpackError> {
        let bytes =
            self.data
                .get(self.position..self.position + count)
                .ok_or(MsgpackError::Truncated {
                    offset: self.position,
                })?;
        self.position += count;
        Ok(bytes)
    }

    fn number(&mut self, width: usize) -> Result<u64, MsgpackError> {
        Ok(big_endian(self.take(width)?))
    }

    fn text(&mut self, length: usize) -> Result<&'a str, MsgpackError> {
        let offset = self.position;
        std::str::from_utf8(self.take(length)?).map_err(|_| MsgpackError::NotUtf8 { offset })
    }

    /// The next item; a container yields its length and its elements follow.
    pub fn value(&mut self) -> Result<Item<'a>, MsgpackError> {
        let offset = self.position;
        let marker = self.take(1)?[0];
        Ok(match marker {
            0x00..=0x7f => Item::Int(i64::from(marker)),
            0xe0..=0xff => Item::Int(i64::from(marker as i8)),
            0x80..=0x8f => Item::Map(usize::from(marker & 0x0f)),
            0x90..=0x9f => Item::Array(usize::from(marker & 0x0f)),
            0xa0..=0xbf => Item::Str(self.text(usize::from(marker & 0x1f))?),
            0xc0 => Item::Nil,
            0xc2 => Item::Bool(false),
            0xc3 => Item::Bool(true),
            0xc4..=0xc6 => {
                let length = self.number(1 << (marker - 0xc4))? as usize;
                Item::Bin(self.take(length)?)
            }
            0xc7..=0xc9 => {
                let length = self.number(1 << (marker - 0xc7))? as usize;
                self.take(length + 1)?;
                Item::Ext
            }
            0xca => Item::Float(f64::from(f32::from_bits(self.number(4)? as u32))),
            0xcb => Item::Float(f64::from_bits(self.number(8)?)),
            0xcc..=0xcf => Item::Uint(self.number(1 << (marker - 0xcc))?),
            0xd0 => Item::Int(i64::from(self.number(1)? as u8 as i8)),
            0xd1 => Item::Int(i64::from(self.number(2)? as u16 as i16)),
            0xd2 => Item::Int(i64::from(self.number(4)? as u32 as i32)),
            0xd3 => Item::Int(self.number(8)? as i64),
            0xd4..=0xd8 => {
                self.take(1 + (1 << (marker - 0xd4)))?;
                Item::Ext
            }
            0xd9..=0xdb => {
                let length = self.number(1 << (marker - 0xd9))? as usize;
                Item::Str(self.text(length)?)
            }
            0xdc => Item::Array(self.number(2)? as usize),
            0xdd => Item::Array(self.number(4)? as usize),
            0xde => Item::Map(self.number(2)? as usize),
            0xdf => Item::Map(self.number(4)? as usize),
            0xc1 => return Err(MsgpackError::BadMarker { marker, offset }),
        })
    }

    pub fn str(&mut self) -> Result<&'a str, MsgpackError> {
        let offset = self.position;
        match self.value()? {
            Item::Str(text) => Ok(text),
            _ => Err(MsgpackError::Unexpected {
                expected: "a string",
                offset,
            }),
        }
    }

    /// A map's length; `nil` counts as an empty map.
    pub fn map(&mut self) -> Result<usize, MsgpackError> {
        let offset = self.position;
        match self.value()? {
            Item::Map(length) => Ok(length),
            Item::Nil => Ok(0),
            _ => Err(MsgpackError::Unexpected {
                expected: "a map",
                offset,
            }),
        }
    }

    /// An array's length; `nil` counts as an empty array.
    pub fn array(&mut self) -> Result<usize, MsgpackError> {
        let offset = self.position;
        match self.value()? {
            Item::Array(length) => Ok(length),
            Item::Nil => Ok(0),
            _ => Err(MsgpackError::Unexpected {
                expected: "an array",
                offset,
            }),
        }
    }

    /// Skips one whole value, containers included.
    pub fn skip(&mut self) -> Result<(), MsgpackError> {
        let mut remaining: u64 = 1;
        while remaining > 0 {
            remaining -= 1;
            match self.value()? {
                Item::Array(length) => remaining += length as u64,
                Item::Map(length) => remaining += 2 * length as u64,
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chunk as influxd 1.6 sends it (captured from a real server): one series with a partial flag.
    const CHUNK: &[u8] = &[
        0x81, 0xa7, b'r', b'e', b's', b'u', b'l', b't', b's', 0x91, 0x82, 0xac, b's', b't', b'a',
        b't', b'e', b'm', b'e', b'n', b't', b'_', b'i', b'd', 0x00, 0xa6, b's', b'e', b'r', b'i',
        b'e', b's', 0x91, 0x83, 0xa4, b'n', b'a', b'm', b'e', 0xa3, b'c', b'p', b'u', 0xa7, b'c',
        b'o', b'l', b'u', b'm', b'n', b's', 0x92, 0xa4, b't', b'i', b'm', b'e', 0xa1, b'f', 0xa6,
        b'v', b'a', b'l', b'u', b'e', b's', 0x91, 0x92, 0xd3, 0x0d, 0xe0, 0xb6, 0xb3, 0xa7, 0x64,
        0x00, 0x01, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0,
    ];

    #[test]
    fn framer_finds_each_chunk_whatever_the_read_sizes() {
        let mut stream = CHUNK.to_vec();
        stream.extend_from_slice(CHUNK);
        for step in [1, 2, 3, 7, 64, stream.len()] {
            let mut framer = Framer::new(1 << 20);
            let mut buffer = Vec::new();
            let mut frames = Vec::new();
            for piece in stream.chunks(step) {
                buffer.extend_from_slice(piece);
                while let Some(length) = framer.scan(&buffer).unwrap() {
                    frames.push(buffer.drain(..length).collect::<Vec<u8>>());
                    framer.reset();
                }
            }
            assert_eq!(
                frames,
                vec![CHUNK.to_vec(), CHUNK.to_vec()],
                "read size {step}"
            );
            assert!(buffer.is_empty());
        }
    }

    #[test]
    fn cursor_reads_the_captured_chunk() {
        let mut cursor = Cursor::new(CHUNK);
        assert_eq!(cursor.map().unwrap(), 1);
        assert_eq!(cursor.str().unwrap(), "results");
        assert_eq!(cursor.array().unwrap(), 1);
        assert_eq!(cursor.map().unwrap(), 2);
        assert_eq!(cursor.str().unwrap(), "statement_id");
        assert_eq!(cursor.value().unwrap(), Item::Int(0));
        assert_eq!(cursor.str().unwrap(), "series");
        cursor.skip().unwrap();
        assert_eq!(cursor.position(), CHUNK.len());
    }

    #[test]
    fn every_integer_width_decodes() {
        let cases: &[(&[u8], Item<'_>)] = &[
            (&[0x7f], Item::Int(127)),
            (&[0xff], Item::Int(-1)),
            (&[0xcc, 0xff], Item::Uint(255)),
            (&[0xcd, 0x01, 0x00], Item::Uint(256)),
            (
                &[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                Item::Uint(u64::MAX),
            ),
            (&[0xd0, 0x80], Item::Int(-128)),
            (&[0xd1, 0x80, 0x00], Item::Int(-32768)),
            (&[0xd2, 0x80, 0, 0, 0], Item::Int(i64::from(i32::MIN))),
            (&[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0], Item::Int(i64::MIN)),
            (&[0xca, 0x3f, 0xc0, 0, 0], Item::Float(1.5)),
            (&[0xc2], Item::Bool(false)),
            (&[0xc0], Item::Nil),
        ];
        for (bytes, expected) in cases {
            assert_eq!(
                Cursor::new(bytes).value().unwrap(),
                *expected,
                "{bytes:02x?}"
            );
            assert_eq!(Framer::new(64).scan(bytes).unwrap(), Some(bytes.len()));
        }
    }

    #[test]
    fn hostile_input_is_an_error_not_a_hang() {
        assert_eq!(
            Framer::new(1 << 20).scan(&[0xc1]),
            Err(MsgpackError::BadMarker {
                marker: 0xc1,
                offset: 0
            })
        );
        // A string claiming 4 GiB is refused at once, not waited for.
        assert!(matches!(
            Framer::new(1 << 20).scan(&[0xdb, 0xff, 0xff, 0xff, 0xff]),
            Err(MsgpackError::TooLarge { .. })
        ));
        let deep = vec![0x91; 100];
        assert_eq!(
            Framer::new(1 << 20).scan(&deep),
            Err(MsgpackError::TooDeep { limit: MAX_DEPTH })
        );
        assert!(matches!(
            Cursor::new(&[0xa3, b'a']).value(),
            Err(MsgpackError::Truncated { .. })
        ));
        assert!(matches!(
            Cursor::new(&[0xa1, 0xff]).value(),
            Err(MsgpackError::NotUtf8 { .. })
        ));
    }
}
