//! What the fuzz targets share: an InfluxDB client that never connects (it only names errors),
//! the window and schema answers are decoded for, and the split of an input into body parts.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use influx2td_proto::ColumnType;
use influx2td_proto::batch::WindowRef;
use influx2td_reader::InfluxClient;
use influx2td_reader::schema::{Field, MeasurementSchema};

pub fn client() -> &'static InfluxClient {
    static CLIENT: OnceLock<InfluxClient> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let mut layers = influx2td_config::Layers::default();
        layers
            .toml_text(
                "bucket = \"db\"\nbegin = \"2024-01-01\"\n[source]\nurl = \"http://127.0.0.1:9\"\n\
                 [target]\ndsn = \"file:///nonexistent\"\ndatabase = \"m\"\n",
                "fuzz.toml",
            )
            .expect("config");
        let job = influx2td_config::validate(layers).expect("job");
        InfluxClient::new(&job.source, &job.bucket).expect("client")
    })
}

pub fn window() -> WindowRef {
    WindowRef {
        job: "fuzz".into(),
        measurement: "cpu".into(),
        window_start_ns: 0,
        window_end_ns: i64::MAX,
        attempt: 1,
        read: 1,
    }
}

/// A measurement with a field of every type and two tag keys.
pub fn schema() -> Arc<MeasurementSchema> {
    let field = |name: &str, column_type| Field {
        name: name.into(),
        column_type,
        conflicting_types: Vec::new(),
    };
    Arc::new(MeasurementSchema {
        measurement: "cpu".into(),
        fields: vec![
            field("f", ColumnType::Double),
            field("i", ColumnType::Int64),
            field("u", ColumnType::Uint64),
            field("s", ColumnType::String),
            field("b", ColumnType::Bool),
        ],
        tag_keys: vec!["host".into(), "region".into()],
    })
}

/// The input after its first byte, in parts of that byte's size (1 to 256): an HTTP body
/// arrives cut anywhere.
pub fn parts(data: &[u8]) -> Vec<Bytes> {
    let Some((&size, rest)) = data.split_first() else {
        return Vec::new();
    };
    rest.chunks(usize::from(size) + 1)
        .map(Bytes::copy_from_slice)
        .collect()
}
