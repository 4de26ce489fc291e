//! The differential naming test of the live suite, TDengine itself as the oracle: a few hundred
//! random series (measurement and tag set from an alphabet rich in the characters line
//! protocol escapes, unicode, keys equal but for case, tagless series beside tagged ones, names
//! at TDengine's limits) are written once through TDengine's own schemaless line-protocol API
//! and once through influx2td's writer, into two databases; then super tables, child tables,
//! tag values, column and tag types and the values themselves are compared. Any difference
//! fails the test naming the series. Where influx2td deliberately differs (a name schemaless
//! refuses, influx2td keeps under a deterministic one) the output says so.
//!
//! Runs when `TDENGINE_DSN` is set (`LIVE_NAMING_SEED` picks another seed; `RECORD_GOLDEN=1`
//! rewrites `tests/golden/schemaless_names.jsonl`, the server's answers that CI checks the
//! naming rule against without a TDengine).

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use influx2td_proto::batch::{BatchEncoder, WindowRef};
use influx2td_proto::{ClosedBatch, ColumnType, Value, pb};
use influx2td_writer::mapping::{line_protocol_key, line_protocol_measurement};
use influx2td_writer::{Sink, TdengineSink, service};

mod common;
use common::{database, dsn, logs, write_reporting};

/// SplitMix64: a seeded generator, the same series for the same seed on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// What line protocol escapes, and what else trips parsers: quotes, dots (schemaless makes
/// them `_`), equals signs, backslashes, unicode.
const SPECIAL: &[char] = &[
    ' ', ',', '=', '\\', '"', '\'', '.', '-', '/', ':', '#', '(', '[', '|', '+', '*', '?', '%',
    '$', '@', '!', '&', 'é', 'ß', '温', '度', '🔥', '∑',
];
const ORDINARY: &[char] = &['a', 'b', 'c', 'x', 'A', 'B', 'Z', '0', '7', '_'];

/// A random name InfluxDB can hold and a client can write: never a backslash right before a
/// character the writer escapes, nor at the end (InfluxDB's parser would read an escape there:
/// such a name cannot come from line protocol).
fn name(rng: &mut Rng, max_chars: usize, escaped: &[char]) -> String {
    let chars = 1 + rng.below(max_chars);
    let mut text = String::new();
    for _ in 0..chars {
        let pool = if rng.chance(45) { SPECIAL } else { ORDINARY };
        let character = pool[rng.below(pool.len())];
        if text.ends_with('\\') && escaped.contains(&character) {
            text.push('x');
        }
        text.push(character);
    }
    if text.ends_with('\\') {
        text.push('x');
    }
    text
}

/// One series and its one point.
#[derive(Debug, Clone)]
struct Series {
    measurement: String,
    /// Sorted bytewise by key, as InfluxDB returns them.
    tags: Vec<(String, String)>,
    field: String,
    value: FieldValue,
    time: i64,
}

#[derive(Debug, Clone, Copy)]
enum FieldValue {
    Float(f64),
    Integer(i64),
    Unsigned(u64),
    Boolean(bool),
    Text(&'static str),
}

impl FieldValue {
    fn line(self) -> String {
        match self {
            Self::Float(number) => format!("{number:?}"),
            Self::Integer(number) => format!("{number}i"),
            Self::Unsigned(number) => format!("{number}u"),
            Self::Boolean(flag) => flag.to_string(),
            Self::Text(text) => format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\"")),
        }
    }

    fn column_type(self) -> ColumnType {
        match self {
            Self::Float(_) => ColumnType::Double,
            Self::Integer(_) => ColumnType::Int64,
            Self::Unsigned(_) => ColumnType::Uint64,
            Self::Boolean(_) => ColumnType::Bool,
            Self::Text(_) => ColumnType::String,
        }
    }

    fn value(&self) -> Value<'_> {
        match self {
            Self::Float(number) => Value::Double(*number),
            Self::Integer(number) => Value::Int64(*number),
            Self::Unsigned(number) => Value::Uint64(*number),
            Self::Boolean(flag) => Value::Bool(*flag),
            Self::Text(text) => Value::String(text),
        }
    }
}

impl Series {
    /// The line an InfluxDB client writes for it.
    fn line(&self) -> String {
        let mut line = line_protocol_measurement(&self.measurement);
        for (key, value) in &self.tags {
            line.push(',');
            line.push_str(&line_protocol_key(key));
            line.push('=');
            line.push_str(&line_protocol_key(value));
        }
        line.push(' ');
        line.push_str(&line_protocol_key(&self.field));
        line.push('=');
        line.push_str(&self.value.line());
        line.push(' ');
        line.push_str(&self.time.to_string());
        line
    }
}

const BASE_TIME: i64 = 1_700_000_000_000_000_000;

fn random_measurements(rng: &mut Rng, count: usize) -> Vec<Vec<Series>> {
    let values = [
        FieldValue::Float(1.5),
        FieldValue::Integer(i64::MIN + 1),
        FieldValue::Unsigned(u64::MAX),
        FieldValue::Boolean(true),
        FieldValue::Text("it's \"quoted\" \\ and 🔥"),
    ];
    let mut measurements = Vec::new();
    let mut seen = BTreeSet::new();
    while measurements.len() < count {
        let measurement = name(rng, 12, &[',', ' ']);
        // A line starting with `#` is a comment to InfluxDB (and TDengine): no such measurement.
        if measurement.starts_with('#') || !seen.insert(measurement.clone()) {
            continue;
        }
        let mut keys: Vec<String> = (0..1 + rng.below(3))
            .map(|_| name(rng, 8, &[',', ' ', '=']))
            .collect();
        // Keys equal but for case, now and then.
        if rng.chance(20) {
            let upper = keys[0].to_uppercase();
            keys.push(if upper == keys[0] {
                keys[0].to_lowercase()
            } else {
                upper
            });
        }
        keys.sort();
        keys.dedup();
        let field = name(rng, 6, &[',', ' ', '=']);
        let value = values[rng.below(values.len())];
        let mut series = Vec::new();
        for _ in 0..1 + rng.below(8) {
            let tags: Vec<(String, String)> = if rng.chance(12) {
                // A tagless series beside tagged ones.
                Vec::new()
            } else {
                let mut tags = Vec::new();
                for key in &keys {
                    if !rng.chance(15) {
                        tags.push((key.clone(), name(rng, 10, &[',', ' ', '='])));
                    }
                }
                tags
            };
            series.push(Series {
                measurement: measurement.clone(),
                tags,
                field: field.clone(),
                value,
                time: BASE_TIME,
            });
        }
        measurements.push(series);
    }
    measurements
}

fn one(measurement: &str, tags: &[(&str, &str)], field: &str) -> Vec<Series> {
    vec![Series {
        measurement: measurement.to_owned(),
        tags: tags
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect(),
        field: field.to_owned(),
        value: FieldValue::Float(2.5),
        time: BASE_TIME,
    }]
}

/// Cases at the edges, beside the random ones.
fn chosen_measurements() -> Vec<Vec<Series>> {
    let mut tagless_first = one("tagless first", &[], "v");
    tagless_first.extend(one("tagless first", &[("host", "a")], "v"));
    vec![
        one(
            "cpu load",
            &[("host", "h3"), ("rack id", "plain"), ("state", "on")],
            "value",
        ),
        one("a,b", &[("k", "v")], "value"),
        one("a\\\\b", &[("k", "a\\\\b"), ("k2", "a\\b")], "value"),
        one("dot.name", &[("k", "v.x")], "f.1"),
        one("dot_name", &[("k", "v.x")], "f.1"),
        one(
            "keys",
            &[("k 2", "v 3"), ("k,1", "x"), ("k=1", "v,2")],
            "f=1",
        ),
        one("case", &[("Host", "a"), ("host", "b")], "value"),
        one("field like a tag but for case", &[("host", "a")], "Host"),
        tagless_first,
        one(&"m".repeat(192), &[("k", "v")], "value"),
        one("long key", &[(&"k".repeat(64), "v")], "value"),
        // Schemaless refuses these; influx2td keeps them under a deterministic name.
        one(&"n".repeat(200), &[("k", "v")], "value"),
        one("longer key", &[(&"k".repeat(65), "v")], "value"),
        one("field named like its tag", &[("host", "a")], "host"),
        vec![Series {
            value: FieldValue::Text("a line\nbreak"),
            ..one("newline in a string", &[("k", "v")], "value").remove(0)
        }],
    ]
}

fn batch_of(series: &[Series]) -> ClosedBatch {
    let mut encoder = BatchEncoder::new(WindowRef {
        job: "naming".into(),
        measurement: series[0].measurement.clone(),
        // A window of its own per batch (as the reader's are): its DONE report has its own id.
        window_start_ns: series[0].time,
        window_end_ns: series[0].time + 1,
        attempt: 1,
        read: 1,
    });
    for one in series {
        encoder.begin_series(
            one.tags
                .iter()
                .map(|(key, value)| pb::Tag {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
            vec![(one.field.clone(), one.value.column_type())],
        );
        assert!(
            encoder
                .push_row(one.time, &[Some(one.value.value())])
                .unwrap()
                .is_none()
        );
    }
    encoder.finish()
}

/// What a database holds: super table -> its columns and tags (name -> (type, is tag)), child
/// table -> tag values, and each point (by its time, unique per series) -> where it is.
#[derive(Debug, Default)]
struct Contents {
    stables: BTreeMap<String, BTreeMap<String, (String, bool)>>,
    tags: BTreeMap<String, BTreeMap<String, Option<String>>>,
    points: BTreeMap<i64, Point>,
}

#[derive(Debug, Clone, PartialEq)]
struct Point {
    stable: String,
    child: String,
    /// The row's non-null cells, by column.
    values: BTreeMap<String, String>,
}

fn quoted(name: &str) -> String {
    format!("`{name}`")
}

async fn contents(sink: &TdengineSink, database: &str) -> Contents {
    let mut found = Contents::default();
    let stables = sink
        .records(&format!(
            "SELECT stable_name FROM information_schema.ins_stables WHERE db_name = '{database}'"
        ))
        .await
        .unwrap();
    for row in stables {
        let stable = row[0].clone();
        let described = sink
            .records(&format!(
                "DESCRIBE {}.{}",
                quoted(database),
                quoted(&stable)
            ))
            .await
            .unwrap();
        let columns: BTreeMap<String, (String, bool)> = described
            .iter()
            .map(|row| (row[0].clone(), (row[1].clone(), row[3] == "TAG")))
            .collect();
        // TDengine's SQL cannot read a column named `*` (`SELECT *` fails on its table too):
        // such a column is compared by its type only.
        let fields: Vec<&String> = columns
            .iter()
            .filter(|(name, (_, tag))| !tag && name.as_str() != "_ts" && name.as_str() != "*")
            .map(|(name, _)| name)
            .collect();
        let selected: Vec<String> = std::iter::once("tbname".to_owned())
            .chain(std::iter::once("CAST(`_ts` AS BIGINT)".to_owned()))
            .chain(
                fields
                    .iter()
                    .map(|name| format!("CAST({} AS VARCHAR(200))", quoted(name))),
            )
            .collect();
        let rows = sink
            .records(&format!(
                "SELECT {} FROM {}.{}",
                selected.join(","),
                quoted(database),
                quoted(&stable)
            ))
            .await
            .unwrap();
        for row in rows {
            let values = fields
                .iter()
                .zip(&row[2..])
                .filter(|(_, cell)| !cell.is_empty() && *cell != "NULL")
                .map(|(name, cell)| ((*name).clone(), cell.clone()))
                .collect();
            found.points.insert(
                row[1].parse().unwrap(),
                Point {
                    stable: stable.clone(),
                    child: row[0].clone(),
                    values,
                },
            );
        }
        found.stables.insert(stable, columns);
    }
    let tags = sink
        .records(&format!(
            "SELECT table_name, tag_name, tag_value FROM information_schema.ins_tags WHERE db_name = '{database}'"
        ))
        .await
        .unwrap();
    for row in tags {
        let value = (row[2] != "NULL" && !row[2].is_empty()).then(|| row[2].clone());
        found
            .tags
            .entry(row[0].clone())
            .or_default()
            .insert(row[1].clone(), value);
    }
    found
}

/// Writes each measurement's lines in one schemaless call (as a client batching its points
/// would); where TDengine refuses the call, line by line, to learn which lines it refuses.
async fn write_schemaless(
    taos: &taos::Taos,
    measurements: &[Vec<Series>],
) -> BTreeMap<String, String> {
    use taos::AsyncQueryable;
    use taos::taos_query::common::{SchemalessPrecision, SchemalessProtocol, SmlDataBuilder};
    let put = |lines: Vec<String>| async move {
        let data = SmlDataBuilder::default()
            .protocol(SchemalessProtocol::Line)
            .precision(SchemalessPrecision::Nanosecond)
            .data(lines)
            .build()
            .unwrap();
        taos.put(&data).await
    };
    let mut refused = BTreeMap::new();
    for series in measurements {
        let lines: Vec<String> = series.iter().map(Series::line).collect();
        if put(lines.clone()).await.is_ok() {
            continue;
        }
        for line in lines {
            if let Err(error) = put(vec![line.clone()]).await {
                refused.insert(line, error.to_string());
            }
        }
    }
    refused
}

fn type_name(described: &str) -> &str {
    // Widths differ on purpose (influx2td rounds up to fewer ALTERs); the types must not.
    match described {
        "BINARY" => "VARCHAR",
        other => other,
    }
}

/// Two databases on the live TDengine, one for schemaless ingestion (with a connection of its
/// own for the schemaless API) and one for influx2td's writer.
struct Pair {
    sink: TdengineSink,
    taos: taos::Taos,
    schemaless_db: String,
    ours_db: String,
}

impl Pair {
    async fn create(dsn: &str, name: &str) -> Self {
        use taos::AsyncTBuilder;
        let sink = TdengineSink::connect(dsn, "TDENGINE_DSN", 8).await.unwrap();
        let schemaless_db = database(&format!("{name}sml"));
        let ours_db = database(name);
        for database in [&schemaless_db, &ours_db] {
            service::prepare_target(&sink, database, true, false, false)
                .await
                .unwrap();
        }
        let taos = taos::TaosBuilder::from_dsn(format!("{dsn}/{schemaless_db}"))
            .unwrap()
            .build()
            .await
            .unwrap();
        Self {
            sink,
            taos,
            schemaless_db,
            ours_db,
        }
    }

    async fn drop_databases(self) {
        let Self {
            sink,
            taos,
            schemaless_db,
            ours_db,
        } = self;
        drop(taos);
        for database in [&schemaless_db, &ours_db] {
            sink.execute(&format!("DROP DATABASE `{database}`"))
                .await
                .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_naming_matches_tdengine_schemaless_ingestion() {
    let Some(dsn) = dsn() else { return };
    logs();
    let seed: u64 = std::env::var("LIVE_NAMING_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(20_261_201);
    let mut rng = Rng(seed);
    let mut measurements = random_measurements(&mut rng, 80);
    measurements.extend(chosen_measurements());
    // A time of its own per series: it finds the point on both sides, whatever their names.
    for (index, series) in measurements.iter_mut().flatten().enumerate() {
        series.time = BASE_TIME + index as i64 * 1_000;
    }
    let series_count: usize = measurements.iter().map(Vec::len).sum();

    let pair = Pair::create(&dsn, "ours").await;
    let (sink, taos) = (&pair.sink, &pair.taos);
    let (schemaless_db, ours_db) = (&pair.schemaless_db, &pair.ours_db);
    let refused = write_schemaless(taos, &measurements).await;
    let batches: Vec<ClosedBatch> = measurements.iter().map(|series| batch_of(series)).collect();
    let (reports, letters) = write_reporting(
        sink,
        ours_db,
        influx2td_writer::Precision::Nanoseconds,
        4,
        batches,
    )
    .await;
    assert!(letters.is_empty(), "influx2td refused rows: {letters:#?}");
    assert_eq!(
        reports
            .iter()
            .map(|report| report.rows_written)
            .sum::<u64>(),
        series_count as u64
    );

    let theirs = contents(sink, schemaless_db).await;
    let ours = contents(sink, ours_db).await;
    let mut failures = Vec::new();
    let mut compared = 0;
    let mut covered = BTreeSet::new();
    let mut golden = Vec::new();
    // InfluxDB lets a field and a tag share a name; schemaless refuses such a line, influx2td
    // renames the field `<name>_field` for the whole measurement (all its rows in one table).
    let clashing: BTreeSet<&str> = measurements
        .iter()
        .filter(|series| {
            series
                .iter()
                .any(|one| one.tags.iter().any(|(key, _)| *key == one.field))
        })
        .map(|series| series[0].measurement.as_str())
        .collect();
    for series in measurements.iter().flatten() {
        let line = series.line();
        if refused.contains_key(&line) || clashing.contains(series.measurement.as_str()) {
            continue;
        }
        compared += 1;
        let Some(expected) = theirs.points.get(&series.time) else {
            failures.push(format!("schemaless holds no point for {line:?}"));
            continue;
        };
        covered.extend(
            series
                .measurement
                .chars()
                .chain(
                    series
                        .tags
                        .iter()
                        .flat_map(|(k, v)| k.chars().chain(v.chars())),
                )
                .filter(|character| SPECIAL.contains(character)),
        );
        golden.push(serde_json::json!({
            "line": line,
            "measurement": series.measurement,
            "tags": series.tags,
            "super_table": expected.stable,
            "child_table": expected.child,
            "tag_values": theirs.tags.get(&expected.child),
        }));
        let Some(found) = ours.points.get(&series.time) else {
            failures.push(format!(
                "{line:?}: schemaless writes it into {:?}.{}; influx2td wrote no such point",
                expected.stable, expected.child
            ));
            continue;
        };
        if found != expected {
            failures.push(format!(
                "{line:?}:\n  schemaless {expected:?}\n  influx2td  {found:?}"
            ));
        }
        let (their_tags, our_tags) = (
            theirs.tags.get(&expected.child),
            ours.tags.get(&found.child),
        );
        if their_tags != our_tags {
            failures.push(format!(
                "{line:?}: tag values of {}:\n  schemaless {their_tags:?}\n  influx2td  {our_tags:?}",
                expected.child
            ));
        }
    }
    for (stable, columns) in &theirs.stables {
        if clashing
            .iter()
            .any(|measurement| influx2td_writer::mapping::super_table_name(measurement) == *stable)
        {
            continue;
        }
        let Some(our_columns) = ours.stables.get(stable) else {
            failures.push(format!("super table {stable:?}: influx2td has none"));
            continue;
        };
        let simplify =
            |columns: &BTreeMap<String, (String, bool)>| -> BTreeMap<String, (String, bool)> {
                columns
                    .iter()
                    .map(|(name, (kind, tag))| (name.clone(), (type_name(kind).to_owned(), *tag)))
                    .collect()
            };
        if simplify(columns) != simplify(our_columns) {
            failures.push(format!(
                "super table {stable:?} columns differ:\n  schemaless {columns:?}\n  influx2td  {our_columns:?}"
            ));
        }
    }
    let mut deliberate: Vec<String> = refused
        .iter()
        .map(|(line, reason)| {
            let shown: String = line.chars().take(70).collect();
            format!("  schemaless refuses {shown:?}: {reason}; influx2td writes it")
        })
        .collect();
    deliberate.extend(clashing.iter().map(|measurement| {
        format!("  {measurement:?} has a field named like one of its tags: schemaless refuses those lines and names the field as it is elsewhere; influx2td names it `<field>_field` in the whole measurement")
    }));
    eprintln!(
        "\n=== naming differential (seed {seed}): {compared} series of {} measurements compared with TDengine's schemaless ingestion, {} child tables, {} super tables; characters covered: {:?}\n=== where influx2td deliberately differs ({}):\n{}\n",
        measurements.len(),
        theirs.tags.len(),
        theirs.stables.len(),
        covered.iter().collect::<String>(),
        deliberate.len(),
        deliberate.join("\n"),
    );
    if std::env::var_os("RECORD_GOLDEN").is_some() {
        let text: String = golden.iter().map(|entry| format!("{entry}\n")).collect();
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/golden/schemaless_names.jsonl"
        );
        std::fs::write(path, text).unwrap();
    }
    pair.drop_databases().await;
    assert!(
        failures.is_empty(),
        "{} of {compared} series differ from TDengine's schemaless ingestion:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(compared >= 200, "only {compared} series compared");
}

/// Points of `measurement`: `series` tag sets (empty: tagless), `points` each, from `time`.
fn points(measurement: &str, series: &[&[(&str, &str)]], points: usize, time: i64) -> Vec<Series> {
    let mut all = Vec::new();
    for (index, tags) in series.iter().enumerate() {
        for point in 0..points {
            let mut one = one(measurement, tags, "value").remove(0);
            one.time = time + (index * points + point) as i64 * 1_000;
            one.value = FieldValue::Float(point as f64);
            all.push(one);
        }
    }
    all
}

/// Per child table of the super table of `measurement`: its tag values (without `_tag_null`,
/// NULL wherever it is) and how many points it holds.
fn tables_of(
    contents: &Contents,
    measurement: &str,
) -> BTreeMap<String, (BTreeMap<String, Option<String>>, usize)> {
    let stable = influx2td_writer::mapping::super_table_name(measurement);
    let mut tables: BTreeMap<String, (BTreeMap<String, Option<String>>, usize)> = BTreeMap::new();
    for point in contents
        .points
        .values()
        .filter(|point| point.stable == stable)
    {
        let entry = tables.entry(point.child.clone()).or_insert_with(|| {
            let mut tags = contents.tags.get(&point.child).cloned().unwrap_or_default();
            tags.remove("_tag_null");
            (tags, 0)
        });
        entry.1 += 1;
    }
    tables
}

/// InfluxDB lets one measurement hold series with tags and series without: every one lands,
/// in the child tables schemaless gives them, whichever kind of series reaches TDengine first
/// (another writer each time, as after a restart) and with two writers racing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_tagged_and_tagless_series_of_one_measurement_land_whole() {
    let Some(dsn) = dsn() else { return };
    logs();
    let pair = Pair::create(&dsn, "mix").await;
    let (sink, taos) = (&pair.sink, &pair.taos);
    let (schemaless_db, ours_db) = (&pair.schemaless_db, &pair.ours_db);
    let tagged: &[(&str, &str)] = &[("host", "a"), ("rack", "r 1")];
    let other: &[(&str, &str)] = &[("host", "b")];
    let tagless: &[(&str, &str)] = &[];
    let ns = influx2td_writer::Precision::Nanoseconds;
    let write = |series: Vec<Series>| {
        let batch = batch_of(&series);
        let (sink, ours_db) = (&sink, &ours_db);
        async move {
            let (reports, letters) = write_reporting(sink, ours_db, ns, 4, vec![batch]).await;
            assert!(letters.is_empty(), "{letters:#?}");
            assert_eq!(reports[0].rows_written, series.len() as u64, "{reports:?}");
        }
    };

    // Tagless first, then tagged, each by a writer of its own.
    let first = points("tagless first", &[tagless], 3, BASE_TIME);
    let then = points("tagless first", &[tagged, other], 3, BASE_TIME + 1_000_000);
    // Tagged first, then tagless.
    // (Points are found by their time: each measurement has times of its own.)
    let tagged_first = points("tagged first", &[tagged], 3, BASE_TIME + 10_000_000_000);
    let tagless_then = points(
        "tagged first",
        &[tagless, other],
        3,
        BASE_TIME + 11_000_000_000,
    );
    for lines in [&first, &then, &tagged_first, &tagless_then] {
        assert!(
            write_schemaless(taos, std::slice::from_ref(lines))
                .await
                .is_empty()
        );
        write(lines.clone()).await;
    }
    // Two writers racing, twenty batches each, tagless and tagged mixed.
    let mut racing = Vec::new();
    for index in 0..40 {
        let tags: &[(&str, &str)] = match index % 3 {
            0 => tagless,
            1 => tagged,
            _ => other,
        };
        racing.push(points(
            "racing",
            &[tags],
            5,
            BASE_TIME + 20_000_000_000 + index as i64 * 10_000_000,
        ));
    }
    assert!(write_schemaless(taos, &racing).await.is_empty());
    let (left, right) = racing.split_at(20);
    let batches = |half: &[Vec<Series>]| half.iter().map(|series| batch_of(series)).collect();
    let (left_done, right_done) = tokio::join!(
        write_reporting(sink, ours_db, ns, 8, batches(left)),
        write_reporting(sink, ours_db, ns, 8, batches(right)),
    );
    for (reports, letters) in [left_done, right_done] {
        assert!(letters.is_empty(), "{letters:#?}");
        assert_eq!(reports.iter().map(|r| r.rows_written).sum::<u64>(), 100);
    }

    let theirs = contents(sink, schemaless_db).await;
    let ours = contents(sink, ours_db).await;
    for (measurement, points) in [("tagless first", 9), ("tagged first", 9), ("racing", 200)] {
        let (their_tables, our_tables) = (
            tables_of(&theirs, measurement),
            tables_of(&ours, measurement),
        );
        assert_eq!(
            our_tables, their_tables,
            "{measurement}: influx2td's child tables (left) differ from schemaless'"
        );
        let held: usize = our_tables.values().map(|(_, count)| count).sum();
        assert_eq!(held, points, "{measurement}: every point lands");
        assert_eq!(
            our_tables.len(),
            3,
            "{measurement}: one child table per series"
        );
    }
    // Arriving in the same order, the super tables are the very same: `_tag_null` exactly where
    // schemaless made one (the tagless series came first).
    for measurement in ["tagless first", "tagged first"] {
        let stable = influx2td_writer::mapping::super_table_name(measurement);
        let tags = |contents: &Contents| -> Vec<String> {
            contents.stables[&stable]
                .iter()
                .filter(|(_, (_, tag))| *tag)
                .map(|(name, _)| name.clone())
                .collect()
        };
        assert_eq!(tags(&ours), tags(&theirs), "{measurement}");
    }
    pair.drop_databases().await;
}
