//! The stop-window journal: a small file on a volume naming every container a
//! run has stopped, written and fsynced *before* each stop. A journal left
//! behind means a run died inside its window; the next start-up restarts
//! those containers before doing anything else.
//!
//! It also keeps what `stackshot backup --no-restart` left down on purpose
//! ([`State::left_down`]): those are never started by stackshot, and the
//! record stays until they run again.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// One container a run stopped (or was about to stop).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The container's full id, by which it is stopped and started.
    pub id: String,
    /// Container name, for messages.
    pub name: String,
    /// Stop wave; restart goes in reverse wave order.
    pub wave: usize,
    /// The ids of the entries it starts after (the plan's
    /// [`StopEntry::after`](crate::plan::StopEntry::after)). Absent in a journal
    /// written before it existed: then it starts after every later wave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Vec<String>>,
    /// Frozen (paused with the cgroup freezer) rather than stopped: it is
    /// thawed, not started, when the window closes or a later start-up
    /// recovers it. Absent (false) in a journal written before freeze mode.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub frozen: bool,
}

/// The journal file's content: the containers a run stopped or left down,
/// and its window's opening time and limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The run that wrote it.
    pub run_id: String,
    /// Containers stopped (or about to be).
    pub stopped: Vec<Entry>,
    /// Containers a `backup --no-restart` left down on purpose (run `run_id`
    /// of that backup): never started again by stackshot, reported by
    /// `stackshot status` and at start-up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_down: Vec<Entry>,
    /// The run that left them down, when it is not `run_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_down_by: Option<String>,
    /// When the window opened (Unix seconds), for the open window's age.
    /// Absent in a journal written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened: Option<i64>,
    /// The window's limit in seconds (`WINDOW_LIMIT`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// The window was closed, but what `stopped` names could not be started
    /// (or did not stay up): the next run or daemon start tries again, and
    /// no watcher takes it for a window whose owner died.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub closed: bool,
}

impl State {
    /// How long the window this journal records has been open at `now`
    /// (Unix seconds), and its limit: `None` when no container is stopped,
    /// or the window was [`closed`](Self::closed).
    /// A journal without an opening time counts from `written` (its file's
    /// modification time).
    pub fn open_for(&self, now: i64, written: Option<i64>) -> Option<(i64, Option<u64>)> {
        if self.stopped.is_empty() || self.closed {
            return None;
        }
        let opened = self.opened.or(written)?;
        Some((now.saturating_sub(opened).max(0), self.limit))
    }

    /// What a `backup --no-restart` left down, as `(run, entries)`.
    pub fn left_down_record(&self) -> (Option<String>, Vec<Entry>) {
        if self.left_down.is_empty() {
            return (None, vec![]);
        }
        let by = self.left_down_by.clone().unwrap_or(self.run_id.clone());
        (Some(by), self.left_down.clone())
    }
}

/// Held exclusively while a backup or restore may stop containers, and
/// shared while a maintenance task (prune, check, verify, drill) runs: per
/// state directory, across processes (the daemon and any `docker exec`).
/// Released when dropped, or when the process dies.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

/// The stop-window journal file in the state directory, and the run lock next to it.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
}

impl Journal {
    /// A journal at `dir/window-journal.json`.
    pub fn in_dir(dir: &Path) -> Journal {
        Journal {
            path: dir.join("window-journal.json"),
        }
    }

    /// The journal file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the run lock exclusively (a backup or restore), or says who
    /// holds it.
    pub fn lock(&self) -> Result<RunLock> {
        let (file, path) = self.lock_file()?;
        match file.try_lock() {
            Ok(()) => Ok(RunLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "another stackshot backup, restore, verify or drill is running in this container (it holds {}); wait for it to finish",
                path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }

    /// Takes the run lock shared, for work that stops nothing and may run
    /// beside more of its kind (verify, drill, prune, check, and the
    /// recovery of a window whose owner died; restic's own locks still keep
    /// a check or prune from running beside a reader), never beside a backup
    /// or restore (they hold it exclusively). Says who holds it when it cannot.
    pub fn lock_shared(&self) -> Result<RunLock> {
        let (file, path) = self.lock_file()?;
        match file.try_lock_shared() {
            Ok(()) => Ok(RunLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "a stackshot backup or restore is running in this container (it holds {}); wait for it to finish",
                path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }

    fn lock_file(&self) -> Result<(File, PathBuf)> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join("run.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok((file, path))
    }

    /// The journal left by an earlier run, if any.
    pub fn read(&self) -> Result<Option<State>> {
        match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .with_context(|| format!("journal {} is unreadable; inspect it, start its containers by hand and delete it", self.path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read journal {}", self.path.display())),
        }
    }

    /// Durably replaces the journal with `state`: temp file, fsync, rename, fsync the directory.
    pub fn write(&self, state: &State) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let tmp = self.path.with_extension("json.tmp");
        let mut f =
            File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(&serde_json::to_vec_pretty(state)?)?;
        f.sync_all()?;
        fs::rename(&tmp, &self.path)
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        sync_dir(dir)
    }

    /// What an earlier `backup --no-restart` left down, as `(run, entries)`:
    /// nothing when there is no journal or it cannot be read.
    pub fn left_down(&self) -> (Option<String>, Vec<Entry>) {
        self.read()
            .ok()
            .flatten()
            .unwrap_or_default()
            .left_down_record()
    }

    /// The open window's age in seconds and its limit, when the journal
    /// names stopped containers; `None` when it does not, or cannot be read.
    pub fn open_window(&self) -> Option<(i64, Option<u64>)> {
        let state = self.read().ok().flatten()?;
        let written = fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64);
        state.open_for(chrono::Utc::now().timestamp(), written)
    }

    /// Closes a run's journal once everything it stopped runs again: removed,
    /// or, while `left_down` names containers a `backup --no-restart` left
    /// down, rewritten with only them.
    pub fn close(&self, run_id: &str, by: Option<String>, left_down: Vec<Entry>) -> Result<()> {
        if left_down.is_empty() {
            return self.clear();
        }
        self.write(&State {
            run_id: run_id.to_string(),
            stopped: vec![],
            left_down,
            left_down_by: by,
            ..State::default()
        })
    }

    /// Removes the journal (all containers are running again).
    pub fn clear(&self) -> Result<()> {
        match fs::remove_file(&self.path) {
            Ok(()) => sync_dir(self.path.parent().unwrap_or(Path::new("."))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => {
                Err(e).with_context(|| format!("cannot remove journal {}", self.path.display()))
            }
        }
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync directory {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_clear() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::in_dir(&dir.path().join("state"));
        assert_eq!(j.read().unwrap(), None);
        let s = State {
            run_id: "r1".into(),
            stopped: vec![Entry {
                id: "abc".into(),
                name: "app".into(),
                wave: 1,
                after: Some(vec!["def".into()]),
                frozen: false,
            }],
            ..State::default()
        };
        j.write(&s).unwrap();
        assert_eq!(j.read().unwrap(), Some(s));
        // A journal written before `after` existed still reads.
        std::fs::write(
            j.path(),
            r#"{"run_id":"r0","stopped":[{"id":"abc","name":"app","wave":1}]}"#,
        )
        .unwrap();
        assert_eq!(j.read().unwrap().unwrap().stopped[0].after, None);
        j.clear().unwrap();
        assert_eq!(j.read().unwrap(), None);
        j.clear().unwrap();
    }

    #[test]
    fn what_a_final_backup_left_down_outlives_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::in_dir(dir.path());
        assert_eq!(j.left_down(), (None, vec![]));
        let app = Entry {
            id: "abc".into(),
            name: "app".into(),
            wave: 0,
            after: None,
            frozen: false,
        };
        j.close("r1", None, vec![app.clone()]).unwrap();
        assert_eq!(j.left_down(), (Some("r1".into()), vec![app.clone()]));
        // A later run closes its window with the record kept, naming r1.
        let (by, left) = j.left_down();
        j.close("r2", by, left).unwrap();
        let s = j.read().unwrap().unwrap();
        assert!(s.stopped.is_empty());
        assert_eq!(j.left_down(), (Some("r1".into()), vec![app]));
        // Nothing left down: the journal is gone.
        j.close("r3", None, vec![]).unwrap();
        assert_eq!(j.read().unwrap(), None);
    }

    #[test]
    fn one_lock_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::in_dir(dir.path());
        let held = j.lock().unwrap();
        let e = j.lock().unwrap_err().to_string();
        assert!(
            e.starts_with("another stackshot backup, restore, verify or drill is running"),
            "{e}"
        );
        drop(held);
        j.lock().unwrap();
    }

    #[test]
    fn corrupt_journal_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::in_dir(dir.path());
        std::fs::write(j.path(), b"{not json").unwrap();
        let e = format!("{:#}", j.read().unwrap_err());
        assert!(e.contains("start its containers by hand"), "{e}");
    }
}
