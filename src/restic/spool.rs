//! The stop window's file pass, written to local disk first and uploaded
//! after the window.
//!
//! A remote repository behind a slow uplink would hold the stack down while
//! the changed bytes go up. The window only has to *read* what changed; so
//! the armed pass writes every file (packs, index, snapshot) through
//! [`Spool`], which keeps them in a directory of the cache volume, and
//! [`Spool::upload`] sends them once the stack runs again: the packs first,
//! then the index, then the snapshot, the order restic writes in. Until the
//! snapshot is uploaded the repository has no trace of the pass but packs no
//! index names; a run that dies in between leaves the spool behind, and the
//! next pass removes it ([`sweep`]) before it writes.
//!
//! Each spool directory holds `.lock`, locked (`flock`) by the process that
//! writes it, so that a sweep never takes a spool still in use, even one of a
//! run on another container sharing the volume.

use std::collections::HashSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result, anyhow};
use bytes::Bytes;
use rustic_core::{
    BytesList, ErrorKind, FileType, Id, ReadBackend, RusticError, RusticResult, WriteBackend,
};

/// The directory, under `RESTIC_CACHE_DIR`, that holds the spools.
pub const SPOOL_DIR: &str = "stackshot-spool";

/// How many packs go up at once.
const PARALLEL_UPLOADS: usize = 4;

/// One file written to the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spooled {
    /// Its kind (pack, index, snapshot…).
    pub tpe: FileType,
    /// The file's id in the repository, the hash of its content.
    pub id: Id,
    /// Whether rustic's cache may keep it.
    pub cacheable: bool,
}

/// A write backend that keeps what is written on local disk until
/// [`Spool::upload`]; reads see the spooled files and the repository.
pub struct Spool {
    inner: Arc<dyn WriteBackend>,
    dir: PathBuf,
    written: Mutex<Vec<Spooled>>,
    /// Held (locked) while the spool lives: [`sweep`] leaves it alone.
    _lock: File,
}

/// How many files and bytes a spool uploaded, or still holds to upload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Uploaded {
    /// How many files were uploaded, or wait to be.
    pub files: u64,
    /// The total size of those files in bytes.
    pub bytes: u64,
}

/// The order the spooled files go up in: every pack, then the indexes, then
/// the snapshots, then anything else; in the order written within each kind.
/// An index never names a pack the repository lacks, and a snapshot never
/// names a tree no index lists. Pure.
pub fn upload_order(written: &[Spooled]) -> Vec<Spooled> {
    let rank = |t: FileType| match t {
        FileType::Pack => 0,
        FileType::Index => 1,
        FileType::Snapshot => 2,
        _ => 3,
    };
    let mut order = written.to_vec();
    order.sort_by_key(|s| rank(s.tpe));
    order
}

/// Removes every spool under `root` that no live process holds: what a run
/// that died before its upload left. Returns how many went.
pub fn sweep(root: &Path) -> Result<usize> {
    let mut removed = 0;
    let entries = match fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", root.display())),
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        if !dir.is_dir() {
            continue;
        }
        let free = match File::open(dir.join(".lock")) {
            Ok(f) => f.try_lock().is_ok(),
            // A spool without its lock file is one that died being created.
            Err(_) => true,
        };
        if free {
            fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot remove the stale spool {}", dir.display()))?;
            removed += 1;
        }
    }
    Ok(removed)
}

fn io_error(what: String, e: std::io::Error) -> Box<RusticError> {
    RusticError::with_source(ErrorKind::InputOutput, what, e)
}

impl Spool {
    /// A new spool in a fresh directory under `root` (created), in front of
    /// `inner`.
    pub fn new(inner: Arc<dyn WriteBackend>, root: &Path) -> Result<Self> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let dir = root.join(format!("{stamp:x}-{}", std::process::id()));
        fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the spool {}", dir.display()))?;
        let lock = File::create(dir.join(".lock"))
            .and_then(|f| f.try_lock().map(|()| f).map_err(std::io::Error::other))
            .with_context(|| format!("cannot lock the spool {}", dir.display()))?;
        Ok(Spool {
            inner,
            dir,
            written: Mutex::new(Vec::new()),
            _lock: lock,
        })
    }

    /// The directory the spool keeps its files in until they go up.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, tpe: FileType, id: &Id) -> PathBuf {
        self.dir.join(tpe.dirname()).join(id.to_hex().as_str())
    }

    fn spooled(&self) -> Vec<Spooled> {
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether `tpe`/`id` waits in the spool (asked on every read: no copy
    /// of the list).
    fn holds(&self, tpe: FileType, id: &Id) -> bool {
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|s| s.tpe == tpe && &s.id == id)
    }

    /// How many files and bytes wait in the spool.
    pub fn pending(&self) -> Uploaded {
        let mut u = Uploaded::default();
        for s in self.spooled() {
            u.files += 1;
            u.bytes += fs::metadata(self.path(s.tpe, &s.id)).map_or(0, |m| m.len());
        }
        u
    }

    fn upload_one(&self, s: &Spooled) -> Result<u64> {
        let path = self.path(s.tpe, &s.id);
        let data = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let len = data.len() as u64;
        self.inner
            .write_bytes(s.tpe, &s.id, s.cacheable, BytesList::from(data))
            .map_err(|e| anyhow!("{}", e.display_log()))
            .with_context(|| {
                format!(
                    "cannot upload the {} {}",
                    s.tpe.dirname(),
                    &s.id.to_hex().as_str()[..8]
                )
            })?;
        Ok(len)
    }

    /// Uploads every spooled file in [`upload_order`], the packs several at
    /// a time, and removes the spool. On an error nothing after the failed
    /// file's kind is uploaded (no index without its packs, no snapshot
    /// without its index), and the spool stays for [`sweep`].
    pub fn upload(&self) -> Result<Uploaded> {
        let order = upload_order(&self.spooled());
        let (packs, rest): (Vec<_>, Vec<_>) =
            order.into_iter().partition(|s| s.tpe == FileType::Pack);
        let next = AtomicUsize::new(0);
        let failed: Mutex<Option<anyhow::Error>> = Mutex::new(None);
        let done = Mutex::new(Uploaded::default());
        std::thread::scope(|scope| {
            for _ in 0..PARALLEL_UPLOADS.min(packs.len()) {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(s) = packs.get(i) else { break };
                        if failed.lock().map_or(true, |f| f.is_some()) {
                            break;
                        }
                        match self.upload_one(s) {
                            Ok(len) => {
                                let mut d = done.lock().unwrap_or_else(|e| e.into_inner());
                                d.files += 1;
                                d.bytes += len;
                            }
                            Err(e) => {
                                failed
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .get_or_insert(e);
                            }
                        }
                    }
                });
            }
        });
        if let Some(e) = failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return Err(e);
        }
        let mut done = done.into_inner().unwrap_or_else(|e| e.into_inner());
        for s in &rest {
            done.bytes += self.upload_one(s)?;
            done.files += 1;
        }
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        fs::remove_dir_all(&self.dir)
            .with_context(|| format!("cannot remove the spool {}", self.dir.display()))?;
        Ok(done)
    }
}

impl ReadBackend for Spool {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn list_with_size(&self, tpe: FileType) -> RusticResult<Vec<(Id, u32)>> {
        let mut list = self.inner.list_with_size(tpe)?;
        let known: HashSet<Id> = list.iter().map(|(id, _)| *id).collect();
        for s in self.spooled() {
            if s.tpe == tpe && !known.contains(&s.id) {
                let size = fs::metadata(self.path(tpe, &s.id))
                    .map_err(|e| io_error(format!("cannot stat a spooled {}", tpe.dirname()), e))?
                    .len();
                list.push((s.id, u32::try_from(size).unwrap_or(u32::MAX)));
            }
        }
        Ok(list)
    }

    fn read_full(&self, tpe: FileType, id: &Id) -> RusticResult<Bytes> {
        if self.holds(tpe, id) {
            return fs::read(self.path(tpe, id))
                .map(Bytes::from)
                .map_err(|e| io_error(format!("cannot read a spooled {}", tpe.dirname()), e));
        }
        self.inner.read_full(tpe, id)
    }

    fn read_partial(
        &self,
        tpe: FileType,
        id: &Id,
        cacheable: bool,
        offset: u32,
        length: u32,
    ) -> RusticResult<Bytes> {
        if self.holds(tpe, id) {
            let all = self.read_full(tpe, id)?;
            let (start, end) = (offset as usize, offset as usize + length as usize);
            if end > all.len() {
                return Err(RusticError::new(
                    ErrorKind::InputOutput,
                    "a read past the end of a spooled file",
                ));
            }
            return Ok(all.slice(start..end));
        }
        self.inner.read_partial(tpe, id, cacheable, offset, length)
    }

    fn warmup_path(&self, tpe: FileType, id: &Id) -> String {
        self.inner.warmup_path(tpe, id)
    }

    fn needs_warm_up(&self) -> bool {
        self.inner.needs_warm_up()
    }

    fn warm_up(&self, tpe: FileType, id: &Id) -> RusticResult<()> {
        self.inner.warm_up(tpe, id)
    }
}

impl WriteBackend for Spool {
    fn create(&self) -> RusticResult<()> {
        self.inner.create()
    }

    fn write_bytes(
        &self,
        tpe: FileType,
        id: &Id,
        cacheable: bool,
        content: BytesList,
    ) -> RusticResult<()> {
        let path = self.path(tpe, id);
        let write = || -> std::io::Result<()> {
            let dir = path.parent().expect("a spooled file has a directory");
            fs::create_dir_all(dir)?;
            let tmp = path.with_extension("tmp");
            let mut data = Vec::new();
            for b in content.slice() {
                data.extend_from_slice(b);
            }
            fs::write(&tmp, &data)?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|e| io_error(format!("cannot spool a {}", tpe.dirname()), e))?;
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        if !written.iter().any(|s| s.tpe == tpe && &s.id == id) {
            written.push(Spooled {
                tpe,
                id: *id,
                cacheable,
            });
        }
        Ok(())
    }

    fn remove(&self, tpe: FileType, id: &Id, cacheable: bool) -> RusticResult<()> {
        if self.holds(tpe, id) {
            fs::remove_file(self.path(tpe, id))
                .map_err(|e| io_error(format!("cannot remove a spooled {}", tpe.dirname()), e))?;
            self.written
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|s| !(s.tpe == tpe && &s.id == id));
            return Ok(());
        }
        self.inner.remove(tpe, id, cacheable)
    }
}

#[cfg(test)]
mod tests;
