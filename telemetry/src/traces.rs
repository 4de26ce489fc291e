//! OpenTelemetry traces: one trace per window, from the coordinator's publish through the
//! reader's InfluxDB query and the writer's TDengine inserts back to the coordinator's
//! checkpoint, carried between roles in each message's W3C `traceparent` header.
//!
//! The roles make `tracing` spans at debug level (free when nothing listens); [`Traces`] turns
//! those of influx2td into OpenTelemetry spans and exports them over OTLP/HTTP. Off unless an
//! endpoint is configured or the standard `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT` variable is
//! set; `OTEL_SDK_DISABLED=true` turns it off, `OTEL_TRACES_SAMPLER(_ARG)` samples.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::{Level, Span, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// The header carrying the W3C trace context (`00-<trace id>-<span id>-<flags>`).
pub const TRACEPARENT: &str = "traceparent";

/// Environment variables that turn traces on by themselves.
const ENDPOINT_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// Exports the spans of this process; [`Traces::shutdown`] sends what is still buffered.
#[derive(Debug)]
pub struct Traces {
    provider: SdkTracerProvider,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up OpenTelemetry traces: {0}")]
pub struct TraceError(String);

impl Traces {
    /// Starts exporting when `endpoint` (a full `…/v1/traces` URL) is given or the environment
    /// names one; `None` otherwise. `service` becomes `service.name` unless `OTEL_SERVICE_NAME`
    /// says otherwise. Does not need a Tokio runtime (the exporter has its own thread).
    pub fn start(
        endpoint: Option<&str>,
        service: &str,
        job: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, TraceError> {
        let disabled = env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim() == "true");
        let from_env = ENDPOINT_VARIABLES
            .iter()
            .any(|name| env(name).is_some_and(|v| !v.trim().is_empty()));
        if disabled || (endpoint.is_none() && !from_env) {
            return Ok(None);
        }
        // reqwest is built without a default TLS provider; an https collector needs one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_http();
        if let Some(endpoint) = endpoint {
            exporter = exporter.with_endpoint(endpoint);
        }
        let exporter = exporter
            .build()
            .map_err(|error| TraceError(error.to_string()))?;
        let mut resource =
            Resource::builder().with_attribute(KeyValue::new("influx2td.job", job.to_owned()));
        if env("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name(service.to_owned());
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        Ok(Some(Self { provider }))
    }

    /// The `tracing` layer that turns influx2td's spans (and its info, warn and error events,
    /// as span events) into OpenTelemetry spans.
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + use<S>
    where
        S: Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("influx2td"))
            .with_filter(tracing_subscriber::filter::filter_fn(|metadata| {
                metadata.target().starts_with("influx2td")
                    && (metadata.is_span() || *metadata.level() <= Level::INFO)
            }))
    }

    /// Sends the spans still buffered and stops the exporter. Call outside async code.
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::warn!(%error, "traces not all exported");
        }
    }
}

/// The trace context of the current span as message headers (`traceparent`, and `tracestate`
/// when there is one); none when traces are off or no span is current.
pub fn context_headers() -> Vec<(String, String)> {
    let context = Span::current().context();
    if !context.span().span_context().is_valid() {
        return Vec::new();
    }
    let mut headers = HeaderList(Vec::new());
    TraceContextPropagator::new().inject_context(&context, &mut headers);
    headers.0
}

/// Makes `span` (just created, not yet entered) a part of the trace a message's headers name;
/// `header` looks a header up by name. Nothing happens without a valid `traceparent`.
pub fn continue_trace<'a>(span: &Span, header: impl Fn(&str) -> Option<&'a str>) {
    if span.is_disabled() || header(TRACEPARENT).is_none() {
        return;
    }
    let found = HeaderLookup(TRACE_HEADERS.map(|name| (name, header(name).map(str::to_owned))));
    let parent: Context = TraceContextPropagator::new().extract(&found);
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

struct HeaderList(Vec<(String, String)>);

impl Injector for HeaderList {
    fn set(&mut self, key: &str, value: String) {
        // The propagator writes an empty `tracestate` when there is none.
        if !value.is_empty() {
            self.0.push((key.to_owned(), value));
        }
    }
}

/// The headers of the W3C trace context.
const TRACE_HEADERS: [&str; 2] = [TRACEPARENT, "tracestate"];

struct HeaderLookup([(&'static str, Option<String>); 2]);

impl Extractor for HeaderLookup {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| *name == key)
            .and_then(|(_, value)| value.as_deref())
    }

    fn keys(&self) -> Vec<&str> {
        TRACE_HEADERS.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_starts_without_an_endpoint_or_when_disabled() {
        let none = |_: &str| None;
        assert!(Traces::start(None, "t", "job", none).unwrap().is_none());
        let disabled = |name: &str| (name == "OTEL_SDK_DISABLED").then(|| "true".to_owned());
        assert!(
            Traces::start(Some("http://127.0.0.1:1/v1/traces"), "t", "job", disabled)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn without_a_layer_no_headers_are_made() {
        let span = tracing::debug_span!("window");
        let _entered = span.enter();
        assert!(context_headers().is_empty());
    }

    #[test]
    fn a_span_continues_the_trace_its_message_names() {
        use tracing_subscriber::layer::SubscriberExt;
        // Nothing listens there: spans are made, their export fails quietly.
        let traces = Traces::start(Some("http://127.0.0.1:9/v1/traces"), "t", "job", |_| None)
            .unwrap()
            .unwrap();
        let subscriber = tracing_subscriber::registry().with(traces.layer());
        tracing::subscriber::with_default(subscriber, || {
            let publish = tracing::debug_span!(target: "influx2td_test", "publish window");
            let headers = publish.in_scope(context_headers);
            assert_eq!(headers.len(), 1, "{headers:?}");
            let (name, value) = &headers[0];
            assert_eq!(name, TRACEPARENT);
            let parts: Vec<&str> = value.split('-').collect();
            assert_eq!(parts.len(), 4, "{value}");
            assert_eq!(parts[0], "00");
            assert_eq!(parts[3], "01", "sampled");
            let published = publish.context().span().span_context().clone();
            assert_eq!(parts[1], published.trace_id().to_string());
            assert_eq!(parts[2], published.span_id().to_string());

            let read = tracing::debug_span!(target: "influx2td_test", "read window");
            continue_trace(&read, |name| {
                headers
                    .iter()
                    .find(|(key, _)| key == name)
                    .map(|(_, value)| value.as_str())
            });
            let continued = read.context().span().span_context().clone();
            assert_eq!(continued.trace_id(), published.trace_id());
            assert_ne!(continued.span_id(), published.span_id());

            // A span of another crate is not traced; a message without a context starts none.
            let other = tracing::debug_span!(target: "hyper", "connect");
            assert!(other.in_scope(context_headers).is_empty());
            let orphan = tracing::debug_span!(target: "influx2td_test", "read window");
            continue_trace(&orphan, |_| None);
            assert_ne!(
                orphan.context().span().span_context().trace_id(),
                published.trace_id()
            );
        });
        traces.shutdown();
    }
}
