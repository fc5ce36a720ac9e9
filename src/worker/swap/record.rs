//! The swap record (`.stackshot-swap`): a small JSON file in each mount that
//! says how far its swap got, written (atomically, synced) before each phase.
//! A rerun reads the records of every mount it restores and decides, without
//! guessing, whether `.stackshot-old` is the only copy of the old files (roll
//! back, or finish forward) or a leftover of a swap that completed (remove it).
//! The decision ([`decide`]) is pure.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::{RECORD, RECORD_TMP};

/// How far one mount's swap got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// The mount's own entries are being moved into `.stackshot-old`: the
    /// mount holds only old entries (some of them), `.stackshot-old` the rest.
    MovingOut,
    /// Every old entry is in `.stackshot-old`; the restored ones are being
    /// moved in from the staging directory.
    MovingIn,
    /// Every mount of the restore holds its restored files: what is left in
    /// `.stackshot-old` is no longer needed.
    Committed,
}

/// One mount's swap record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The restore it belongs to (a time and the worker's pid).
    pub restore: String,
    /// How far the swap got.
    pub phase: Phase,
    /// Every mount the restore swaps, this one included.
    pub mounts: Vec<String>,
    /// The mount root's owner before the swap, put back on a roll back.
    pub uid: u32,
    /// The mount root's group before the swap, put back on a roll back.
    pub gid: u32,
    /// The mount root's mode before the swap, put back on a roll back.
    pub mode: u32,
}

impl Record {
    /// The record in `dir`, if there is one.
    pub fn read(dir: &Path) -> Result<Option<Record>> {
        let p = dir.join(RECORD);
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", p.display())),
        };
        serde_json::from_str(&text).map(Some).with_context(|| {
            format!(
                "{} is not a swap record stackshot wrote; it tells how far an interrupted restore got: \
                 look at {} and its .stackshot-old by hand",
                p.display(),
                dir.display()
            )
        })
    }

    /// Writes the record into `dir`: a temporary file, synced, renamed over
    /// the record, and the directory synced, so that a crash leaves either
    /// the old record or the new one.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let tmp = dir.join(RECORD_TMP);
        let mut f = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(&serde_json::to_vec(self).expect("a record serialises"))
            .and_then(|()| f.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, dir.join(RECORD))
            .with_context(|| format!("cannot write {}", dir.join(RECORD).display()))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot sync {}", dir.display()))
    }
}

/// What a mount holds when a restore starts.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The mount's root directory, as a path in the worker.
    pub dir: String,
    /// The swap record found in the mount, if there is one.
    pub record: Option<Record>,
    /// Whether `.stackshot-old` is there.
    pub old: bool,
    /// Whether `.stackshot-old` is there and empty.
    pub old_empty: bool,
    /// Whether the staging directory is there.
    pub staging: bool,
}

/// What to do with one mount before a restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// An earlier restore left nothing in the mount: nothing to do.
    Nothing,
    /// Only leftovers that hold no old file (a staging directory, an empty
    /// `.stackshot-old`): removed.
    Tidy,
    /// A swap interrupted before its restore committed: put the old entries back.
    RollBack,
    /// A swap interrupted after its restore committed: finish it.
    Finish,
    /// A swap that completed: its `.stackshot-old` is a stale leftover, removed.
    Clean,
    /// Cannot tell whether `.stackshot-old` is the only copy: touch nothing.
    Refuse(String),
}

/// Decides, for each mount `seen` (the mounts of this restore), what to do
/// with what an earlier restore left. A restore's swap is finished when one
/// of its mounts is committed, rolled back otherwise; when it swapped mounts
/// this restore cannot see, and none of the seen ones committed, nothing is
/// touched. Pure.
pub fn decide(seen: &[Seen]) -> Vec<Action> {
    seen.iter()
        .map(|s| {
            let Some(r) = &s.record else {
                return if s.old && !s.old_empty {
                    Action::Refuse(format!(
                        "{dir}/.stackshot-old exists without a swap record (left by an older stackshot, or by hand): \
                         it may be the only copy of {dir}'s files from before an interrupted restore; \
                         move its entries back into {dir} (or remove it if {dir} is complete), then restore again",
                        dir = s.dir
                    ))
                } else if s.old || s.staging {
                    Action::Tidy
                } else {
                    Action::Nothing
                };
            };
            let group: Vec<&Seen> = seen
                .iter()
                .filter(|o| o.record.as_ref().is_some_and(|o| o.restore == r.restore))
                .collect();
            let committed = group
                .iter()
                .any(|o| o.record.as_ref().is_some_and(|o| o.phase == Phase::Committed));
            let unseen: Vec<&str> = r
                .mounts
                .iter()
                .filter(|m| !seen.iter().any(|s| &&s.dir == m))
                .map(String::as_str)
                .collect();
            if r.phase == Phase::Committed {
                Action::Clean
            } else if committed {
                Action::Finish
            } else if !unseen.is_empty() {
                Action::Refuse(format!(
                    "the restore {} was interrupted while swapping {}; this restore attaches only {}: \
                     restore all of {} again (with the same --service choice) to finish or roll it back",
                    r.restore,
                    s.dir,
                    seen.iter().map(|s| s.dir.as_str()).collect::<Vec<_>>().join(", "),
                    r.mounts.join(", ")
                ))
            } else {
                Action::RollBack
            }
        })
        .collect()
}
