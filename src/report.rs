//! The record of one run: what happened, how long each phase took, what was
//! dumped and snapshotted. Feeds the CLI summary (and later metrics and health).

use std::fmt::Write;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backup::window::WindowReport;
use crate::dumps::DumpResult;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Every dump and snapshot done, every container running again.
    Success,
    /// A snapshot was written, but some files could not be read (restic exit 3).
    Partial,
    /// Anything else.
    Failed,
}

/// One phase's duration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// Name: recover, plan, preflight, window, dumps, snapshot, cleanup.
    pub name: String,
    /// Seconds.
    pub seconds: f64,
}

/// One snapshot written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SnapshotReport {
    /// `atomic`, `volumes` or `database`.
    pub mode: String,
    /// Service, for database snapshots.
    pub service: Option<String>,
    /// Snapshot id.
    pub id: Option<String>,
    /// Files new since the parent snapshot.
    pub files_new: u64,
    /// Files changed.
    pub files_changed: u64,
    /// Files unmodified.
    pub files_unmodified: u64,
    /// Bytes added to the repository (before compression).
    pub bytes_added: u64,
    /// Bytes looked at.
    pub bytes_processed: u64,
    /// Seconds.
    pub seconds: f64,
    /// Files restic could not read.
    pub unreadable: Vec<String>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// Run id (start time based).
    pub run_id: String,
    /// Compose project (empty when discovery failed).
    pub project: String,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub finished_at: DateTime<Utc>,
    /// How it ended.
    pub result: Outcome,
    /// Why it did not succeed.
    pub reason: Option<String>,
    /// Phase timings, in order.
    pub phases: Vec<Phase>,
    /// The stop window, if it opened.
    pub window: Option<WindowReport>,
    /// Dumps written.
    pub dumps: Vec<DumpResult>,
    /// Snapshots written.
    pub snapshots: Vec<SnapshotReport>,
    /// Containers started again from the journal of an earlier, interrupted run.
    pub recovered: Vec<String>,
    /// The repository was created by this run.
    pub repository_initialised: bool,
    /// Peak resident memory of the stackshot process so far, in bytes (Linux).
    pub peak_rss_bytes: Option<u64>,
    /// The stop window used: `short` or `full` (empty when none opened).
    #[serde(default)]
    pub window_mode: String,
    /// What went differently from the plan, and why (a database dumped inside
    /// the window, a fallback to the full window).
    #[serde(default)]
    pub notes: Vec<String>,
    /// What retention did after the run (the daemon applies it after a success).
    #[serde(default)]
    pub retention: Option<crate::retention::RetentionReport>,
    /// Receivers (`NOTIFY_URLS`, `PING_URL`) that could not be told; they
    /// never change `result`.
    #[serde(default)]
    pub notify_failures: Vec<crate::notify::NotifyFailure>,
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
            window_mode: String::new(),
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

    /// A readable summary.
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
                if self.window_mode.is_empty() {
                    "full"
                } else {
                    &self.window_mode
                },
                w.seconds,
                w.stopped.len(),
                w.stopped
                    .iter()
                    .map(|t| t.container.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                w.started.len()
            );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmhwm_in_bytes() {
        let status =
            "Name:\tstackshot\nVmPeak:\t  20000 kB\nVmHWM:\t    8812 kB\nVmRSS:\t 8000 kB\n";
        assert_eq!(parse_vmhwm(status), Some(8812 * 1024));
        assert_eq!(parse_vmhwm("Name: x\n"), None);
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
