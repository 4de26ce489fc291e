//! One TSM file (`tsdb/engine/tsm1/writer.go`, `reader.go`): a 5-byte header (magic
//! `0x16D116D1`, version 1), blocks (each a big-endian CRC-32 of the rest, then the block), the
//! index, and the index's offset in the last 8 bytes. The index lists every key once, in sorted
//! order: key length (2 bytes), key, block type (1), entry count (2), then per block its min
//! and max time, offset and size (8, 8, 8, 4 bytes). Only the index is read into memory, and
//! checked whole when the file is opened; blocks are read when asked for.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::encoding::{be_u16, be_u32, be_u64, decode_block};
use crate::{Error, FieldType, Points};

const MAGIC: u32 = 0x16D1_16D1;
const VERSION: u8 = 1;
const HEADER_SIZE: u64 = 5;
const FOOTER_SIZE: u64 = 8;
const INDEX_ENTRY_SIZE: usize = 28;

/// Where a block lives and which times it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub min_time: i64,
    pub max_time: i64,
    /// Offset of the block's CRC in the file.
    pub offset: u64,
    /// Bytes of CRC and block.
    pub size: u32,
}

#[derive(Debug)]
enum Source {
    File(File),
    Bytes(Vec<u8>),
}

/// An open TSM file: its index in memory, its blocks read on demand. The open file handle
/// keeps reading the same bytes even when a compaction removes the file meanwhile.
#[derive(Debug)]
pub struct TsmFile {
    path: PathBuf,
    source: Source,
    /// Where the index starts: every block lies before it.
    index_offset: u64,
    index: Vec<u8>,
    /// Start of each key's record in `index`, in key order.
    keys: Vec<u32>,
    generation: u64,
    sequence: u64,
    min_time: i64,
    max_time: i64,
}

impl TsmFile {
    /// Opens a TSM file read-only and reads and checks its index.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let file = File::open(path).map_err(|error| Error::io(path, error))?;
        let length = file
            .metadata()
            .map_err(|error| Error::io(path, error))?
            .len();
        let read = |offset: u64, length: usize| -> Result<Vec<u8>, Error> {
            let mut buffer = vec![0; length];
            file.read_exact_at(&mut buffer, offset)
                .map_err(|error| Error::io(path, error))?;
            Ok(buffer)
        };
        if length < HEADER_SIZE + FOOTER_SIZE {
            return Err(Error::corrupt(
                path,
                format!("{length} bytes is too short for a TSM file"),
            ));
        }
        check_header(path, &read(0, HEADER_SIZE as usize)?)?;
        let footer = read(length - FOOTER_SIZE, FOOTER_SIZE as usize)?;
        let index_offset = index_offset(path, &footer, length)?;
        let index = read(index_offset, (length - FOOTER_SIZE - index_offset) as usize)?;
        Self::build(path.to_owned(), Source::File(file), index_offset, index)
    }

    /// Parses a TSM file held in memory; `name` names it in errors and gives its generation.
    pub fn from_bytes(name: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<Self, Error> {
        let path = name.into();
        let length = bytes.len() as u64;
        if length < HEADER_SIZE + FOOTER_SIZE {
            return Err(Error::corrupt(
                &path,
                format!("{length} bytes is too short for a TSM file"),
            ));
        }
        check_header(&path, &bytes[..HEADER_SIZE as usize])?;
        let index_offset =
            index_offset(&path, &bytes[bytes.len() - FOOTER_SIZE as usize..], length)?;
        let index = bytes[index_offset as usize..bytes.len() - FOOTER_SIZE as usize].to_vec();
        Self::build(path, Source::Bytes(bytes), index_offset, index)
    }

    fn build(
        path: PathBuf,
        source: Source,
        index_offset: u64,
        index: Vec<u8>,
    ) -> Result<Self, Error> {
        let (generation, sequence) = parse_file_name(&path).unwrap_or((0, 0));
        let mut file = Self {
            path,
            source,
            index_offset,
            index,
            keys: Vec::new(),
            generation,
            sequence,
            min_time: i64::MAX,
            max_time: i64::MIN,
        };
        file.scan_index()?;
        Ok(file)
    }

    /// Walks the whole index once: every record in bounds, keys strictly ascending (the binary
    /// search relies on it), every block inside the data section.
    fn scan_index(&mut self) -> Result<(), Error> {
        let corrupt = |detail: String| Error::corrupt(&self.path, detail);
        let mut position = 0usize;
        let mut previous_key: Option<&[u8]> = None;
        let mut keys = Vec::new();
        let (mut min_time, mut max_time) = (i64::MAX, i64::MIN);
        while position < self.index.len() {
            let record = u32::try_from(position)
                .map_err(|_| corrupt("index larger than 4 GiB".to_owned()))?;
            let (key, _, entries, next) = parse_record_with_end(&self.index, position)
                .ok_or_else(|| corrupt(format!("index record at {position} is truncated")))?;
            if previous_key.is_some_and(|previous| previous >= key) {
                return Err(corrupt(format!("index keys out of order at {position}")));
            }
            let entry_count = entries.len() / INDEX_ENTRY_SIZE;
            if entry_count == 0 {
                return Err(corrupt(format!("index record at {position} has no blocks")));
            }
            for entry in entries.chunks_exact(INDEX_ENTRY_SIZE) {
                let entry = parse_entry(entry);
                let end = entry.offset.checked_add(u64::from(entry.size));
                if entry.offset < HEADER_SIZE
                    || entry.size < 5
                    || end.is_none_or(|end| end > self.index_offset)
                    || entry.min_time > entry.max_time
                {
                    return Err(corrupt(format!("index entry {entry:?} is out of bounds")));
                }
                min_time = min_time.min(entry.min_time);
                max_time = max_time.max(entry.max_time);
            }
            keys.push(record);
            previous_key = Some(key);
            position = next;
        }
        self.keys = keys;
        self.min_time = min_time;
        self.max_time = max_time;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The generation and sequence in the name `GGGGGGGGG-SSSSSSSSS.tsm` (0, 0 for another
    /// name): a higher pair is a newer file, whose points win.
    pub fn generation(&self) -> (u64, u64) {
        (self.generation, self.sequence)
    }

    /// The smallest and largest time of any block; `None` for a file without keys.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        (!self.keys.is_empty()).then_some((self.min_time, self.max_time))
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Every key with its block type, in key order.
    pub fn keys(&self) -> impl Iterator<Item = (&[u8], Option<FieldType>)> + '_ {
        self.keys.iter().filter_map(|&record| {
            let (key, type_byte, _) = parse_record(&self.index, record as usize)?;
            Some((key, FieldType::from_block_type(type_byte)))
        })
    }

    /// The block type and index entries of `key`, found by binary search.
    pub fn entries(&self, key: &[u8]) -> Result<Option<(FieldType, Vec<IndexEntry>)>, Error> {
        let found = self.keys.binary_search_by(|&record| {
            parse_record(&self.index, record as usize)
                .map_or(&[][..], |(record_key, _, _)| record_key)
                .cmp(key)
        });
        let Ok(found) = found else {
            return Ok(None);
        };
        let Some((_, type_byte, entries)) = parse_record(&self.index, self.keys[found] as usize)
        else {
            return Ok(None);
        };
        let field_type = FieldType::from_block_type(type_byte).ok_or_else(|| {
            Error::corrupt(
                &self.path,
                format!("unknown block type {type_byte} in the index"),
            )
        })?;
        Ok(Some((
            field_type,
            entries
                .chunks_exact(INDEX_ENTRY_SIZE)
                .map(parse_entry)
                .collect(),
        )))
    }

    /// Reads, checks (CRC, type, times within the entry) and decodes one block.
    pub fn read_block(&self, field_type: FieldType, entry: &IndexEntry) -> Result<Points, Error> {
        let owned;
        let bytes: &[u8] = match &self.source {
            Source::Bytes(bytes) => {
                let start = entry.offset as usize;
                bytes
                    .get(start..start + entry.size as usize)
                    .ok_or_else(|| Error::corrupt(&self.path, "block past the end of the file"))?
            }
            Source::File(file) => {
                let mut buffer = vec![0; entry.size as usize];
                file.read_exact_at(&mut buffer, entry.offset)
                    .map_err(|error| Error::io(&self.path, error))?;
                owned = buffer;
                &owned
            }
        };
        let stored = be_u32(bytes, 0).unwrap_or_default();
        let block = &bytes[4..];
        let computed = crc32fast::hash(block);
        if stored != computed {
            return Err(Error::corrupt(
                &self.path,
                format!(
                    "block at offset {}: checksum {computed:08x} does not match the stored {stored:08x}",
                    entry.offset
                ),
            ));
        }
        let decoded = decode_block(block).map_err(|error| {
            Error::corrupt(
                &self.path,
                format!("block at offset {}: {error}", entry.offset),
            )
        })?;
        if decoded.values.field_type() != field_type {
            return Err(Error::corrupt(
                &self.path,
                format!(
                    "block at offset {} is not of its index type {}",
                    entry.offset,
                    field_type.name()
                ),
            ));
        }
        if decoded.times.first() != Some(&entry.min_time)
            || decoded.times.last() != Some(&entry.max_time)
        {
            return Err(Error::corrupt(
                &self.path,
                format!(
                    "block at offset {} holds times outside its index entry [{}, {}]",
                    entry.offset, entry.min_time, entry.max_time
                ),
            ));
        }
        Ok(Points {
            times: decoded.times,
            values: decoded.values,
        })
    }
}

fn check_header(path: &Path, header: &[u8]) -> Result<(), Error> {
    let magic = be_u32(header, 0).unwrap_or_default();
    if magic != MAGIC {
        return Err(Error::corrupt(
            path,
            format!("magic number {magic:08x} is not a TSM file's"),
        ));
    }
    if header.get(4) != Some(&VERSION) {
        return Err(Error::corrupt(
            path,
            format!("unsupported TSM version {:?}", header.get(4)),
        ));
    }
    Ok(())
}

fn index_offset(path: &Path, footer: &[u8], length: u64) -> Result<u64, Error> {
    let offset = be_u64(footer, 0).unwrap_or(u64::MAX);
    if offset < HEADER_SIZE || offset > length - FOOTER_SIZE {
        return Err(Error::corrupt(
            path,
            format!("index offset {offset} outside the file of {length} bytes"),
        ));
    }
    Ok(offset)
}

/// The key, block type byte and entry bytes of the index record at `position`.
fn parse_record(index: &[u8], position: usize) -> Option<(&[u8], u8, &[u8])> {
    parse_record_with_end(index, position)
        .map(|(key, type_byte, entries, _)| (key, type_byte, entries))
}

/// Like [`parse_record`], with the position where the next record starts.
fn parse_record_with_end(index: &[u8], position: usize) -> Option<(&[u8], u8, &[u8], usize)> {
    let key_length = usize::from(be_u16(index, position)?);
    let key_start = position + 2;
    let key = index.get(key_start..key_start + key_length)?;
    let type_byte = *index.get(key_start + key_length)?;
    let count = usize::from(be_u16(index, key_start + key_length + 1)?);
    let entries_start = key_start + key_length + 3;
    let entries_end = entries_start + count * INDEX_ENTRY_SIZE;
    let entries = index.get(entries_start..entries_end)?;
    Some((key, type_byte, entries, entries_end))
}

fn parse_entry(bytes: &[u8]) -> IndexEntry {
    IndexEntry {
        min_time: be_u64(bytes, 0).unwrap_or_default() as i64,
        max_time: be_u64(bytes, 8).unwrap_or_default() as i64,
        offset: be_u64(bytes, 16).unwrap_or_default(),
        size: be_u32(bytes, 24).unwrap_or_default(),
    }
}

/// `000000001-000000002.tsm` → (1, 2), as `DefaultParseFileName`.
pub(crate) fn parse_file_name(path: &Path) -> Option<(u64, u64)> {
    let stem = path.file_name()?.to_str()?.split('.').next()?;
    let (generation, sequence) = stem.split_once('-')?;
    Some((generation.parse().ok()?, sequence.parse().ok()?))
}
