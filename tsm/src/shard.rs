//! One shard as InfluxDB resolves it: its TSM files from oldest to newest generation, each
//! with its tombstones, then its WAL segments replayed in order over them (writes win over
//! every file, deletes remove what came before them).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::key::{FIELD_SEPARATOR, join_key, measurement_of, parse_series_key, split_key};
use crate::tsm::parse_file_name;
use crate::wal::{self, Entry};
use crate::{Error, FieldType, Points, SeriesKey, TsmFile, tombstone};

/// A key of the shard: `series_key#!~#field`, held once, its parts taken from it on demand
/// (a shard of a million keys holds a million of these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardKey {
    key: Box<str>,
    /// Bytes of the series key at the start of `key`.
    series_len: usize,
    /// The measurement, unescaped; one allocation shared by the keys of a measurement.
    measurement: Arc<str>,
    pub field_type: FieldType,
    /// The smallest and largest time of the key's blocks not wholly deleted and its WAL
    /// points: every point lies within, though a block partly deleted may widen it.
    pub time_range: (i64, i64),
}

impl ShardKey {
    /// The whole key, `series_key#!~#field`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The series key as stored, escaped: `measurement,tag=value,...`.
    pub fn series_key(&self) -> &str {
        &self.key[..self.series_len]
    }

    /// The field name (stored unescaped).
    pub fn field(&self) -> &str {
        &self.key[self.series_len + FIELD_SEPARATOR.len()..]
    }

    /// The measurement, unescaped.
    pub fn measurement(&self) -> &str {
        &self.measurement
    }

    /// The series key taken apart, unescaped (parsed on each call).
    pub fn series(&self) -> SeriesKey {
        parse_series_key(self.series_key())
    }
}

/// Inclusive time ranges deleted from one key.
type Deletes = Vec<(i64, i64)>;

#[derive(Debug)]
struct ShardFile {
    file: TsmFile,
    /// This file's tombstones by key.
    tombstones: HashMap<Vec<u8>, Deletes>,
}

/// A shard opened read-only: the index of every file and the replayed WAL are in memory,
/// blocks are read when asked for.
#[derive(Debug)]
pub struct Shard {
    data_dir: PathBuf,
    /// Oldest generation first: later files win.
    files: Vec<ShardFile>,
    /// The points only in the WAL, as influxd's cache would hold them after replaying it.
    wal: HashMap<String, Points>,
    /// What the WAL deleted, applied to every TSM file (all older than the WAL).
    wal_deletes: HashMap<String, Deletes>,
    /// Every key with any point not deleted, sorted by key.
    keys: Vec<ShardKey>,
    time_range: Option<(i64, i64)>,
}

impl Shard {
    /// Opens the shard in `data_dir` (its `*.tsm` and `*.tombstone` files) and, when given,
    /// replays the WAL segments (`_NNNNN.wal`) in `wal_dir`. Nothing is written.
    pub fn open(data_dir: &Path, wal_dir: Option<&Path>) -> Result<Self, Error> {
        let mut tsm_paths: Vec<((u64, u64), PathBuf)> = list(data_dir)?
            .into_iter()
            .filter(|path| path.extension().is_some_and(|extension| extension == "tsm"))
            .map(|path| (parse_file_name(&path).unwrap_or((0, 0)), path))
            .collect();
        tsm_paths.sort();
        let mut files = Vec::with_capacity(tsm_paths.len());
        for (_, path) in tsm_paths {
            let file = TsmFile::open(&path)?;
            let tombstone_path = path.with_extension("tombstone");
            let mut tombstones: HashMap<Vec<u8>, Deletes> = HashMap::new();
            match tombstone::read(&tombstone_path) {
                Ok(entries) => {
                    for entry in entries {
                        tombstones
                            .entry(entry.key)
                            .or_default()
                            .push((entry.min_time, entry.max_time));
                    }
                }
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
            files.push(ShardFile { file, tombstones });
        }

        let mut shard = Self {
            data_dir: data_dir.to_owned(),
            files,
            wal: HashMap::new(),
            wal_deletes: HashMap::new(),
            keys: Vec::new(),
            time_range: None,
        };
        if let Some(wal_dir) = wal_dir {
            shard.replay_wal(wal_dir)?;
        }
        shard.index_keys()?;
        Ok(shard)
    }

    fn replay_wal(&mut self, wal_dir: &Path) -> Result<(), Error> {
        let mut segments: Vec<(u64, PathBuf)> = list(wal_dir)?
            .into_iter()
            .filter_map(|path| Some((wal::segment_number(&path)?, path)))
            .collect();
        segments.sort();
        for (_, path) in segments {
            for entry in wal::read(&path)?.entries {
                self.apply(&path, entry)?;
            }
        }
        Ok(())
    }

    fn apply(&mut self, segment: &Path, entry: Entry) -> Result<(), Error> {
        match entry {
            Entry::Write(keys) => {
                for (key, points) in keys {
                    let merged = match self.wal.remove(&key) {
                        None => points,
                        Some(older) => older.merge_newer(points).ok_or_else(|| {
                            Error::corrupt(segment, format!("key {key:?} written with two types"))
                        })?,
                    };
                    self.wal.insert(key, merged);
                }
            }
            Entry::Delete(keys) => {
                for key in keys {
                    self.wal.remove(&key);
                    self.wal_deletes
                        .entry(key)
                        .or_default()
                        .push((i64::MIN, i64::MAX));
                }
            }
            Entry::DeleteRange {
                keys,
                min_time,
                max_time,
            } => {
                for key in keys {
                    if let Some(points) = self.wal.get_mut(&key) {
                        points.retain_times(|time| time < min_time || time > max_time);
                        if points.is_empty() {
                            self.wal.remove(&key);
                        }
                    }
                    self.wal_deletes
                        .entry(key)
                        .or_default()
                        .push((min_time, max_time));
                }
            }
        }
        Ok(())
    }

    /// Finds every key with a block not wholly deleted, or points in the WAL.
    fn index_keys(&mut self) -> Result<(), Error> {
        // Per key: its type and the time range of its live blocks and WAL points.
        let mut found: BTreeMap<String, Found> = BTreeMap::new();
        for shard_file in &self.files {
            let path = shard_file.file.path();
            for (key, _) in shard_file.file.keys() {
                let Some((field_type, entries)) = shard_file.file.entries(key)? else {
                    continue;
                };
                let key = std::str::from_utf8(key)
                    .map_err(|_| Error::corrupt(path, "a key is not UTF-8"))?;
                let deletes = self.deletes(shard_file, key);
                let live = entries
                    .iter()
                    .filter(|entry| !covers(&deletes, entry.min_time, entry.max_time))
                    .map(|entry| (entry.min_time, entry.max_time))
                    .reduce(widest);
                if let Some(range) = live {
                    note(&mut found, key, field_type, range, path)?;
                }
            }
        }
        for (key, points) in &self.wal {
            if let (Some(&first), Some(&last)) = (points.times.first(), points.times.last()) {
                note(
                    &mut found,
                    key,
                    points.field_type(),
                    (first, last),
                    &self.data_dir,
                )?;
            }
        }
        let mut keys = Vec::with_capacity(found.len());
        let mut time_range: Option<(i64, i64)> = None;
        let mut measurement: Arc<str> = Arc::from("");
        for (key, (field_type, key_range)) in found {
            time_range = Some(time_range.map_or(key_range, |range| widest(range, key_range)));
            let Some((series_key, _)) = split_key(&key) else {
                return Err(Error::corrupt(
                    &self.data_dir,
                    format!("key {key:?} names no field"),
                ));
            };
            let series_len = series_key.len();
            let name = measurement_of(series_key);
            if *measurement != *name {
                measurement = Arc::from(name);
            }
            keys.push(ShardKey {
                key: key.into_boxed_str(),
                series_len,
                measurement: measurement.clone(),
                field_type,
                time_range: key_range,
            });
        }
        self.keys = keys;
        self.time_range = time_range;
        Ok(())
    }

    /// The ranges deleted from `key` in `file`: its tombstones and the WAL's deletes.
    fn deletes(&self, file: &ShardFile, key: &str) -> Deletes {
        let mut deletes = file
            .tombstones
            .get(key.as_bytes())
            .cloned()
            .unwrap_or_default();
        if let Some(wal_deletes) = self.wal_deletes.get(key) {
            deletes.extend_from_slice(wal_deletes);
        }
        deletes.sort_unstable();
        deletes
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The TSM files, oldest first.
    pub fn files(&self) -> impl Iterator<Item = &TsmFile> {
        self.files.iter().map(|file| &file.file)
    }

    /// The smallest and largest time of any block not wholly deleted or WAL point; `None`
    /// for a shard without data.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        self.time_range
    }

    /// Every key, in key order.
    pub fn keys(&self) -> impl Iterator<Item = &ShardKey> {
        self.keys.iter()
    }

    /// The measurements (unescaped), sorted.
    pub fn measurements(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|key| key.measurement().to_owned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// The keys of one measurement (unescaped name), in key order. Found by binary search:
    /// a measurement's keys start with its escaped name and then the field separator (no
    /// tags) or a comma, two runs of the sorted keys, in that order (`#` sorts before `,`).
    /// A name with a backslash, which InfluxDB may have stored more than one way, is looked
    /// for among all keys.
    pub fn keys_of_measurement(&self, measurement: &str) -> Vec<&ShardKey> {
        if measurement.contains('\\') {
            return self
                .keys
                .iter()
                .filter(|key| key.measurement() == measurement)
                .collect();
        }
        let escaped = measurement.replace(',', "\\,").replace(' ', "\\ ");
        let mut found = Vec::new();
        for separator in [FIELD_SEPARATOR, ","] {
            let prefix = format!("{escaped}{separator}");
            let start = self.keys.partition_point(|key| key.key() < prefix.as_str());
            found.extend(
                self.keys[start..]
                    .iter()
                    .take_while(|key| key.key().starts_with(&prefix))
                    .filter(|key| key.measurement() == measurement),
            );
        }
        found
    }

    /// The series keys (escaped, as stored) of one measurement, sorted.
    pub fn series(&self, measurement: &str) -> Vec<&str> {
        let series: BTreeSet<&str> = self
            .keys_of_measurement(measurement)
            .into_iter()
            .map(ShardKey::series_key)
            .collect();
        series.into_iter().collect()
    }

    /// The fields of one measurement with their types in this shard.
    pub fn fields(&self, measurement: &str) -> BTreeMap<String, FieldType> {
        self.keys_of_measurement(measurement)
            .into_iter()
            .map(|key| (key.field().to_owned(), key.field_type))
            .collect()
    }

    /// The points of `field` of the series `series_key` (escaped, as stored) with
    /// `start_ns <= time < end_ns`.
    pub fn read(
        &self,
        series_key: &str,
        field: &str,
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Option<Points>, Error> {
        self.read_key(&join_key(series_key, field), start_ns, end_ns)
    }

    /// The points of `key` (`series key#!~#field`) with `start_ns <= time < end_ns`, newest
    /// write winning, deletes applied; `None` for a key the shard does not hold.
    pub fn read_key(&self, key: &str, start_ns: i64, end_ns: i64) -> Result<Option<Points>, Error> {
        let Ok(at) = self.keys.binary_search_by(|held| held.key().cmp(key)) else {
            return Ok(None);
        };
        let shard_key = &self.keys[at];
        let field_type = shard_key.field_type;
        let mut points = Points::empty(field_type);
        for shard_file in &self.files {
            let file = &shard_file.file;
            let Some((block_type, entries)) = file.entries(key.as_bytes())? else {
                continue;
            };
            let deletes = self.deletes(shard_file, key);
            for entry in entries {
                if entry.max_time < start_ns
                    || entry.min_time >= end_ns
                    || covers(&deletes, entry.min_time, entry.max_time)
                {
                    continue;
                }
                if block_type != field_type {
                    return Err(Error::corrupt(
                        file.path(),
                        format!(
                            "key {key:?} is {} here but {} elsewhere",
                            block_type.name(),
                            field_type.name()
                        ),
                    ));
                }
                let mut block = file.read_block(block_type, &entry)?;
                block.retain_times(|time| {
                    time >= start_ns && time < end_ns && !deleted(&deletes, time)
                });
                points = points.merge_newer(block).ok_or_else(|| {
                    Error::corrupt(file.path(), format!("key {key:?} changes type"))
                })?;
            }
        }
        if let Some(wal_points) = self.wal.get(key) {
            points = points
                .merge_newer(wal_points.range(start_ns, end_ns))
                .ok_or_else(|| {
                    Error::corrupt(
                        &self.data_dir,
                        format!("key {key:?} has another type in the WAL"),
                    )
                })?;
        }
        Ok(Some(points))
    }
}

/// A key's type and the time range of its points.
type Found = (FieldType, (i64, i64));

/// Notes a key seen in `path` with `field_type` and points within `range`: its type must be the
/// one seen before.
fn note(
    found: &mut BTreeMap<String, Found>,
    key: &str,
    field_type: FieldType,
    range: (i64, i64),
    path: &Path,
) -> Result<(), Error> {
    match found.get_mut(key) {
        Some((known, _)) if *known != field_type => Err(Error::corrupt(
            path,
            format!(
                "key {key:?} is {} here but {} in another file",
                field_type.name(),
                known.name()
            ),
        )),
        Some((_, known_range)) => {
            *known_range = widest(*known_range, range);
            Ok(())
        }
        None => {
            found.insert(key.to_owned(), (field_type, range));
            Ok(())
        }
    }
}

/// The smallest range holding both.
fn widest(a: (i64, i64), b: (i64, i64)) -> (i64, i64) {
    (a.0.min(b.0), a.1.max(b.1))
}

/// Whether the sorted inclusive `ranges` together cover every time in `[min, max]`.
fn covers(ranges: &[(i64, i64)], min: i64, max: i64) -> bool {
    let mut uncovered = min;
    for &(start, end) in ranges {
        if start > uncovered {
            break;
        }
        if end >= max {
            return true;
        }
        uncovered = uncovered.max(end + 1);
    }
    false
}

fn deleted(ranges: &[(i64, i64)], time: i64) -> bool {
    ranges
        .iter()
        .any(|&(start, end)| start <= time && time <= end)
}

/// The paths in `directory`, read-only.
fn list(directory: &Path) -> Result<Vec<PathBuf>, Error> {
    let entries = std::fs::read_dir(directory).map_err(|error| Error::io(directory, error))?;
    let mut paths = Vec::new();
    for entry in entries {
        paths.push(entry.map_err(|error| Error::io(directory, error))?.path());
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_joins_adjacent_ranges() {
        assert!(covers(&[(0, 5), (6, 10)], 1, 10));
        assert!(!covers(&[(0, 5), (7, 10)], 1, 10));
        assert!(covers(&[(i64::MIN, i64::MAX)], -3, 3));
        assert!(!covers(&[], 0, 0));
        assert!(covers(&[(i64::MIN, 4), (2, 20)], 0, 10));
    }
}
