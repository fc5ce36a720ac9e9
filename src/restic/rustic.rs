//! rustic_core on the repository: what restic's CLI cannot do for us.
//!
//! Two uses: the merge of a run's parts into one snapshot
//! (`backup::merge`), and the stop window's file pass, run by a
//! worker that opened the repository (scrypt, index) before the window
//! (`worker::rustic`). The repository is opened through the backend
//! [`crate::restic::backend`] maps restic's form to (local, REST, rclone, or
//! OpenDAL's s3, azblob, gcs, swift, sftp), with the credentials restic gets;
//! a form it cannot map keeps the full window. rustic takes no restic lock:
//! the run holds one meanwhile ([`crate::restic::hold`]). The window's pass
//! writes into a local [`Spool`], uploaded after the window.

use anyhow::{Context as _, Result, anyhow};
use rustic_backend::BackendOptions;
use std::path::Path;
use std::sync::Arc;

use rustic_core::{Credentials, Repository, RepositoryBackends, RepositoryOptions};

use super::backend::BackendSpec;
use super::spool::{self, Spool};

/// A repository with its key derived and its index (blob ids) loaded.
pub type Indexed = Repository<rustic_core::IndexedIdsStatus>;

/// The local directory of a repository, or `None`.
pub fn local_path(repository: &str) -> Option<&str> {
    let path = repository.strip_prefix("local:").unwrap_or(repository);
    path.starts_with('/').then_some(path)
}

/// A repository with its key derived and its full index (each blob's pack
/// and place) loaded.
pub type FullyIndexed = Repository<rustic_core::IndexedFullStatus>;

/// The repository options for `spec`: a local repository needs no cache; a
/// remote one uses rustic's cache directory when there is one. Pure.
pub fn repository_options(spec: &BackendSpec) -> RepositoryOptions {
    match &spec.cache_dir {
        Some(dir) if spec.local_dir().is_none() => RepositoryOptions::default().cache_dir(dir),
        _ => RepositoryOptions::default().no_cache(true),
    }
}

/// Opens the repository `spec` names and loads its index (blob ids).
/// Blocking (rustic is synchronous, call it from `spawn_blocking`); `what`
/// says what for, in errors. Errors carry no secret of `spec`.
pub fn open_indexed(spec: &BackendSpec, password: &str, what: &str) -> Result<Indexed> {
    open(spec, password, what)?
        .to_indexed_ids()
        .map_err(|e| anyhow!("{}", spec.redact(&e.display_log())))
        .with_context(|| format!("cannot read the index of {} for {what}", spec.shown()))
}

/// As [`open_indexed`], with every write kept in a [`Spool`] under
/// `spool_root` until [`Spool::upload`]. A local repository is written
/// directly (it is local disk already): no spool.
pub fn open_indexed_spooled(
    spec: &BackendSpec,
    password: &str,
    what: &str,
    spool_root: &Path,
) -> Result<(Indexed, Option<Arc<Spool>>)> {
    let mut spool = None;
    let repo = open_with(spec, password, what, |backends| {
        if spec.local_dir().is_some() {
            return Ok(backends);
        }
        let removed = spool::sweep(spool_root)?;
        if removed > 0 {
            tracing::info!(removed, "removed what an earlier run left in the spool");
        }
        let s = Arc::new(Spool::new(backends.repository(), spool_root)?);
        spool = Some(s.clone());
        Ok(RepositoryBackends::new(s, backends.repo_hot()))
    })?
    .to_indexed_ids()
    .map_err(|e| anyhow!("{}", spec.redact(&e.display_log())))
    .with_context(|| format!("cannot read the index of {} for {what}", spec.shown()))?;
    Ok((repo, spool))
}

/// As [`open_indexed`], with the full index: where each blob is.
pub fn open_fully_indexed(spec: &BackendSpec, password: &str, what: &str) -> Result<FullyIndexed> {
    open(spec, password, what)?
        .to_indexed()
        .map_err(|e| anyhow!("{}", spec.redact(&e.display_log())))
        .with_context(|| format!("cannot read the index of {} for {what}", spec.shown()))
}

/// Whether the repository `spec` names exists (has its `config` file),
/// asked through rustic's backend without a key: `Ok(false)` for an S3 bucket
/// that does not exist, which restic 0.18's `cat config` retries for 15
/// minutes instead of saying "repository does not exist" (0.14 said it at
/// once). Blocking. Errors carry no secret of `spec`.
pub fn has_config(spec: &BackendSpec) -> Result<bool> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let backends = BackendOptions::default()
        .repository(spec.repository.clone())
        .options(spec.options.clone())
        .to_backends()
        .map_err(|e| anyhow!("{}", spec.redact(&e.display_log())))
        .with_context(|| format!("cannot open the backend of {}", spec.shown()))?;
    let found = backends
        .repository()
        .list(rustic_core::FileType::Config)
        .map_err(|e| anyhow!("{}", spec.redact(&e.display_log())))
        .with_context(|| format!("cannot look for the config of {}", spec.shown()))?;
    Ok(!found.is_empty())
}

fn open(
    spec: &BackendSpec,
    password: &str,
    what: &str,
) -> Result<Repository<rustic_core::OpenStatus>> {
    open_with(spec, password, what, Ok)
}

/// [`open`], with the backends passed through `wrap` first.
fn open_with(
    spec: &BackendSpec,
    password: &str,
    what: &str,
    wrap: impl FnOnce(RepositoryBackends) -> Result<RepositoryBackends>,
) -> Result<Repository<rustic_core::OpenStatus>> {
    // HTTPS on ring, as the rest of stackshot: reqwest takes the process's
    // provider before its own default (aws-lc-rs).
    let _ = rustls::crypto::ring::default_provider().install_default();
    // One line (rustic's `Display` is a page), no secret.
    let rustic = |e: Box<rustic_core::RusticError>| anyhow!("{}", spec.redact(&e.display_log()));
    let backends = BackendOptions::default()
        .repository(spec.repository.clone())
        .options(spec.options.clone())
        .to_backends()
        .map_err(rustic)
        .with_context(|| format!("cannot open the repository {} for {what}", spec.shown()))?;
    let backends = wrap(backends)?;
    Repository::new(&repository_options(spec), &backends)
        .map_err(rustic)
        .with_context(|| format!("cannot open the repository {} for {what}", spec.shown()))?
        .open(&Credentials::password(password))
        .map_err(rustic)
        .with_context(|| format!("cannot open the repository {} for {what}", spec.shown()))
}

/// The archiver's batches in stackshot's patch of rustic_core
/// (vendor/README.md): rustic_core's own tests do not run in this
/// workspace, so that module's unit tests run with stackshot's.
#[cfg(test)]
#[allow(dead_code)]
#[path = "../../vendor/rustic_core/src/archiver/batch.rs"]
mod vendored_batch;

#[cfg(test)]
mod tests {
    use super::{local_path, repository_options};
    use crate::restic::backend::{Vars, map};

    #[test]
    fn only_remote_repositories_use_rustics_cache() {
        let vars: Vars = [("RESTIC_CACHE_DIR".to_string(), "/cache".to_string())].into();
        let local = repository_options(&map("/repository", &vars).unwrap());
        assert!(local.no_cache && local.cache_dir.is_none());
        let rest = repository_options(&map("rest:http://h:8000/", &vars).unwrap());
        assert!(!rest.no_cache);
        assert_eq!(rest.cache_dir.unwrap().to_str(), Some("/cache/rustic"));
        let uncached = repository_options(&map("rest:http://h:8000/", &Vars::new()).unwrap());
        assert!(uncached.no_cache);
    }

    #[test]
    fn local_paths_are_absolute() {
        assert_eq!(local_path("/repository"), Some("/repository"));
        assert_eq!(local_path("local:/srv/r"), Some("/srv/r"));
        assert_eq!(local_path("s3:https://h/b"), None);
        assert_eq!(local_path("rest:http://h/"), None);
        assert_eq!(local_path("relative/dir"), None);
    }
}
