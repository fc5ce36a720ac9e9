//! The work inside the stop window, run until it returns, panics, a signal
//! interrupts it, or the window reaches its limit.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use anyhow::{Result, anyhow};
use futures_util::FutureExt;

use super::Shutdown;
use super::limit::{Deadline, limit_reached};

/// Runs `work` once every container is down. Its own result when it returns;
/// an error when it panics, when `shutdown` fires, or when `deadline` is
/// reached: then the work is dropped, abandoned where it was.
pub(super) async fn run_work<T, Fut>(
    work: impl FnOnce() -> Fut,
    shutdown: &Shutdown,
    deadline: Option<Deadline>,
) -> Result<T>
where
    Fut: Future<Output = Result<T>>,
{
    let mut shutdown = shutdown.clone();
    let work = AssertUnwindSafe(work()).catch_unwind();
    // What still runs is read before the work is dropped.
    let limit = Deadline::reached(deadline);
    tokio::select! {
        r = work => r.unwrap_or_else(|panic| {
            let msg = panic_message(panic.as_ref());
            Err(anyhow!("the backup work panicked: {msg}"))
        }),
        reason = shutdown.wait() => Err(anyhow!("interrupted by {reason} inside the stop window")),
        (limit, running) = limit => {
            tracing::error!(limit = %humantime::format_duration(limit), running = ?running, "the stop window reached its limit; abandoning its work and starting the containers again");
            Err(limit_reached(limit, &running))
        }
    }
}

/// The message a panic was raised with, or "unknown panic".
fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
