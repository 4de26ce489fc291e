//! Every name that appears on the bus: streams, subjects, consumers, headers, KV bucket and keys.
//! Nothing outside this module spells them, so a person reading `nats stream ls` can rely on it.

use thiserror::Error;

use crate::batch::WindowRef;

/// Subject prefix used when the job does not configure one.
pub const DEFAULT_PREFIX: &str = "influx2td";

/// Message headers. Values are plain text so that `nats stream view` reads without decoding.
pub mod header {
    /// JetStream's own de-duplication header.
    pub const MSG_ID: &str = "Nats-Msg-Id";
    pub const JOB: &str = "Influx2td-Job";
    pub const MEASUREMENT: &str = "Influx2td-Measurement";
    /// `<start_ns>-<end_ns>`, end exclusive.
    pub const WINDOW: &str = "Influx2td-Window";
    pub const ATTEMPT: &str = "Influx2td-Attempt";
    pub const SEQ: &str = "Influx2td-Seq";
    pub const ROWS: &str = "Influx2td-Rows";
    /// W3C trace context.
    pub const TRACEPARENT: &str = "traceparent";
}

/// The streams of one job. Each is a work queue with its own durable consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// Windows to read: coordinator -> readers.
    Work,
    /// Row batches: readers -> writers.
    Data,
    /// Write acknowledgements: writers -> coordinator.
    Done,
    /// Rows TDengine rejected for good, parked for `dead-letters replay`.
    DeadLetter,
}

impl StreamKind {
    pub const ALL: [StreamKind; 4] = [Self::Work, Self::Data, Self::Done, Self::DeadLetter];

    /// The subject token of this stream: `work`, `data`, `done`, `dead`.
    pub fn token(self) -> &'static str {
        match self {
            Self::Work => "work",
            Self::Data => "data",
            Self::Done => "done",
            Self::DeadLetter => "dead",
        }
    }

    /// The durable consumer shared by every replica of the role that drains this stream.
    pub fn consumer(self) -> &'static str {
        match self {
            Self::Work => "readers",
            Self::Data => "writers",
            Self::Done => "coordinator",
            Self::DeadLetter => "dead-letters",
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NameError {
    #[error("invalid {what} {value:?}: use 1 to 64 characters from A-Z a-z 0-9 {allowed}")]
    Invalid {
        what: &'static str,
        value: String,
        allowed: &'static str,
    },
}

/// The names of one job's streams, subjects and KV bucket under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
    job: String,
}

impl Names {
    /// `prefix` is one subject token without `_` (so stream names split unambiguously);
    /// `job` may also use `_`.
    pub fn new(prefix: &str, job: &str) -> Result<Self, NameError> {
        validate_prefix(prefix)?;
        validate_job(job)?;
        Ok(Self {
            prefix: prefix.to_owned(),
            job: job.to_owned(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn job(&self) -> &str {
        &self.job
    }

    /// `INFLUX2TD_<job>_WORK` and so on.
    pub fn stream(&self, kind: StreamKind) -> String {
        format!(
            "{}_{}_{}",
            self.prefix.to_uppercase(),
            self.job,
            kind.token().to_uppercase()
        )
    }

    /// `<prefix>.<job>.<kind>.<measurement token>`.
    pub fn subject(&self, kind: StreamKind, measurement: &str) -> String {
        format!(
            "{}.{}.{}.{}",
            self.prefix,
            self.job,
            kind.token(),
            measurement_token(measurement)
        )
    }

    /// `<prefix>.<job>.<kind>.>`: every subject of the stream.
    pub fn subject_filter(&self, kind: StreamKind) -> String {
        format!("{}.{}.{}.>", self.prefix, self.job, kind.token())
    }

    /// Where the coordinator asks the job's readers to discover its measurements (core NATS
    /// request and reply; `source.discovery = "readers"`).
    pub fn discovery_subject(&self) -> String {
        format!("{}.{}.discover", self.prefix, self.job)
    }

    /// The KV bucket holding the job's checkpoints and lease.
    pub fn kv_bucket(&self) -> String {
        format!("{}_{}", self.prefix, self.job)
    }

    /// Dedup id of a work item: a new attempt is a new id, so a re-published window is not dropped.
    pub fn work_msg_id(
        &self,
        measurement: &str,
        start_ns: i64,
        end_ns: i64,
        attempt: u32,
    ) -> String {
        format!(
            "{}/{}/{start_ns}-{end_ns}/{attempt}",
            self.job,
            measurement_token(measurement)
        )
    }

    /// Dedup id of a row batch: `job/measurement/start-end/attempt/read/seq`.
    pub fn data_msg_id(&self, window: &WindowRef, seq: u32) -> String {
        format!(
            "{}/{}/{seq}",
            self.work_msg_id(
                &window.measurement,
                window.window_start_ns,
                window.window_end_ns,
                window.attempt
            ),
            window.read
        )
    }
}

/// KV key of a measurement's checkpoint.
pub fn checkpoint_key(measurement: &str) -> String {
    format!("checkpoint.{}", measurement_token(measurement))
}

/// KV key of the job's coordinator lease.
pub const LEASE_KEY: &str = "lease";

/// The `Influx2td-Window` header value.
pub fn window_header(start_ns: i64, end_ns: i64) -> String {
    format!("{start_ns}-{end_ns}")
}

/// Encodes a measurement name as one subject token that is also a valid KV key: bytes outside
/// `A-Z a-z 0-9 _ -` become `=XX` (upper-case hex), so `cpu load` reads `cpu=20load`.
pub fn measurement_token(measurement: &str) -> String {
    let mut token = String::with_capacity(measurement.len());
    for byte in measurement.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
            token.push(char::from(byte));
        } else {
            token.push('=');
            token.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
            token.push(char::from(HEX_DIGITS[usize::from(byte & 0x0f)]));
        }
    }
    if token.is_empty() {
        // An empty token would make an invalid subject; InfluxDB never has an empty name.
        token.push('=');
    }
    token
}

/// The inverse of [`measurement_token`]; `None` if the token was not made by it.
pub fn measurement_from_token(token: &str) -> Option<String> {
    if token == "=" {
        return Some(String::new());
    }
    let mut bytes = Vec::with_capacity(token.len());
    let mut input = token.bytes();
    while let Some(byte) = input.next() {
        if byte != b'=' {
            bytes.push(byte);
            continue;
        }
        let high = hex_value(input.next()?)?;
        let low = hex_value(input.next()?)?;
        bytes.push(high << 4 | low);
    }
    String::from_utf8(bytes).ok()
}

const HEX_DIGITS: &[u8; 16] = b"0123456789ABCDEF";

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

fn validate_token(
    what: &'static str,
    value: &str,
    allow_underscore: bool,
) -> Result<(), NameError> {
    let valid_char =
        |c: char| c.is_ascii_alphanumeric() || c == '-' || (allow_underscore && c == '_');
    if (1..=64).contains(&value.len()) && value.chars().all(valid_char) {
        return Ok(());
    }
    Err(NameError::Invalid {
        what,
        value: value.to_owned(),
        allowed: if allow_underscore { "_ -" } else { "-" },
    })
}

/// A job name is one subject token, usable in stream, KV bucket and file names.
pub fn validate_job(job: &str) -> Result<(), NameError> {
    validate_token("job name", job, true)
}

/// A prefix is one subject token without `_`.
pub fn validate_prefix(prefix: &str) -> Result<(), NameError> {
    validate_token("subject prefix", prefix, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_are_readable() {
        let names = Names::new("influx2td", "telegraf-to-metrics").unwrap();
        assert_eq!(
            names.stream(StreamKind::Work),
            "INFLUX2TD_telegraf-to-metrics_WORK"
        );
        assert_eq!(
            names.subject(StreamKind::Data, "cpu load"),
            "influx2td.telegraf-to-metrics.data.cpu=20load"
        );
        assert_eq!(
            names.subject_filter(StreamKind::Done),
            "influx2td.telegraf-to-metrics.done.>"
        );
        assert_eq!(names.kv_bucket(), "influx2td_telegraf-to-metrics");
        assert_eq!(checkpoint_key("disk.io"), "checkpoint.disk=2Eio");
        let window = WindowRef {
            job: "telegraf-to-metrics".into(),
            measurement: "cpu".into(),
            window_start_ns: -5,
            window_end_ns: 10,
            attempt: 2,
            read: 3,
        };
        assert_eq!(
            names.data_msg_id(&window, 7),
            "telegraf-to-metrics/cpu/-5-10/2/3/7"
        );
    }

    #[test]
    fn bad_job_and_prefix_are_named() {
        let error = Names::new("influx2td", "a.b").unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid job name \"a.b\": use 1 to 64 characters from A-Z a-z 0-9 _ -"
        );
        assert!(Names::new("in_flux", "job").is_err());
        assert!(Names::new("influx2td", "").is_err());
        assert!(Names::new("influx2td", &"x".repeat(65)).is_err());
    }

    #[test]
    fn token_escapes_dots_spaces_wildcards_and_unicode() {
        for (measurement, token) in [
            ("cpu", "cpu"),
            ("a.b", "a=2Eb"),
            ("*", "=2A"),
            (">", "=3E"),
            ("=", "=3D"),
            ("é", "=C3=A9"),
            ("", "="),
        ] {
            assert_eq!(measurement_token(measurement), token);
            assert_eq!(measurement_from_token(token).as_deref(), Some(measurement));
        }
        assert_eq!(measurement_from_token("=4"), None);
        assert_eq!(measurement_from_token("=zz"), None);
    }

    proptest! {
        #[test]
        fn token_round_trips_and_is_a_single_safe_token(measurement in "\\PC{0,40}") {
            let token = measurement_token(&measurement);
            prop_assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-=".contains(&b)));
            prop_assert_eq!(measurement_from_token(&token), Some(measurement));
        }
    }
}
