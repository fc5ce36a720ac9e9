//! What the copy to the copy repository (`COPY_REPOSITORY`) did: plain data
//! for the run report, notifications, `/metrics` and the status page.

use serde::{Deserialize, Serialize};

use super::RetentionReport;

/// How the copy ended, as the report's `copy.outcome` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CopyOutcome {
    /// Every snapshot to copy is in the copy repository (`copied`); none
    /// may have been new.
    Copied,
    /// The copy runs on `COPY_CRON`, not after each run (`scheduled`).
    Scheduled,
    /// The copy failed (`failed`); the run's own result stands.
    Failed,
}

impl CopyOutcome {
    /// The outcome's name, exactly as the JSON report spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            CopyOutcome::Copied => "copied",
            CopyOutcome::Scheduled => "scheduled",
            CopyOutcome::Failed => "failed",
        }
    }
}

/// What the copy did: after a run, or on `COPY_CRON`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CopyReport {
    /// `copied`, `scheduled` or `failed`.
    pub outcome: CopyOutcome,
    /// The copy repository, credentials masked.
    pub repository: String,
    /// Short ids, in the primary repository, of the snapshots copied.
    pub copied: Vec<String>,
    /// The copy repository was created by this copy (`restic init
    /// --copy-chunker-params`).
    #[serde(default)]
    pub initialised: bool,
    /// What the copy's retention (`COPY_KEEP_*`) did, once the copy is done.
    #[serde(default)]
    pub retention: Option<RetentionReport>,
    /// How long the copy and its retention took.
    pub seconds: f64,
    /// Why the copy failed, when it did: one line, secrets hidden.
    #[serde(default)]
    pub error: Option<String>,
}

impl CopyReport {
    /// The copy runs on `COPY_CRON`: nothing was copied after this run.
    pub fn scheduled(repository: String) -> CopyReport {
        CopyReport {
            outcome: CopyOutcome::Scheduled,
            repository,
            copied: vec![],
            initialised: false,
            retention: None,
            seconds: 0.0,
            error: None,
        }
    }

    /// A failed copy, with the reason.
    pub fn failed(repository: String, error: String, seconds: f64) -> CopyReport {
        CopyReport {
            outcome: CopyOutcome::Failed,
            repository,
            copied: vec![],
            initialised: false,
            retention: None,
            seconds,
            error: Some(error),
        }
    }

    /// Whether the copy ran and something in it failed: the copy, or the
    /// copy's retention.
    pub fn failed_anything(&self) -> bool {
        self.outcome == CopyOutcome::Failed
            || self
                .retention
                .as_ref()
                .is_some_and(|r| r.outcome == super::RetentionOutcome::Failed)
    }

    /// Whether the copy ran (it was not left to `COPY_CRON`).
    pub fn ran(&self) -> bool {
        self.outcome != CopyOutcome::Scheduled
    }

    /// One line for the summary and notifications (`copy to …: …`).
    pub fn line(&self) -> String {
        let head = format!("copy to {}", self.repository);
        match self.outcome {
            CopyOutcome::Scheduled => format!("{head}: runs on COPY_CRON, not after each run"),
            CopyOutcome::Failed => format!(
                "{head}: FAILED: {}",
                self.error.as_deref().unwrap_or("unknown reason")
            ),
            CopyOutcome::Copied => {
                let what = match self.copied.len() {
                    0 => "nothing new to copy".to_string(),
                    n => format!("copied {n} snapshot(s) ({})", self.copied.join(", ")),
                };
                let created = if self.initialised {
                    " (repository created)"
                } else {
                    ""
                };
                let retention = self
                    .retention
                    .as_ref()
                    .map(|r| format!("; {}", r.line()))
                    .unwrap_or_default();
                format!("{head}: {what}{created} in {:.1}s{retention}", self.seconds)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copied(copied: &[&str]) -> CopyReport {
        CopyReport {
            outcome: CopyOutcome::Copied,
            repository: "s3:http://s3:8333/offsite".into(),
            copied: copied.iter().map(|s| s.to_string()).collect(),
            initialised: false,
            retention: None,
            seconds: 1.25,
            error: None,
        }
    }

    #[test]
    fn lines_say_what_the_copy_did() {
        assert_eq!(
            copied(&["1a2b3c4d"]).line(),
            "copy to s3:http://s3:8333/offsite: copied 1 snapshot(s) (1a2b3c4d) in 1.2s"
        );
        assert_eq!(
            copied(&[]).line(),
            "copy to s3:http://s3:8333/offsite: nothing new to copy in 1.2s"
        );
        let failed = CopyReport::failed("/copy".into(), "cannot connect".into(), 0.5);
        assert_eq!(failed.line(), "copy to /copy: FAILED: cannot connect");
        assert!(failed.failed_anything() && failed.ran());
        let scheduled = CopyReport::scheduled("/copy".into());
        assert!(!scheduled.failed_anything() && !scheduled.ran());
    }

    #[test]
    fn a_failed_retention_of_the_copy_is_a_failure_of_the_copy() {
        let mut r = copied(&["1a2b3c4d"]);
        assert!(!r.failed_anything());
        r.retention = Some(RetentionReport::failed("locked".into()));
        assert!(r.failed_anything());
        assert!(
            r.line().ends_with("; retention: FAILED: locked"),
            "{}",
            r.line()
        );
    }

    #[test]
    fn outcomes_keep_their_spellings() {
        for o in [
            CopyOutcome::Copied,
            CopyOutcome::Scheduled,
            CopyOutcome::Failed,
        ] {
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
    }
}
