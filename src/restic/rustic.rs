//! rustic_core on a local repository: what restic's CLI cannot do for us.
//!
//! Two uses: the merge of a run's parts into one snapshot
//! ([`crate::backup::merge`]), and the stop window's file pass, run by a
//! worker that opened the repository (scrypt, index) before the window
//! ([`crate::worker::rustic`]). Only a local directory is opened: stackshot
//! builds rustic's local backend only. rustic ignores restic's locks; callers
//! check for an exclusive one first.

use anyhow::{Context as _, Result, anyhow};
use rustic_backend::BackendOptions;
use rustic_core::{Credentials, Repository, RepositoryOptions};

/// A repository with its key derived and its index (blob ids) loaded.
pub type Indexed = Repository<rustic_core::IndexedIdsStatus>;

/// The local directory of a repository rustic can open, or `None`.
pub fn local_path(repository: &str) -> Option<&str> {
    let path = repository.strip_prefix("local:").unwrap_or(repository);
    path.starts_with('/').then_some(path)
}

/// A repository with its key derived and its full index (each blob's pack
/// and place) loaded.
pub type FullyIndexed = Repository<rustic_core::IndexedFullStatus>;

/// Opens the local repository at `repo_dir` and loads its index. Blocking
/// (rustic is synchronous); `what` says what for, in errors. No cache: the
/// repository is a local directory already.
pub fn open_indexed(repo_dir: &str, password: &str, what: &str) -> Result<Indexed> {
    open(repo_dir, password, what)?
        .to_indexed_ids()
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("cannot read the repository's index for {what}"))
}

/// As [`open_indexed`], with the full index: where each blob is.
pub fn open_fully_indexed(repo_dir: &str, password: &str, what: &str) -> Result<FullyIndexed> {
    open(repo_dir, password, what)?
        .to_indexed()
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("cannot read the repository's index for {what}"))
}

fn open(repo_dir: &str, password: &str, what: &str) -> Result<Repository<rustic_core::OpenStatus>> {
    let backends = BackendOptions::default()
        .repository(repo_dir)
        .to_backends()
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("cannot open the repository for {what}"))?;
    Repository::new(&RepositoryOptions::default().no_cache(true), &backends)
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("cannot open the repository for {what}"))?
        .open(&Credentials::password(password))
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("cannot open the repository for {what}"))
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn only_local_repositories_open() {
        assert_eq!(local_path("/repository"), Some("/repository"));
        assert_eq!(local_path("local:/srv/r"), Some("/srv/r"));
        assert_eq!(local_path("s3:https://h/b"), None);
        assert_eq!(local_path("rest:http://h/"), None);
        assert_eq!(local_path("relative/dir"), None);
    }
}
