//! All-or-nothing volume restores, inside the worker. Each mount is restored
//! into a staging directory on the mount itself (`.stackshot-restore`), so the
//! swap is a handful of `rename`s on one filesystem: no byte is copied twice
//! and the old files are never touched until every mount of the restore has
//! been fully restored.
//!
//! The swap of each mount moves its entries aside into `.stackshot-old`, then
//! the restored ones in. Before each phase a swap record (`.stackshot-swap`,
//! see [`record`]) says how far it got, so that a swap interrupted anywhere
//! (an error, a killed worker, a power cut) is recovered by the next restore
//! of the same mounts: rolled back when no mount of it committed, finished
//! forward when one did. Only then is anything removed: a `.stackshot-old` is
//! deleted only when its record says the restore committed (and the log says
//! so); one without a record is never touched. The restore commits only once
//! every mount holds its restored files, so mounts are never left half done.
//! None of these names is ever backed up ([`backup_excludes`]).

use std::ffi::OsString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use crate::layout::VOLUMES_DIR;

pub mod record;

use record::{Action, Phase, Record, Seen};

/// The staging directory, inside the mount being restored.
pub const STAGING: &str = ".stackshot-restore";
/// Where the old entries wait during the swap, inside the mount.
pub const OLD: &str = ".stackshot-old";
/// The swap record, inside the mount.
pub const RECORD: &str = ".stackshot-swap";
/// The swap record while it is written.
pub const RECORD_TMP: &str = ".stackshot-swap.tmp";
/// Every name the swap keeps in a mount: never swapped, never backed up.
pub const NAMES: [&str; 4] = [STAGING, OLD, RECORD, RECORD_TMP];

/// The paths a backup leaves out for a mount at `mount` (its path in the
/// snapshot): the swap's own entries at its root. Pure.
pub fn backup_excludes(mount: &str) -> Vec<String> {
    let mount = mount.trim_end_matches('/');
    NAMES.iter().map(|n| format!("{mount}/{n}")).collect()
}

/// A mount to restore through a staging directory.
#[derive(Debug, Clone)]
pub struct Target {
    /// The mount's path in the worker, as in the snapshot (`/volumes/…`).
    pub dir: PathBuf,
}

impl Target {
    /// Checks that `dir` is a restore target under `/volumes/`.
    pub fn new(dir: &str) -> Result<Target> {
        let under_volumes = dir
            .strip_prefix(VOLUMES_DIR)
            .is_some_and(|rest| rest.starts_with('/'));
        if !under_volumes || dir.split('/').any(|c| c == "..") {
            bail!(
                "refusing to restore into {dir:?}: only mounts under {VOLUMES_DIR}/ are restore targets"
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

    fn old(&self) -> PathBuf {
        self.dir.join(OLD)
    }

    fn name(&self) -> String {
        self.dir.display().to_string()
    }

    /// Removes the staging directory after a failed restore, unless a swap
    /// record or `.stackshot-old` is there: an unfinished swap needs it to
    /// be finished, and one the restore refused to touch stays as it is.
    pub fn discard(&self) -> Result<()> {
        let p = self.stage();
        if p.exists() && !self.dir.join(RECORD).exists() && !self.old().exists() {
            std::fs::remove_dir_all(&p)
                .with_context(|| format!("cannot remove {}", p.display()))?;
        }
        Ok(())
    }
}

/// A hook run before each change, with its description.
type Hook<'h> = Box<dyn FnMut(&str) -> Result<()> + 'h>;

/// Every change the swap makes goes through here. A test's hook runs before
/// each one, to fail there or to stop there as a crash would.
pub struct Fs<'h> {
    hook: Hook<'h>,
}

impl Default for Fs<'_> {
    fn default() -> Self {
        Fs::with_hook(|_| Ok(()))
    }
}

impl<'h> Fs<'h> {
    /// Runs `hook` with a description before each change.
    pub fn with_hook(hook: impl FnMut(&str) -> Result<()> + 'h) -> Self {
        Fs {
            hook: Box::new(hook),
        }
    }

    fn step(&mut self, what: String) -> Result<()> {
        (self.hook)(&what)
    }

    fn rename(&mut self, from: &Path, to: &Path) -> Result<()> {
        self.step(format!("rename {} {}", from.display(), to.display()))?;
        std::fs::rename(from, to)
            .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))
    }

    fn record(&mut self, r: &Record, dir: &Path) -> Result<()> {
        self.step(format!("record {:?} {}", r.phase, dir.display()))?;
        r.write(dir)
    }

    fn create_dir(&mut self, p: &Path) -> Result<()> {
        self.step(format!("mkdir {}", p.display()))?;
        std::fs::create_dir_all(p).with_context(|| format!("cannot create {}", p.display()))
    }

    fn remove_all(&mut self, p: &Path) -> Result<()> {
        if std::fs::symlink_metadata(p).is_err() {
            return Ok(());
        }
        self.step(format!("rm -r {}", p.display()))?;
        std::fs::remove_dir_all(p).with_context(|| format!("cannot remove {}", p.display()))
    }

    fn remove_empty(&mut self, p: &Path) -> Result<()> {
        self.step(format!("rmdir {}", p.display()))?;
        std::fs::remove_dir(p).with_context(|| format!("cannot remove {}", p.display()))
    }

    fn remove_file(&mut self, p: &Path) -> Result<()> {
        if std::fs::symlink_metadata(p).is_err() {
            return Ok(());
        }
        self.step(format!("rm {}", p.display()))?;
        std::fs::remove_file(p).with_context(|| format!("cannot remove {}", p.display()))
    }

    /// Gives `p` the owner and mode, each only where it differs. In a user
    /// namespace (rootless Podman or Docker) a file owned by an id outside
    /// the namespace's map shows as the overflow id (65534), which no
    /// `chown` there may set: a snapshot taken there may hold it.
    fn owner(&mut self, p: &Path, uid: u32, gid: u32, mode: u32) -> Result<()> {
        self.step(format!("chown {} {uid}:{gid} {mode:o}", p.display()))?;
        let now =
            std::fs::symlink_metadata(p).with_context(|| format!("cannot read {}", p.display()))?;
        if (now.uid(), now.gid()) != (uid, gid)
            && let Err(e) = std::os::unix::fs::chown(p, Some(uid), Some(gid))
        {
            // The overflow id stands for "an owner outside the user
            // namespace's map" where the snapshot was taken (rootless
            // Podman or Docker): the real owner is unknown, and no chown
            // in such a namespace may set it. Only then does that part
            // keep its owner, and the worker says so.
            let (overflow_uid, overflow_gid) = overflow_ids();
            let set_uid = (uid != overflow_uid).then_some(uid);
            let set_gid = (gid != overflow_gid).then_some(gid);
            let retried = (set_uid.is_none() || set_gid.is_none())
                && std::os::unix::fs::chown(p, set_uid, set_gid).is_ok();
            if !retried {
                return Err(e).with_context(|| {
                    format!(
                        "cannot set the owner of {} to {uid}:{gid} (it is {}:{})",
                        p.display(),
                        now.uid(),
                        now.gid()
                    )
                });
            }
            eprintln!(
                "stackshot worker: {}: the snapshot's owner {uid}:{gid} holds the overflow id of an unmapped owner, which cannot be set here ({e}); the rest of it was set",
                p.display()
            );
        }
        if now.mode() & 0o7777 != mode {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
                .with_context(|| format!("cannot set the mode of {}", p.display()))?;
        }
        Ok(())
    }
}

/// The kernel's overflow user and group ids (65534 unless set otherwise):
/// what a file owned by an id outside the user namespace's map shows.
fn overflow_ids() -> (u32, u32) {
    let read = |name: &str| {
        std::fs::read_to_string(format!("/proc/sys/kernel/{name}"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(65534)
    };
    (read("overflowuid"), read("overflowgid"))
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Result<Vec<OsString>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        out.push(entry?.file_name());
    }
    out.sort();
    Ok(out)
}

/// The mount's own entries: not the swap's, not another mount nested in it
/// (restored on its own).
fn own_entries(dir: &Path) -> Result<Vec<OsString>> {
    let dev = std::fs::metadata(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .dev();
    let mut out = Vec::new();
    for name in names(dir)? {
        if NAMES.iter().any(|n| name == *n) {
            continue;
        }
        let meta = std::fs::symlink_metadata(dir.join(&name))?;
        if meta.is_dir() && meta.dev() != dev {
            continue;
        }
        out.push(name);
    }
    Ok(out)
}

fn read_record(t: &Target) -> Result<Record> {
    Record::read(&t.dir)?.ok_or_else(|| anyhow!("{} has no swap record", t.dir.display()))
}

/// Moves the mount's own entries into `.stackshot-old` (phase `moving-out`).
fn move_out(fs: &mut Fs, t: &Target) -> Result<()> {
    let old = t.old();
    if !old.is_dir() {
        fs.create_dir(&old)?;
    }
    for name in own_entries(&t.dir)? {
        fs.rename(&t.dir.join(&name), &old.join(&name))?;
    }
    Ok(())
}

/// Records `moving-in`, moves the restored entries in and gives the mount's
/// root the restored owner and mode.
fn move_in(fs: &mut Fs, t: &Target, rec: &mut Record) -> Result<()> {
    if rec.phase != Phase::MovingIn {
        rec.phase = Phase::MovingIn;
        fs.record(rec, &t.dir)?;
    }
    let staged = t.staged_root();
    for name in names(&staged)? {
        // A snapshot taken before these were left out of backups may hold
        // them: they stay in the staging directory, removed with it.
        if NAMES.iter().any(|n| name == *n) {
            continue;
        }
        let to = t.dir.join(&name);
        if std::fs::symlink_metadata(&to).is_ok() {
            bail!("{} is in the way (a nested mount?)", to.display());
        }
        fs.rename(&staged.join(&name), &to)?;
    }
    let meta =
        std::fs::metadata(&staged).with_context(|| format!("cannot read {}", staged.display()))?;
    fs.owner(&t.dir, meta.uid(), meta.gid(), meta.mode() & 0o7777)
}

/// `moving-in` back to `moving-out`: the restored entries go back to the
/// staging directory and the root gets its old owner and mode.
fn back_out(fs: &mut Fs, t: &Target, rec: &mut Record) -> Result<()> {
    let staged = t.staged_root();
    if !staged.is_dir() {
        fs.create_dir(&staged)?;
    }
    for name in own_entries(&t.dir)? {
        let to = staged.join(&name);
        if std::fs::symlink_metadata(&to).is_ok() {
            bail!("{} is in the way", to.display());
        }
        fs.rename(&t.dir.join(&name), &to)?;
    }
    fs.owner(&t.dir, rec.uid, rec.gid, rec.mode)?;
    rec.phase = Phase::MovingOut;
    fs.record(rec, &t.dir)
}

/// `moving-out` to no swap: the old entries go back, then the record.
fn put_back(fs: &mut Fs, t: &Target) -> Result<()> {
    let old = t.old();
    if old.is_dir() {
        for name in names(&old)? {
            let to = t.dir.join(&name);
            if std::fs::symlink_metadata(&to).is_ok() {
                bail!("{} is in the way", to.display());
            }
            fs.rename(&old.join(&name), &to)?;
        }
        fs.remove_empty(&old)?;
    }
    fs.remove_file(&t.dir.join(RECORD))?;
    fs.remove_file(&t.dir.join(RECORD_TMP))
}

/// Puts the mount back as it was before the swap its record describes.
fn roll_back(fs: &mut Fs, t: &Target) -> Result<()> {
    let Some(mut rec) = Record::read(&t.dir)? else {
        return Ok(());
    };
    if rec.phase == Phase::Committed {
        bail!("{}'s swap is committed: it cannot be rolled back", t.name());
    }
    if rec.phase == Phase::MovingIn {
        back_out(fs, t, &mut rec)?;
    }
    put_back(fs, t)
}

/// Finishes an interrupted swap up to `committed`.
fn finish(fs: &mut Fs, t: &Target) -> Result<()> {
    let mut rec = read_record(t)?;
    if rec.phase == Phase::MovingOut {
        move_out(fs, t)?;
    }
    if rec.phase != Phase::Committed {
        move_in(fs, t, &mut rec)?;
        rec.phase = Phase::Committed;
        fs.record(&rec, &t.dir)?;
    }
    Ok(())
}

/// After `committed`: removes the old entries, the staging directory and the record.
fn clean(fs: &mut Fs, t: &Target) -> Result<()> {
    fs.remove_all(&t.old())?;
    fs.remove_all(&t.stage())?;
    fs.remove_file(&t.dir.join(RECORD))?;
    fs.remove_file(&t.dir.join(RECORD_TMP))
}

/// Makes every target ready for a restore: recovers what an interrupted
/// restore left (see [`record::decide`]), then creates the empty staging
/// directories. Returns a line for each thing it did. When it cannot tell
/// whether a `.stackshot-old` is the only copy of a mount's files, it
/// changes nothing and says what to do.
pub fn recover(fs: &mut Fs, targets: &[Target]) -> Result<Vec<String>> {
    let mut seen = Vec::new();
    for t in targets {
        let old = t.old();
        seen.push(Seen {
            dir: t.name(),
            record: Record::read(&t.dir)?,
            old: old.is_dir(),
            old_empty: old.is_dir() && names(&old)?.is_empty(),
            staging: t.stage().exists(),
        });
    }
    let actions = record::decide(&seen);
    let refused: Vec<&str> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Refuse(why) => Some(why.as_str()),
            _ => None,
        })
        .collect();
    if !refused.is_empty() {
        bail!("nothing was changed: {}", refused.join("; "));
    }
    let what = |s: &Seen| {
        s.record
            .as_ref()
            .map(|r| r.restore.clone())
            .unwrap_or_default()
    };
    let mut lines = Vec::new();
    // Finish first, clean after: a committed record stays until every
    // mount of its restore is committed too.
    for ((t, a), s) in targets.iter().zip(&actions).zip(&seen) {
        if *a == Action::Finish {
            finish(fs, t).with_context(|| {
                format!(
                    "finishing the swap of {} that the interrupted restore {} committed",
                    t.name(),
                    what(s)
                )
            })?;
            lines.push(format!(
                "finished the swap of {} interrupted after the restore {} committed: it holds that restore's files",
                t.name(),
                what(s)
            ));
        }
    }
    for ((t, a), s) in targets.iter().zip(&actions).zip(&seen) {
        if matches!(a, Action::Finish | Action::Clean) {
            let had_old = t.old().is_dir();
            clean(fs, t).with_context(|| format!("cleaning up {}", t.name()))?;
            if had_old {
                lines.push(format!(
                    "removed {}: the files from before the completed restore {}, left by an interruption after it committed",
                    t.old().display(),
                    what(s)
                ));
            }
        }
    }
    for ((t, a), s) in targets.iter().zip(&actions).zip(&seen) {
        match a {
            Action::RollBack => {
                roll_back(fs, t).with_context(|| {
                    format!(
                        "rolling back the swap of {} that the restore {} left unfinished",
                        t.name(),
                        what(s)
                    )
                })?;
                // What it held was restored from the repository: a copy.
                fs.remove_all(&t.stage())?;
                lines.push(format!(
                    "rolled back the swap of {} that the restore {} left unfinished: it holds its files from before that restore",
                    t.name(),
                    what(s)
                ));
            }
            Action::Tidy => {
                fs.remove_all(&t.stage())?;
                if s.old {
                    fs.remove_empty(&t.old())?;
                }
                lines.push(format!(
                    "removed the staging directories an interrupted restore left in {} (they held none of its files)",
                    t.name()
                ));
            }
            _ => {}
        }
    }
    for t in targets {
        fs.create_dir(&t.stage())?;
    }
    Ok(lines)
}

/// Swaps the restored files of every target in, then commits; `restore` names
/// the restore in the records. All or nothing: a failure before the commit
/// rolls every mount back, and after it every mount holds the restored files.
/// The error names each mount's state and what the next restore does with it.
pub fn swap_all(fs: &mut Fs, targets: &[Target], restore: &str) -> Result<Vec<String>> {
    for t in targets {
        let staged = t.staged_root();
        if !staged.is_dir() {
            bail!(
                "the restore left nothing in {} (is {} in the snapshot?); nothing was swapped: every mount holds its old files",
                staged.display(),
                t.name()
            );
        }
    }
    let mounts: Vec<String> = targets.iter().map(Target::name).collect();
    for (i, t) in targets.iter().enumerate() {
        if let Err(e) = swap_one(fs, t, restore, &mounts) {
            let states = roll_back_all(fs, targets, i + 1);
            bail!(
                "swapping the restored files into {} failed: {e:#}; {states}",
                t.name()
            );
        }
    }
    // Every mount holds its restored files: the restore commits, mount by
    // mount; a crash in between is finished by the next restore.
    for (i, t) in targets.iter().enumerate() {
        let marked = read_record(t).and_then(|mut rec| {
            rec.phase = Phase::Committed;
            fs.record(&rec, &t.dir)
        });
        if let Err(e) = marked {
            if i == 0 {
                let states = roll_back_all(fs, targets, targets.len());
                bail!(
                    "committing the restore of {} failed: {e:#}; {states}",
                    t.name()
                );
            }
            bail!(
                "committing the restore of {} failed: {e:#}; every mount holds the restored files, and {} keeps \
                 the old ones until the next restore of these mounts finishes the swap",
                t.name(),
                t.old().display()
            );
        }
    }
    let mut lines = Vec::new();
    let mut failed = Vec::new();
    for t in targets {
        match clean(fs, t) {
            Ok(()) => lines.push(format!("swapped the restored files into {}", t.name())),
            Err(e) => failed.push(format!(
                "{}: restored, but {e:#}; the next restore of it removes the old files left in {}",
                t.name(),
                t.old().display()
            )),
        }
    }
    if !failed.is_empty() {
        bail!(
            "every mount holds the restored files, but cleaning up failed: {}",
            failed.join("; ")
        );
    }
    Ok(lines)
}

fn swap_one(fs: &mut Fs, t: &Target, restore: &str, mounts: &[String]) -> Result<()> {
    let meta = std::fs::metadata(&t.dir).with_context(|| format!("cannot read {}", t.name()))?;
    let mut rec = Record {
        restore: restore.to_string(),
        phase: Phase::MovingOut,
        mounts: mounts.to_vec(),
        uid: meta.uid(),
        gid: meta.gid(),
        mode: meta.mode() & 0o7777,
    };
    fs.record(&rec, &t.dir)?;
    move_out(fs, t)?;
    move_in(fs, t, &mut rec)
}

/// Rolls back the first `started` of `targets` (last first); says what
/// each target holds now.
fn roll_back_all(fs: &mut Fs, targets: &[Target], started: usize) -> String {
    let untouched = targets[started..]
        .iter()
        .map(|t| format!("{}: not swapped, it holds its old files", t.name()));
    let rolled: Vec<String> = targets[..started]
        .iter()
        .rev()
        .map(|t| match roll_back(fs, t) {
            Ok(()) => format!("{}: rolled back, it holds its old files", t.name()),
            Err(e) => format!(
                "{}: rolling back failed too ({e:#}); its swap record is kept: the next restore of the same mounts rolls it back",
                t.name()
            ),
        })
        .collect();
    rolled
        .into_iter()
        .chain(untouched)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests;
