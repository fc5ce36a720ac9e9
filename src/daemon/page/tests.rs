use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::daemon::health;
use crate::daemon::state::{
    Maintenance, MaintenanceKind, PlanStatus, RunSummary, Running, Trigger,
};
use crate::plan::PlanSummary;
use crate::report::Outcome;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn settings() -> Settings {
    Settings {
        project: "shop".into(),
        repository: crate::config::mask_repository("rest:https://backup:hunter2@host:8000/shop"),
        copy: None,
        schedule: "0 2 * * *".into(),
        tz: "Europe/Berlin".parse().unwrap(),
        version: "9.9.9".into(),
    }
}

fn summary(id: &str, start: &str, secs: i64, result: Outcome) -> RunSummary {
    RunSummary {
        run_id: id.into(),
        trigger: Trigger::Schedule,
        started_at: at(start),
        finished_at: at(start) + Duration::seconds(secs),
        result,
        reason: None,
        window_seconds: None,
        bytes_added: None,
    }
}

fn state() -> DaemonState {
    let mut s = DaemonState::new(at("2026-12-01T00:00:00Z"));
    let mut ok = summary(
        "2026-12-02T02:00:00Z",
        "2026-12-02T02:00:00Z",
        42,
        Outcome::Success,
    );
    ok.window_seconds = Some(1.25);
    ok.bytes_added = Some(3 * 1024 * 1024 + 512 * 1024);
    let mut failed = summary(
        "2026-12-03T02:00:00Z",
        "2026-12-03T02:00:00Z",
        7,
        Outcome::Failed,
    );
    failed.reason = Some("pg_dump of postgres failed: <script>alert(1)</script>".into());
    s.history.push_front(ok);
    s.history.push_front(failed.clone());
    s.last_run = Some(failed);
    s.last_success = Some(at("2026-12-02T02:00:42Z"));
    s.next_run = Some(at("2026-12-04T01:00:00Z"));
    s.plan = Some(PlanStatus {
        summary: PlanSummary {
            ok: true,
            errors: vec![],
            stop: vec!["app".into(), "worker".into()],
            dumps: vec!["postgres (postgres)".into()],
            mounts: 3,
            unlabelled: vec!["cache".into()],
        },
        changed_at: at("2026-12-01T00:00:01Z"),
        checked_at: at("2026-12-03T02:00:00Z"),
    });
    s.maintenance_done(Maintenance {
        kind: MaintenanceKind::Verify,
        at: at("2026-12-02T03:00:00Z"),
        ok: true,
        message: None,
    });
    s.maintenance_done(Maintenance {
        kind: MaintenanceKind::Drill,
        at: at("2026-12-02T04:00:00Z"),
        ok: false,
        message: Some("the drill's PostgreSQL did not start".into()),
    });
    s
}

/// The page with the escapes that plain text needs undone (minijinja also
/// escapes `/` and `'`).
fn unescaped(page: &str) -> String {
    page.replace("&#x2f;", "/").replace("&#x27;", "'")
}

fn health_of(s: &DaemonState, now: DateTime<Utc>) -> health::Health {
    health::evaluate(s, now, std::time::Duration::from_secs(26 * 3600))
}

#[test]
fn the_page_shows_runs_plan_schedule_repository_and_maintenance() {
    let s = state();
    let now = at("2026-12-03T09:00:00Z");
    let raw = render(&s, &health_of(&s, now), &settings(), now);
    let page = unescaped(&raw);
    for want in [
        "<title>stackshot · shop · failing</title>",
        // The runs, newest first, in the schedule's zone.
        "2026-12-03 03:00:00 CET",
        "2026-12-02 03:00:00 CET",
        "42 s",
        "1.2 s",
        "3.5 MiB",
        "7.0 s",
        // The chart: two bars, the successful one with its window.
        r#"<rect class="bar failed""#,
        r#"<rect class="bar success""#,
        r#"<rect class="window""#,
        "2026-12-02T02:00:00Z: success, 42 s, window 1.2 s",
        // The schedule, the plan, the repository, the tasks.
        "2026-12-04 02:00:00 CET",
        "<code>0 2 * * *</code> (Europe/Berlin)",
        "app, worker",
        "postgres (postgres)",
        "cache",
        "rest:https://backup:***@host:8000/shop",
        "No copy repository is configured (COPY_REPOSITORY).",
        "verify",
        "the drill's PostgreSQL did not start",
        "stackshot 9.9.9",
    ] {
        assert!(page.contains(want), "{want:?} is not on the page:\n{page}");
    }
    // The failure's reason is text, not markup.
    assert!(
        raw.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "{raw}"
    );
    assert!(!raw.contains("<script"), "{raw}");
    assert!(!page.contains("hunter2"));
    // Read-only: no form, no button, no script, nothing fetched.
    for absent in ["<form", "<button", "<input", "src=", "href=\"http"] {
        assert!(!page.contains(absent), "{absent:?} on the page");
    }
}

#[test]
fn a_new_daemon_says_what_it_does_not_know_yet() {
    let s = DaemonState::new(at("2026-12-01T00:00:00Z"));
    let now = at("2026-12-01T00:00:05Z");
    let mut st = s.clone();
    st.running = Some(Running {
        run_id: "r".into(),
        started_at: now,
        trigger: Trigger::Manual,
    });
    let page = render(&st, &health_of(&s, now), &settings(), now);
    for want in [
        "No run since the daemon started at 2026-12-01 01:00:00 CET.",
        "manual run, started 2026-12-01 01:00:05 CET",
        "none scheduled",
        "Not read from the engine yet.",
        "No verify, drill, prune or check since the daemon started.",
    ] {
        assert!(page.contains(want), "{want:?} is not on the page:\n{page}");
    }
    assert!(!page.contains("<svg"), "a chart of no runs");
}

#[test]
fn bytes_read_as_people_read_them() {
    assert_eq!(bytes_text(0), "0 B");
    assert_eq!(bytes_text(1023), "1023 B");
    assert_eq!(bytes_text(1536), "1.5 KiB");
    assert_eq!(bytes_text(5 * 1024 * 1024 * 1024), "5.0 GiB");
}

#[test]
fn the_copy_repository_shows_its_schedule_retention_and_last_copy() {
    use crate::report::{CopyOutcome, CopyReport};
    let mut settings = settings();
    settings.copy = Some(crate::config::copy::CopyShown {
        repository: crate::config::mask_repository("rest:https://offsite:s3cret@far:8000/shop"),
        when: "after each successful run".into(),
        retention: "--keep-last 3".into(),
    });
    let mut s = state();
    let now = at("2026-12-03T09:00:00Z");
    let page = unescaped(&render(&s, &health_of(&s, now), &settings, now));
    for want in [
        "rest:https://offsite:***@far:8000/shop",
        "after each successful run",
        "--keep-last 3",
        "none since the daemon started",
    ] {
        assert!(page.contains(want), "{want:?} is not on the page:\n{page}");
    }
    assert!(!page.contains("No copy repository"), "{page}");
    s.last_copy = Some((
        at("2026-12-03T02:01:00Z"),
        CopyReport {
            outcome: CopyOutcome::Failed,
            repository: "rest:https://offsite:***@far:8000/shop".into(),
            copied: vec![],
            initialised: false,
            retention: None,
            seconds: 0.4,
            error: Some("cannot connect to far:8000".into()),
        },
    ));
    let page = unescaped(&render(&s, &health_of(&s, now), &settings, now));
    for want in [
        "2026-12-03 03:01:00 CET",
        r#"<span class="badge failed">failed</span>"#,
        "copy to rest:https://offsite:***@far:8000/shop: FAILED: cannot connect to far:8000",
    ] {
        assert!(page.contains(want), "{want:?} is not on the page:\n{page}");
    }
    assert!(!page.contains("s3cret"), "{page}");
}
