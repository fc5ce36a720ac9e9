//! The record of one run: what happened, how long each phase took, what was
//! dumped and snapshotted. Feeds the CLI summary (and later metrics and health).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

mod copy;

pub use copy::{CopyOutcome, CopyReport};

use crate::labels::Engine as DbEngine;
use crate::layout::StopWindow;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Every dump and snapshot done, every container running again.
    Success,
    /// A snapshot was written, but some files could not be read (restic exit 3).
    Partial,
    /// Anything else: the run failed.
    Failed,
}

impl Outcome {
    /// The result's name, as the report's JSON, the metrics' `result` label,
    /// `stackshot status` and the status page spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Partial => "partial",
            Outcome::Failed => "failed",
        }
    }
}

/// How long one phase of a run took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// Name: recover, plan, preflight, window, dumps, snapshot, cleanup.
    pub name: String,
    /// How long the phase took, in seconds.
    pub seconds: f64,
}

/// One snapshot a run wrote, with restic's counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SnapshotReport {
    /// What the snapshot holds, such as `atomic` (volumes and dumps together),
    /// `volumes` or `database`.
    pub mode: String,
    /// The compose service of a database snapshot; `None` for the others.
    pub service: Option<String>,
    /// The snapshot's id; `None` when restic wrote none.
    pub id: Option<String>,
    /// Files new since the parent snapshot.
    pub files_new: u64,
    /// Files changed since the parent snapshot.
    pub files_changed: u64,
    /// Files unchanged since the parent snapshot.
    pub files_unmodified: u64,
    /// Bytes added to the repository (before compression).
    pub bytes_added: u64,
    /// How many bytes restic looked at, changed or not.
    pub bytes_processed: u64,
    /// How long the snapshot took, in seconds.
    pub seconds: f64,
    /// Files restic could not read.
    pub unreadable: Vec<String>,
}

/// The report of one run: what happened, how long each phase took, and what was
/// dumped and snapshotted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// Run id (start time based).
    pub run_id: String,
    /// Compose project (empty when discovery failed).
    pub project: String,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When the run finished.
    pub finished_at: DateTime<Utc>,
    /// How the run ended: success, partial or failed.
    pub result: Outcome,
    /// Why it did not succeed.
    pub reason: Option<String>,
    /// Phase timings, in order.
    pub phases: Vec<Phase>,
    /// The stop window, if it opened.
    pub window: Option<WindowReport>,
    /// The dumps the run wrote.
    pub dumps: Vec<DumpResult>,
    /// The snapshots the run wrote.
    pub snapshots: Vec<SnapshotReport>,
    /// Containers started again from the journal of an earlier, interrupted run.
    pub recovered: Vec<String>,
    /// The repository was created by this run.
    pub repository_initialised: bool,
    /// Peak resident memory of the stackshot process so far, in bytes (Linux).
    pub peak_rss_bytes: Option<u64>,
    /// The stop window used, written as its name (`short` or `full`); `None`,
    /// written as an empty string, when none opened.
    #[serde(default, with = "window_mode_name")]
    pub window_mode: Option<StopWindow>,
    /// What went differently from the plan, and why (a database dumped inside
    /// the window, a fallback to the full window).
    #[serde(default)]
    pub notes: Vec<String>,
    /// What retention did after the run (the daemon applies it after a success).
    #[serde(default)]
    pub retention: Option<RetentionReport>,
    /// What the copy to `COPY_REPOSITORY` did after the run (`None`: no
    /// copy repository, or the run did not succeed). It never changes
    /// `result`.
    #[serde(default)]
    pub copy: Option<CopyReport>,
    /// Receivers (`NOTIFY_URLS`, `PING_URL`) that could not be told; they
    /// never change `result`.
    #[serde(default)]
    pub notify_failures: Vec<NotifyFailure>,
    /// The run was refused because the plan has errors (labels that cannot
    /// be understood), before anything was touched: `stackshot backup`
    /// exits 2 then, as `stackshot plan` does.
    #[serde(default)]
    pub plan_refused: bool,
}

/// Peak resident set size (`VmHWM`) from the text of `/proc/<pid>/status`, in bytes.
pub fn parse_vmhwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl RunReport {
    /// A report for a run starting now.
    pub fn start() -> RunReport {
        let now = Utc::now();
        RunReport {
            run_id: now.format("%Y%m%dT%H%M%S%.3fZ").to_string(),
            project: String::new(),
            started_at: now,
            finished_at: now,
            result: Outcome::Failed,
            reason: None,
            phases: vec![],
            window: None,
            dumps: vec![],
            snapshots: vec![],
            recovered: vec![],
            repository_initialised: false,
            peak_rss_bytes: None,
            retention: None,
            copy: None,
            window_mode: None,
            notes: vec![],
            notify_failures: vec![],
            plan_refused: false,
        }
    }

    /// Records a phase that took `seconds`.
    pub fn phase(&mut self, name: &str, since: Instant) {
        self.phases.push(Phase {
            name: name.into(),
            seconds: since.elapsed().as_secs_f64(),
        });
    }

    /// Ends the run with `result`.
    pub fn finish(mut self, result: Outcome, reason: Option<String>) -> RunReport {
        self.result = result;
        self.reason = reason;
        self.finished_at = Utc::now();
        self.peak_rss_bytes = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| parse_vmhwm(&s));
        self
    }

    /// Seconds from start to finish.
    pub fn seconds(&self) -> f64 {
        (self.finished_at - self.started_at).num_milliseconds() as f64 / 1000.0
    }

    /// Bytes dumped in all.
    pub fn dump_bytes(&self) -> u64 {
        self.dumps.iter().map(|d| d.bytes).sum()
    }

    /// The human-readable summary of the run, as `stackshot backup` prints it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let word = match self.result {
            Outcome::Success => "succeeded",
            Outcome::Partial => "PARTIAL",
            Outcome::Failed => "FAILED",
        };
        let _ = writeln!(
            out,
            "Backup of {:?} {word} in {:.1}s",
            self.project,
            self.seconds()
        );
        if let Some(reason) = &self.reason {
            let _ = writeln!(out, "  reason: {reason}");
        }
        if !self.recovered.is_empty() {
            let _ = writeln!(
                out,
                "  started again from an interrupted earlier run: {}",
                self.recovered.join(", ")
            );
        }
        if self.repository_initialised {
            let _ = writeln!(out, "  initialised a new restic repository");
        }
        if let Some(w) = &self.window {
            let _ = writeln!(
                out,
                "  stop window ({}): {:.1}s, stopped {} ({}), started {}",
                self.window_mode.unwrap_or(StopWindow::Full),
                w.seconds,
                w.stopped.len(),
                w.stopped
                    .iter()
                    .map(|t| t.container.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                w.started.len()
            );
            if !w.frozen.is_empty() {
                let names: Vec<&str> = w.frozen.iter().map(|t| t.container.as_str()).collect();
                let _ = writeln!(
                    out,
                    "  frozen instead of stopped (files crash-consistent): {}",
                    names.join(", ")
                );
            }
            if !w.freeze_fell_back.is_empty() {
                let _ = writeln!(
                    out,
                    "  could not freeze, stopped instead: {}",
                    w.freeze_fell_back.join("; ")
                );
            }
            if !w.restart_failed.is_empty() {
                let _ = writeln!(out, "  NOT RUNNING AGAIN: {}", w.restart_failed.join("; "));
            }
            if !w.left_down.is_empty() {
                let _ = writeln!(
                    out,
                    "  left down (backup --no-restart): {}; start them with `docker compose start`",
                    w.left_down.join(", ")
                );
            }
        }
        for n in &self.notes {
            let _ = writeln!(out, "  note: {n}");
        }
        for d in &self.dumps {
            let _ = writeln!(
                out,
                "  dump {:<40} {:>12} bytes  {:.1}s  sha256 {}",
                d.file,
                d.bytes,
                d.seconds,
                &d.sha256[..16]
            );
        }
        for s in &self.snapshots {
            let _ = writeln!(
                out,
                "  snapshot {} ({}{}): {} new, {} changed, {} unmodified files, {} bytes added, {:.1}s",
                s.id.as_deref().unwrap_or("-"),
                s.mode,
                s.service
                    .as_deref()
                    .map(|x| format!(" {x}"))
                    .unwrap_or_default(),
                s.files_new,
                s.files_changed,
                s.files_unmodified,
                s.bytes_added,
                s.seconds
            );
            for u in &s.unreadable {
                let _ = writeln!(out, "    unreadable: {u}");
            }
        }
        if let Some(r) = &self.retention {
            let _ = writeln!(out, "  {}", r.line());
        }
        if let Some(c) = &self.copy {
            let _ = writeln!(out, "  {}", c.line());
        }
        for f in &self.notify_failures {
            let _ = writeln!(
                out,
                "  notification FAILED ({}): {}: {}",
                f.scheme, f.target, f.error
            );
        }
        let phases: Vec<String> = self
            .phases
            .iter()
            .map(|p| format!("{} {:.1}s", p.name, p.seconds))
            .collect();
        if !phases.is_empty() {
            let _ = writeln!(out, "  phases: {}", phases.join(", "));
        }
        out
    }
}

/// How long one container took to stop or start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timed {
    /// The container's name.
    pub container: String,
    /// How long the container took to stop or start, in seconds.
    pub seconds: f64,
}

/// What happened in the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowReport {
    /// Containers stopped, with their stop times.
    pub stopped: Vec<Timed>,
    /// Containers frozen (paused) instead of stopped, with their freeze times.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frozen: Vec<Timed>,
    /// Containers that asked to be frozen but were stopped, each as `name:
    /// why` (the engine could not pause it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub freeze_fell_back: Vec<String>,
    /// Containers started again, with their start times.
    pub started: Vec<Timed>,
    /// Containers labelled for stopping that were not running (they stay stopped).
    pub not_running: Vec<String>,
    /// From the first stop to the last start, in seconds.
    pub seconds: f64,
    /// Why the window could not be opened fully, if it could not.
    pub stop_failed: Option<String>,
    /// Containers that could not be started again, or did not stay up after
    /// their start (the journal keeps them).
    pub restart_failed: Vec<String>,
    /// Containers left down on purpose by `backup --no-restart`: the window's
    /// and, after their dumps, the databases'.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_down: Vec<String>,
}

/// What retention did after a run, as the report's `retention.outcome`
/// spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetentionOutcome {
    /// The policy was applied (`applied`).
    Applied,
    /// Every `KEEP_*` rule is off, so everything was kept (`off`).
    Off,
    /// Retention runs on `PRUNE_CRON`, not after each run (`scheduled`).
    Scheduled,
    /// The repository is append-only (`APPEND_ONLY=true`): retention is the
    /// server's business (`server`).
    Server,
    /// Retention failed (`failed`).
    Failed,
}

impl RetentionOutcome {
    /// The outcome's name, exactly as the JSON report spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionOutcome::Applied => "applied",
            RetentionOutcome::Off => "off",
            RetentionOutcome::Scheduled => "scheduled",
            RetentionOutcome::Server => "server",
            RetentionOutcome::Failed => "failed",
        }
    }
}

impl std::fmt::Display for RetentionOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// What retention did after a run: shown in the run's summary and JSON report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetentionReport {
    /// `applied`, `off` (every `KEEP_*` rule is off), `scheduled` (on
    /// `PRUNE_CRON`, not after each run), `server` (`APPEND_ONLY=true`: the
    /// server's business) or `failed`.
    pub outcome: RetentionOutcome,
    /// Snapshots the policy keeps.
    pub kept: usize,
    /// Short ids of the snapshots removed.
    pub removed: Vec<String>,
    /// The repository was pruned (only when something was removed).
    pub pruned: bool,
    /// Why retention failed, when it did.
    pub error: Option<String>,
}

impl RetentionReport {
    /// Retention is not run after each backup: it runs on `PRUNE_CRON`.
    pub fn scheduled() -> RetentionReport {
        RetentionReport {
            outcome: RetentionOutcome::Scheduled,
            kept: 0,
            removed: vec![],
            pruned: false,
            error: None,
        }
    }

    /// Retention left to the server: the repository is append-only.
    pub fn append_only() -> RetentionReport {
        RetentionReport {
            outcome: RetentionOutcome::Server,
            kept: 0,
            removed: vec![],
            pruned: false,
            error: None,
        }
    }

    /// A failed retention, with the reason.
    pub fn failed(error: String) -> RetentionReport {
        RetentionReport {
            outcome: RetentionOutcome::Failed,
            kept: 0,
            removed: vec![],
            pruned: false,
            error: Some(error),
        }
    }

    /// One line for the summary (`retention: …`).
    pub fn line(&self) -> String {
        match self.outcome {
            RetentionOutcome::Applied => {
                let removed = if self.removed.is_empty() {
                    "removed none".to_string()
                } else {
                    format!(
                        "removed {} ({})",
                        self.removed.len(),
                        self.removed.join(", ")
                    )
                };
                format!(
                    "retention: kept {}, {removed}{}",
                    self.kept,
                    if self.pruned { ", pruned" } else { "" }
                )
            }
            RetentionOutcome::Off => {
                "retention: off (every KEEP_* rule is off); kept everything".into()
            }
            RetentionOutcome::Scheduled => {
                "retention: runs on PRUNE_CRON, not after each backup".into()
            }
            RetentionOutcome::Server => APPEND_ONLY_LINE.into(),
            RetentionOutcome::Failed => format!(
                "retention: FAILED: {}",
                self.error.as_deref().unwrap_or("unknown reason")
            ),
        }
    }
}

/// A receiver that could not be told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyFailure {
    /// Its scheme (`https`, `smtp`, `ping`, …).
    pub scheme: String,
    /// The receiver, secrets masked.
    pub target: String,
    /// Why the receiver could not be told, with the error's causes.
    pub error: String,
}

/// Table (`database.schema.table` for PostgreSQL, `database.table` for
/// MariaDB/MySQL) → rows.
pub type TableRows = BTreeMap<String, i64>;

/// What a dump's stream held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counted {
    /// Table (`database.schema.table`, `database.table`) → rows in the dump.
    pub tables: TableRows,
    /// The stream ended as a whole dump does: after the tool's last comment
    /// (`-- PostgreSQL database [cluster] dump complete`, `-- Dump
    /// completed`), outside any statement, string or `COPY` block.
    pub complete: bool,
}

/// One dump a run wrote: where it is, its size and digest, and the server it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DumpResult {
    /// The compose service of the database container dumped.
    pub service: String,
    /// The database engine dumped.
    pub engine: DbEngine,
    /// Database, or `None` for all.
    pub database: Option<String>,
    /// Path relative to `/databases` (as in `SHA256SUMS`).
    pub file: String,
    /// The size of the dump file in bytes.
    pub bytes: u64,
    /// The dump's SHA-256 in lowercase hex, as in `SHA256SUMS`.
    pub sha256: String,
    /// How long the dump took, in seconds.
    pub seconds: f64,
    /// The database server's version, as it reports it.
    pub server_version: String,
    /// SQLite: `PRAGMA integrity_check` of the copy (a dump is written only
    /// when it says `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity_check: Option<String>,
    /// SQL dumps: the rows of each table, counted in the stream as it was
    /// written (`dumps::rows`); `manifest.json` records them for the drill.
    #[serde(skip)]
    pub counted: Option<Counted>,
}

/// Why an append-only repository gets no retention from stackshot.
pub const APPEND_ONLY_LINE: &str = "retention: skipped: the repository is append-only (APPEND_ONLY=true); forget and prune belong on the server, with a key that may delete";

/// The report's `window_mode` in JSON: the window's name, or an empty string
/// when no window opened (as reports have always written it).
mod window_mode_name {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::layout::StopWindow;

    /// Writes the window's name, or `""` for none.
    pub fn serialize<S: Serializer>(w: &Option<StopWindow>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(w.map_or("", StopWindow::as_str))
    }

    /// Reads a window's name, or `""` for none; any other value is an error
    /// that names the accepted ones.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<StopWindow>, D::Error> {
        let name = String::deserialize(d)?;
        if name.is_empty() {
            return Ok(None);
        }
        StopWindow::from_name(&name).map(Some).ok_or_else(|| {
            D::Error::custom(format!(
                "unknown window_mode {name:?}: short, full or empty"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_is_spelt_as_in_the_report() {
        for o in [Outcome::Success, Outcome::Partial, Outcome::Failed] {
            assert_eq!(
                serde_json::to_value(o).unwrap(),
                serde_json::Value::from(o.as_str())
            );
        }
    }

    #[test]
    fn vmhwm_in_bytes() {
        let status =
            "Name:\tstackshot\nVmPeak:\t  20000 kB\nVmHWM:\t    8812 kB\nVmRSS:\t 8000 kB\n";
        assert_eq!(parse_vmhwm(status), Some(8812 * 1024));
        assert_eq!(parse_vmhwm("Name: x\n"), None);
    }

    /// `window_mode` is written as reports always wrote it: the name, or an
    /// empty string when no window opened; a report without it reads as none.
    #[test]
    fn window_mode_keeps_its_spellings() {
        let mut r = RunReport::start();
        assert_eq!(serde_json::to_value(&r).unwrap()["window_mode"], "");
        for (w, name) in [(StopWindow::Short, "short"), (StopWindow::Full, "full")] {
            r.window_mode = Some(w);
            let v = serde_json::to_value(&r).unwrap();
            assert_eq!(v["window_mode"], name);
            let back: RunReport = serde_json::from_value(v).unwrap();
            assert_eq!(back.window_mode, Some(w));
        }
        let mut v = serde_json::to_value(&r).unwrap();
        v["window_mode"] = "".into();
        let back: RunReport = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(back.window_mode, None);
        v.as_object_mut().unwrap().remove("window_mode");
        let back: RunReport = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(back.window_mode, None);
        v["window_mode"] = "medium".into();
        let e = serde_json::from_value::<RunReport>(v).unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown window_mode \"medium\": short, full or empty"),
            "{e}"
        );
    }

    #[test]
    fn retention_outcomes_keep_their_spellings() {
        let spelled = [
            (RetentionOutcome::Applied, "applied"),
            (RetentionOutcome::Off, "off"),
            (RetentionOutcome::Scheduled, "scheduled"),
            (RetentionOutcome::Server, "server"),
            (RetentionOutcome::Failed, "failed"),
        ];
        for (outcome, text) in spelled {
            assert_eq!(outcome.as_str(), text);
            assert_eq!(outcome.to_string(), text);
            let json = serde_json::to_string(&outcome).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            let back: RetentionOutcome = serde_json::from_str(&json).unwrap();
            assert_eq!(back, outcome);
        }
        // In the report, as the daemon's JSON carries it.
        let json = serde_json::to_value(RetentionReport::append_only()).unwrap();
        assert_eq!(json["outcome"], "server");
    }

    #[test]
    fn summary_names_the_outcome_and_reason() {
        let r = RunReport::start().finish(
            Outcome::Failed,
            Some("service postgres: cannot log in".into()),
        );
        let text = r.render();
        assert!(text.contains("FAILED"), "{text}");
        assert!(
            text.contains("reason: service postgres: cannot log in"),
            "{text}"
        );
    }
}
