//! Opening the repository before a run: whether its server takes a
//! connection, whether it exists and the password fits, and `restic init`
//! where there is none ([`Restic::open_or_init`]).

use super::json::{self, Version};
use super::run::{Bounded, Finished};
use super::{Restic, ResticError, backend, reach, rustic};

/// The first restic with distinct exit codes for "no repository" (10) and
/// "locked" (11); wrong password (12) followed in 0.17.1.
const EXIT_CODES_SINCE: Version = Version::new(0, 17, 0);

/// Reads the repository's config. `--no-lock`: a lock held by a running
/// prune must not look like a failure.
const CAT_CONFIG: [&str; 3] = ["--no-lock", "cat", "config"];

/// What [`Restic::open_or_init`] found: a repository that opens, or none, which it then created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoOpened {
    /// The repository was there and the password fits.
    Existing,
    /// There was no repository; `restic init` created it.
    Initialised,
}

impl Restic {
    /// The endpoint of an `s3:`/`rest:` repository takes a TCP connection
    /// ([`reach`]); `Ok` for other repositories and behind an HTTP proxy.
    /// Seconds where restic would retry for 15 minutes.
    pub async fn reachable(&self) -> Result<(), ResticError> {
        let endpoint = reach::endpoint(self.settings.repository.expose())
            .filter(|_| !reach::behind_proxy(|name| std::env::var(name).ok()));
        let Some(endpoint) = endpoint else {
            return Ok(());
        };
        reach::probe(&endpoint, reach::CONNECT_TIMEOUT)
            .await
            .map_err(|reason| ResticError::NoConnection {
                repository: self.repository(),
                endpoint: endpoint.to_string(),
                reason,
            })
    }

    /// Checks that the repository opens with the password, and creates it with
    /// `restic init` when it does not exist.
    pub async fn open_or_init(&self) -> Result<RepoOpened, ResticError> {
        self.open_or_init_with(&["init"]).await
    }

    /// [`Restic::open_or_init`] with the `init` command line `init` (the copy
    /// repository's: `init --copy-chunker-params`, the source named by
    /// `RESTIC_FROM_*`).
    pub async fn open_or_init_with(&self, init: &[&str]) -> Result<RepoOpened, ResticError> {
        match self.open().await? {
            Some(_) => Ok(RepoOpened::Existing),
            None => self.init_with(init).await.map(|_| RepoOpened::Initialised),
        }
    }

    /// Opens the repository with the password: `Some(id)` (the id in its
    /// config, from `restic cat config`), or `None` when there is no
    /// repository at `RESTIC_REPOSITORY`. Any other failure is an error.
    pub async fn open(&self) -> Result<Option<String>, ResticError> {
        let version = self.version().await.map_err(|e| ResticError::NotRunnable {
            binary: self.binary.display().to_string(),
            detail: format!("{e:#}"),
        })?;
        let repository = self.repository();
        if let Some(detail) = rustic::local_path(self.settings.repository.expose())
            .and_then(|p| not_a_directory(std::path::Path::new(p)))
        {
            // restic 0.18+ retries this for 15 minutes (0.14 said it at once).
            return Err(ResticError::Unreachable { repository, detail });
        }
        self.reachable().await?;
        if self.s3_bucket_missing().await {
            return Ok(None);
        }
        let check = self.preflight_step(&CAT_CONFIG).await?;
        if check.code == Some(0) {
            return self.config_id(&check.stdout).map(Some);
        }
        match classify_open_failure(version, check.code, &check.stderr) {
            OpenFailure::Missing => Ok(None),
            OpenFailure::WrongPassword => Err(ResticError::WrongPassword { repository }),
            OpenFailure::Other => {
                let detail = self.stderr_tail(&check.stderr);
                Err(ResticError::Unreachable { repository, detail })
            }
        }
    }

    /// True when the repository is on S3 and rustic's backend finds no
    /// `config` there (the bucket or the repository is missing): restic 0.18
    /// would retry a missing bucket for 15 minutes. Any doubt (another
    /// backend, an error, no answer within [`reach::CONNECT_TIMEOUT`]) is
    /// `false`, and `restic cat config` decides as before.
    async fn s3_bucket_missing(&self) -> bool {
        if !self.settings.repository.expose().starts_with("s3:") {
            return false;
        }
        let Ok(spec) = backend::map_settings(&self.settings) else {
            return false;
        };
        let ask = tokio::task::spawn_blocking(move || rustic::has_config(&spec));
        match tokio::time::timeout(reach::CONNECT_TIMEOUT, ask).await {
            Ok(Ok(Ok(found))) => !found,
            Ok(Ok(Err(e))) => {
                tracing::debug!(error = %format!("{e:#}"), "rustic could not look for the repository's config; restic will");
                false
            }
            _ => false,
        }
    }

    /// `restic init` where there is no repository; the new repository's id.
    /// When someone else created it in the meantime, that one's id.
    pub async fn init(&self) -> Result<String, ResticError> {
        self.init_with(&["init"]).await
    }

    /// [`Restic::init`] with the command line `init`.
    async fn init_with(&self, init: &[&str]) -> Result<String, ResticError> {
        let repository = self.repository();
        let init = self.preflight_step(init).await?;
        if init.code == Some(0) {
            tracing::info!(repository = %repository, "initialised the restic repository (it did not exist)");
        }
        let again = self.preflight_step(&CAT_CONFIG).await?;
        if again.code == Some(0) {
            return self.config_id(&again.stdout);
        }
        let detail = self.stderr_tail(&init.stderr);
        Err(ResticError::InitFailed { repository, detail })
    }

    /// One restic command of the preflight, stopped after
    /// `PREFLIGHT_TIMEOUT` ([`reach::PREFLIGHT_TIMEOUT`] by default).
    async fn preflight_step(&self, args: &[&str]) -> Result<Finished, ResticError> {
        let limit = self.settings.preflight_timeout;
        match self.finish_within(args, limit).await {
            Ok(done) => Ok(done),
            Err(Bounded::Spawn(detail)) => Err(ResticError::NotRunnable {
                binary: self.binary.display().to_string(),
                detail,
            }),
            Err(Bounded::TimedOut { stderr }) => Err(ResticError::TimedOut {
                repository: self.repository(),
                command: args
                    .iter()
                    .filter(|a| !a.starts_with('-'))
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" "),
                seconds: limit.as_secs(),
                detail: self.stderr_tail(&stderr),
            }),
        }
    }

    /// The `id` of `restic cat config`'s JSON.
    fn config_id(&self, stdout: &str) -> Result<String, ResticError> {
        json::parse_config_id(stdout).ok_or_else(|| ResticError::Unreachable {
            repository: self.repository(),
            detail: "`restic cat config` printed no repository id".into(),
        })
    }
}

/// Why `restic cat config` failed.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum OpenFailure {
    /// There is no repository.
    Missing,
    /// The repository is there, but the password opens no key.
    WrongPassword,
    /// Anything else: the repository cannot be reached or read.
    Other,
}

/// Tells from restic's version, exit code and stderr why `restic cat config`
/// failed.
pub(super) fn classify_open_failure(
    version: Version,
    code: Option<i32>,
    stderr: &str,
) -> OpenFailure {
    // The message is the same in every version; exit code 12 exists from 0.17.1.
    if code == Some(12) || stderr.contains("wrong password or no key found") {
        return OpenFailure::WrongPassword;
    }
    if version >= EXIT_CODES_SINCE {
        // 0.17+ prints "unable to open config file" for other errors too; only 10 is "missing".
        return if code == Some(10) {
            OpenFailure::Missing
        } else {
            OpenFailure::Other
        };
    }
    // Older restic exits 1 for everything, with the backend's reason after
    // "unable to open config file" (which also covers "connection refused").
    const NOT_THERE: [&str; 3] = ["no such file or directory", "does not exist", "not found"];
    let lower = stderr.to_lowercase();
    if code == Some(1)
        && lower.contains("unable to open config file")
        && NOT_THERE.iter().any(|n| lower.contains(n))
    {
        OpenFailure::Missing
    } else {
        OpenFailure::Other
    }
}

/// Why a local repository path cannot be a directory: the path itself, or
/// the nearest of its parents that exists, is something else (a file).
/// `None` when it is or can become a directory.
fn not_a_directory(path: &std::path::Path) -> Option<String> {
    for p in path.ancestors() {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => return None,
            Ok(_) => return Some(format!("{} is not a directory", p.display())),
            Err(_) => continue,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const V014: Version = Version::new(0, 14, 0);
    const V017: Version = Version::new(0, 17, 0);
    const V018: Version = Version::new(0, 18, 0);
    // Recorded from restic 0.14.0, see tests/fixtures/restic/README.md.
    const MISSING_014: &str =
        include_str!("../../tests/fixtures/restic/cat-config-missing-0.14.stderr");
    const WRONG_PASSWORD_014: &str =
        include_str!("../../tests/fixtures/restic/cat-config-wrong-password-0.14.stderr");
    const NOT_A_DIRECTORY_014: &str =
        include_str!("../../tests/fixtures/restic/cat-config-not-a-directory-0.14.stderr");
    const REST_REFUSED_014: &str =
        include_str!("../../tests/fixtures/restic/cat-config-rest-refused-0.14.stderr");
    // Recorded from restic 0.18.0 (Debian trixie), same README.
    const MISSING_018: &str =
        include_str!("../../tests/fixtures/restic/cat-config-missing-0.18.stderr");
    const WRONG_PASSWORD_018: &str =
        include_str!("../../tests/fixtures/restic/cat-config-wrong-password-0.18.stderr");

    #[test]
    fn a_local_repository_under_a_file_is_not_a_directory() {
        let dir = tempfile::TempDir::new().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let under = file.join("repo");
        assert_eq!(
            super::not_a_directory(&under),
            Some(format!("{} is not a directory", file.display()))
        );
        assert_eq!(
            super::not_a_directory(&file),
            Some(format!("{} is not a directory", file.display()))
        );
        assert_eq!(super::not_a_directory(&dir.path().join("new/repo")), None);
        assert_eq!(super::not_a_directory(dir.path()), None);
    }

    #[test]
    fn open_failures_014_recorded() {
        use OpenFailure::*;
        let c = |code, stderr| classify_open_failure(V014, Some(code), stderr);
        assert_eq!(c(1, MISSING_014), Missing);
        assert_eq!(c(1, WRONG_PASSWORD_014), WrongPassword);
        assert_eq!(c(1, NOT_A_DIRECTORY_014), Other);
        // Same "unable to open config file" message as a missing repository.
        assert_eq!(c(1, REST_REFUSED_014), Other);
        let rest_404 = "Fatal: unable to open config file: <config/> does not exist\nIs there a repository at the following location?\nrest:http://127.0.0.1:8000/";
        assert_eq!(c(1, rest_404), Missing);
        assert_eq!(classify_open_failure(V014, None, MISSING_014), Other);
    }

    #[test]
    fn open_failures_018_recorded() {
        use OpenFailure::*;
        // 0.17+ prefixes the message and exits 10 (recorded: exit 10), a wrong
        // password exits 12 (0.17.1+; recorded: exit 12).
        assert!(MISSING_018.starts_with("Fatal: repository does not exist: unable to open config file: stat /tmp/stackshot-rec/repo-missing/config: no such file or directory"));
        assert_eq!(classify_open_failure(V018, Some(10), MISSING_018), Missing);
        assert_eq!(classify_open_failure(V017, Some(10), MISSING_018), Missing);
        assert_eq!(
            classify_open_failure(V018, Some(12), WRONG_PASSWORD_018),
            WrongPassword
        );
        // Other config errors exit 1 with the same "unable to open config file".
        assert_eq!(classify_open_failure(V018, Some(1), MISSING_018), Other);
        assert_eq!(classify_open_failure(V018, Some(1), MISSING_014), Other);
        assert_eq!(classify_open_failure(V018, Some(12), ""), WrongPassword);
        // 0.17.0 exits 1 on a wrong password; the message decides.
        assert_eq!(
            classify_open_failure(V017, Some(1), WRONG_PASSWORD_018),
            WrongPassword
        );
        assert_eq!(classify_open_failure(V018, Some(11), "locked"), Other);
    }
}
