//! The status page, `GET /` on `HTTP_ADDR`: one read-only HTML page, drawn
//! on the server from the daemon's state (no JavaScript, nothing fetched
//! from elsewhere). It shows the plan, the last runs with a chart of their
//! duration and stop window, the next scheduled run, the repository and the
//! maintenance tasks' last results. It has no button and no form: nothing
//! on the HTTP port starts, stops or reads backed-up data.
//!
//! What it shows is what `stackshot status` shows: no secret reaches the
//! daemon's state (the repository is masked here, as in every message).

pub mod chart;

use std::sync::LazyLock;

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use minijinja::Environment;
use minijinja::value::Serde;
use serde::Serialize;

use super::health::Health;
use super::state::DaemonState;

/// The template, parsed once; autoescaped as HTML (its name ends in `.html`).
static PAGE: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.add_template("page.html", include_str!("page.html"))
        .expect("the status page's template parses (a unit test renders it)");
    env
});

/// What the page shows that is not in the daemon's state: set at start-up.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The compose project backed up.
    pub project: String,
    /// The repository, masked ([`crate::config::mask_repository`]).
    pub repository: String,
    /// The copy repository (`COPY_REPOSITORY`), masked, with its schedule
    /// and retention; `None`: none is configured.
    pub copy: Option<crate::config::copy::CopyShown>,
    /// `BACKUP_CRON` as written.
    pub schedule: String,
    /// The zone the schedule and the page's times are read in.
    pub tz: Tz,
    /// stackshot's version.
    pub version: String,
}

#[derive(Serialize)]
struct View<'a> {
    settings: SettingsView<'a>,
    health: HealthView<'a>,
    now: String,
    now_rfc3339: String,
    started: String,
    running: Option<RunningView>,
    next_run: Option<String>,
    last_success: Option<String>,
    plan: Option<PlanView<'a>>,
    left_down: &'a [String],
    recovered: &'a [String],
    runs: Vec<Row>,
    chart: chart::Chart,
    tasks: Vec<Task>,
    copy: Option<CopyView<'a>>,
}

#[derive(Serialize)]
struct CopyView<'a> {
    shown: &'a crate::config::copy::CopyShown,
    last: Option<LastCopy>,
}

#[derive(Serialize)]
struct LastCopy {
    at: String,
    ok: bool,
    line: String,
}

#[derive(Serialize)]
struct SettingsView<'a> {
    project: &'a str,
    repository: &'a str,
    schedule: &'a str,
    tz: &'a str,
    version: &'a str,
}

#[derive(Serialize)]
struct HealthView<'a> {
    healthy: bool,
    status: &'a str,
    reason: Option<&'a str>,
}

#[derive(Serialize)]
struct RunningView {
    trigger: &'static str,
    started: String,
}

#[derive(Serialize)]
struct PlanView<'a> {
    summary: &'a crate::plan::PlanSummary,
    checked: String,
    changed: String,
}

#[derive(Serialize)]
struct Row {
    run_id: String,
    trigger: &'static str,
    started: String,
    result: &'static str,
    duration: String,
    window: Option<String>,
    added: Option<String>,
    reason: Option<String>,
}

#[derive(Serialize)]
struct Task {
    kind: &'static str,
    at: String,
    ok: bool,
    message: Option<String>,
}

fn time(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// `n` bytes as the page shows them (powers of 1024).
pub fn bytes_text(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The page for `state` and `health` at `now`.
pub fn render(
    state: &DaemonState,
    health: &Health,
    settings: &Settings,
    now: DateTime<Utc>,
) -> String {
    let tz = settings.tz;
    let runs: Vec<Row> = state
        .history
        .iter()
        .map(|r| Row {
            run_id: r.run_id.clone(),
            trigger: r.trigger.as_str(),
            started: time(r.started_at, tz),
            result: r.result.as_str(),
            duration: chart::seconds_text(r.seconds()),
            window: r.window_seconds.map(chart::seconds_text),
            added: r.bytes_added.map(bytes_text),
            reason: r.reason.clone(),
        })
        .collect();
    let history: Vec<_> = state.history.iter().cloned().collect();
    let mut tasks: Vec<Task> = state
        .maintenance
        .iter()
        .map(|m| Task {
            kind: m.kind.as_str(),
            at: time(m.at, tz),
            ok: m.ok,
            message: m.message.clone(),
        })
        .collect();
    tasks.sort_by_key(|t| t.kind);
    let view = View {
        settings: SettingsView {
            project: &settings.project,
            repository: &settings.repository,
            schedule: &settings.schedule,
            tz: settings.tz.name(),
            version: &settings.version,
        },
        health: HealthView {
            healthy: health.healthy,
            status: health.status,
            reason: health.reason.as_deref(),
        },
        now: time(now, tz),
        now_rfc3339: now.to_rfc3339_opts(SecondsFormat::Secs, true),
        started: time(state.started_at, tz),
        running: state.running.as_ref().map(|r| RunningView {
            trigger: r.trigger.as_str(),
            started: time(r.started_at, tz),
        }),
        next_run: state.next_run.map(|t| time(t, tz)),
        last_success: state.last_success.map(|t| time(t, tz)),
        plan: state.plan.as_ref().map(|p| PlanView {
            summary: &p.summary,
            checked: time(p.checked_at, tz),
            changed: time(p.changed_at, tz),
        }),
        left_down: &state.left_down,
        recovered: &state.recovered,
        runs,
        chart: chart::chart(&history),
        copy: settings.copy.as_ref().map(|shown| CopyView {
            shown,
            last: state.last_copy.as_ref().map(|(at, r)| LastCopy {
                at: time(*at, tz),
                ok: !r.failed_anything(),
                line: r.line(),
            }),
        }),
        tasks,
    };
    let page = PAGE
        .get_template("page.html")
        .and_then(|t| t.render(Serde(&view)));
    page.unwrap_or_else(|e| {
        tracing::error!(error = %e, "the status page could not be drawn");
        "<!doctype html><title>stackshot</title><p>The status page could not be drawn; see the daemon's log.</p>\n".to_string()
    })
}

#[cfg(test)]
mod tests;
