//! Log set-up: `tracing` to stderr, text or JSON, at `LOG_LEVEL`; and a copy of
//! each line on a broadcast channel, so the daemon can stream a run's progress
//! to the `stackshot backup` that asked for it.

use std::fmt::Write as _;
use std::sync::OnceLock;

use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, LogLevel};

fn channel() -> &'static broadcast::Sender<String> {
    static TX: OnceLock<broadcast::Sender<String>> = OnceLock::new();
    TX.get_or_init(|| broadcast::channel(1024).0)
}

/// Receives every log line (info and above from stackshot) from now on.
pub fn subscribe() -> broadcast::Receiver<String> {
    channel().subscribe()
}

/// Formats an event as `LEVEL message key=value …`.
#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
}

struct Broadcast;

impl<S: Subscriber> Layer<S> for Broadcast {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let tx = channel();
        if tx.receiver_count() == 0 || *event.metadata().level() > tracing::Level::INFO {
            return;
        }
        let mut line = Line::default();
        event.record(&mut line);
        let _ = tx.send(format!(
            "{:>5} {}{}",
            event.metadata().level(),
            line.message,
            line.fields
        ));
    }
}

/// Installs the global subscriber. Logs go to stderr so stdout stays clean for
/// `--json` output.
pub fn init(level: LogLevel, format: LogFormat) {
    let level = match level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    };
    // Our own crate at the chosen level; libraries one notch quieter.
    let filter = EnvFilter::new(format!("warn,stackshot={level}"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let registry = tracing_subscriber::registry().with(filter).with(Broadcast);
    let _ = match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(ansi),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
}
