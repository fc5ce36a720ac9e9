//! `/healthz`: is the stack backed up? A pure judgement of the daemon's state.
//!
//! - `ok`: the last finished run succeeded, at most `HEALTH_MAX_AGE` ago; before
//!   any run since start-up, the last success read back from the repository
//!   ([`super::seed`]) is at most that old.
//! - `starting`: no run has finished yet, no last success is known, and the
//!   daemon is at most `HEALTH_MAX_AGE` old (healthy: the first scheduled run
//!   may be hours away).
//! - `failing`: the last finished run failed or was partial (its reason is given).
//! - `stale`: no successful run within `HEALTH_MAX_AGE`.
//!
//! "Within" includes the limit itself: the design says `/healthz` fails when
//! the last success is *older* than `HEALTH_MAX_AGE`. A run in progress does
//! not change the judgement: the last finished run counts.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::state::DaemonState;
use crate::report::Outcome;

/// The daemon's health as `/healthz` reports it, judged from the daemon's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// `/healthz` answers 200 when true, 503 otherwise.
    pub healthy: bool,
    /// `ok`, `failing`, `stale`, `starting` or `down` (a stop window open
    /// past its limit).
    pub status: &'static str,
    /// Why, in one line (none when `ok`).
    pub reason: Option<String>,
}

/// `90000s` as `25h`, `5400s` as `1h30m`: for messages.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, s % 3600 / 60, s % 60);
    let mut out = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (sec, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if out.is_empty() { "0s".into() } else { out }
}

/// `now - then`, as a std duration (0 when `then` is in the future).
fn age(now: DateTime<Utc>, then: DateTime<Utc>) -> Duration {
    (now - then).to_std().unwrap_or(Duration::ZERO)
}

/// Judges `state` at `now` against `max_age` (`HEALTH_MAX_AGE`).
pub fn evaluate(state: &DaemonState, now: DateTime<Utc>, max_age: Duration) -> Health {
    let limit = human(max_age);
    let unhealthy = |status, reason: String| Health {
        healthy: false,
        status,
        reason: Some(reason),
    };
    match &state.last_run {
        None if state.last_success.is_none() => {
            let up = age(now, state.started_at);
            if up <= max_age {
                Health {
                    healthy: true,
                    status: "starting",
                    reason: Some(format!(
                        "no backup has finished yet; the daemon started {} ago",
                        human(up)
                    )),
                }
            } else {
                unhealthy(
                    "stale",
                    format!(
                        "no successful backup within {limit} (HEALTH_MAX_AGE): none has finished since the daemon started {} ago",
                        human(up)
                    ),
                )
            }
        }
        Some(run) if run.result != Outcome::Success => {
            let word = match run.result {
                Outcome::Partial => "was partial",
                _ => "failed",
            };
            let reason = run
                .reason
                .clone()
                .unwrap_or_else(|| format!("the last backup ({}) {word}", run.run_id));
            unhealthy("failing", reason)
        }
        run => {
            // The last run succeeded, so `last_success` is its end; fall back to
            // it anyway. Before any run, `last_success` was read at start-up.
            let success = state
                .last_success
                .or(run.as_ref().map(|r| r.finished_at))
                .unwrap_or(state.started_at);
            let ago = age(now, success);
            if ago <= max_age {
                Health {
                    healthy: true,
                    status: "ok",
                    reason: None,
                }
            } else {
                unhealthy(
                    "stale",
                    format!(
                        "no successful backup within {limit} (HEALTH_MAX_AGE): the last one finished {} ago, at {}",
                        human(ago),
                        success.to_rfc3339()
                    ),
                )
            }
        }
    }
}

/// A stop window open a minute past its limit (`WINDOW_LIMIT`), or one
/// without a limit (a restore's) open over two hours, as `(open seconds,
/// limit)` from the journal: the stack is down and the run that stopped it
/// hangs. Unhealthy whatever the last run did, as `StackshotStackStillDown`
/// alerts. Pure.
pub fn overdue_window(open: Option<(i64, Option<u64>)>) -> Option<Health> {
    let (age, limit) = open?;
    let age = u64::try_from(age).unwrap_or(0);
    let overdue = match limit {
        Some(limit) => age > limit.saturating_add(60),
        None => age > 2 * 3600,
    };
    overdue.then(|| Health {
        healthy: false,
        status: "down",
        reason: Some(format!(
            "the stack has been stopped for {} by a stop window{}; `stackshot status` names its containers",
            human(Duration::from_secs(age)),
            match limit {
                Some(l) => format!(" past its limit of {} (WINDOW_LIMIT)", human(Duration::from_secs(l))),
                None => " without a limit (a restore)".to_string(),
            }
        )),
    })
}

/// The `/healthz` body. Only what the state holds, and it holds no secrets.
pub fn healthz_body(state: &DaemonState, health: &Health) -> Value {
    json!({
        "status": health.status,
        "healthy": health.healthy,
        "reason": health.reason,
        "last_run": state.last_run.as_ref().map(|r| json!({
            "run_id": r.run_id,
            "trigger": r.trigger,
            "time": r.finished_at,
            "result": r.result,
            "reason": r.reason,
        })),
        "last_success": state.last_success,
        "next_run": state.next_run,
        "running": state.running.is_some(),
        "running_run_id": state.running.as_ref().map(|r| &r.run_id),
        "maintenance": state.maintenance,
        // The current plan: still 200 when it has errors, but they show here
        // (and in `stackshot_plan_ok`) long before the next run refuses it.
        "plan": state.plan.as_ref().map(|p| json!({
            "ok": p.summary.ok,
            "errors": p.summary.errors,
            "changed_at": p.changed_at,
        })),
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_window_open_past_its_limit_is_down() {
        assert!(overdue_window(None).is_none(), "no window open");
        assert!(
            overdue_window(Some((900, Some(900)))).is_none(),
            "within its limit"
        );
        assert!(
            overdue_window(Some((960, Some(900)))).is_none(),
            "a minute's grace"
        );
        let h = overdue_window(Some((1000, Some(900)))).expect("past it");
        assert_eq!((h.healthy, h.status), (false, "down"));
        assert_eq!(
            h.reason.as_deref(),
            Some(
                "the stack has been stopped for 16m40s by a stop window past its limit of 15m (WINDOW_LIMIT); `stackshot status` names its containers"
            )
        );
        assert!(
            overdue_window(Some((3600, None))).is_none(),
            "a restore's hour"
        );
        assert!(
            overdue_window(Some((7300, None))).is_some(),
            "a restore's two hours"
        );
    }

    use super::*;
    use crate::daemon::state::{Maintenance, MaintenanceKind, Running, Trigger};

    use chrono::TimeDelta;

    const MAX: Duration = Duration::from_secs(26 * 3600);

    fn delta(d: Duration) -> TimeDelta {
        TimeDelta::from_std(d).unwrap()
    }

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-06-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn finished(state: &mut DaemonState, at: DateTime<Utc>, result: Outcome, reason: Option<&str>) {
        let mut report = crate::report::RunReport::start();
        report.run_id = format!("run-{}", at.timestamp());
        report.started_at = at - TimeDelta::seconds(5);
        report.finished_at = at;
        report.result = result;
        report.reason = reason.map(String::from);
        state.finish(&report, Trigger::Schedule);
    }

    #[test]
    fn starting_until_max_age_then_stale() {
        let s = DaemonState::new(t0());
        let h = evaluate(&s, t0() + TimeDelta::hours(1), MAX);
        assert_eq!((h.healthy, h.status), (true, "starting"));
        let h = evaluate(&s, t0() + delta(MAX), MAX);
        assert_eq!((h.healthy, h.status), (true, "starting"), "exactly max_age");
        let h = evaluate(&s, t0() + delta(MAX) + TimeDelta::milliseconds(1), MAX);
        assert_eq!((h.healthy, h.status), (false, "stale"));
        assert!(
            h.reason
                .unwrap()
                .contains("no successful backup within 26h")
        );
    }

    #[test]
    fn ok_after_a_success_until_max_age_then_stale() {
        let mut s = DaemonState::new(t0());
        let end = t0() + TimeDelta::hours(2);
        finished(&mut s, end, Outcome::Success, None);
        let h = evaluate(&s, end + TimeDelta::minutes(1), MAX);
        assert_eq!(
            h,
            Health {
                healthy: true,
                status: "ok",
                reason: None
            }
        );
        let h = evaluate(&s, end + delta(MAX), MAX);
        assert_eq!((h.healthy, h.status), (true, "ok"), "exactly max_age");
        let h = evaluate(&s, end + delta(MAX) + TimeDelta::seconds(1), MAX);
        assert_eq!((h.healthy, h.status), (false, "stale"));
        let reason = h.reason.unwrap();
        assert!(reason.contains("26h"), "{reason}");
        assert!(reason.contains("2024-06-01T02:00:00"), "{reason}");
    }

    #[test]
    fn failed_or_partial_last_run_is_failing_with_its_reason() {
        let mut s = DaemonState::new(t0());
        finished(&mut s, t0() + TimeDelta::hours(1), Outcome::Success, None);
        finished(
            &mut s,
            t0() + TimeDelta::hours(2),
            Outcome::Failed,
            Some("service postgres: cannot log in to postgres"),
        );
        // Even though the last success is recent.
        let h = evaluate(&s, t0() + TimeDelta::hours(3), MAX);
        assert_eq!((h.healthy, h.status), (false, "failing"));
        assert_eq!(
            h.reason.as_deref(),
            Some("service postgres: cannot log in to postgres")
        );

        finished(&mut s, t0() + TimeDelta::hours(4), Outcome::Partial, None);
        let h = evaluate(&s, t0() + TimeDelta::hours(5), MAX);
        assert_eq!((h.healthy, h.status), (false, "failing"));
        assert!(h.reason.unwrap().contains("was partial"));

        // The next success heals.
        finished(&mut s, t0() + TimeDelta::hours(6), Outcome::Success, None);
        assert!(evaluate(&s, t0() + TimeDelta::hours(7), MAX).healthy);
    }

    #[test]
    fn failing_before_any_success_is_failing_not_starting() {
        let mut s = DaemonState::new(t0());
        finished(
            &mut s,
            t0() + TimeDelta::minutes(1),
            Outcome::Failed,
            Some("boom"),
        );
        let h = evaluate(&s, t0() + TimeDelta::minutes(2), MAX);
        assert_eq!(
            (h.healthy, h.status, h.reason.as_deref()),
            (false, "failing", Some("boom"))
        );
    }

    #[test]
    fn a_run_in_progress_does_not_change_health() {
        let mut s = DaemonState::new(t0());
        finished(
            &mut s,
            t0() + TimeDelta::hours(1),
            Outcome::Failed,
            Some("boom"),
        );
        s.running = s_running();
        let h = evaluate(&s, t0() + TimeDelta::hours(2), MAX);
        assert_eq!((h.healthy, h.status), (false, "failing"));

        let mut s = DaemonState::new(t0());
        s.running = s_running();
        assert_eq!(
            evaluate(&s, t0() + TimeDelta::hours(1), MAX).status,
            "starting"
        );
    }

    fn s_running() -> Option<Running> {
        Some(Running {
            run_id: "r1".into(),
            started_at: t0(),
            trigger: Trigger::Schedule,
        })
    }

    #[test]
    fn a_clock_behind_the_last_success_is_ok() {
        let mut s = DaemonState::new(t0());
        finished(&mut s, t0() + TimeDelta::hours(1), Outcome::Success, None);
        assert!(evaluate(&s, t0(), MAX).healthy);
    }

    #[test]
    fn a_success_read_at_start_up_is_ok_until_max_age_then_stale() {
        let mut s = DaemonState::new(t0());
        let snapshot = t0() - TimeDelta::hours(3);
        s.seed_last_success(snapshot);
        let h = evaluate(&s, t0() + TimeDelta::minutes(1), MAX);
        assert_eq!((h.healthy, h.status), (true, "ok"));
        let h = evaluate(&s, snapshot + delta(MAX) + TimeDelta::seconds(1), MAX);
        assert_eq!((h.healthy, h.status), (false, "stale"));
        assert!(h.reason.unwrap().contains("2024-05-31T21:00:00"));

        // Already stale at start-up: not `starting`.
        let mut s = DaemonState::new(t0());
        s.seed_last_success(t0() - TimeDelta::hours(30));
        let h = evaluate(&s, t0(), MAX);
        assert_eq!((h.healthy, h.status), (false, "stale"));
    }

    #[test]
    fn a_run_since_start_up_wins_over_the_seed() {
        let mut s = DaemonState::new(t0());
        finished(&mut s, t0() + TimeDelta::hours(1), Outcome::Success, None);
        // An older snapshot read later does not move the last success back.
        s.seed_last_success(t0() - TimeDelta::hours(3));
        assert_eq!(s.last_success, Some(t0() + TimeDelta::hours(1)));
        // A failed run since start-up is failing whatever the repository holds.
        let mut s = DaemonState::new(t0());
        finished(
            &mut s,
            t0() + TimeDelta::hours(1),
            Outcome::Failed,
            Some("boom"),
        );
        s.seed_last_success(t0());
        assert_eq!(
            evaluate(&s, t0() + TimeDelta::hours(2), MAX).status,
            "failing"
        );
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::from_secs(26 * 3600)), "26h");
        assert_eq!(human(Duration::from_secs(5400)), "1h30m");
        assert_eq!(human(Duration::from_secs(61)), "1m1s");
        assert_eq!(human(Duration::ZERO), "0s");
    }

    #[test]
    fn the_body() {
        let mut s = DaemonState::new(t0());
        finished(&mut s, t0() + TimeDelta::hours(1), Outcome::Success, None);
        finished(
            &mut s,
            t0() + TimeDelta::hours(2),
            Outcome::Failed,
            Some("boom"),
        );
        s.next_run = Some(t0() + TimeDelta::hours(24));
        s.running = s_running();
        s.maintenance_done(Maintenance {
            kind: MaintenanceKind::Prune,
            at: t0() + TimeDelta::hours(1),
            ok: true,
            message: None,
        });
        s.plan = Some(crate::daemon::state::PlanStatus {
            summary: crate::plan::PlanSummary {
                ok: false,
                errors: vec![
                    "service app (x_app_1): unknown label stackshot.volume; accepted: …".into(),
                ],
                stop: vec![],
                dumps: vec![],
                mounts: 0,
                unlabelled: vec![],
            },
            changed_at: t0() + TimeDelta::hours(2),
            checked_at: t0() + TimeDelta::hours(3),
        });
        let h = evaluate(&s, t0() + TimeDelta::hours(3), MAX);
        let body = healthz_body(&s, &h);
        assert_eq!(
            body,
            json!({
                "status": "failing",
                "healthy": false,
                "reason": "boom",
                "last_run": {
                    "run_id": "run-1717207200",
                    "trigger": "schedule",
                    "time": "2024-06-01T02:00:00Z",
                    "result": "failed",
                    "reason": "boom",
                },
                "last_success": "2024-06-01T01:00:00Z",
                "next_run": "2024-06-02T00:00:00Z",
                "running": true,
                "running_run_id": "r1",
                "maintenance": [
                    {"kind": "prune", "at": "2024-06-01T01:00:00Z", "ok": true, "message": null}
                ],
                // A bad plan shows here; the judgement stays the runs'.
                "plan": {
                    "ok": false,
                    "errors": ["service app (x_app_1): unknown label stackshot.volume; accepted: …"],
                    "changed_at": "2024-06-01T02:00:00Z",
                },
            })
        );

        let fresh = DaemonState::new(t0());
        let body = healthz_body(&fresh, &evaluate(&fresh, t0(), MAX));
        assert_eq!(body["status"], "starting");
        assert_eq!(body["last_run"], Value::Null);
        assert_eq!(body["running"], false);
        assert_eq!(body["running_run_id"], Value::Null);
        assert_eq!(body["plan"], Value::Null);
    }
}
