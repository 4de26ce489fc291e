//! InfluxDB names and types as TDengine ones, the way TDengine's own schemaless (line protocol)
//! ingestion names them, so that clients writing line protocol after the migration continue the
//! very same tables.
//!
//! The rules, read from TDengine's source (`clientSml.c`, `tname.c`, `tglobal.c`):
//! - super table: the measurement with `.` replaced by `_` (`smlDot2Underline`, on by default);
//! - child table: `t_` + lowercase hex MD5 of the super table name followed by `,key=value` for
//!   each tag, tags sorted by key case-insensitively (on an equal prefix the shorter key first);
//! - a measurement without tags gets one NCHAR tag `_tag_null` (and its child table hashes the
//!   super table name alone).

use influx2td_proto::ColumnType;
use md5::{Digest, Md5};

/// TDengine's longest table name (bytes).
pub const MAX_TABLE_NAME: usize = 192;
/// TDengine's longest column or tag name (bytes).
pub const MAX_COLUMN_NAME: usize = 64;
/// The timestamp column every super table starts with.
pub const TIMESTAMP_COLUMN: &str = "_ts";
/// The tag of a measurement that has none (TDengine's `smlTagName` default).
pub const NULL_TAG: &str = "_tag_null";
/// Longest VARCHAR / NCHAR payload in bytes (TSDB_MAX_FIELD_LEN less the length header).
pub const MAX_VAR_BYTES: u32 = 65_517;
/// Narrowest VARCHAR / NCHAR a column is created with; wider values widen it.
pub const MIN_VAR_WIDTH: u32 = 16;

/// The super table of a measurement.
pub fn super_table_name(measurement: &str) -> String {
    fit_name(&measurement.replace('.', "_"), MAX_TABLE_NAME)
}

/// The child table of one series of `super_table` (already mapped by [`super_table_name`]).
pub fn child_table_name<K: AsRef<str>, V: AsRef<str>>(
    super_table: &str,
    tags: &[(K, V)],
) -> String {
    let mut sorted: Vec<(&str, &str)> =
        tags.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect();
    sorted.sort_by(|(a, _), (b, _)| compare_keys(a, b));
    let mut digest = Md5::new();
    digest.update(super_table.as_bytes());
    for (key, value) in sorted {
        digest.update(b",");
        digest.update(key.as_bytes());
        digest.update(b"=");
        digest.update(value.as_bytes());
    }
    format!("t_{}", hex(&digest.finalize()))
}

/// TDengine's `compareKv`: ASCII case-insensitive over the common length, then shorter first;
/// keys equal that way keep a fixed (byte-wise) order, where TDengine's sort leaves it open.
fn compare_keys(a: &str, b: &str) -> std::cmp::Ordering {
    let common = a.len().min(b.len());
    let folded = |text: &str| text.as_bytes()[..common].to_ascii_lowercase();
    folded(a)
        .cmp(&folded(b))
        .then(a.len().cmp(&b.len()))
        .then_with(|| a.cmp(b))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// `name` if it fits in `limit` bytes; otherwise a prefix (cut at a character boundary) and the
/// first 16 hex digits of its MD5, so that long names stay distinct and deterministic.
pub fn fit_name(name: &str, limit: usize) -> String {
    if name.len() <= limit {
        return name.to_owned();
    }
    let suffix = &hex(&Md5::digest(name.as_bytes()))[..16];
    let mut cut = limit - suffix.len() - 1;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{suffix}", &name[..cut])
}

/// A TDengine identifier in backticks. A backtick cannot be escaped there, so it becomes `_`.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "_"))
}

/// The column of a field: its own name, unless that is the timestamp column or a tag of the same
/// super table (TDengine keeps columns and tags in one namespace), then `<name>_field`.
pub fn field_column_name(field: &str, tag_keys: &[String]) -> String {
    let fitted = fit_name(field, MAX_COLUMN_NAME);
    let clashes = fitted.eq_ignore_ascii_case(TIMESTAMP_COLUMN)
        || tag_keys.iter().any(|tag| tag.eq_ignore_ascii_case(&fitted));
    if clashes {
        fit_name(&format!("{field}_field"), MAX_COLUMN_NAME)
    } else {
        fitted
    }
}

/// The tag column of a tag key.
pub fn tag_column_name(tag: &str) -> String {
    fit_name(tag, MAX_COLUMN_NAME)
}

/// The declared width for values up to `bytes` long: the next power of two, at least
/// [`MIN_VAR_WIDTH`], so a column is widened rarely; `None` beyond TDengine's maximum.
pub fn var_width(bytes: usize) -> Option<u32> {
    let bytes = u32::try_from(bytes).ok()?;
    if bytes > MAX_VAR_BYTES {
        return None;
    }
    Some(
        bytes
            .max(MIN_VAR_WIDTH)
            .next_power_of_two()
            .min(MAX_VAR_BYTES),
    )
}

/// The SQL type of a field column (`width` only for strings).
pub fn sql_type(column_type: ColumnType, width: u32) -> String {
    match column_type {
        ColumnType::Double => "DOUBLE".into(),
        ColumnType::Int64 => "BIGINT".into(),
        ColumnType::Uint64 => "BIGINT UNSIGNED".into(),
        ColumnType::Bool => "BOOL".into(),
        ColumnType::String => format!("VARCHAR({width})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed independently (Python hashlib) from the rule in TDengine's C source.
    #[test]
    fn child_table_names_match_tdengine_schemaless_golden_vectors() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: &[Case<'_>] = &[
            (
                "cpu",
                &[("host", "server01"), ("region", "eu")],
                "cpu",
                "t_6c40c4443c45af161620cf648f8a2c8a",
            ),
            (
                "cpu",
                &[("region", "eu"), ("host", "server01")],
                "cpu",
                "t_6c40c4443c45af161620cf648f8a2c8a",
            ),
            (
                "disk.io",
                &[("path", "/var/lib=x"), ("Device", "sda")],
                "disk_io",
                "t_d972fbf379d89e120a9aa99b5af498b6",
            ),
            ("mem", &[], "mem", "t_afc4fc7e48a0710a1dc94ef3e8bc5764"),
            (
                "cpu load",
                &[("host", "server 01"), ("region", "eu,west")],
                "cpu load",
                "t_e9e9fff0656a0d0ccbac844dd0b6e81f",
            ),
            (
                "m",
                &[("ab", "1"), ("a", "2"), ("B", "3")],
                "m",
                "t_4690b10beec57dd2fda93b8a57c088fa",
            ),
            (
                "温度",
                &[("城市", "北京"), ("emoji", "🔥")],
                "温度",
                "t_4c92909f7aa6779a2d0a9e5bc7d45f5d",
            ),
        ];
        for (measurement, tags, stable, child) in cases {
            let super_table = super_table_name(measurement);
            assert_eq!(super_table, *stable, "{measurement}");
            assert_eq!(
                child_table_name(&super_table, tags),
                *child,
                "{measurement} {tags:?}"
            );
        }
    }

    #[test]
    fn long_names_are_hashed_to_fit_and_stay_distinct() {
        let long_a = format!("{}a", "é".repeat(100));
        let long_b = format!("{}b", "é".repeat(100));
        let fitted_a = fit_name(&long_a, MAX_TABLE_NAME);
        assert!(fitted_a.len() <= MAX_TABLE_NAME);
        assert_ne!(fitted_a, fit_name(&long_b, MAX_TABLE_NAME));
        assert_eq!(fitted_a, fit_name(&long_a, MAX_TABLE_NAME), "deterministic");
        assert!(fit_name(&"c".repeat(65), MAX_COLUMN_NAME).len() <= MAX_COLUMN_NAME);
        assert_eq!(fit_name("short", MAX_COLUMN_NAME), "short");
    }

    #[test]
    fn fields_clashing_with_tags_or_the_timestamp_are_renamed() {
        let tags = vec!["host".to_owned()];
        assert_eq!(field_column_name("value", &tags), "value");
        assert_eq!(field_column_name("host", &tags), "host_field");
        assert_eq!(field_column_name("Host", &tags), "Host_field");
        assert_eq!(field_column_name("_ts", &tags), "_ts_field");
    }

    #[test]
    fn identifiers_are_quoted_with_backticks() {
        assert_eq!(quote("host"), "`host`");
        assert_eq!(quote("a`b"), "`a_b`");
        assert_eq!(quote("cpu load"), "`cpu load`");
    }

    #[test]
    fn widths_round_up_to_powers_of_two_within_limits() {
        assert_eq!(var_width(0), Some(16));
        assert_eq!(var_width(17), Some(32));
        assert_eq!(var_width(1000), Some(1024));
        assert_eq!(var_width(40_000), Some(MAX_VAR_BYTES));
        assert_eq!(var_width(70_000), None);
        assert_eq!(sql_type(ColumnType::String, 64), "VARCHAR(64)");
        assert_eq!(sql_type(ColumnType::Uint64, 0), "BIGINT UNSIGNED");
    }
}
