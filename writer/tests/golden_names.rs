//! The naming rule against what a real TDengine 3.3.6 answered: `golden/schemaless_names.jsonl`
//! holds, for each series the live differential test (`live_naming`) wrote through TDengine's
//! schemaless ingestion, the super table, child table and tag values the server gave it. No
//! TDengine is needed here, so CI pins the rule; `RECORD_GOLDEN=1` with the live suite rewrites
//! the file.

#![allow(clippy::unwrap_used)]

use influx2td_writer::mapping::{child_table_name, super_table_name, tag_column_name, tag_value};
use serde_json::Value;

#[test]
fn every_name_tdengine_gave_a_series_is_the_one_influx2td_gives() {
    let text = include_str!("golden/schemaless_names.jsonl");
    let mut checked = 0;
    for line in text.lines() {
        let entry: Value = serde_json::from_str(line).unwrap();
        let measurement = entry["measurement"].as_str().unwrap();
        let tags: Vec<(String, String)> = entry["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| {
                (
                    pair[0].as_str().unwrap().to_owned(),
                    pair[1].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let written = entry["line"].as_str().unwrap();
        assert_eq!(
            super_table_name(measurement),
            entry["super_table"].as_str().unwrap(),
            "super table of {written:?}"
        );
        assert_eq!(
            child_table_name(measurement, &tags),
            entry["child_table"].as_str().unwrap(),
            "child table of {written:?}"
        );
        let stored = entry["tag_values"].as_object().unwrap();
        for (key, value) in &tags {
            assert_eq!(
                stored[&tag_column_name(key)].as_str(),
                Some(tag_value(value).as_str()),
                "tag {key:?} of {written:?}"
            );
        }
        // The super table's other tags are NULL in this series' child table.
        let named: Vec<String> = tags.iter().map(|(key, _)| tag_column_name(key)).collect();
        for (column, value) in stored {
            if !named.contains(column) {
                assert!(value.is_null(), "tag {column:?} of {written:?}: {value}");
            }
        }
        checked += 1;
    }
    assert!(checked >= 300, "only {checked} recorded series");
}
