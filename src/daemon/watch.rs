//! The live plan: the daemon follows the engine's container events (create,
//! destroy, start, die, rename) for its project and re-plans, debounced, so a
//! label typo shows in `/healthz`, `/metrics` and the log at once instead of
//! at the next run.
//!
//! - A burst of events (`docker compose up` recreating ten containers) gives
//!   one re-plan: it waits for [`QUIET`] without events, or at most [`LONGEST`].
//! - While a backup runs, its own stops and starts are not re-planned: the
//!   re-plan waits for the run to end.
//! - When the stream breaks (the engine restarted, the socket went away) it
//!   reconnects every [`RETRY`] and re-discovers everything once it is back,
//!   so events missed in between cannot leave a stale plan; so does the
//!   first connection, for what changed since the plan read at start-up.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bollard::query_parameters::EventsOptions;
use futures_util::StreamExt;
use tokio::time::{Instant, sleep_until};

use super::Daemon;
use crate::container::{PROJECT_LABEL, ROLE_LABEL};

/// Re-plan once no event came for this long…
pub const QUIET: Duration = Duration::from_millis(700);
/// …or this long after the first event of a burst, whichever comes first.
pub const LONGEST: Duration = Duration::from_secs(3);
/// Between attempts to reach a lost event stream.
pub const RETRY: Duration = Duration::from_secs(1);
/// While a run is in progress, look again after this long.
const RUN_POLL: Duration = Duration::from_secs(1);

/// The container events that can change a plan.
const ACTIONS: [&str; 5] = ["create", "destroy", "start", "die", "rename"];

/// The stream's filter: container events of the project (or of every project).
fn options(project: &str, all_projects: bool) -> EventsOptions {
    let label = if all_projects {
        PROJECT_LABEL.to_string()
    } else {
        format!("{PROJECT_LABEL}={project}")
    };
    EventsOptions {
        filters: Some(HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            (
                "event".to_string(),
                ACTIONS.iter().map(|a| a.to_string()).collect(),
            ),
            ("label".to_string(), vec![label]),
        ])),
        ..Default::default()
    }
}

/// When the pending re-plan is due: [`QUIET`] after the last event, capped at
/// [`LONGEST`] after the first.
pub fn due(first: Instant, last: Instant) -> Instant {
    (last + QUIET).min(first + LONGEST)
}

/// A pending re-plan (first event, last event) that [`due`] puts `after` from now.
fn due_in(after: Duration) -> (Instant, Instant) {
    let at = Instant::now() + after;
    // `due` is the earlier of last + QUIET and first + LONGEST: both at `at`.
    (
        at.checked_sub(LONGEST).unwrap_or(at),
        at.checked_sub(QUIET).unwrap_or(at),
    )
}

/// Follows the engine's events until shutdown, keeping the daemon's plan current.
pub async fn follow(d: Arc<Daemon>) {
    let mut shutdown = d.shutdown.clone();
    let opts = options(&d.project, d.ctx.config.include_all_projects);
    let mut lost = false;
    loop {
        let mut events = Box::pin(d.ctx.engine.docker().events(Some(opts.clone())));
        // A pending re-plan: (first event, last event). One is due at once
        // (after the stream is subscribed: polled first), on the first
        // connection as after a reconnect: a container created between the
        // plan read at start-up and the subscription sends no event this
        // stream will see.
        let mut pending: Option<(Instant, Instant)> = Some(due_in(Duration::from_millis(200)));
        let broke = loop {
            let deadline = pending.map(|(f, l)| due(f, l));
            tokio::select! {
                biased;
                _ = shutdown.wait() => return,
                e = events.next() => match e {
                    Some(Ok(ev)) => {
                        let role = ev
                            .actor
                            .as_ref()
                            .and_then(|a| a.attributes.as_ref())
                            .is_some_and(|a| {
                                crate::container::is_own_role(a.get(ROLE_LABEL).map(String::as_str))
                            });
                        // Our own workers and drill containers are never planned.
                        if !role {
                            let now = Instant::now();
                            pending = Some(pending.map_or((now, now), |(f, _)| (f, now)));
                        }
                    }
                    Some(Err(e)) => break format!("{e}"),
                    None => break "the engine closed it".to_string(),
                },
                _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    if d.running().is_some() {
                        pending = Some(due_in(RUN_POLL));
                        continue;
                    }
                    match d.replan().await {
                        Ok(()) => {
                            if lost {
                                tracing::info!("engine events: reconnected; the plan is re-read from the engine");
                                lost = false;
                            }
                            pending = None;
                        }
                        Err(e) => break format!("{e:#}"),
                    }
                }
            }
        };
        if !lost {
            tracing::warn!(reason = %broke, retry_seconds = RETRY.as_secs(), "engine events: stream lost (or the engine could not be read); reconnecting");
            lost = true;
        } else {
            tracing::debug!(reason = %broke, "engine events: still unreachable");
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_waits_for_quiet_but_not_forever() {
        let t0 = Instant::now();
        assert_eq!(due(t0, t0), t0 + QUIET);
        let last = t0 + Duration::from_millis(500);
        assert_eq!(due(t0, last), last + QUIET);
        // Events every half second for ever: still re-planned after LONGEST.
        let last = t0 + Duration::from_secs(10);
        assert_eq!(due(t0, last), t0 + LONGEST);
    }

    #[test]
    fn a_re_plan_put_off_is_due_then() {
        let before = Instant::now();
        let (f, l) = due_in(RUN_POLL);
        let at = due(f, l);
        assert!(at >= before + RUN_POLL && at <= Instant::now() + RUN_POLL);
    }

    #[test]
    fn filters_the_project_and_the_plan_changing_actions() {
        let o = options("shop", false);
        let f = o.filters.unwrap();
        assert_eq!(f["label"], ["com.docker.compose.project=shop"]);
        assert_eq!(f["type"], ["container"]);
        assert_eq!(f["event"], ACTIONS.map(String::from));
        let all = options("shop", true).filters.unwrap();
        assert_eq!(all["label"], ["com.docker.compose.project"]);
    }
}
