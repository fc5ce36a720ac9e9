//! The stop window's limit (`WINDOW_LIMIT`): the instant it is reached, and
//! the error of a window that reached it.

use std::time::Duration;

use anyhow::anyhow;

/// The limit of an open window and the instant it is reached: from then on
/// nothing more is stopped, and the work is abandoned.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline {
    /// The limit, as configured (`WINDOW_LIMIT`), for messages.
    pub(super) limit: Duration,
    /// When it is reached.
    at: tokio::time::Instant,
}

impl Deadline {
    /// The deadline of a window opened now, when it has a `limit`.
    pub(super) fn from_now(limit: Option<Duration>) -> Option<Deadline> {
        limit.map(|limit| Deadline {
            limit,
            at: tokio::time::Instant::now() + limit,
        })
    }

    /// True once the deadline is reached.
    pub(super) fn passed(&self) -> bool {
        tokio::time::Instant::now() >= self.at
    }

    /// Waits until the deadline is reached (forever, without one), then
    /// returns the limit and what still runs then (read before the work is
    /// dropped).
    pub(super) async fn reached(deadline: Option<Deadline>) -> (Duration, Vec<String>) {
        match deadline {
            Some(d) => {
                tokio::time::sleep_until(d.at).await;
                (d.limit, crate::activity::running())
            }
            None => std::future::pending().await,
        }
    }
}

/// The error of a window that reached its limit, naming what still ran.
pub(super) fn limit_reached(limit: Duration, running: &[String]) -> anyhow::Error {
    let what = if running.is_empty() {
        String::new()
    } else {
        format!(" while {} still ran", running.join(", "))
    };
    anyhow!(
        "the stop window reached its limit of {} (WINDOW_LIMIT){what}: the work was abandoned, nothing it had not finished became a snapshot, and the containers were started again; find what hung, or raise WINDOW_LIMIT",
        humantime::format_duration(limit)
    )
}
