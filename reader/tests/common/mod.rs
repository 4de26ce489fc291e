//! Helpers shared by the reader's integration tests.

#![allow(dead_code)]

use influx2td_proto::pb;

/// One decoded row: tags, time, and `field=value` for the fields it has.
pub type Row = (Vec<(String, String)>, i64, Vec<String>);

/// Tags, time, and each value present as its column's name and the value's `{:?}`.
pub type Values = (Vec<(String, String)>, i64, Vec<(String, String)>);

/// Every row of the batches, in order, with its values by column.
pub fn values(batches: &[pb::RowBatch]) -> Vec<Values> {
    let mut rows = Vec::new();
    for batch in batches {
        for block in &batch.series {
            let tags: Vec<_> = block
                .tags
                .iter()
                .map(|t| (t.key.clone(), t.value.clone()))
                .collect();
            for (index, timestamp) in block.timestamps_ns.iter().enumerate() {
                let values = block
                    .columns
                    .iter()
                    .filter_map(|c| c.value(index).map(|v| (c.name.clone(), format!("{v:?}"))))
                    .collect();
                rows.push((tags.clone(), *timestamp, values));
            }
        }
    }
    rows
}

/// Every row of the batches, in order.
pub fn rows(batches: &[pb::RowBatch]) -> Vec<Row> {
    values(batches)
        .into_iter()
        .map(|(tags, time, values)| {
            let values = values
                .into_iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            (tags, time, values)
        })
        .collect()
}

/// Tags as [`Row`] holds them.
pub fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
