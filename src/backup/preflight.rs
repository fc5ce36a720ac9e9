//! Phase 4 of a backup, before any container is touched: the repository
//! (a local one mounted and writable, restic's version, the repository's
//! identity, no exclusive lock), each database's dump prepared (tools,
//! login, size estimates), the dump directory ready, and which databases
//! the short window must dump inside it. Everything that can fail without
//! the stack stopped fails here.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use futures_util::future::try_join_all;

use super::{identity, pin, prepass, snapshot};
use crate::container::ContainerInfo;
use crate::context::Context;
use crate::dumps::{self, DATABASES_DIR, Prepared};
use crate::plan::Plan;
use crate::report::RunReport;

/// What the preflight found ready.
pub struct Ready {
    /// The repository's id (remembered after a good run).
    pub repository_id: String,
    /// Each planned dump, prepared.
    pub prepared: Vec<Prepared>,
    /// The indexes in `prepared` of the databases the short window dumps
    /// inside it (not pinnable); the reasons are in the report's notes.
    pub in_window: Vec<usize>,
}

/// Runs the preflight of `plan` (see the module's doc).
pub async fn run(
    ctx: &Context,
    r: &mut RunReport,
    plan: &Plan,
    sidecar: &ContainerInfo,
) -> Result<Ready> {
    let t = Instant::now();
    check_local_repository(ctx.config.restic.repository.expose())?;
    let version = ctx.restic.version().await?;
    tracing::info!(restic = %version, "preflight");
    if let Some(why) = split_unsupported(version, plan.atomic, !plan.dumps.is_empty()) {
        bail!("{why}");
    }
    let (repository_id, initialised) = open_repository(ctx).await?;
    r.repository_initialised = initialised;
    ctx.restic
        .unlock()
        .await
        .context("cannot clear stale restic locks")?;
    if let Some(lock) = ctx.restic.exclusive_lock().await? {
        bail!(
            "the repository {} is locked exclusively by {} (a restic prune, check or forget); nothing was stopped: \
             back up after it ends, or run `restic unlock` if that process is gone",
            ctx.restic.repository(),
            lock.holder(jiff::Timestamp::now())
        );
    }
    let mut prepared = try_join_all(
        plan.dumps
            .iter()
            .map(|d| dumps::prepare(&ctx.engine, d, Some(sidecar))),
    )
    .await?;
    for p in &mut prepared {
        dumps::read_estimates(&ctx.engine, p).await;
    }
    if plan.atomic && !plan.dumps.is_empty() {
        snapshot::check_databases_mount(sidecar)?;
        dumps::clear_dir(Path::new(DATABASES_DIR))?;
    }
    // Which databases are dumped inside the short window, and why.
    let mut in_window = Vec::new();
    if plan.window_reason.is_none() && !ctx.config.append_only {
        r.notes
            .extend(prepass::forget_leftovers(&ctx.restic, &plan.project, &plan.host).await?);
    }
    if plan.window_reason.is_none() {
        for (i, p) in prepared.iter().enumerate() {
            let why = match &p.plan.window_reason {
                Some(why) => Some(why.clone()),
                None => pin::unpinnable_reason(&ctx.engine, p).await?,
            };
            if let Some(why) = why {
                let note = format!(
                    "{}: dumped inside the window: {why}",
                    p.plan.container.service
                );
                tracing::info!("{note}");
                r.notes.push(note);
                in_window.push(i);
            }
        }
    }
    r.phase("preflight", t);
    Ok(Ready {
        repository_id,
        prepared,
        in_window,
    })
}

/// Opens the repository at `RESTIC_REPOSITORY`, or creates it, as
/// [`identity::decide`] says; its id. `Ok((id, initialised))`.
async fn open_repository(ctx: &Context) -> Result<(String, bool)> {
    let found = ctx.restic.open().await?;
    let shown = ctx.restic.repository();
    let store = identity::Store::in_dir(&ctx.config.state_dir);
    let remembered = store.get(&identity::location(&shown))?.map(|r| r.id);
    let accept_new = ctx.config.accept_new_repository;
    match identity::decide(&shown, remembered.as_deref(), found.as_deref(), accept_new) {
        identity::Decision::Refuse(line) => bail!(line),
        identity::Decision::Use(id) => {
            if let Some(old) = remembered.filter(|old| *old != id) {
                tracing::warn!(repository = %shown, id = %id, remembered = %old, "{}=true: writing to a repository other than the last successful run's", identity::ACCEPT_NEW);
            }
            Ok((id, false))
        }
        identity::Decision::Init => {
            if let Some(old) = &remembered {
                tracing::warn!(repository = %shown, remembered = %old, "{}=true: creating a new repository where the last successful run wrote to another", identity::ACCEPT_NEW);
            }
            Ok((ctx.restic.init().await?, true))
        }
    }
}

/// Why restic `version` cannot take this plan's dumps, or `None`. Pure.
/// restic 0.18.0 fails `backup --stdin` under a directory ("open /databases:
/// no such file or directory", restic#5324, fixed in 0.18.1), which the
/// split layout (`ATOMIC_BACKUP=false`, each dump streamed into its own
/// snapshot) needs; the atomic layout writes files and is not affected.
pub fn split_unsupported(
    version: crate::restic::Version,
    atomic: bool,
    has_dumps: bool,
) -> Option<String> {
    (!atomic && has_dumps && version == crate::restic::Version::new(0, 18, 0)).then(|| {
        "restic 0.18.0 cannot stream a dump into its own snapshot (ATOMIC_BACKUP=false; restic#5324, fixed in 0.18.1); nothing was stopped: use restic 0.18.1 or newer (the stackshot image carries 0.19.1), or ATOMIC_BACKUP=true".to_string()
    })
}

/// A local repository must be a directory that exists (a mounted volume):
/// `restic init` would otherwise create it in the container's own file system,
/// where it would vanish with the container. It must also take a file: a
/// repository mounted read-only opens, but every backup fails to lock it, and
/// in the full window that would be found out only with the stack stopped.
fn check_local_repository(repository: &str) -> Result<()> {
    let path = repository.strip_prefix("local:").unwrap_or(repository);
    if !path.starts_with('/') {
        return Ok(());
    }
    if !Path::new(path).is_dir() {
        bail!(
            "RESTIC_REPOSITORY={path:?} does not exist in the sidecar; mount a volume there \
             (volumes: - repository:{path}) so the repository outlives the container"
        );
    }
    let probe = Path::new(path).join(format!(".stackshot-write-test-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem => bail!(
            "RESTIC_REPOSITORY={path:?} is read-only in the sidecar; a backup writes there: \
             mount it read-write (drop :ro from the volume)"
        ),
        Err(e) => bail!(
            "RESTIC_REPOSITORY={path:?} cannot be written in the sidecar ({e}); a backup writes \
             there: give the sidecar's user write access"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::{check_local_repository, split_unsupported};

    #[test]
    fn restic_0_18_0_refuses_only_split_dumps() {
        use crate::restic::Version;
        let v180 = Version::new(0, 18, 0);
        let why = split_unsupported(v180, false, true).expect("refused");
        assert!(
            why.starts_with("restic 0.18.0 cannot stream a dump into its own snapshot")
                && why.contains("nothing was stopped")
                && why.contains("ATOMIC_BACKUP=true"),
            "{why}"
        );
        assert_eq!(
            split_unsupported(v180, true, true),
            None,
            "atomic writes files"
        );
        assert_eq!(split_unsupported(v180, false, false), None, "no dumps");
        for other in [
            Version::new(0, 14, 0),
            Version::new(0, 18, 1),
            Version::new(0, 19, 1),
        ] {
            assert_eq!(split_unsupported(other, false, true), None, "{other}");
        }
    }

    #[test]
    fn local_repository_must_be_mounted() {
        let dir = tempfile::tempdir().unwrap();
        check_local_repository(dir.path().to_str().unwrap()).unwrap();
        check_local_repository(&format!("local:{}", dir.path().display())).unwrap();
        check_local_repository("s3:https://example.invalid/bucket").unwrap();
        let e = check_local_repository("/nonexistent/repository")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("RESTIC_REPOSITORY=\"/nonexistent/repository\" does not exist in the sidecar; mount a volume"), "{e}");
        // The write probe leaves nothing behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
