//! The TSM source (`source.kind = "tsm"`): a 1.x server's shards read from its data and WAL
//! directories, on its host, into the same batches the InfluxQL source builds — no query load
//! on InfluxDB.
//!
//! A window of a measurement is read shard by shard (those whose time range overlaps it), one
//! series at a time: every field of the series is read over the window and the fields are joined
//! by timestamp into rows (a field without a point at a time is null), series in tag order,
//! rows in time order. Only one series' window is in memory; batches are bounded by the same
//! encoder limit as the query path's. The files are read on a blocking thread, handing batches
//! over a channel of two, so a window never runs ahead of its publisher; the reader role reads
//! no more windows at once than there are cores.
//!
//! Beside a live server: a shard is opened again when its files changed since it was opened
//! (new points in the WAL, a snapshot, a compaction), and an open that the server's own
//! renames and removals overlapped is repeated until it saw one state of the directories. An
//! opened shard keeps its TSM files open, so a compaction that removes them mid-read changes
//! nothing of what that read returns.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use influx2td_config::MeasurementFilter;
use influx2td_config::tsm::{TsmDirs, retention_policy_dir};
use influx2td_proto::batch::WindowRef;
use influx2td_proto::pb::Tag;
use influx2td_proto::{BatchEncoder, ClosedBatch, ColumnType, Value};
use influx2td_tsm::key::parse_series_key;
use influx2td_tsm::{FieldType, Points, Shard, ShardKey, Values};

use crate::error::SourceError;
use crate::influxql::ReadStats;
use crate::schema::{Field, MeasurementSchema, widest};

/// Batches a window's reading thread may have ready before the reader takes them.
const BATCHES_AHEAD: usize = 2;
/// Times a shard is opened while its files keep changing before the read fails (retryable).
const OPEN_ATTEMPTS: u32 = 8;
/// The pause before opening it again, times the attempt.
const OPEN_PAUSE: std::time::Duration = std::time::Duration::from_millis(25);

/// What a shard's directories held when it was opened: names, sizes and modification times.
type Signature = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// The first and last time of a measurement's points; `None` when it has none.
pub type Bounds = Option<(i64, i64)>;

/// One bucket's shards on disk, each opened once and opened again when its files change.
#[derive(Debug)]
pub struct TsmSource {
    database: String,
    policy: String,
    /// `data_dir/<database>/<policy>` and `wal_dir/<database>/<policy>`.
    policy_data_dir: PathBuf,
    policy_wal_dir: PathBuf,
    opened: Mutex<HashMap<u64, (Signature, Arc<Shard>)>>,
}

/// A shard as `check` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ShardSummary {
    pub id: u64,
    /// `None` for a shard without data.
    pub time_range: Option<(i64, i64)>,
    pub tsm_files: usize,
    pub wal_segments: usize,
}

impl TsmSource {
    /// The bucket's shards under `dirs`; an error names the directory this host cannot see,
    /// or the database or retention policy it lacks.
    pub fn open(dirs: &TsmDirs, bucket: &str) -> Result<Self, SourceError> {
        for directory in [&dirs.data_dir, &dirs.wal_dir] {
            match std::fs::metadata(directory) {
                Ok(metadata) if metadata.is_dir() => {}
                Ok(_) => {
                    return Err(unavailable(format!(
                        "{} is not a directory",
                        directory.display()
                    )));
                }
                Err(error) => {
                    return Err(unavailable(format!(
                        "cannot read {}: {error} (the TSM source runs on the host that sees InfluxDB's data and WAL directories)",
                        directory.display()
                    )));
                }
            }
        }
        let (database, policy) =
            retention_policy_dir(&dirs.data_dir, bucket).map_err(|detail| {
                SourceError::BucketNotFound {
                    bucket: bucket.to_owned(),
                    detail,
                }
            })?;
        Ok(Self {
            policy_data_dir: dirs.data_dir.join(&database).join(&policy),
            policy_wal_dir: dirs.wal_dir.join(&database).join(&policy),
            database,
            policy,
            opened: Mutex::new(HashMap::new()),
        })
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    pub fn retention_policy(&self) -> &str {
        &self.policy
    }

    /// The shard ids: the numbered directories of the retention policy.
    fn shard_ids(&self) -> Result<Vec<u64>, SourceError> {
        let entries = std::fs::read_dir(&self.policy_data_dir).map_err(|error| {
            storage(
                format!("cannot list {}: {error}", self.policy_data_dir.display()),
                false,
            )
        })?;
        let mut ids: Vec<u64> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.path().is_dir())
            .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Every shard, by id, opened anew when its files changed since it was last opened.
    pub fn shards(&self) -> Result<Vec<(u64, Arc<Shard>)>, SourceError> {
        let mut shards = Vec::new();
        for id in self.shard_ids()? {
            let data_dir = self.policy_data_dir.join(id.to_string());
            let wal_dir = self.policy_wal_dir.join(id.to_string());
            let wal_dir = wal_dir.is_dir().then_some(wal_dir);
            let signature = signature(&data_dir, wal_dir.as_deref());
            if let Some((known, shard)) = self.lock().get(&id)
                && *known == signature
            {
                shards.push((id, shard.clone()));
                continue;
            }
            let opened = open_stable(&data_dir, wal_dir.as_deref(), signature, |data, wal| {
                Shard::open(data, wal)
            })?;
            // Deleted by retention since it was listed: it holds nothing any more.
            let Some((signature, shard)) = opened else {
                tracing::debug!(shard = id, "shard gone while opened");
                continue;
            };
            let shard = Arc::new(shard);
            self.lock().insert(id, (signature, shard.clone()));
            shards.push((id, shard));
        }
        let ids: BTreeSet<u64> = shards.iter().map(|(id, _)| *id).collect();
        self.lock().retain(|id, _| ids.contains(id));
        Ok(shards)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (Signature, Arc<Shard>)>> {
        self.opened
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The shards with what `check` says of them.
    pub fn summaries(&self) -> Result<Vec<ShardSummary>, SourceError> {
        Ok(self
            .shards()?
            .into_iter()
            .map(|(id, shard)| ShardSummary {
                id,
                time_range: shard.time_range(),
                tsm_files: shard.files().count(),
                wal_segments: count_segments(&self.policy_wal_dir.join(id.to_string())),
            })
            .collect())
    }

    /// The measurements the filters select (all when `filters` is empty), sorted, with the
    /// first and last time of their points (block bounds: a block partly deleted may widen
    /// them, which costs an empty window, never a row).
    pub fn measurements(
        &self,
        filters: &[MeasurementFilter],
    ) -> Result<Vec<(String, Bounds)>, SourceError> {
        let mut bounds: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for (_, shard) in self.shards()? {
            for key in shard.keys() {
                let measurement = key.measurement();
                if !filters.is_empty() && !filters.iter().any(|filter| filter.matches(measurement))
                {
                    continue;
                }
                let (first, last) = key.time_range;
                let known = bounds
                    .entry(measurement.to_owned())
                    .or_insert((first, last));
                *known = (known.0.min(first), known.1.max(last));
            }
        }
        Ok(bounds
            .into_iter()
            .map(|(name, bounds)| (name, Some(bounds)))
            .collect())
    }

    /// Fields (a type differing between shards widened, as the query path does), tag keys.
    pub fn schema(&self, measurement: &str) -> Result<MeasurementSchema, SourceError> {
        // By InfluxDB's type name, the order `SHOW FIELD KEYS` lists a field's types in.
        let mut types: BTreeMap<String, BTreeMap<&'static str, FieldType>> = BTreeMap::new();
        let mut tag_keys: BTreeSet<String> = BTreeSet::new();
        for (_, shard) in self.shards()? {
            for (field, field_type) in shard.fields(measurement) {
                types
                    .entry(field)
                    .or_default()
                    .insert(field_type.name(), field_type);
            }
            for series_key in shard.series(measurement) {
                let tags = parse_series_key(series_key).tags;
                tag_keys.extend(tags.into_iter().map(|(tag, _)| tag));
            }
        }
        let fields = types
            .into_iter()
            .map(|(name, seen)| {
                let seen: Vec<ColumnType> = seen.into_values().map(column_type).collect();
                Field {
                    name,
                    column_type: widest(&seen),
                    conflicting_types: if seen.len() > 1 { seen } else { Vec::new() },
                }
            })
            .collect();
        Ok(MeasurementSchema {
            measurement: measurement.to_owned(),
            fields,
            tag_keys: tag_keys.into_iter().collect(),
        })
    }
}

/// Streams the row batches of one window of one measurement, or of several sparse
/// measurements read together (one after the other), read from the shards' files.
#[derive(Debug)]
pub struct TsmWindowReader {
    batches: tokio::sync::mpsc::Receiver<Result<(usize, ClosedBatch), SourceError>>,
    stats: ReadStats,
}

impl TsmWindowReader {
    /// Starts reading `window` on a blocking thread; batches come from
    /// [`TsmWindowReader::next_batch`].
    pub fn open(
        source: Arc<TsmSource>,
        schema: Arc<MeasurementSchema>,
        window: WindowRef,
        batch_limit: usize,
    ) -> Self {
        Self::open_group(source, vec![(schema, window)], batch_limit)
    }

    /// Starts reading the windows of `members` (the same time range, each measurement with
    /// its schema) on one blocking thread, one member after the other; each member's last
    /// batch carries its totals.
    pub fn open_group(
        source: Arc<TsmSource>,
        members: Vec<(Arc<MeasurementSchema>, WindowRef)>,
        batch_limit: usize,
    ) -> Self {
        let (sender, batches) = tokio::sync::mpsc::channel(BATCHES_AHEAD);
        tokio::task::spawn_blocking(move || {
            // The shards as they are now, for every member alike.
            let shards = match source.shards() {
                Ok(shards) => shards,
                Err(error) => {
                    let _ = sender.blocking_send(Err(error));
                    return;
                }
            };
            for (member, (schema, window)) in members.iter().enumerate() {
                let encoder = BatchEncoder::with_limit(window.clone(), batch_limit);
                let send = |batch| sender.blocking_send(Ok((member, batch))).is_ok();
                if let Err(error) = read_window(&shards, schema, window, encoder, send) {
                    let _ = sender.blocking_send(Err(error));
                    return;
                }
                if sender.is_closed() {
                    return;
                }
            }
        });
        Self {
            batches,
            stats: ReadStats::default(),
        }
    }

    /// The next batch and the index of the member it belongs to; a member's last batch
    /// carries its totals; then `None`.
    pub async fn next_member_batch(&mut self) -> Result<Option<(usize, ClosedBatch)>, SourceError> {
        match self.batches.recv().await {
            Some(Ok((member, batch))) => {
                self.stats.rows += batch.rows;
                self.stats.chunks += 1;
                Ok(Some((member, batch)))
            }
            Some(Err(error)) => Err(error),
            None => Ok(None),
        }
    }

    /// The next batch; the last one carries the window's totals; then `None`.
    pub async fn next_batch(&mut self) -> Result<Option<ClosedBatch>, SourceError> {
        Ok(self.next_member_batch().await?.map(|(_, batch)| batch))
    }

    pub fn stats(&self) -> ReadStats {
        self.stats
    }
}

/// One series of the window: its tags and, per shard holding it, its series key there.
type SeriesShards<'a> = BTreeMap<Vec<(String, String)>, Vec<(usize, &'a str)>>;

/// Reads the window from `shards` into `encoder`, handing each closed batch to `send` (which
/// says whether anyone still listens); the last batch carries the totals.
fn read_window(
    shards: &[(u64, Arc<Shard>)],
    schema: &MeasurementSchema,
    window: &WindowRef,
    mut encoder: BatchEncoder,
    send: impl Fn(ClosedBatch) -> bool,
) -> Result<(), SourceError> {
    let (start_ns, end_ns) = (window.window_start_ns, window.window_end_ns);
    let shards: Vec<&Shard> = shards
        .iter()
        .map(|(_, shard)| shard.as_ref())
        .filter(|shard| {
            shard
                .time_range()
                .is_some_and(|(first, last)| first < end_ns && last >= start_ns)
        })
        .collect();
    let measurement = window.measurement.as_str();
    let mut series: SeriesShards = BTreeMap::new();
    let mut field_names: BTreeSet<&str> = BTreeSet::new();
    for (index, shard) in shards.iter().enumerate() {
        let keys = shard.keys_of_measurement(measurement);
        field_names.extend(keys.into_iter().map(ShardKey::field));
        // Each series once per shard, taken apart once.
        for series_key in shard.series(measurement) {
            let holders = series.entry(parse_series_key(series_key).tags).or_default();
            if !holders.iter().any(|(held, _)| *held == index) {
                holders.push((index, series_key));
            }
        }
    }
    // The columns of every series: the measurement's fields in these shards, typed as the
    // schema types them (the query path's columns).
    let columns: Vec<(String, ColumnType)> = field_names
        .into_iter()
        .map(|name| match schema.field_type(name) {
            Some(column_type) => Ok((name.to_owned(), column_type)),
            None => Err(SourceError::SchemaChanged {
                measurement: measurement.to_owned(),
                field: name.to_owned(),
            }),
        })
        .collect::<Result<_, _>>()?;
    for (tags, holders) in series {
        // Every field of the series, each a list of point runs (one per shard, in time order).
        let mut fields: Vec<Vec<Points>> = Vec::with_capacity(columns.len());
        for (field, _) in &columns {
            let mut runs = Vec::new();
            for (index, series_key) in &holders {
                if let Some(points) = shards[*index]
                    .read(series_key, field, start_ns, end_ns)
                    .map_err(|error| tsm_error(&error))?
                    && !points.is_empty()
                {
                    runs.push(points);
                }
            }
            runs.sort_by_key(|points| points.times[0]);
            fields.push(runs);
        }
        let times = joined_times(&fields);
        if times.is_empty() {
            continue;
        }
        let tags: Vec<Tag> = tags
            .into_iter()
            .map(|(key, value)| Tag { key, value })
            .collect();
        encoder.begin_series(tags, columns.clone());
        encoder.expect_rows(times.len());
        let mut cursors: Vec<(usize, usize)> = vec![(0, 0); fields.len()];
        let mut row: Vec<Option<Value<'_>>> = Vec::with_capacity(fields.len());
        for time in times {
            row.clear();
            for (runs, cursor) in fields.iter().zip(cursors.iter_mut()) {
                row.push(take_at(runs, cursor, time));
            }
            if let Some(batch) = encoder.push_row(time, &row)?
                && !send(batch)
            {
                return Ok(());
            }
        }
    }
    send(encoder.finish());
    Ok(())
}

/// Every time any field of the series has a point at, ascending, once.
fn joined_times(fields: &[Vec<Points>]) -> Vec<i64> {
    let mut times: Vec<i64> = fields
        .iter()
        .flatten()
        .flat_map(|points| points.times.iter().copied())
        .collect();
    times.sort_unstable();
    times.dedup();
    times
}

/// The value of the field at `time`, moving its cursor (run, position) past it; `None` when the
/// field has no point then. Times are visited ascending, so the cursor only moves forward.
fn take_at<'a>(runs: &'a [Points], cursor: &mut (usize, usize), time: i64) -> Option<Value<'a>> {
    while let Some(points) = runs.get(cursor.0) {
        match points.times.get(cursor.1) {
            None => *cursor = (cursor.0 + 1, 0),
            Some(&at) if at < time => cursor.1 += 1,
            Some(&at) if at == time => {
                let value = value_at(&points.values, cursor.1);
                cursor.1 += 1;
                return Some(value);
            }
            Some(_) => return None,
        }
    }
    None
}

fn value_at(values: &Values, index: usize) -> Value<'_> {
    match values {
        Values::Float(values) => Value::Double(values[index]),
        Values::Integer(values) => Value::Int64(values[index]),
        Values::Unsigned(values) => Value::Uint64(values[index]),
        Values::Boolean(values) => Value::Bool(values[index]),
        Values::String(values) => Value::String(&values[index]),
    }
}

fn column_type(field_type: FieldType) -> ColumnType {
    match field_type {
        FieldType::Float => ColumnType::Double,
        FieldType::Integer => ColumnType::Int64,
        FieldType::Unsigned => ColumnType::Uint64,
        FieldType::Boolean => ColumnType::Bool,
        FieldType::String => ColumnType::String,
    }
}

/// Opens a shard so that what it holds is one state of its directories, although influxd may
/// compact or snapshot it meanwhile (a new file renamed in, the files or WAL segments it
/// replaces removed): when the directories changed during the open, it is opened again, as
/// is a failure they explain (a listed file gone, a tombstone half rewritten). A WAL segment
/// that only grew is no change: its complete entries are a prefix of what it will hold.
/// `None`: the shard's directory is gone (retention dropped the shard).
fn open_stable<T>(
    data_dir: &Path,
    wal_dir: Option<&Path>,
    mut before: Signature,
    open: impl Fn(&Path, Option<&Path>) -> Result<T, influx2td_tsm::Error>,
) -> Result<Option<(Signature, T)>, SourceError> {
    for attempt in 1..=OPEN_ATTEMPTS {
        let opened = open(data_dir, wal_dir);
        if !data_dir.exists() {
            return Ok(None);
        }
        let after = signature(data_dir, wal_dir);
        let unchanged = stable_part(&after).eq(stable_part(&before));
        match opened {
            Ok(shard) if unchanged => return Ok(Some((before, shard))),
            Err(error) if unchanged => return Err(tsm_error(&error)),
            opened => tracing::debug!(
                shard = %data_dir.display(),
                attempt,
                error = opened.err().map(|error| error.to_string()),
                "shard changed while opened: opening it again"
            ),
        }
        before = after;
        std::thread::sleep(OPEN_PAUSE * attempt);
    }
    Err(storage(
        format!(
            "the files of shard {} kept changing while they were opened ({OPEN_ATTEMPTS} times): InfluxDB is compacting it",
            data_dir.display()
        ),
        true,
    ))
}

/// What of a signature must not change while a shard is opened: every name, and the size and
/// time of every file but a WAL segment (which only grows until it is removed).
fn stable_part(signature: &Signature) -> impl Iterator<Item = (&Path, u64, Option<SystemTime>)> {
    signature.iter().map(|(path, size, modified)| {
        if influx2td_tsm::wal::segment_number(path).is_some() {
            (path.as_path(), 0, None)
        } else {
            (path.as_path(), *size, *modified)
        }
    })
}

/// The files of a shard that a read uses (TSM files, tombstones, WAL segments) with their
/// sizes and times. What influxd writes beside them is left out: a compaction's `.tsm.tmp`
/// output grows for as long as it runs and becomes a file of the shard only when renamed, and
/// `fields.idx` is none of the read's business.
fn signature(data_dir: &Path, wal_dir: Option<&Path>) -> Signature {
    let read = |path: &Path| {
        path.extension()
            .is_some_and(|extension| extension == "tsm" || extension == "tombstone")
            || influx2td_tsm::wal::segment_number(path).is_some()
    };
    let mut signature = Signature::new();
    for directory in std::iter::once(data_dir).chain(wal_dir) {
        let Ok(entries) = std::fs::read_dir(directory) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            if !read(&entry.path()) {
                continue;
            }
            let metadata = entry.metadata().ok();
            signature.push((
                entry.path(),
                metadata.as_ref().map_or(0, std::fs::Metadata::len),
                metadata.and_then(|metadata| metadata.modified().ok()),
            ));
        }
    }
    signature.sort();
    signature
}

fn count_segments(wal_dir: &Path) -> usize {
    std::fs::read_dir(wal_dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|entry| influx2td_tsm::wal::segment_number(&entry.path()).is_some())
                .count()
        })
        .unwrap_or(0)
}

fn unavailable(detail: String) -> SourceError {
    SourceError::Config { detail }
}

fn storage(detail: String, retryable: bool) -> SourceError {
    SourceError::Storage { detail, retryable }
}

/// A file that vanished (replaced by a compaction, its shard dropped) is read again; corrupt
/// bytes are not.
fn tsm_error(error: &influx2td_tsm::Error) -> SourceError {
    storage(error.to_string(), error.is_retryable())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(times: &[i64], values: &[i64]) -> Points {
        Points {
            times: times.to_vec(),
            values: Values::Integer(values.to_vec()),
        }
    }

    #[test]
    fn fields_join_by_time_and_a_missing_point_is_null() {
        let fields = vec![
            vec![points(&[1, 3], &[10, 30]), points(&[7], &[70])],
            vec![points(&[3, 5], &[300, 500])],
        ];
        let times = joined_times(&fields);
        assert_eq!(times, [1, 3, 5, 7]);
        let mut cursors = [(0, 0); 2];
        let rows: Vec<Vec<Option<Value<'_>>>> = times
            .iter()
            .map(|&time| {
                fields
                    .iter()
                    .zip(cursors.iter_mut())
                    .map(|(runs, cursor)| take_at(runs, cursor, time))
                    .collect()
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                vec![Some(Value::Int64(10)), None],
                vec![Some(Value::Int64(30)), Some(Value::Int64(300))],
                vec![None, Some(Value::Int64(500))],
                vec![Some(Value::Int64(70)), None],
            ]
        );
    }
}

#[cfg(test)]
mod open_tests {
    use std::cell::Cell;

    use super::*;

    type Opened<T> = Result<Option<(Signature, T)>, SourceError>;

    /// A shard directory with one TSM file and a WAL directory with one segment.
    fn shard() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        let wal = root.path().join("wal");
        std::fs::create_dir(&data).unwrap();
        std::fs::create_dir(&wal).unwrap();
        std::fs::write(data.join("000000001-000000001.tsm"), b"old").unwrap();
        std::fs::write(wal.join("_00001.wal"), b"entry").unwrap();
        (root, data, wal)
    }

    /// Opens the shard with `open` (given which call this is), counting the calls.
    fn open_counting<T>(
        data: &Path,
        wal: &Path,
        open: impl Fn(u32, &Path, &Path) -> Result<T, influx2td_tsm::Error>,
    ) -> (u32, Opened<T>) {
        let opens = Cell::new(0);
        let opened = open_stable(data, Some(wal), signature(data, Some(wal)), |data, wal| {
            opens.set(opens.get() + 1);
            open(opens.get(), data, wal.unwrap())
        });
        (opens.get(), opened)
    }

    fn names(directory: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(directory)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn gone(path: &Path) -> influx2td_tsm::Error {
        influx2td_tsm::Error::Io {
            path: path.to_owned(),
            source: std::io::ErrorKind::NotFound.into(),
        }
    }

    #[test]
    fn a_shard_compacted_while_it_is_opened_is_opened_again_and_holds_the_new_files() {
        let (_root, data, wal) = shard();
        let (opens, opened) = open_counting(&data, &wal, |call, data, wal| {
            let seen = (names(data), names(wal));
            if call == 1 {
                // As influxd compacts: the new file renamed in, then the old ones removed.
                std::fs::write(data.join("000000002-000000002.tsm"), b"new").unwrap();
                std::fs::remove_file(data.join("000000001-000000001.tsm")).unwrap();
            }
            Ok(seen)
        });
        assert_eq!(opens, 2);
        assert_eq!(opened.unwrap().unwrap().1.0, ["000000002-000000002.tsm"]);
    }

    #[test]
    fn a_failure_the_change_explains_is_retried_and_one_it_does_not_is_reported() {
        let (_root, data, wal) = shard();
        // A snapshot removed a segment the open had listed: opened again.
        let (opens, opened) = open_counting(&data, &wal, |call, data, wal| {
            if call == 1 {
                std::fs::write(data.join("000000002-000000001.tsm"), b"snap").unwrap();
                let segment = wal.join("_00001.wal");
                std::fs::remove_file(&segment).unwrap();
                return Err(gone(&segment));
            }
            Ok(names(data))
        });
        assert_eq!(opens, 2);
        assert_eq!(opened.unwrap().unwrap().1.len(), 2);

        // Nothing changed: the error is the file's own, named, not retried.
        let (opens, opened) = open_counting(&data, &wal, |_, data, _| {
            Err::<(), _>(influx2td_tsm::Error::Corrupt {
                path: data.join("000000002-000000001.tsm"),
                detail: "bad magic".into(),
            })
        });
        let error = opened.unwrap_err();
        assert_eq!(opens, 1);
        assert!(
            matches!(error.retry(), influx2td_bus::Retry::Never),
            "{error}"
        );
        assert!(
            error.to_string().contains("000000002-000000001.tsm"),
            "{error}"
        );
    }

    #[test]
    fn a_growing_segment_or_tmp_file_is_no_change_and_unsettled_files_fail_retryably() {
        let (_root, data, wal) = shard();
        let (opens, opened) = open_counting(&data, &wal, |_, _, wal| {
            let segment = wal.join("_00001.wal");
            let mut bytes = std::fs::read(&segment).unwrap();
            bytes.extend_from_slice(b" more");
            std::fs::write(&segment, bytes).unwrap();
            Ok(())
        });
        assert!(opened.unwrap().is_some());
        assert_eq!(opens, 1, "an appended segment is read again later, not now");

        // A compaction's output being written is no file of the shard until it is renamed.
        let output = data.join("000000003-000000002.tsm.tmp");
        let (opens, opened) = open_counting(&data, &wal, |_, _, _| {
            let mut bytes = std::fs::read(&output).unwrap_or_default();
            bytes.extend_from_slice(b"block");
            std::fs::write(&output, bytes).unwrap();
            std::fs::write(data.join("fields.idx"), b"fields").unwrap();
            Ok(())
        });
        assert!(opened.unwrap().is_some());
        assert_eq!(opens, 1, "a .tsm.tmp growing is not a change");

        let (opens, opened) = open_counting(&data, &wal, |call, data, _| {
            let name = format!("{:09}-000000001.tsm", 10 + call);
            std::fs::write(data.join(name), b"x").unwrap();
            Ok(())
        });
        let error = opened.unwrap_err();
        assert_eq!(opens, OPEN_ATTEMPTS);
        assert!(
            matches!(error.retry(), influx2td_bus::Retry::Backoff),
            "{error}"
        );
        assert!(error.to_string().contains("kept changing"), "{error}");
    }

    #[test]
    fn a_shard_removed_by_retention_while_it_is_opened_holds_nothing() {
        let (_root, data, wal) = shard();
        let (_, opened) = open_counting(&data, &wal, |_, data, _| {
            let file = data.join("000000001-000000001.tsm");
            std::fs::remove_dir_all(data).unwrap();
            Err::<(), _>(gone(&file))
        });
        assert!(opened.unwrap().is_none());
    }
}
