//! Which repository a run writes to: the id of the repository the last
//! successful run wrote to at `RESTIC_REPOSITORY` is remembered in the state
//! directory, so that an empty mount point (a NAS that did not mount) is not
//! quietly given a fresh repository, and another repository found at the
//! same place is not quietly written to. `ACCEPT_NEW_REPOSITORY=true` accepts
//! a new one for a run.
//!
//! [`decide`] is the pure rule; [`Store`] reads and writes the file
//! (`$STACKSHOT_STATE_DIR/repositories.json`).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The variable that accepts a new repository for a run.
pub const ACCEPT_NEW: &str = "ACCEPT_NEW_REPOSITORY";

/// What a run does with the repository at `RESTIC_REPOSITORY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Write to the repository found there, which has this id.
    Use(String),
    /// There is none: create one with `restic init`.
    Init,
    /// Refuse the run, with this one-line reason.
    Refuse(String),
}

/// restic's short form of an id (its first 8 characters).
fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// Decides, for the repository shown as `shown` (masked), from the id the
/// last successful run wrote to there (`remembered`), the id of the
/// repository found there now (`found`, `None`: no repository) and
/// `ACCEPT_NEW_REPOSITORY` (`accept_new`). Pure.
///
/// With nothing remembered (the first run, or a location never backed up
/// to), the repository found is used and a missing one is created.
pub fn decide(
    shown: &str,
    remembered: Option<&str>,
    found: Option<&str>,
    accept_new: bool,
) -> Decision {
    match (remembered, found) {
        (None, Some(found)) => Decision::Use(found.to_string()),
        (Some(remembered), Some(found)) if accept_new || remembered == found => {
            Decision::Use(found.to_string())
        }
        (None, None) => Decision::Init,
        (Some(_), None) if accept_new => Decision::Init,
        (Some(remembered), Some(found)) => Decision::Refuse(format!(
            "the restic repository at {shown} has id {}, but the last successful run wrote to repository {} there; \
             nothing was stopped. If it was replaced on purpose, run once with {ACCEPT_NEW}=true",
            short(found),
            short(remembered)
        )),
        (Some(remembered), None) => Decision::Refuse(format!(
            "no restic repository at {shown}, where the last successful run wrote to repository {} (is the storage mounted?); \
             nothing was stopped or initialised. To start a new repository there, run once with {ACCEPT_NEW}=true",
            short(remembered)
        )),
    }
}

/// The key a repository is remembered under: its location, masked (no
/// password is written to the state directory), without trailing slashes.
pub fn location(shown: &str) -> String {
    let trimmed = shown.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        shown.trim().to_string()
    } else {
        trimmed.to_string()
    }
}

/// A repository a successful run wrote to: its id and that run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remembered {
    /// The repository's id (`restic cat config`).
    pub id: String,
    /// The run that last wrote to it successfully.
    pub run_id: String,
}

/// The file's content: repositories by [`location`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct StoreFile {
    repositories: BTreeMap<String, Remembered>,
}

/// The remembered repositories, in `dir/repositories.json`.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    /// The file in the state directory `dir`.
    pub fn in_dir(dir: &Path) -> Store {
        Store {
            path: dir.join("repositories.json"),
        }
    }

    /// The path of the file that remembers the repositories.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<StoreFile> {
        match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is unreadable; delete it to start over (the next run then trusts the repository it finds)",
                    self.path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StoreFile::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", self.path.display())),
        }
    }

    /// The id remembered for `location`.
    pub fn get(&self, location: &str) -> Result<Option<Remembered>> {
        Ok(self.read()?.repositories.remove(location))
    }

    /// Remembers `id` for `location`: temp file, fsync, rename.
    pub fn set(&self, location: &str, id: &str, run_id: &str) -> Result<()> {
        let mut content = self.read().unwrap_or_default();
        content.repositories.insert(
            location.to_string(),
            Remembered {
                id: id.to_string(),
                run_id: run_id.to_string(),
            },
        );
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let tmp = self.path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(&content)?)?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)
        };
        write().with_context(|| format!("cannot write {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "5d8c6b5a2f0e4e4c9b1f3a7e2d6c8b0a1f2e3d4c5b6a7980a1b2c3d4e5f60718";
    const B: &str = "c0ffee00aaaabbbbccccddddeeeeffff00001111222233334444555566667777";

    fn refusal(d: Decision) -> String {
        match d {
            Decision::Refuse(line) => line,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn the_first_run_uses_or_creates_the_repository() {
        assert_eq!(
            decide("/repository", None, Some(A), false),
            Decision::Use(A.into())
        );
        assert_eq!(decide("/repository", None, None, false), Decision::Init);
    }

    #[test]
    fn the_remembered_repository_is_used() {
        assert_eq!(
            decide("/repository", Some(A), Some(A), false),
            Decision::Use(A.into())
        );
        assert_eq!(
            decide("/repository", Some(A), Some(A), true),
            Decision::Use(A.into())
        );
    }

    #[test]
    fn another_repository_is_refused_in_one_line() {
        let line = refusal(decide("/repository", Some(A), Some(B), false));
        assert!(!line.contains('\n'), "{line}");
        for part in [
            "/repository",
            "c0ffee00",
            "5d8c6b5a",
            "ACCEPT_NEW_REPOSITORY=true",
        ] {
            assert!(line.contains(part), "{part:?} missing: {line}");
        }
        assert!(line.contains("nothing was stopped"), "{line}");
    }

    #[test]
    fn a_missing_repository_is_refused_not_initialised() {
        let line = refusal(decide("/mnt/nas/restic", Some(A), None, false));
        assert!(!line.contains('\n'), "{line}");
        for part in [
            "no restic repository at /mnt/nas/restic",
            "5d8c6b5a",
            "is the storage mounted?",
            "ACCEPT_NEW_REPOSITORY=true",
            "nothing was stopped or initialised",
        ] {
            assert!(line.contains(part), "{part:?} missing: {line}");
        }
    }

    #[test]
    fn the_explicit_setting_accepts_a_new_one() {
        assert_eq!(
            decide("/repository", Some(A), Some(B), true),
            Decision::Use(B.into())
        );
        assert_eq!(decide("/repository", Some(A), None, true), Decision::Init);
    }

    #[test]
    fn locations_ignore_trailing_slashes() {
        assert_eq!(location("/repository/"), "/repository");
        assert_eq!(location("/repository"), "/repository");
        assert_eq!(location("s3:https://h/bucket/"), "s3:https://h/bucket");
        assert_eq!(location("/"), "/");
    }

    #[test]
    fn the_store_remembers_per_location() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::in_dir(&dir.path().join("state"));
        assert_eq!(store.get("/repository").unwrap(), None);
        store.set("/repository", A, "r1").unwrap();
        store.set("/other", B, "r2").unwrap();
        assert_eq!(
            store.get("/repository").unwrap(),
            Some(Remembered {
                id: A.into(),
                run_id: "r1".into()
            })
        );
        store.set("/repository", B, "r3").unwrap();
        assert_eq!(store.get("/repository").unwrap().unwrap().id, B);
        assert_eq!(store.get("/other").unwrap().unwrap().run_id, "r2");
    }

    #[test]
    fn a_corrupt_store_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::in_dir(dir.path());
        std::fs::write(store.path(), b"{not json").unwrap();
        let e = format!("{:#}", store.get("/repository").unwrap_err());
        assert!(e.contains("delete it to start over"), "{e}");
    }
}
