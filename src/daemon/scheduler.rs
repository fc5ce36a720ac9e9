//! When to run: the next tick of a schedule in its time zone, and what to do
//! when the clock jumps (the host slept): a tick missed by more than the grace
//! period is skipped with a log line, never bunched. The wall clock is checked
//! at least every [`MAX_SLEEP`], so a suspended host is noticed on wake-up.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::schedule::Schedule;
use crate::window::Shutdown;

/// Longest single sleep; the wall clock is re-read after it.
pub const MAX_SLEEP: Duration = Duration::from_secs(30);
/// How late a tick may fire and still run.
pub const GRACE: Duration = Duration::from_secs(60);

/// What to do about a tick due at `due`, at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Not yet: sleep this long, then look again.
    Wait(Duration),
    /// The tick is due: run now.
    Run,
    /// Too late (the host slept, or a run held us up): skip it.
    Skip,
}

/// Decides about the tick due at `due`. Pure.
pub fn decide(now: DateTime<Utc>, due: DateTime<Utc>) -> Decision {
    if now < due {
        let wait = (due - now).to_std().unwrap_or_default();
        return Decision::Wait(wait.min(MAX_SLEEP));
    }
    match (now - due).to_std() {
        Ok(late) if late > GRACE => Decision::Skip,
        _ => Decision::Run,
    }
}

/// Runs `job` on every tick of `schedule` until `shutdown`; `on_next` hears of
/// each next tick (for logs, `/healthz` and metrics).
pub async fn every<F, Fut>(
    name: &str,
    schedule: &Schedule,
    tz: Tz,
    shutdown: &Shutdown,
    mut on_next: impl FnMut(Option<DateTime<Utc>>),
    mut job: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut shutdown = shutdown.clone();
    let mut next = schedule.next_after(Utc::now(), tz);
    loop {
        on_next(next);
        let Some(due) = next else {
            tracing::warn!(schedule = name, expr = %schedule, "the schedule has no future run");
            return;
        };
        tracing::info!(schedule = name, next = %due.with_timezone(&tz).to_rfc3339(), "next run");
        loop {
            match decide(Utc::now(), due) {
                Decision::Wait(d) => {
                    tokio::select! {
                        _ = tokio::time::sleep(d) => {}
                        _ = shutdown.wait() => return,
                    }
                }
                Decision::Run => {
                    // While this one runs, the next run is the following
                    // tick; when the run outlasts that tick (which will be
                    // skipped), the one after it, and so on: never a time
                    // already past.
                    let mut following = schedule.next_after(due, tz);
                    on_next(following);
                    let run = job();
                    tokio::pin!(run);
                    loop {
                        let passed = async {
                            match following {
                                Some(at) => {
                                    let left = (at - Utc::now()).to_std().unwrap_or_default();
                                    tokio::time::sleep(left).await;
                                }
                                None => std::future::pending().await,
                            }
                        };
                        tokio::select! {
                            () = &mut run => break,
                            () = passed => {
                                following = following.and_then(|at| schedule.next_after(at, tz));
                                on_next(following);
                            }
                        }
                    }
                    break;
                }
                Decision::Skip => {
                    tracing::warn!(schedule = name, missed = %due.with_timezone(&tz).to_rfc3339(), "missed a tick (the host slept or a run took longer); skipping it");
                    break;
                }
            }
        }
        if shutdown.requested().is_some() {
            return;
        }
        next = schedule.next_after(Utc::now(), tz);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 2, 0, 0).unwrap() + chrono::Duration::seconds(s as i64)
    }

    #[test]
    fn waits_in_bounded_steps() {
        assert_eq!(decide(t(0), t(10)), Decision::Wait(Duration::from_secs(10)));
        assert_eq!(decide(t(0), t(3600)), Decision::Wait(MAX_SLEEP));
    }

    #[test]
    fn runs_when_due_or_slightly_late() {
        assert_eq!(decide(t(10), t(10)), Decision::Run);
        assert_eq!(decide(t(70), t(10)), Decision::Run);
    }

    #[test]
    fn skips_ticks_missed_while_asleep() {
        assert_eq!(decide(t(71), t(10)), Decision::Skip);
        assert_eq!(decide(t(3 * 3600), t(10)), Decision::Skip);
    }

    #[tokio::test]
    async fn every_runs_on_ticks_and_stops_on_shutdown() {
        let schedule: Schedule = "* * * * * *".parse().unwrap();
        let (trigger, shutdown) = Shutdown::new();
        let runs = std::sync::atomic::AtomicUsize::new(0);
        let mut nexts = 0;
        let job = || async {
            if runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 1 {
                trigger.trigger("test");
            }
        };
        every("test", &schedule, Tz::UTC, &shutdown, |_| nexts += 1, job).await;
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 2);
        // Each tick: the next one announced before waiting, and again when it fires.
        assert_eq!(nexts, 4);
    }
}
