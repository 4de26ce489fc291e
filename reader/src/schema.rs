//! Schema discovery: measurements (all, named, or by regex), field keys with their types, tag
//! keys, and the first and last timestamp of a measurement.

use std::collections::BTreeMap;

use influx2td_config::MeasurementFilter;
use influx2td_proto::ColumnType;
use serde::Serialize;

use crate::client::{InfluxClient, quote_identifier};
use crate::error::SourceError;

/// A field and the type its column gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Field {
    pub name: String,
    #[serde(serialize_with = "serialize_type")]
    pub column_type: ColumnType,
    /// Every type the field has in some shard, when there is more than one.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "serialize_types"
    )]
    pub conflicting_types: Vec<ColumnType>,
}

/// Fields and tag keys of one measurement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MeasurementSchema {
    pub measurement: String,
    pub fields: Vec<Field>,
    pub tag_keys: Vec<String>,
}

impl MeasurementSchema {
    pub fn field_type(&self, name: &str) -> Option<ColumnType> {
        self.fields
            .iter()
            .find(|field| field.name == name)
            .map(|field| field.column_type)
    }

    /// Fields whose type differs between shards.
    pub fn conflicts(&self) -> impl Iterator<Item = &Field> {
        self.fields
            .iter()
            .filter(|field| !field.conflicting_types.is_empty())
    }
}

fn serialize_type<S: serde::Serializer>(
    column_type: &ColumnType,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(column_type)
}

fn serialize_types<S: serde::Serializer>(
    types: &[ColumnType],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(types.iter().map(ToString::to_string))
}

/// InfluxDB's name of a field type.
pub fn parse_field_type(name: &str) -> Option<ColumnType> {
    Some(match name {
        "float" => ColumnType::Double,
        "integer" => ColumnType::Int64,
        "unsigned" => ColumnType::Uint64,
        "string" => ColumnType::String,
        "boolean" => ColumnType::Bool,
        _ => return None,
    })
}

/// The one type that holds every value of a field typed differently in different shards:
/// numbers widen to float; anything with a string or boolean becomes a string.
pub fn widest(types: &[ColumnType]) -> ColumnType {
    let Some(first) = types.first() else {
        return ColumnType::String;
    };
    if types.iter().all(|t| t == first) {
        return *first;
    }
    let numeric = |t: &ColumnType| {
        matches!(
            t,
            ColumnType::Double | ColumnType::Int64 | ColumnType::Uint64
        )
    };
    if types.iter().all(numeric) {
        ColumnType::Double
    } else {
        ColumnType::String
    }
}

fn string_cell(value: Option<&serde_json::Value>) -> Option<&str> {
    value.and_then(serde_json::Value::as_str)
}

/// The buckets (1.x databases; 2.x/3.x buckets mapped for InfluxQL) these credentials may
/// read, sorted, without InfluxDB's own `_internal`.
pub async fn buckets(client: &InfluxClient) -> Result<Vec<String>, SourceError> {
    if client.is_v3().await? {
        let mut names = client.v3_databases().await?;
        names.retain(|name| !name.starts_with('_'));
        return Ok(names);
    }
    let databases = client.query("SHOW DATABASES").await?;
    let mut names: Vec<String> = databases
        .iter()
        .flat_map(|series| series.values.iter())
        .filter_map(|row| string_cell(row.first()))
        .filter(|name| !name.starts_with('_'))
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Fails with [`SourceError::BucketNotFound`] unless the database (and retention policy) exist
/// and the credentials may read them. InfluxDB 1.x answers `SHOW MEASUREMENTS` on a missing
/// database with an empty list, which would look like an empty bucket.
pub async fn ensure_bucket(client: &InfluxClient) -> Result<(), SourceError> {
    if client.is_v3().await? {
        if client
            .v3_databases()
            .await?
            .iter()
            .any(|name| name == client.database())
        {
            return Ok(());
        }
        return Err(SourceError::BucketNotFound {
            bucket: client.database().to_owned(),
            detail: "/api/v3/configure/database does not list it".into(),
        });
    }
    let databases = client.query("SHOW DATABASES").await?;
    let listed = databases
        .iter()
        .flat_map(|series| series.values.iter())
        .any(|row| string_cell(row.first()) == Some(client.database()));
    if !listed {
        return Err(SourceError::BucketNotFound {
            bucket: client.database().to_owned(),
            detail:
                "SHOW DATABASES does not list it (missing, or not readable with these credentials)"
                    .into(),
        });
    }
    let Some(policy) = client.retention_policy() else {
        return Ok(());
    };
    let statement = format!(
        "SHOW RETENTION POLICIES ON {}",
        quote_identifier(client.database())
    );
    let policies = client.query(&statement).await?;
    let found = policies
        .iter()
        .flat_map(|series| series.values.iter())
        .any(|row| string_cell(row.first()) == Some(policy));
    if !found {
        return Err(SourceError::BucketNotFound {
            bucket: format!("{}/{policy}", client.database()),
            detail: format!(
                "retention policy {policy:?} not found on database {:?}",
                client.database()
            ),
        });
    }
    Ok(())
}

/// The measurements of the bucket that the filters select (all when `filters` is empty), sorted.
pub async fn measurements(
    client: &InfluxClient,
    filters: &[MeasurementFilter],
) -> Result<Vec<String>, SourceError> {
    ensure_bucket(client).await?;
    let statement = format!(
        "SHOW MEASUREMENTS ON {}",
        quote_identifier(client.database())
    );
    let series = client.query(&statement).await?;
    let mut names: Vec<String> = series
        .iter()
        .flat_map(|series| series.values.iter())
        .filter_map(|row| string_cell(row.first()).map(str::to_owned))
        .filter(|name| filters.is_empty() || filters.iter().any(|filter| filter.matches(name)))
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// The `FROM` target of one measurement: `"db"."rp"."m"` (`"db".."m"` for the default policy).
pub fn from_clause(client: &InfluxClient, measurement: &str) -> String {
    format!(
        "{}.{}.{}",
        quote_identifier(client.database()),
        client
            .retention_policy()
            .map(quote_identifier)
            .unwrap_or_default(),
        quote_identifier(measurement)
    )
}

/// Fields and tag keys of every measurement, from two statements whatever their number.
pub async fn schemas(
    client: &InfluxClient,
) -> Result<BTreeMap<String, MeasurementSchema>, SourceError> {
    let on = quote_identifier(client.database());
    let mut schemas = schemas_from(
        &client.query(&format!("SHOW FIELD KEYS ON {on}")).await?,
        &client.query(&format!("SHOW TAG KEYS ON {on}")).await?,
    );
    schemas.retain(|_, schema| !schema.fields.is_empty());
    Ok(schemas)
}

/// Fields and tag keys of several measurements, with as few requests as their names allow;
/// a measurement with neither gets an empty schema. One `SHOW ... FROM` statement each: with a
/// list in `FROM`, influxd 1.x tests every series against a chain of `_name = ...` conditions
/// (0.1–0.3 CPU-s per statement on 5,000 series), with one name it looks the measurement up.
pub async fn schemas_of(
    client: &InfluxClient,
    measurements: &[&str],
) -> Result<BTreeMap<String, MeasurementSchema>, SourceError> {
    let mut found = BTreeMap::new();
    if client.is_v3().await? {
        // InfluxDB 3 answers one statement per request.
        for measurement in measurements {
            found.insert(
                (*measurement).to_owned(),
                schema(client, measurement).await?,
            );
        }
        return Ok(found);
    }
    let on = quote_identifier(client.database());
    let mut statements: Vec<String> = Vec::new();
    let mut asked: Vec<&str> = Vec::new();
    let mut bytes = 0;
    for (index, measurement) in measurements.iter().enumerate() {
        let from = quote_identifier(measurement);
        for what in ["FIELD", "TAG"] {
            let statement = format!("SHOW {what} KEYS ON {on} FROM {from}");
            bytes += statement.len() + 1;
            statements.push(statement);
        }
        asked.push(measurement);
        if bytes >= DISCOVERY_QUERY_BYTES || index + 1 == measurements.len() {
            let answers = client.query_each(&statements).await?;
            for (measurement, pair) in asked.iter().zip(answers.chunks(2)) {
                let (fields, tags) = (&pair[0], pair.get(1).map_or(&[][..], Vec::as_slice));
                let schema = schemas_from(fields, tags)
                    .remove(*measurement)
                    .unwrap_or_else(|| MeasurementSchema {
                        measurement: (*measurement).to_owned(),
                        ..Default::default()
                    });
                found.insert((*measurement).to_owned(), schema);
            }
            statements.clear();
            asked.clear();
            bytes = 0;
        }
    }
    Ok(found)
}

/// Fields and tag keys of one measurement.
pub async fn schema(
    client: &InfluxClient,
    measurement: &str,
) -> Result<MeasurementSchema, SourceError> {
    let on = quote_identifier(client.database());
    let from = quote_identifier(measurement);
    let fields = client
        .query(&format!("SHOW FIELD KEYS ON {on} FROM {from}"))
        .await?;
    let tags = client
        .query(&format!("SHOW TAG KEYS ON {on} FROM {from}"))
        .await?;
    Ok(schemas_from(&fields, &tags)
        .remove(measurement)
        .unwrap_or_else(|| MeasurementSchema {
            measurement: measurement.to_owned(),
            ..Default::default()
        }))
}

fn schemas_from(
    field_series: &[crate::client::JsonSeries],
    tag_series: &[crate::client::JsonSeries],
) -> BTreeMap<String, MeasurementSchema> {
    let mut types: BTreeMap<&str, BTreeMap<&str, Vec<ColumnType>>> = BTreeMap::new();
    for series in field_series {
        let measurement_fields = types.entry(series.name.as_str()).or_default();
        for row in &series.values {
            let (Some(name), Some(field_type)) =
                (string_cell(row.first()), string_cell(row.get(1)))
            else {
                continue;
            };
            // InfluxDB lists a field once per type it has in some shard.
            let seen = measurement_fields.entry(name).or_default();
            if let Some(column_type) = parse_field_type(field_type)
                && !seen.contains(&column_type)
            {
                seen.push(column_type);
            }
        }
    }
    let mut schemas: BTreeMap<String, MeasurementSchema> = types
        .into_iter()
        .map(|(measurement, fields)| {
            let fields = fields
                .into_iter()
                .map(|(name, seen)| Field {
                    name: name.to_owned(),
                    column_type: widest(&seen),
                    conflicting_types: if seen.len() > 1 { seen } else { Vec::new() },
                })
                .collect();
            let schema = MeasurementSchema {
                measurement: measurement.to_owned(),
                fields,
                tag_keys: Vec::new(),
            };
            (measurement.to_owned(), schema)
        })
        .collect();
    for series in tag_series {
        let schema = schemas
            .entry(series.name.clone())
            .or_insert_with(|| MeasurementSchema {
                measurement: series.name.clone(),
                ..Default::default()
            });
        schema.tag_keys = series
            .values
            .iter()
            .filter_map(|row| string_cell(row.first()).map(str::to_owned))
            .collect();
    }
    schemas
}

/// The first and last timestamp of a measurement (ns), `None` when it holds no point.
pub async fn time_bounds(
    client: &InfluxClient,
    measurement: &str,
) -> Result<Option<(i64, i64)>, SourceError> {
    let from = from_clause(client, measurement);
    let first = first_time(
        client,
        &format!("SELECT * FROM {from} ORDER BY time ASC LIMIT 1"),
    )
    .await?;
    let last = first_time(
        client,
        &format!("SELECT * FROM {from} ORDER BY time DESC LIMIT 1"),
    )
    .await?;
    Ok(first.zip(last))
}

/// A discovery request takes statements until they reach this many bytes: the query travels in
/// a URL, and proxies in front of InfluxDB refuse long ones (nginx: 8 KiB by default).
const DISCOVERY_QUERY_BYTES: usize = 2_048;

/// [`time_bounds`] of several measurements, in that order, asking for as many at once as one
/// request takes (a statement each for the first and the last time, each reading one
/// measurement exactly as on its own).
pub async fn time_bounds_of(
    client: &InfluxClient,
    measurements: &[String],
) -> Result<Vec<Option<(i64, i64)>>, SourceError> {
    let mut bounds = Vec::with_capacity(measurements.len());
    if client.is_v3().await? {
        // InfluxDB 3 answers one statement per request.
        for measurement in measurements {
            bounds.push(time_bounds(client, measurement).await?);
        }
        return Ok(bounds);
    }
    let mut statements: Vec<String> = Vec::new();
    let mut bytes = 0;
    for (index, measurement) in measurements.iter().enumerate() {
        let from = from_clause(client, measurement);
        for order in ["ASC", "DESC"] {
            let statement = format!("SELECT * FROM {from} ORDER BY time {order} LIMIT 1");
            bytes += statement.len() + 1;
            statements.push(statement);
        }
        let last = index + 1 == measurements.len();
        if bytes >= DISCOVERY_QUERY_BYTES || last {
            let answers = client.query_each(&statements).await?;
            for pair in answers.chunks(2) {
                let time = |series: &[crate::client::JsonSeries]| {
                    series
                        .first()
                        .and_then(|series| series.values.first())
                        .and_then(|row| row.first())
                        .and_then(serde_json::Value::as_i64)
                };
                bounds.push(time(&pair[0]).zip(pair.get(1).and_then(|p| time(p))));
            }
            statements.clear();
            bytes = 0;
        }
    }
    Ok(bounds)
}

async fn first_time(client: &InfluxClient, statement: &str) -> Result<Option<i64>, SourceError> {
    let series = client.query(statement).await?;
    Ok(series
        .first()
        .and_then(|series| series.values.first())
        .and_then(|row| row.first())
        .and_then(serde_json::Value::as_i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_follows_the_mapping_rules() {
        use ColumnType::*;
        assert_eq!(widest(&[Int64]), Int64);
        assert_eq!(widest(&[Int64, Double]), Double);
        assert_eq!(widest(&[Uint64, Int64]), Double);
        assert_eq!(widest(&[Int64, String]), String);
        assert_eq!(widest(&[Bool, Double]), String);
    }
}
