//! Series keys as InfluxDB stores them: `measurement,tag=value#!~#field`, with line protocol's
//! backslash escaping kept in the series part and the field name stored unescaped.

/// Separates the series key from the field name in a TSM or WAL key.
pub const FIELD_SEPARATOR: &str = "#!~#";

/// A series key taken apart: the measurement and its tags, unescaped, tags in key order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesKey {
    pub measurement: String,
    pub tags: Vec<(String, String)>,
}

/// Splits a TSM/WAL key into its series key (still escaped) and field name, at the first
/// separator as InfluxDB does; `None` when there is no separator.
pub fn split_key(key: &str) -> Option<(&str, &str)> {
    let at = key.find(FIELD_SEPARATOR)?;
    Some((&key[..at], &key[at + FIELD_SEPARATOR.len()..]))
}

/// Joins a series key and a field into the key TSM files and the WAL index data by.
pub fn join_key(series_key: &str, field: &str) -> String {
    format!("{series_key}{FIELD_SEPARATOR}{field}")
}

/// The measurement of a series key, unescaped.
pub fn measurement_of(series_key: &str) -> String {
    let end = unescaped_position(series_key, b',').unwrap_or(series_key.len());
    unescape(&series_key[..end], b", ")
}

/// Parses an escaped series key into its measurement and tags.
pub fn parse_series_key(series_key: &str) -> SeriesKey {
    let end = unescaped_position(series_key, b',').unwrap_or(series_key.len());
    let measurement = unescape(&series_key[..end], b", ");
    let mut tags = Vec::new();
    let mut rest = series_key.get(end + 1..).unwrap_or("");
    while !rest.is_empty() {
        let pair_end = unescaped_position(rest, b',').unwrap_or(rest.len());
        let pair = &rest[..pair_end];
        let (key, value) = match unescaped_position(pair, b'=') {
            Some(equals) => (&pair[..equals], &pair[equals + 1..]),
            None => (pair, ""),
        };
        tags.push((unescape(key, b", ="), unescape(value, b", =")));
        rest = rest.get(pair_end + 1..).unwrap_or("");
    }
    SeriesKey { measurement, tags }
}

/// The byte position of the first `wanted` not escaped by a backslash (which escapes the byte
/// after it, whatever it is, as InfluxDB's scanner treats it).
fn unescaped_position(text: &str, wanted: u8) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut position = 0;
    while position < bytes.len() {
        match bytes[position] {
            b'\\' => position += 2,
            byte if byte == wanted => return Some(position),
            _ => position += 1,
        }
    }
    None
}

/// Replaces `\c` by `c` for every `c` in `codes`; other backslashes stay.
fn unescape(text: &str, codes: &[u8]) -> String {
    if !text.contains('\\') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&next) = chars.peek()
            && next.is_ascii()
            && codes.contains(&(next as u8))
        {
            out.push(next);
            chars.next();
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_escaped_measurement_and_tags() {
        let key = r"my\ meas\,x,ho\=st=a\ b\,c,t2=ü\=1#!~#field name";
        let (series, field) = split_key(key).unwrap();
        assert_eq!(field, "field name");
        let parsed = parse_series_key(series);
        assert_eq!(parsed.measurement, "my meas,x");
        assert_eq!(
            parsed.tags,
            vec![
                ("ho=st".to_owned(), "a b,c".to_owned()),
                ("t2".to_owned(), "ü=1".to_owned())
            ]
        );
        assert_eq!(measurement_of(series), "my meas,x");
    }

    #[test]
    fn measurement_keeps_backslashes_that_escape_nothing_there() {
        // `=` is not escaped in a measurement name, so `\=` stays as written.
        let parsed = parse_series_key(r"a\=b\\,t=v");
        assert_eq!(parsed.measurement, r"a\=b\\");
        assert_eq!(parsed.tags, vec![("t".to_owned(), "v".to_owned())]);
    }

    #[test]
    fn field_is_split_at_the_first_separator() {
        assert_eq!(split_key("m#!~#a#!~#b"), Some(("m", "a#!~#b")));
        assert_eq!(split_key("m,t=v"), None);
        assert_eq!(join_key("m,t=v", "f"), "m,t=v#!~#f");
    }
}
