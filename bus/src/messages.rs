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

/// A work item on WORK, with its dedup id (a new attempt or another window is a new id).
pub fn work_item_message(names: &Names, item: &pb::WorkItem) -> OutgoingMessage {
    OutgoingMessage {
        subject: names.subject(StreamKind::Work, &item.measurement),
        msg_id: names.work_msg_id(
            &item.measurement,
            item.window_start_ns,
            item.window_end_ns,
            item.attempt,
        ),
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
