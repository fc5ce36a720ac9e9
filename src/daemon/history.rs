//! The daemon's finished runs on disk (`runs.json` in `STACKSHOT_STATE_DIR`,
//! on the cache volume), so that the status page and `stackshot status`
//! still show the last runs after the sidecar restarts (an image update,
//! a host reboot). Only the summaries: no secret is in them.
//!
//! Losing the file loses nothing a backup needs: a missing or unreadable
//! file is an empty history (with a warning), and a failed write is a
//! warning, never a failed run.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use super::state::{HISTORY, RunSummary};

/// The file's name in the state directory.
pub const FILE: &str = "runs.json";

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The runs kept in `dir`, newest first, at most [`HISTORY`]; empty when
/// there are none or the file cannot be read.
pub fn load(dir: &Path) -> VecDeque<RunSummary> {
    let file = path(dir);
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return VecDeque::new(),
        Err(e) => {
            tracing::warn!(file = %file.display(), error = %e, "cannot read the runs kept from before; the history starts empty");
            return VecDeque::new();
        }
    };
    match serde_json::from_str::<VecDeque<RunSummary>>(&text) {
        Ok(mut runs) => {
            runs.truncate(HISTORY);
            runs
        }
        Err(e) => {
            tracing::warn!(file = %file.display(), error = %e, "the runs kept from before do not parse; the history starts empty");
            VecDeque::new()
        }
    }
}

/// Writes `runs` to `dir` (a whole new file, renamed over the old one, so a
/// crash leaves the old or the new, never half of one).
pub fn save(dir: &Path, runs: &VecDeque<RunSummary>) {
    let file = path(dir);
    let written = (|| -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!("{FILE}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec(runs)?)?;
        std::fs::rename(&tmp, &file)
    })();
    if let Err(e) = written {
        tracing::warn!(file = %file.display(), error = %e, "cannot keep the finished runs on disk; the status page forgets them at the next restart");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::state::{DaemonState, Trigger};
    use crate::report::{Outcome, RunReport};

    fn finished(result: Outcome, reason: Option<&str>) -> RunReport {
        RunReport::start().finish(result, reason.map(String::from))
    }

    #[test]
    fn the_runs_come_back_after_a_restart_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("stackshot");
        assert!(load(&state_dir).is_empty(), "no file: no runs");
        let mut s = DaemonState::new(chrono::Utc::now());
        s.finish(&finished(Outcome::Success, None), Trigger::Schedule);
        s.finish(
            &finished(Outcome::Failed, Some("cannot log in to postgres")),
            Trigger::Manual,
        );
        save(&state_dir, &s.history);
        let back = load(&state_dir);
        assert_eq!(back, s.history);
        assert_eq!(back[0].result, Outcome::Failed);
        assert_eq!(back[0].reason.as_deref(), Some("cannot log in to postgres"));
        assert!(!state_dir.join(format!("{FILE}.tmp")).exists());
    }

    #[test]
    fn a_spoilt_file_is_an_empty_history_and_a_long_one_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), "{not json").unwrap();
        assert!(load(dir.path()).is_empty());
        let mut s = DaemonState::new(chrono::Utc::now());
        s.finish(&finished(Outcome::Success, None), Trigger::Schedule);
        let many: VecDeque<_> = std::iter::repeat_n(s.history[0].clone(), HISTORY + 5).collect();
        save(dir.path(), &many);
        assert_eq!(load(dir.path()).len(), HISTORY);
    }

    #[test]
    fn a_directory_that_cannot_be_written_is_only_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let blocked = dir.path().join("file-not-dir");
        std::fs::write(&blocked, "x").unwrap();
        // A file where the directory should be: the write fails, quietly.
        save(&blocked, &VecDeque::new());
        assert!(load(&blocked).is_empty());
    }
}
