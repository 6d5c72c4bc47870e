//! Log set-up (`--log-format text|json`) and how controller results are logged.

use std::fmt::Display;

use kube::api::DynamicObject;
use kube::runtime::controller::Error as ControllerError;
use kube::runtime::reflector::ObjectRef;

use super::error::Error;

/// How log lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Readable lines (the default on the command line).
    Text,
    /// One flat JSON object per line: `message` and the fields at the top level, for log
    /// pipelines (the chart's default).
    Json,
}

/// The filter when `RUST_LOG` is not set.
const DEFAULT_FILTER: &str = "info,kube=warn,hyper=warn,tower=warn";

/// Installs the global subscriber, writing to stderr. Called once at start-up.
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_FILTER));
    // A second call (only tests could make one) keeps the first subscriber.
    let _ = tracing::subscriber::set_global_default(subscriber(format, filter, std::io::stderr));
}

/// The subscriber for `format`, writing to `writer`.
fn subscriber<W>(
    format: LogFormat,
    filter: tracing_subscriber::EnvFilter,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.finish()),
        // Flat: `message` and the event's fields at the top level (not inside `fields`), the
        // reconciled object's span as `span`, no list of every enclosing span.
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
    }
}

/// Logs a failed reconcile at `warn` (the default level shows it), with the object, the
/// stable reason and the error; the controller's own queue errors too. An object gone from
/// the store before its turn is expected (deleted meanwhile) and stays at `debug`.
pub fn controller_result<T, Q: Display>(kind: &str, result: &Result<T, ControllerError<Error, Q>>) {
    let Err(e) = result else { return };
    match e {
        ControllerError::ReconcilerFailed(err, obj) => log_failure(kind, obj, err),
        ControllerError::ObjectNotFound(obj) => {
            tracing::debug!(kind, name = %obj.name, "object gone before its reconcile")
        }
        other => tracing::warn!(kind, error = %other, "controller error"),
    }
}

fn log_failure(kind: &str, obj: &ObjectRef<DynamicObject>, err: &Error) {
    tracing::warn!(
        kind,
        namespace = obj.namespace.as_deref(),
        name = %obj.name,
        reason = err.reason().as_str(),
        error = %err,
        "reconcile failed"
    );
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(format: LogFormat, emit: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let out = buffer.clone();
        let sub = subscriber(
            format,
            tracing_subscriber::EnvFilter::new("info"),
            move || out.clone(),
        );
        tracing::subscriber::with_default(sub, emit);
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    fn failure() {
        let obj = ObjectRef::<DynamicObject>::new_with(
            "alice-smith",
            kube::core::ApiResource::erase::<crate::crd::EpicPractitioner>(&()),
        );
        log_failure(
            "EpicPractitioner",
            &obj,
            &Error::InvalidSpec("npi: not 10 digits".into()),
        );
    }

    #[test]
    fn json_lines_are_flat_and_carry_no_none() {
        let text = lines(LogFormat::Json, failure);
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["message"], "reconcile failed", "{text}");
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["reason"], "InvalidSpec");
        assert_eq!(line["name"], "alice-smith");
        assert!(line.get("fields").is_none(), "flat: {text}");
        // An object without a namespace has no namespace field, not "None".
        assert!(line.get("namespace").is_none(), "{text}");
        assert!(!text.contains("None"), "{text}");
    }

    #[test]
    fn text_lines_are_plain_and_failures_show_at_the_default_level() {
        let text = lines(LogFormat::Text, failure);
        assert!(
            text.contains("WARN") && text.contains("reconcile failed"),
            "{text}"
        );
        assert!(!text.trim_start().starts_with('{'), "{text}");
    }
}
