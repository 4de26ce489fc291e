//! Messages every role publishes, built in one place: subject, dedup id, headers and payload.

use influx2td_proto::names::{Names, StreamKind, header, window_header};
use influx2td_proto::{Message, pb};

use crate::{Headers, OutgoingMessage};

/// The headers naming a window: job, measurement, `start-end`, attempt; and, when traces are
/// on, the trace context of the current span (`traceparent`), which the receiver continues.
pub fn window_headers(
    names: &Names,
    measurement: &str,
    start_ns: i64,
    end_ns: i64,
    attempt: u32,
) -> Headers {
    let mut headers = vec![
        (header::JOB.to_owned(), names.job().to_owned()),
        (header::MEASUREMENT.to_owned(), measurement.to_owned()),
        (header::WINDOW.to_owned(), window_header(start_ns, end_ns)),
        (header::ATTEMPT.to_owned(), attempt.to_string()),
    ];
    headers.extend(influx2td_telemetry::context_headers());
    headers
}

/// A work item on WORK, with its dedup id (a new attempt or another window is a new id; a read
/// of several measurements has an id of its own, apart from the read of its first alone).
pub fn work_item_message(names: &Names, item: &pb::WorkItem) -> OutgoingMessage {
    let mut msg_id = names.work_msg_id(
        &item.measurement,
        item.window_start_ns,
        item.window_end_ns,
        item.attempt,
    );
    if item.measurements.len() > 1 {
        msg_id.push_str(&format!("/group-of-{}", item.measurements.len()));
    }
    OutgoingMessage {
        subject: names.subject(StreamKind::Work, &item.measurement),
        msg_id,
        headers: window_headers(
            names,
            &item.measurement,
            item.window_start_ns,
            item.window_end_ns,
            item.attempt,
        ),
        payload: item.encode_to_vec().into(),
    }
}

/// What keeps failing, for [`retrying_message`].
#[derive(Debug, Clone, Copy)]
pub struct Retrying<'a> {
    /// `reader` or `writer`.
    pub role: &'a str,
    /// The row batch (writer); `None` for the read of the whole window (reader).
    pub seq: Option<u32>,
    /// Tries so far, this one included.
    pub tries: u64,
    /// The class of the error (a metrics label).
    pub cause: &'a str,
    /// What went wrong this time.
    pub reason: &'a str,
    /// The try at which the role stops retrying and dead-letters the rows; 0 when it retries
    /// until the cause is fixed.
    pub retry_limit: u32,
}

/// A notice on DONE that a window's read or one of its batches failed and will be tried again:
/// the coordinator shows it in `status` and counts nothing for it.
pub fn retrying_message(
    names: &Names,
    window: &influx2td_proto::batch::WindowRef,
    retrying: &Retrying<'_>,
) -> OutgoingMessage {
    let seq = retrying.seq.unwrap_or(0);
    let report = pb::WindowDone {
        job: window.job.clone(),
        measurement: window.measurement.clone(),
        window_start_ns: window.window_start_ns,
        window_end_ns: window.window_end_ns,
        attempt: window.attempt,
        seq,
        outcome: pb::Outcome::Retrying as i32,
        reason: retrying.reason.to_owned(),
        read: window.read,
        role: retrying.role.to_owned(),
        tries: u32::try_from(retrying.tries).unwrap_or(u32::MAX),
        cause: retrying.cause.to_owned(),
        retry_limit: retrying.retry_limit,
        ..Default::default()
    };
    let mut headers = window_headers(
        names,
        &window.measurement,
        window.window_start_ns,
        window.window_end_ns,
        window.attempt,
    );
    if let Some(seq) = retrying.seq {
        headers.push((header::SEQ.to_owned(), seq.to_string()));
    }
    let batch = retrying
        .seq
        .map_or_else(|| "read".to_owned(), |seq| seq.to_string());
    OutgoingMessage {
        subject: names.subject(StreamKind::Done, &window.measurement),
        msg_id: format!(
            "{}/{}/{batch}/{}/retry-{}",
            names.work_msg_id(
                &window.measurement,
                window.window_start_ns,
                window.window_end_ns,
                window.attempt
            ),
            window.read,
            retrying.role,
            retrying.tries
        ),
        headers,
        payload: report.encode_to_vec().into(),
    }
}
