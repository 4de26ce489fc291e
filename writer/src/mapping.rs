//! InfluxDB names and types as TDengine ones, the way TDengine's own schemaless (line protocol)
//! ingestion names them, so that clients writing line protocol after the migration continue the
//! very same tables.
//!
//! A client writes a series as line protocol with InfluxDB's own escaping: a backslash before
//! a comma or space in the measurement, before a comma, space or equals sign in tag keys, tag
//! values and field keys; backslashes themselves are written as they are. TDengine's line
//! parser (`clientSmlLine.c`, `clientSml.c`, `tname.c`) then, with its default settings:
//! - names the super table after the measurement **unescaped its own way** — a backslash
//!   before a comma, a space *or a backslash* is dropped, so `a\\b` becomes `a\b` — with `.`
//!   replaced by `_` (`smlDot2Underline`);
//! - unescapes tag and field keys and tag values the same way (before `,`, ` `, `=`, `\`);
//! - names the child table `t_` + lowercase hex MD5 of the measurement **as written in the
//!   line** (escapes kept, `.` made `_`) followed by `,key=value` for each tag (unescaped),
//!   tags sorted by key case-insensitively over the common length, then the shorter first, and
//!   keys equal that way in the order they are written (InfluxDB writes them sorted bytewise);
//! - gives a measurement without tags one NCHAR tag `_tag_null` when it creates its super
//!   table; its child table hashes the measurement alone.
//!
//! Checked against a real TDengine by the live suite's differential test (`live_naming`), and
//! pinned by golden vectors from what that server answered. Where schemaless refuses a name
//! (a super table over 192 bytes, a column over 64, a field named like a tag), influx2td keeps
//! the data under a deterministic name instead (see [`fit_name`], [`field_column_name`]).

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

/// Characters InfluxDB escapes in a measurement written as line protocol.
const MEASUREMENT_ESCAPES: &[char] = &[',', ' '];
/// Characters InfluxDB escapes in tag keys, tag values and field keys.
const KEY_ESCAPES: &[char] = &[',', ' ', '='];

/// `text` with a backslash before each of `escaped`, as a line-protocol client writes it.
fn escape(text: &str, escaped: &[char]) -> String {
    let mut written = String::with_capacity(text.len() + 2);
    for character in text.chars() {
        if escaped.contains(&character) {
            written.push('\\');
        }
        written.push(character);
    }
    written
}

/// What TDengine's line parser keeps of `written`: a backslash before one of `escaped` or
/// before another backslash is dropped, pairs taken from the left (`PROCESS_SLASH_IN_*`).
fn tdengine_unescape(written: &str, escaped: &[char]) -> String {
    let mut kept = String::with_capacity(written.len());
    let mut characters = written.chars().peekable();
    while let Some(character) = characters.next() {
        if character == '\\'
            && let Some(&next) = characters.peek()
            && (next == '\\' || escaped.contains(&next))
        {
            kept.push(next);
            characters.next();
            continue;
        }
        kept.push(character);
    }
    kept
}

/// A measurement as a line-protocol client writes it.
pub fn line_protocol_measurement(measurement: &str) -> String {
    escape(measurement, MEASUREMENT_ESCAPES)
}

/// A tag key, tag value or field key as a line-protocol client writes it.
pub fn line_protocol_key(text: &str) -> String {
    escape(text, KEY_ESCAPES)
}

/// A tag key, tag value or field key as TDengine's schemaless ingestion stores it.
pub fn schemaless_key(text: &str) -> String {
    tdengine_unescape(&line_protocol_key(text), KEY_ESCAPES)
}

/// The super table of a measurement.
pub fn super_table_name(measurement: &str) -> String {
    let stored = tdengine_unescape(&line_protocol_measurement(measurement), MEASUREMENT_ESCAPES);
    fit_name(&stored.replace('.', "_"), MAX_TABLE_NAME)
}

/// The child table of one series of `measurement` (the InfluxDB name, not the super table's),
/// `tags` as InfluxDB holds them, sorted by key (as InfluxDB returns them).
pub fn child_table_name<K: AsRef<str>, V: AsRef<str>>(
    measurement: &str,
    tags: &[(K, V)],
) -> String {
    let mut stored: Vec<(String, String)> = tags
        .iter()
        .map(|(key, value)| (schemaless_key(key.as_ref()), schemaless_key(value.as_ref())))
        .collect();
    // Stable: keys equal but for case keep the order they are written in.
    stored.sort_by(|(a, _), (b, _)| compare_keys(a, b));
    let mut digest = Md5::new();
    digest.update(
        line_protocol_measurement(measurement)
            .replace('.', "_")
            .as_bytes(),
    );
    for (key, value) in &stored {
        digest.update(b",");
        digest.update(key.as_bytes());
        digest.update(b"=");
        digest.update(value.as_bytes());
    }
    fit_name(&format!("t_{}", hex(&digest.finalize())), MAX_TABLE_NAME)
}

/// TDengine's `compareKv`: ASCII case-insensitive over the common length, then shorter first.
fn compare_keys(a: &str, b: &str) -> std::cmp::Ordering {
    let common = a.len().min(b.len());
    let folded = |text: &str| text.as_bytes()[..common].to_ascii_lowercase();
    folded(a).cmp(&folded(b)).then(a.len().cmp(&b.len()))
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

/// The column of a field: its name as schemaless stores it, unless that is the timestamp column
/// or a tag column of the same super table (`tag_columns`, as [`tag_column_name`] gives them:
/// TDengine keeps columns and tags in one case-sensitive namespace), then `<name>_field` —
/// where schemaless would refuse the line (`Duplicated column names`).
pub fn field_column_name(field: &str, tag_columns: &[String]) -> String {
    let stored = schemaless_key(field);
    let fitted = fit_name(&stored, MAX_COLUMN_NAME);
    let clashes = fitted == TIMESTAMP_COLUMN || tag_columns.contains(&fitted);
    if clashes {
        fit_name(&format!("{stored}_field"), MAX_COLUMN_NAME)
    } else {
        fitted
    }
}

/// The tag column of a tag key.
pub fn tag_column_name(tag: &str) -> String {
    fit_name(&schemaless_key(tag), MAX_COLUMN_NAME)
}

/// A tag value as schemaless stores it.
pub fn tag_value(value: &str) -> String {
    schemaless_key(value)
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

    /// What a real TDengine 3.3.6 named these series when they were written through its
    /// schemaless line-protocol API (`taos_schemaless_insert`), the line being what an
    /// InfluxDB client writes for the measurement and tags as InfluxDB holds them.
    #[test]
    fn names_match_what_tdengine_schemaless_ingestion_gave() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: &[Case<'_>] = &[
            // line: cpu\ load,host=h3,rack\ id=plain,state=on
            (
                "cpu load",
                &[("host", "h3"), ("rack id", "plain"), ("state", "on")],
                "cpu load",
                "t_05a631345b45dfab986aed2205148558",
            ),
            // line: a\,b,k=v
            (
                "a,b",
                &[("k", "v")],
                "a,b",
                "t_94825a67720bc59df7573adb68eaaecb",
            ),
            // line: a\\b,k=v — InfluxDB keeps both backslashes, TDengine one.
            (
                "a\\\\b",
                &[("k", "v")],
                "a\\b",
                "t_6ed8571f1bb5138b54357977a6e7b777",
            ),
            // line: c\d,k=v
            (
                "c\\d",
                &[("k", "v")],
                "c\\d",
                "t_a4d7bd63dc22de3bebbc9e2f425ff938",
            ),
            // line: dot.name,k=v.x
            (
                "dot.name",
                &[("k", "v.x")],
                "dot_name",
                "t_a8410b8d778be19ffca827fbaa5de540",
            ),
            // line: tagsesc,k\=1=v\,2,k\ 2=v\ 3,k3=a\\b,k4=a\b
            (
                "tagsesc",
                &[
                    ("k 2", "v 3"),
                    ("k3", "a\\\\b"),
                    ("k4", "a\\b"),
                    ("k=1", "v,2"),
                ],
                "tagsesc",
                "t_c221a43fd2e37655e6acc4e91cf80b8d",
            ),
            // line: case,Host=a,host=b — keys equal but for case keep their written order.
            (
                "case",
                &[("Host", "a"), ("host", "b")],
                "case",
                "t_b03ff73567b0c95a70a6390ff9db27b3",
            ),
            // line: mix value=2.0 (the tagless series of a measurement with tagged ones)
            ("mix", &[], "mix", "t_da386e629171b833abc1e85955664bf4"),
            // line: quo"te,k="v"
            (
                "quo\"te",
                &[("k", "\"v\"")],
                "quo\"te",
                "t_f30b28a4f78cbabbbf14aa9d62f49166",
            ),
            // line: eqm=x,k=a
            (
                "eqm=x",
                &[("k", "a")],
                "eqm=x",
                "t_62ca0f33f13f5ecb451390a21fb51ac0",
            ),
            // line: tv,k=a\=b
            (
                "tv",
                &[("k", "a=b")],
                "tv",
                "t_073a13f7d67f26bf6cfede6f746caad2",
            ),
            // line: emo🔥,城市=北京
            (
                "emo🔥",
                &[("城市", "北京")],
                "emo🔥",
                "t_6c367e8307508585efa7790b8fffb4a5",
            ),
            (
                "Cpu",
                &[("k", "v")],
                "Cpu",
                "t_9c5fc2d44ed1902d9246c9b419088c5f",
            ),
        ];
        for (measurement, tags, stable, child) in cases {
            assert_eq!(super_table_name(measurement), *stable, "{measurement}");
            assert_eq!(
                child_table_name(measurement, tags),
                *child,
                "{measurement} {tags:?}"
            );
        }
    }

    #[test]
    fn keys_and_values_are_stored_as_tdengine_unescapes_them() {
        assert_eq!(line_protocol_measurement("a b,c=d"), "a\\ b\\,c=d");
        assert_eq!(line_protocol_key("a b,c=d"), "a\\ b\\,c\\=d");
        assert_eq!(tag_column_name("k=1"), "k=1");
        assert_eq!(tag_value("a\\\\b"), "a\\b");
        assert_eq!(tag_value("a\\b"), "a\\b");
        assert_eq!(tag_value("a\\\\\\\\b"), "a\\\\b");
        assert_eq!(tag_value("v 3"), "v 3");
        assert_eq!(super_table_name("a\\\\\\b"), "a\\\\b");
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
        // Schemaless keeps a field `Host` beside a tag `host`: one namespace, case-sensitive.
        assert_eq!(field_column_name("Host", &tags), "Host");
        assert_eq!(field_column_name("_ts", &tags), "_ts_field");
        assert_eq!(field_column_name("f\\\\1", &tags), "f\\1");
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
