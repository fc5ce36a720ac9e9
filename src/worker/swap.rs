//! All-or-nothing volume restores, inside the worker. Each mount is restored
//! into a staging directory on the mount itself (`.stackshot-restore`), so the
//! swap is a handful of `rename`s on one filesystem: no byte is copied twice
//! and the old files are never touched until every mount of the restore has
//! been fully restored. A failure before the swap removes the staging
//! directories and leaves every mount exactly as it was; a failure during the
//! swap moves every renamed entry back.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The staging directory, inside the mount being restored.
pub const STAGING: &str = ".stackshot-restore";
/// Where the old entries wait during the swap, inside the mount.
pub const OLD: &str = ".stackshot-old";

/// A mount to restore through a staging directory.
#[derive(Debug, Clone)]
pub struct Target {
    /// The mount's path in the worker, as in the snapshot (`/volumes/…`).
    pub dir: PathBuf,
}

impl Target {
    /// Checks that `dir` is a restore target under `/volumes/`.
    pub fn new(dir: &str) -> Result<Target> {
        if !dir.starts_with("/volumes/") || dir.split('/').any(|c| c == "..") {
            bail!(
                "refusing to restore into {dir:?}: only mounts under /volumes/ are restore targets"
            );
        }
        Ok(Target {
            dir: PathBuf::from(dir.trim_end_matches('/')),
        })
    }

    /// The directory restic restores into (`--target`).
    pub fn stage(&self) -> PathBuf {
        self.dir.join(STAGING)
    }

    /// Where restic puts the mount's files: the staging directory followed by
    /// the mount's own path, as restic keeps a snapshot's full paths.
    pub fn staged_root(&self) -> PathBuf {
        self.stage()
            .join(self.dir.strip_prefix("/").unwrap_or(&self.dir))
    }

    /// Removes what an interrupted restore left behind and creates an empty
    /// staging directory. Returns a line to report when something was left.
    pub fn prepare(&self) -> Result<Option<String>> {
        let mut left = Vec::new();
        for name in [STAGING, OLD] {
            let p = self.dir.join(name);
            if p.exists() {
                std::fs::remove_dir_all(&p)
                    .with_context(|| format!("cannot remove the leftover {}", p.display()))?;
                left.push(name);
            }
        }
        std::fs::create_dir(self.stage())
            .with_context(|| format!("cannot create {}", self.stage().display()))?;
        Ok((!left.is_empty()).then(|| {
            format!(
                "removed {} left in {} by an interrupted restore",
                left.join(" and "),
                self.dir.display()
            )
        }))
    }

    /// Removes the staging directory (after a failure, or after the swap).
    pub fn discard(&self) -> Result<()> {
        let p = self.stage();
        if p.exists() {
            std::fs::remove_dir_all(&p)
                .with_context(|| format!("cannot remove {}", p.display()))?;
        }
        Ok(())
    }
}

/// A mount whose entries were swapped; `undo` puts the old ones back,
/// `commit` deletes them.
#[derive(Debug)]
pub struct Swapped {
    target: Target,
    moved_out: Vec<std::ffi::OsString>,
    moved_in: Vec<std::ffi::OsString>,
}

/// Moves every entry of the mount (but the staging directory and other mounts
/// nested in it) aside, then the staged entries in. On error, undoes itself.
pub fn swap(target: &Target) -> Result<Swapped> {
    let dir = &target.dir;
    let staged = target.staged_root();
    if !staged.is_dir() {
        bail!(
            "the restore left nothing in {} (is {} in the snapshot?)",
            staged.display(),
            dir.display()
        );
    }
    let old = dir.join(OLD);
    std::fs::create_dir(&old).with_context(|| format!("cannot create {}", old.display()))?;
    let mut s = Swapped {
        target: target.clone(),
        moved_out: Vec::new(),
        moved_in: Vec::new(),
    };
    match s.exchange(&staged, &old) {
        Ok(()) => Ok(s),
        Err(e) => {
            let undo = s.undo();
            match undo {
                Ok(()) => Err(e.context(format!("{} was left as it was", dir.display()))),
                Err(u) => Err(e.context(format!(
                    "and putting the old entries back failed too ({u:#}); they are in {}",
                    old.display()
                ))),
            }
        }
    }
}

impl Swapped {
    fn exchange(&mut self, staged: &Path, old: &Path) -> Result<()> {
        let dir = &self.target.dir;
        let dev = std::fs::metadata(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .dev();
        for entry in
            std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?
        {
            let entry = entry?;
            let name = entry.file_name();
            if name == STAGING || name == OLD {
                continue;
            }
            let meta = std::fs::symlink_metadata(entry.path())?;
            if meta.is_dir() && meta.dev() != dev {
                // Another mount nested in this one: restored on its own.
                continue;
            }
            std::fs::rename(entry.path(), old.join(&name))
                .with_context(|| format!("cannot move {} aside", entry.path().display()))?;
            self.moved_out.push(name);
        }
        for entry in std::fs::read_dir(staged)
            .with_context(|| format!("cannot read {}", staged.display()))?
        {
            let entry = entry?;
            let name = entry.file_name();
            let to = dir.join(&name);
            if std::fs::symlink_metadata(&to).is_ok() {
                bail!("{} is in the way (a nested mount?)", to.display());
            }
            std::fs::rename(entry.path(), &to)
                .with_context(|| format!("cannot move the restored {} in", to.display()))?;
            self.moved_in.push(name);
        }
        Ok(())
    }

    /// Puts the old entries back where they were.
    pub fn undo(&mut self) -> Result<()> {
        let dir = &self.target.dir;
        let staged = self.target.staged_root();
        let old = dir.join(OLD);
        for name in self.moved_in.drain(..).rev() {
            std::fs::rename(dir.join(&name), staged.join(&name))
                .with_context(|| format!("cannot move {} back out", dir.join(&name).display()))?;
        }
        for name in self.moved_out.drain(..).rev() {
            std::fs::rename(old.join(&name), dir.join(&name))
                .with_context(|| format!("cannot put {} back", dir.join(&name).display()))?;
        }
        std::fs::remove_dir(&old).with_context(|| format!("cannot remove {}", old.display()))?;
        Ok(())
    }

    /// Gives the mount's root the restored owner and mode, and deletes the old
    /// entries and the staging directory.
    pub fn commit(self) -> Result<()> {
        let dir = &self.target.dir;
        let meta = std::fs::metadata(self.target.staged_root())?;
        std::os::unix::fs::chown(dir, Some(meta.uid()), Some(meta.gid()))
            .with_context(|| format!("cannot set the owner of {}", dir.display()))?;
        std::fs::set_permissions(dir, meta.permissions())
            .with_context(|| format!("cannot set the mode of {}", dir.display()))?;
        let old = dir.join(OLD);
        std::fs::remove_dir_all(&old)
            .with_context(|| format!("cannot remove {}", old.display()))?;
        self.target.discard()
    }
}

#[cfg(test)]
mod tests;
