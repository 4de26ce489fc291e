//! The report of a connectivity check: one per end (InfluxDB, TDengine), a list of steps, each
//! passed, failed (with the reason) or skipped (because a step it depends on failed).

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    Failed,
    Skipped,
}

/// One step of a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub name: &'static str,
    pub status: Status,
    /// What was found, or why it failed or was skipped.
    pub detail: String,
}

/// The check of one end (InfluxDB here; TDengine once the writer exists).
#[derive(Debug, Clone, Serialize)]
pub struct EndCheck {
    pub end: &'static str,
    pub url: String,
    pub steps: Vec<Step>,
}

impl EndCheck {
    pub fn new(end: &'static str, url: impl Into<String>) -> Self {
        Self {
            end,
            url: url.into(),
            steps: Vec::new(),
        }
    }

    pub fn passed(&self) -> bool {
        self.steps.iter().all(|step| step.status != Status::Failed)
    }

    pub fn step(&mut self, name: &'static str, status: Status, detail: impl Into<String>) {
        self.steps.push(Step {
            name,
            status,
            detail: detail.into(),
        });
    }

    pub fn skip_rest(&mut self, names: &[&'static str], reason: &str) {
        for name in names {
            self.step(name, Status::Skipped, reason);
        }
    }
}

/// What a network failure's text (a client library's own words, with its chain of causes)
/// comes down to, for a message a person can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkFailure {
    /// Something is at the address, but nothing listens on the port.
    Refused,
    /// The host name does not resolve.
    UnknownHost,
    /// No route to the host, or the network is down.
    NoRoute,
    /// No answer in time.
    Timeout,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// The connection was closed or reset without an answer.
    Closed,
}

impl NetworkFailure {
    /// The failure `text` describes, if it is one of these. `secure`: the connection was to
    /// use TLS (`https://`, `wss://`); only then can it be a TLS failure (a plain `ws://` whose
    /// WebSocket handshake fails is not one). `text` should not hold the URL, whose path or
    /// query could hold any of the words looked for.
    pub fn of(text: &str, secure: bool) -> Option<Self> {
        let text = text.to_lowercase();
        let any = |needles: &[&str]| needles.iter().any(|needle| text.contains(needle));
        if any(&["connection refused", "os error 111"]) {
            Some(Self::Refused)
        } else if any(&[
            "failed to lookup address",
            "name or service not known",
            "no such host",
            "temporary failure in name resolution",
            "nodename nor servname",
            "dns error",
        ]) {
            Some(Self::UnknownHost)
        } else if any(&["network is unreachable", "no route to host"]) {
            Some(Self::NoRoute)
        } else if any(&["timed out", "timeout", "deadline has elapsed"]) {
            Some(Self::Timeout)
        } else if any(&[
            "connection reset",
            "broken pipe",
            "connection closed before message completed",
            "unexpected eof",
        ]) {
            Some(Self::Closed)
        } else if secure && any(&["certificate", "tls", "ssl", "handshake", "server name type"]) {
            Some(Self::Tls)
        } else {
            None
        }
    }

    /// What happened, in plain words.
    pub fn said(self) -> &'static str {
        match self {
            Self::Refused => "connection refused",
            Self::UnknownHost => "the host name does not resolve",
            Self::NoRoute => "no route to the host",
            Self::Timeout => "no answer in time",
            Self::Tls => "the TLS handshake failed",
            Self::Closed => "the server closed the connection without an answer",
        }
    }
}

#[cfg(test)]
mod network_failure_tests {
    use super::NetworkFailure;

    /// Texts the clients gave here (reqwest to InfluxDB, the `taos` crate's WebSocket client),
    /// against stopped servers, unknown hosts and an untrusted certificate.
    #[test]
    fn the_clients_own_words_come_down_to_what_happened() {
        let seen = [
            (
                "error sending request for url (http://127.0.0.1:1/ping): client error (Connect): tcp connect error: Connection refused (os error 111)",
                Some(NetworkFailure::Refused),
            ),
            (
                "Internal error: `WebSocket internal[ws-tool] error: connection failed `failed to create tcp connection Connection refused (os error 111)``",
                Some(NetworkFailure::Refused),
            ),
            (
                "error sending request for url (http://nohost.invalid:8086/ping): client error (Connect): dns error: error resolving DNS: failed to lookup address information: Name or service not known",
                Some(NetworkFailure::UnknownHost),
            ),
            (
                "Internal error: `WebSocket internal[ws-tool] error: connection failed `failed to create tcp connection failed to lookup address information: Name or service not known``",
                Some(NetworkFailure::UnknownHost),
            ),
            (
                "error sending request for url (http://10.0.0.1:8086/ping): operation timed out",
                Some(NetworkFailure::Timeout),
            ),
            (
                "error sending request: client error (Connect): invalid peer certificate: UnknownIssuer",
                Some(NetworkFailure::Tls),
            ),
            (
                "error sending request: connection closed before message completed",
                Some(NetworkFailure::Closed),
            ),
            ("Internal error: `Unable to establish connection`", None),
        ];
        for (text, failure) in seen {
            assert_eq!(NetworkFailure::of(text, true), failure, "{text}");
        }
        // Over a plain connection nothing is a TLS failure: a WebSocket handshake refused by
        // what is not taosAdapter is no certificate problem.
        let plain = "WebSocket protocol error: Handshake not finished";
        assert_eq!(NetworkFailure::of(plain, false), None);
        assert_eq!(NetworkFailure::of(plain, true), Some(NetworkFailure::Tls));
        // A reset is a reset, whatever else the text says.
        assert_eq!(
            NetworkFailure::of("tls: connection reset by peer (os error 104)", true),
            Some(NetworkFailure::Closed)
        );
    }
}
