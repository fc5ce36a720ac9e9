//! `stackshot worker rustic ARGS…`: the stop window's file pass, with the
//! repository opened before the window.
//!
//! A `restic backup` started inside the window first derives the key (scrypt)
//! and loads the index: most of a second on a small repository, before a
//! single file is read. This worker does both ahead, with rustic_core, while
//! the stack still runs, then says `ready` and waits. Inside the window the
//! sidecar writes `go`, and only the walk (against the pre-pass as parent) and
//! the changed bytes remain. On a remote repository those bytes go to a
//! local spool ([`crate::restic::spool`]): the worker says `spooled`, the
//! window may close, and the upload follows while the stack runs.
//!
//! ARGS are the same `backup …` arguments a restic worker gets
//! ([`crate::restic::backup_args`] plus `--parent`). rustic skips a file it
//! cannot read with a log warning and goes on; every warning is reported as a
//! file error, so such a pass is never taken for a complete one (restic's exit
//! code 3: partial).

use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow, bail};
use rustic_core::repofile::{PathList, SnapshotFile, SnapshotSummary};
use rustic_core::{BackupOptions, Excludes, ParentOptions, StringList};
use tokio::io::AsyncReadExt;

use super::{WorkerEvent, emit, read_payload};
use crate::restic::backend::{self, BackendSpec, Vars};
use crate::restic::json::BackupSummary;
use crate::restic::rustic::{Indexed, open_indexed, open_indexed_spooled};
use crate::restic::spool::SPOOL_DIR;

/// What to back up, read from restic-style `backup` arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSpec {
    /// The host the snapshot is recorded under, from `--host`.
    pub host: String,
    /// The snapshot's tags, one per `--tag`.
    pub tags: Vec<String>,
    /// The snapshot to compare against for changed files, from `--parent`, if given.
    pub parent: Option<String>,
    /// The paths to back up, the arguments after the flags.
    pub paths: Vec<String>,
    /// `--exclude`s: absolute paths (no glob characters) left out.
    pub excludes: Vec<String>,
}

/// Reads `backup [--json] --host H [--tag T]… [--parent P] PATH…`. Pure.
pub fn parse_args(args: &[String]) -> Result<BackupSpec> {
    let mut it = args.iter();
    if it.next().map(String::as_str) != Some("backup") {
        bail!("expected `backup` arguments");
    }
    let mut spec = BackupSpec {
        host: String::new(),
        tags: Vec::new(),
        parent: None,
        paths: Vec::new(),
        excludes: Vec::new(),
    };
    while let Some(a) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| anyhow!("{flag} needs a value"))
        };
        match a.as_str() {
            "--json" => {}
            "--host" => spec.host = value("--host")?,
            "--tag" => spec.tags.push(value("--tag")?),
            "--parent" => spec.parent = Some(value("--parent")?),
            "--exclude" => {
                let e = value("--exclude")?;
                if !e.starts_with('/') || e.contains(['*', '?', '[', ']', '{', '}', '\\', '!']) {
                    bail!(
                        "--exclude {e:?}: only absolute paths without glob characters are honoured"
                    );
                }
                spec.excludes.push(e);
            }
            p if p.starts_with('-') => bail!("unsupported backup option {p}"),
            p => spec.paths.push(p.to_string()),
        }
    }
    if spec.host.is_empty() || spec.paths.is_empty() {
        bail!("a backup needs --host and at least one path");
    }
    Ok(spec)
}

/// Whether a log record's target (its module) is the storage's (rustic_backend,
/// OpenDAL, the HTTP client), not rustic_core's. Pure.
pub fn from_storage(target: &str) -> bool {
    target != "rustic_core" && !target.starts_with("rustic_core::")
}

/// Every warning logged while rustic backs up, to be reported: rustic_core's
/// (a file it skipped, a parent it could not read) and its storage's (a
/// request retried), told apart by [`Warning::storage`].
struct Warnings(Mutex<Vec<Warning>>);

/// One warning logged during the backup, and whether the storage logged it.
struct Warning {
    /// Logged by the storage (rustic_backend, OpenDAL, HTTP), not rustic_core:
    /// a retry costs time, a request that finally fails fails the backup.
    storage: bool,
    text: String,
}

impl log::Log for Warnings {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata())
            && let Ok(mut w) = self.0.lock()
        {
            w.push(Warning {
                storage: from_storage(record.target()),
                text: record.args().to_string(),
            });
        }
    }
    fn flush(&self) {}
}

static WARNINGS: Warnings = Warnings(Mutex::new(Vec::new()));

/// Whether a rustic warning costs only time, not data: a parent tree it
/// could not load or a parent's blob missing from the index make it read
/// those files again; a parent node that is not a directory is not used.
/// In an image without `/etc/passwd`, `/etc/group` or a time zone database
/// (FROM scratch), the owner's name is left out (its uid and gid are kept)
/// and the snapshot's time is written in UTC. Every other warning (an entry
/// it could not read or archive, and dropped) counts as an unreadable file.
/// Pure.
pub fn is_benign(warning: &str) -> bool {
    [
        "ignoring error when loading parent tree",
        "missing blobs in index for unchanged file",
        "ignoring parent node",
        "error getting user from uid",
        "error getting group from gid",
        "failed to get system time zone",
    ]
    .iter()
    .any(|p| warning.starts_with(p))
}

/// The rustic backend for the payload's repository and variables (the ones
/// restic gets), or why none.
fn backend_of(env: &[(String, String)]) -> Result<BackendSpec> {
    let vars: Vars = env.iter().cloned().collect();
    let repository = vars
        .get("RESTIC_REPOSITORY")
        .ok_or_else(|| anyhow!("the armed file pass needs RESTIC_REPOSITORY"))?;
    backend::map(repository, &vars)
        .map_err(|e| anyhow!("the armed file pass cannot open the repository: {e}"))
}

/// Reads one line from stdin (without its newline); `None` at end of input.
async fn read_line() -> Result<Option<String>> {
    let mut stdin = tokio::io::stdin();
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        if stdin.read(&mut byte).await? == 0 {
            return Ok((!buf.is_empty()).then(|| String::from_utf8_lossy(&buf).to_string()));
        }
        if byte[0] == b'\n' {
            return Ok(Some(String::from_utf8_lossy(&buf).to_string()));
        }
        buf.push(byte[0]);
        if buf.len() > 1024 {
            bail!("the go line is too long");
        }
    }
}

fn backup(repo: &Indexed, spec: &BackupSpec) -> Result<SnapshotFile> {
    let mut tags = StringList::default();
    for t in &spec.tags {
        tags.add(t.clone());
    }
    let snap = SnapshotFile {
        hostname: spec.host.clone(),
        tags,
        summary: Some(SnapshotSummary::default()),
        ..Default::default()
    };
    let parent = ParentOptions::default().parents(spec.parent.iter().cloned().collect::<Vec<_>>());
    // An override glob with `!` leaves a path out; `**` matches the root's `/`.
    let excludes = Excludes::default().globs(
        spec.excludes
            .iter()
            .map(|e| format!("!**{e}"))
            .collect::<Vec<_>>(),
    );
    let opts = BackupOptions::default()
        .no_scan(true)
        .parent_opts(parent)
        .excludes(excludes);
    let source = PathList::from_iter(spec.paths.iter())
        .sanitize()
        .map_err(|e| anyhow!("{e}"))
        .context("cannot read the paths to back up")?;
    repo.backup(&opts, &source, snap)
        .map_err(|e| anyhow!("{e}"))
        .context("rustic backup failed")
}

/// The restic-shaped summary of a snapshot rustic wrote. Pure.
pub fn summary_of(snap: &SnapshotFile) -> BackupSummary {
    let s = snap.summary.clone().unwrap_or_default();
    BackupSummary {
        files_new: s.files_new,
        files_changed: s.files_changed,
        files_unmodified: s.files_unmodified,
        dirs_new: s.dirs_new,
        dirs_changed: s.dirs_changed,
        dirs_unmodified: s.dirs_unmodified,
        data_blobs: s.data_blobs,
        tree_blobs: s.tree_blobs,
        data_added: s.data_added,
        data_added_packed: Some(s.data_added_packed),
        total_files_processed: s.total_files_processed,
        total_bytes_processed: s.total_bytes_processed,
        total_duration: s.total_duration,
        backup_start: Some(s.backup_start.timestamp().to_string()),
        backup_end: Some(s.backup_end.timestamp().to_string()),
        snapshot_id: Some(snap.id.to_hex().as_str().to_string()),
        dry_run: false,
    }
}

/// Runs the armed pass: open, `ready`, wait for `go`, back up. Returns the
/// exit code in restic's terms (0 done, 3 some files unreadable).
pub async fn run(args: &[String]) -> Result<i32> {
    let spec = parse_args(args)?;
    let payload = read_payload().await?;
    let backend = backend_of(&payload.env)?;
    let password = payload
        .env
        .iter()
        .find(|(k, _)| k == "RESTIC_PASSWORD")
        .map(|(_, v)| v.clone())
        .ok_or_else(|| anyhow!("the armed file pass needs RESTIC_PASSWORD"))?;
    let t = Instant::now();
    let opened = backend.clone();
    let spool_root = spool_root(&payload.env);
    let (repo, spool) = tokio::task::spawn_blocking(move || match spool_root {
        Some(root) => open_indexed_spooled(&opened, &password, "the window's file pass", &root),
        None => open_indexed(&opened, &password, "the window's file pass").map(|r| (r, None)),
    })
    .await
    .context("the open task failed")??;
    if spool.is_none() && backend.local_dir().is_none() {
        emit(&WorkerEvent::Log {
            line: "no RESTIC_CACHE_DIR to spool into: the window's file pass uploads inside the window".into(),
        });
    }
    emit(&WorkerEvent::Ready {
        seconds: t.elapsed().as_secs_f64(),
    });
    match read_line().await?.as_deref() {
        Some("go") => {}
        other => bail!("told {other:?} instead of go: nothing was backed up"),
    }
    if log::set_logger(&WARNINGS).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    let spec2 = spec.clone();
    let snap = tokio::task::spawn_blocking(move || backup(&repo, &spec2))
        .await
        .context("the backup task failed")?
        .map_err(|e| anyhow!("{}", backend.redact(&format!("{e:#}"))))?;
    let (mut benign, mut warnings) = (Vec::new(), Vec::new());
    for w in std::mem::take(&mut *WARNINGS.0.lock().unwrap_or_else(|e| e.into_inner())) {
        let text = backend.redact(&w.text);
        if w.storage || is_benign(&text) {
            benign.push(text);
        } else {
            warnings.push(text);
        }
    }
    for w in benign {
        emit(&WorkerEvent::Log {
            line: format!("rustic: {w}"),
        });
    }
    for w in &warnings {
        emit(&WorkerEvent::FileError {
            item: spec.paths.join(" "),
            message: format!("rustic: {w}"),
        });
    }
    if spec.parent.is_some() && snap.parent.is_none() {
        emit(&WorkerEvent::Log {
            line: "rustic did not find the parent snapshot: every file was read".into(),
        });
    }
    emit(&WorkerEvent::Summary(summary_of(&snap)));
    if let Some(spool) = spool {
        // The window may close now: the rest goes up while the stack runs.
        let pending = spool.pending();
        emit(&WorkerEvent::Spooled {
            files: pending.files,
            bytes: pending.bytes,
        });
        let t = Instant::now();
        let up = tokio::task::spawn_blocking(move || spool.upload())
            .await
            .context("the upload task failed")?
            .map_err(|e| {
                anyhow!(
                    "the window's file pass could not be uploaded, so the repository has no snapshot of it: {}",
                    backend.redact(&format!("{e:#}"))
                )
            })?;
        emit(&WorkerEvent::Log {
            line: format!(
                "uploaded the spooled pass: {} files, {} bytes in {:.2} s",
                up.files,
                up.bytes,
                t.elapsed().as_secs_f64()
            ),
        });
    }
    Ok(if warnings.is_empty() { 0 } else { 3 })
}

/// Where the window's pass spools its writes: under `RESTIC_CACHE_DIR` (the
/// cache volume), or nowhere. Pure.
pub fn spool_root(env: &[(String, String)]) -> Option<std::path::PathBuf> {
    env.iter()
        .find(|(k, _)| k == "RESTIC_CACHE_DIR")
        .filter(|(_, v)| v.starts_with('/'))
        .map(|(_, v)| std::path::Path::new(v).join(SPOOL_DIR))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn reads_the_restic_backup_arguments() {
        let spec = parse_args(&args(
            "backup --json --host h --tag stackshot-part --tag run=1 /volumes --parent abc",
        ))
        .unwrap();
        assert_eq!(
            spec,
            BackupSpec {
                host: "h".into(),
                tags: vec!["stackshot-part".into(), "run=1".into()],
                parent: Some("abc".into()),
                paths: vec!["/volumes".into()],
                excludes: vec![],
            }
        );
        let spec = parse_args(&args(
            "backup --host h /volumes --exclude /volumes/notes/data/notes.db",
        ))
        .unwrap();
        assert_eq!(spec.excludes, ["/volumes/notes/data/notes.db"]);
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        for bad in [
            "restore --host h /volumes",
            "backup --host h",
            "backup /volumes",
            "backup --host h --exclude x /volumes",
            "backup --host h --exclude /volumes/*.db /volumes",
            "backup --host",
        ] {
            assert!(parse_args(&args(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_warnings_that_cost_time_are_benign() {
        assert!(is_benign(
            "missing blobs in index for unchanged file /volumes/a; re-reading file"
        ));
        assert!(is_benign(
            "ignoring error when loading parent tree 1234: not found"
        ));
        assert!(is_benign("ignoring parent node x: is no tree!"));
        // An entry dropped from the snapshot is never benign.
        assert!(!is_benign("ignoring error: permission denied: /volumes/a"));
        assert!(!is_benign(
            "ignoring error reading parent snapshot: Io(...)"
        ));
        assert!(!is_benign("ignoring error No such file or directory"));
        // Names and the zone missing from the image: the data is all there.
        assert!(is_benign(
            "error getting user from uid 0: ENOENT: No such file or directory"
        ));
        assert!(is_benign(
            "error getting group from gid 0: ENOENT: No such file or directory"
        ));
        assert!(is_benign(
            "failed to get system time zone, falling back to `Etc/Unknown` (which behaves like UTC): failed to find system time zone"
        ));
    }

    #[test]
    fn a_storage_retry_is_no_file_error() {
        assert!(!from_storage("rustic_core::archiver::file_archiver"));
        assert!(!from_storage("rustic_core"));
        assert!(from_storage("rustic_backend::rest"));
        assert!(from_storage("opendal::layers::logging"));
        assert!(from_storage("reqwest::blocking::wait"));
    }

    #[test]
    fn the_payload_names_the_backend() {
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let spec = backend_of(&env(&[("RESTIC_REPOSITORY", "/repository")])).unwrap();
        assert_eq!(spec.local_dir(), Some("/repository"));
        let spec = backend_of(&env(&[
            ("RESTIC_REPOSITORY", "rest:http://rest:8000/"),
            ("RESTIC_CACHE_DIR", "/cache"),
        ]))
        .unwrap();
        assert_eq!(spec.repository, "rest:http://rest:8000/");
        let e = backend_of(&env(&[("RESTIC_REPOSITORY", "b2:bucket:path")])).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("the armed file pass cannot open the repository: b2:")
        );
        assert!(backend_of(&env(&[])).is_err());
    }

    #[test]
    fn the_spool_lives_in_the_cache_volume() {
        let env = |v: &str| vec![("RESTIC_CACHE_DIR".to_string(), v.to_string())];
        assert_eq!(
            spool_root(&env("/cache")).as_deref(),
            Some(std::path::Path::new("/cache/stackshot-spool"))
        );
        assert_eq!(spool_root(&env("cache")), None);
        assert_eq!(spool_root(&[]), None);
    }

    #[test]
    fn the_summary_carries_the_counts_and_the_full_id() {
        let mut summary = SnapshotSummary::default();
        summary.files_new = 2;
        summary.files_changed = 3;
        summary.files_unmodified = 95;
        summary.data_added = 4096;
        summary.total_bytes_processed = 1 << 20;
        let snap = SnapshotFile {
            summary: Some(summary),
            ..Default::default()
        };
        let s = summary_of(&snap);
        assert_eq!(
            (
                s.files_new,
                s.files_changed,
                s.files_unmodified,
                s.data_added
            ),
            (2, 3, 95, 4096)
        );
        assert_eq!(s.total_bytes_processed, 1 << 20);
        assert_eq!(s.snapshot_id.as_deref().map(str::len), Some(64));
    }
}
