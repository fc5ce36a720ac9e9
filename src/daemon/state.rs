//! What the daemon knows about its runs: shared by the scheduler, the control
//! socket, `/healthz` and `/metrics`.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::plan::PlanSummary;
use crate::report::{CopyReport, Outcome, RunReport};

/// How many finished runs the daemon remembers (`stackshot status`, the
/// status page's table and chart).
pub const HISTORY: usize = 30;

/// What started a run, as `stackshot status`, `/healthz` and the daemon's
/// log spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// The backup schedule, `BACKUP_CRON` (`schedule`).
    Schedule,
    /// A `stackshot backup` through the control socket (`manual`).
    Manual,
}

impl Trigger {
    /// The trigger's name, exactly as the status JSON and the log fields spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
        }
    }
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// A maintenance task, as its record's `kind`, the `task` label of
/// `stackshot_maintenance_last_success` and the daemon's log spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MaintenanceKind {
    /// `restic forget` with the `KEEP_*` policy, without a prune (`forget`).
    Forget,
    /// `restic forget` with the `KEEP_*` policy, then `restic prune`
    /// (`prune`): on `PRUNE_CRON` or after a successful run.
    Prune,
    /// `restic check` (`check`).
    Check,
    /// `stackshot verify` of the latest run (`verify`).
    Verify,
    /// `stackshot drill` of the latest run (`drill`).
    Drill,
    /// `restic copy` to the copy repository, and its retention (`copy`):
    /// after each successful run, or on `COPY_CRON`.
    Copy,
}

impl MaintenanceKind {
    /// The task's name, exactly as the status JSON, the metric label and the
    /// log fields spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            MaintenanceKind::Forget => "forget",
            MaintenanceKind::Prune => "prune",
            MaintenanceKind::Check => "check",
            MaintenanceKind::Verify => "verify",
            MaintenanceKind::Drill => "drill",
            MaintenanceKind::Copy => "copy",
        }
    }
}

impl std::fmt::Display for MaintenanceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// A run in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Running {
    /// The run's id: its start time, as in the report's `run_id`.
    pub run_id: String,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// What started the run: `schedule` for `BACKUP_CRON`, `manual` for `stackshot backup`.
    pub trigger: Trigger,
}

/// A finished run, in short.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run's id: its start time, as in the report's `run_id`.
    pub run_id: String,
    /// What started the run: `schedule` for `BACKUP_CRON`, `manual` for `stackshot backup`.
    pub trigger: Trigger,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When the run finished.
    pub finished_at: DateTime<Utc>,
    /// How the run ended: success, partial or failed.
    pub result: Outcome,
    /// Why it did not succeed.
    pub reason: Option<String>,
    /// How long the stop window was open, in seconds; `None` when the run
    /// opened none (nothing to stop, or it failed before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<f64>,
    /// The bytes the run's snapshots added to the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_added: Option<u64>,
}

impl RunSummary {
    /// The run's duration in seconds, start to finish.
    pub fn seconds(&self) -> f64 {
        (self.finished_at - self.started_at)
            .to_std()
            .map_or(0.0, |d| d.as_secs_f64())
    }
}

/// The last result of a maintenance task (`forget`, `prune`, `check`, `verify`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Maintenance {
    /// The task's name: `forget`, `prune`, `check`, `verify` or `drill`.
    pub kind: MaintenanceKind,
    /// When the task finished.
    pub at: DateTime<Utc>,
    /// Whether the task succeeded.
    pub ok: bool,
    /// Why the task failed, with its error's causes; `None` when it succeeded.
    pub message: Option<String>,
}

/// The current plan, as the daemon last computed it from the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanStatus {
    /// The plan in short.
    pub summary: PlanSummary,
    /// When it last changed (or was first computed).
    pub changed_at: DateTime<Utc>,
    /// When the engine was last read for it.
    pub checked_at: DateTime<Utc>,
}

/// What the daemon knows about its runs, maintenance tasks and plan, as
/// `stackshot status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonState {
    /// When the daemon started.
    pub started_at: DateTime<Utc>,
    /// The run in progress.
    pub running: Option<Running>,
    /// The last finished run.
    pub last_run: Option<RunSummary>,
    /// The end of the last successful run.
    pub last_success: Option<DateTime<Utc>>,
    /// Finished runs, newest first.
    pub history: VecDeque<RunSummary>,
    /// The next scheduled run.
    pub next_run: Option<DateTime<Utc>>,
    /// The last result of each maintenance task.
    pub maintenance: Vec<Maintenance>,
    /// Containers started at start-up from an interrupted run's journal.
    pub recovered: Vec<String>,
    /// The current plan, kept up to date from the engine's events.
    #[serde(default)]
    pub plan: Option<PlanStatus>,
    /// Containers a `backup --no-restart` left down (from the journal, read
    /// at each status request): stackshot does not start them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_down: Vec<String>,
    /// The run that left them down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_down_by: Option<String>,
    /// What the last copy to the copy repository did, and when it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_copy: Option<(DateTime<Utc>, CopyReport)>,
}

impl DaemonState {
    /// A daemon starting at `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        DaemonState {
            started_at: now,
            running: None,
            last_run: None,
            last_success: None,
            history: VecDeque::new(),
            next_run: None,
            maintenance: vec![],
            recovered: vec![],
            plan: None,
            left_down: vec![],
            left_down_by: None,
            last_copy: None,
        }
    }

    /// Records a finished run.
    pub fn finish(&mut self, report: &RunReport, trigger: Trigger) {
        let summary = RunSummary {
            run_id: report.run_id.clone(),
            trigger,
            started_at: report.started_at,
            finished_at: report.finished_at,
            result: report.result,
            reason: report.reason.clone(),
            window_seconds: report.window.as_ref().map(|w| w.seconds),
            bytes_added: (!report.snapshots.is_empty())
                .then(|| report.snapshots.iter().map(|s| s.bytes_added).sum()),
        };
        if report.result == Outcome::Success {
            self.last_success = Some(report.finished_at);
        }
        self.running = None;
        self.history.push_front(summary.clone());
        self.history.truncate(HISTORY);
        self.last_run = Some(summary);
    }

    /// Takes `at`, read back from the repository at start-up
    /// ([`super::seed`]), as the last success, unless a run since start-up
    /// succeeded later.
    pub fn seed_last_success(&mut self, at: DateTime<Utc>) {
        self.last_success = Some(self.last_success.map_or(at, |s| s.max(at)));
    }

    /// Records a maintenance result, replacing the previous one of its kind.
    pub fn maintenance_done(&mut self, m: Maintenance) {
        self.maintenance.retain(|x| x.kind != m.kind);
        self.maintenance.push(m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_keep_their_spellings() {
        for (trigger, text) in [(Trigger::Schedule, "schedule"), (Trigger::Manual, "manual")] {
            assert_eq!(trigger.as_str(), text);
            assert_eq!(trigger.to_string(), text);
            let json = serde_json::to_string(&trigger).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<Trigger>(&json).unwrap(), trigger);
        }
        // `stackshot status` pads it in its table of runs.
        assert_eq!(format!("{:<8}|", Trigger::Manual), "manual  |");
    }

    #[test]
    fn maintenance_kinds_keep_their_spellings() {
        for (kind, text) in [
            (MaintenanceKind::Forget, "forget"),
            (MaintenanceKind::Prune, "prune"),
            (MaintenanceKind::Check, "check"),
            (MaintenanceKind::Verify, "verify"),
            (MaintenanceKind::Drill, "drill"),
            (MaintenanceKind::Copy, "copy"),
        ] {
            assert_eq!(kind.as_str(), text);
            assert_eq!(kind.to_string(), text);
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(
                serde_json::from_str::<MaintenanceKind>(&json).unwrap(),
                kind
            );
        }
    }

    #[test]
    fn a_maintenance_result_replaces_the_one_of_its_kind() {
        let at = DateTime::parse_from_rfc3339("2024-06-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut s = DaemonState::new(at);
        for (kind, ok) in [
            (MaintenanceKind::Prune, false),
            (MaintenanceKind::Check, true),
            (MaintenanceKind::Prune, true),
        ] {
            s.maintenance_done(Maintenance {
                kind,
                at,
                ok,
                message: None,
            });
        }
        let kinds: Vec<_> = s.maintenance.iter().map(|m| (m.kind, m.ok)).collect();
        assert_eq!(
            kinds,
            [
                (MaintenanceKind::Check, true),
                (MaintenanceKind::Prune, true)
            ]
        );
    }
}
