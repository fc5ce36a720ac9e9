//! Running restic: opening (or creating) the repository, listing snapshots,
//! building the `backup` command line, and reading exit codes.
//!
//! Secrets travel only in the child's environment (never in argv), and every
//! message built here shows the repository through [`mask_repository`] and
//! hides secret values ([`Restic::redact`]). Works with restic 0.14 and newer:
//! where restic's behaviour differs (exit codes 10/11/12 exist from 0.17), the
//! version from `restic version` decides. The JSON formats are in [`json`].

mod args;
pub mod backend;
mod error;
pub mod hold;
pub mod json;
pub mod locks;
pub mod reach;
pub mod rustic;
pub mod spool;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use tokio::process::Command;
use tokio::sync::OnceCell;

use crate::config::{ResticSettings, mask_repository};
use args::check_tag;
pub use args::{BackupArgsError, BackupExit, backup_args, classify_backup_exit};
pub use error::ResticError;
pub use json::{
    BackupError, BackupEvent, BackupSummary, ExitError, Progress, SnapshotInfo, SnapshotSummary,
    Version, parse_backup_line, parse_snapshots, parse_version,
};

/// How many lines of restic's stderr an error message keeps.
const STDERR_TAIL: usize = 10;

/// The first restic with distinct exit codes for "no repository" (10) and
/// "locked" (11); wrong password (12) followed in 0.17.1.
const EXIT_CODES_SINCE: Version = Version::new(0, 17, 0);

/// Reads the repository's config. `--no-lock`: a lock held by a running
/// prune must not look like a failure.
const CAT_CONFIG: [&str; 3] = ["--no-lock", "cat", "config"];

/// A way to run restic against one repository.
#[derive(Debug)]
pub struct Restic {
    binary: PathBuf,
    settings: ResticSettings,
    version: OnceCell<Version>,
}

/// What [`Restic::open_or_init`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoOpened {
    /// The repository was there and the password fits.
    Existing,
    /// There was no repository; `restic init` created it.
    Initialised,
}

/// Why [`Restic::finish_within`] has no result.
enum Bounded {
    /// restic could not be started (or waited for).
    Spawn(String),
    /// The limit passed; restic was killed. Its stderr until then.
    TimedOut { stderr: String },
}

/// A finished restic process.
struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Restic {
    /// restic found on `PATH`, for the repository of `settings`.
    pub fn new(settings: &ResticSettings) -> Restic {
        Restic::with_binary("restic", settings)
    }

    /// A given restic binary (for tests), for the repository of `settings`.
    pub fn with_binary(binary: impl Into<PathBuf>, settings: &ResticSettings) -> Restic {
        Restic {
            binary: binary.into(),
            settings: settings.clone(),
            version: OnceCell::new(),
        }
    }

    /// The repository, masked for logs and messages.
    pub fn repository(&self) -> String {
        mask_repository(self.settings.repository.expose())
    }

    /// A restic command with the settings' variables in its environment, stdin
    /// closed, stdout and stderr piped, killed when dropped.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        for (name, value) in &self.settings.env {
            // The value was read from NAME_FILE already; restic refuses both
            // (`-r` and `--repository-file` are mutually exclusive).
            cmd.env_remove(format!("{name}_FILE"));
            cmd.env(name, value.expose());
        }
        cmd.env_remove("RESTIC_REPOSITORY_FILE")
            .env("RESTIC_REPOSITORY", self.settings.repository.expose())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// restic's version (asked once, then remembered).
    pub async fn version(&self) -> anyhow::Result<Version> {
        let version = self
            .version
            .get_or_try_init(|| async {
                let out = self.run(&["version"]).await?;
                parse_version(&out)
                    .ok_or_else(|| anyhow!("cannot read restic's version from {:?}", out.trim()))
            })
            .await?;
        Ok(*version)
    }

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
        match self.open().await? {
            Some(_) => Ok(RepoOpened::Existing),
            None => self.init().await.map(|_| RepoOpened::Initialised),
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
        let repository = self.repository();
        let init = self.preflight_step(&["init"]).await?;
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

    /// The `id` of `restic cat config`'s JSON.
    fn config_id(&self, stdout: &str) -> Result<String, ResticError> {
        json::parse_config_id(stdout).ok_or_else(|| ResticError::Unreachable {
            repository: self.repository(),
            detail: "`restic cat config` printed no repository id".into(),
        })
    }

    /// `restic unlock`: removes stale locks only (those of dead processes).
    pub async fn unlock(&self) -> anyhow::Result<()> {
        self.run(&["unlock"]).await.map(drop)
    }

    /// `restic snapshots --json`, only snapshots carrying every tag in `tags`.
    pub async fn snapshots(&self, tags: &[&str]) -> anyhow::Result<Vec<SnapshotInfo>> {
        let mut args = vec!["snapshots", "--json"];
        for tag in tags {
            check_tag(tag)?;
        }
        let joined = tags.join(",");
        if !tags.is_empty() {
            args.extend(["--tag", &joined]);
        }
        let out = self.run(&args).await?;
        parse_snapshots(&out).with_context(|| {
            format!(
                "cannot read `restic snapshots --json` output for repository {}",
                self.repository()
            )
        })
    }

    /// Runs restic to completion and returns its stdout. A non-zero exit is an
    /// error naming the masked repository, the exit code and restic's last
    /// stderr lines (secrets hidden).
    pub async fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let done = self.finish(args).await.map_err(|detail| {
            anyhow!(
                "cannot run restic ({}): {detail}; install restic 0.14 or newer and put it on PATH",
                self.binary.display()
            )
        })?;
        if done.code != Some(0) {
            let subcommand = args.iter().find(|a| !a.starts_with('-')).unwrap_or(&"");
            bail!(self.failure_message(subcommand, done.code, &done.stderr));
        }
        Ok(done.stdout)
    }

    /// One line describing a failed restic command: `restic SUBCOMMAND failed
    /// for repository R (exit code N: meaning): last stderr lines`. For callers
    /// that run [`Restic::command`] themselves, such as the backup.
    pub fn failure_message(&self, subcommand: &str, code: Option<i32>, stderr: &str) -> String {
        let exit = match code {
            Some(code) => format!("exit code {code}{}", exit_meaning(code)),
            None => "killed by a signal".to_string(),
        };
        format!(
            "restic {subcommand} failed for repository {} ({exit}): {}",
            self.repository(),
            self.stderr_tail(stderr)
        )
    }

    /// `text` with the repository masked and the values of secret variables
    /// (passwords, keys, tokens) replaced by `<hidden>` ([`redact`]).
    pub fn redact(&self, text: &str) -> String {
        let mut out = redact(text, &self.settings.env);
        let repository = self.settings.repository.expose();
        if !repository.is_empty() {
            out = out.replace(repository, &self.repository());
        }
        out
    }

    /// The last lines of restic's stderr on one line, redacted; JSON messages
    /// (0.18+ `exit_error`, backup errors) reduced to their text.
    fn stderr_tail(&self, stderr: &str) -> String {
        let lines: Vec<&str> = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let lines: Vec<String> = without_noise(&lines)
            .into_iter()
            .map(|line| match parse_backup_line(line) {
                Some(BackupEvent::ExitError(e)) => e.message.replace('\n', " "),
                Some(BackupEvent::Error(e)) => {
                    format!("{}: {}", e.item, e.message.as_deref().unwrap_or("error"))
                }
                _ => line.to_string(),
            })
            .collect();
        if lines.is_empty() {
            return "restic printed no error message".to_string();
        }
        let tail = lines[lines.len().saturating_sub(STDERR_TAIL)..].join(" | ");
        self.redact(&tail)
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

    /// Runs restic for at most `limit`, then kills it; on a timeout, what it
    /// had printed on stderr comes back with the error (its retry lines say
    /// why it is stuck).
    async fn finish_within(&self, args: &[&str], limit: Duration) -> Result<Finished, Bounded> {
        use tokio::io::AsyncReadExt;
        let mut child = self
            .command(args)
            .spawn()
            .map_err(|e| Bounded::Spawn(e.to_string()))?;
        let stderr_buf = Arc::new(Mutex::new(Vec::new()));
        let mut stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&stderr_buf);
        let err_task = tokio::spawn(async move {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("stderr buffer")
                    .extend_from_slice(&chunk[..n]);
            }
        });
        let out_task = tokio::spawn(async move {
            let mut out = Vec::new();
            let _ = stdout.read_to_end(&mut out).await;
            out
        });
        let waited = tokio::time::timeout(limit, child.wait()).await;
        let text = |buf: &Arc<Mutex<Vec<u8>>>| {
            String::from_utf8_lossy(&buf.lock().expect("stderr buffer")).into_owned()
        };
        match waited {
            Ok(status) => {
                let status = status.map_err(|e| Bounded::Spawn(e.to_string()))?;
                let stdout = out_task.await.unwrap_or_default();
                let _ = err_task.await;
                Ok(Finished {
                    code: status.code(),
                    stdout: String::from_utf8_lossy(&stdout).into_owned(),
                    stderr: text(&stderr_buf),
                })
            }
            Err(_) => {
                let _ = child.kill().await;
                err_task.abort();
                out_task.abort();
                Err(Bounded::TimedOut {
                    stderr: text(&stderr_buf),
                })
            }
        }
    }

    async fn finish(&self, args: &[&str]) -> Result<Finished, String> {
        let out = self
            .command(args)
            .output()
            .await
            .map_err(|e| e.to_string())?;
        Ok(Finished {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// What restic's documented exit codes mean (`""` for the generic ones).
fn exit_meaning(code: i32) -> &'static str {
    match code {
        3 => ": some source files could not be read",
        10 => ": the repository does not exist",
        11 => {
            ": the repository is locked; if no other restic runs, `restic unlock` removes stale locks"
        }
        12 => ": wrong password",
        130 => ": interrupted",
        _ => "",
    }
}

/// The one redaction of what restic (or its worker) printed, before it
/// reaches a log, a report or an error: the values of secret variables in
/// `env` (names with PASSWORD, SECRET, KEY, TOKEN, CREDENTIAL or AUTH, not
/// `…_FILE`, whose path helps) become `<hidden>`, and `RESTIC_REPOSITORY`'s
/// value is shown with its password masked. Pure.
pub fn redact(text: &str, env: &[(String, crate::env::Secret)]) -> String {
    let mut out = text.to_string();
    for (name, value) in env {
        let value = value.expose();
        if name == "RESTIC_REPOSITORY" {
            if !value.is_empty() {
                out = out.replace(value, &mask_repository(value));
            }
        } else if is_secret_name(name) && value.len() >= 4 {
            out = out.replace(value, "<hidden>");
        }
    }
    out
}

fn is_secret_name(name: &str) -> bool {
    const MARKERS: [&str; 6] = ["PASSWORD", "SECRET", "KEY", "TOKEN", "CREDENTIAL", "AUTH"];
    !name.ends_with("_FILE") && MARKERS.iter().any(|m| name.contains(m))
}

/// Why `restic cat config` failed.
#[derive(Debug, PartialEq, Eq)]
enum OpenFailure {
    Missing,
    WrongPassword,
    Other,
}

fn classify_open_failure(version: Version, code: Option<i32>, stderr: &str) -> OpenFailure {
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

/// restic's stderr without what would push the error out of a short tail:
/// the Go stack trace some fatal errors carry (a function line, then its
/// `file.go:N` line), and the "retrying after" lines of a backend retried
/// before it gave up, when an error follows them.
/// A panic's trace is dropped too (`goroutine N [running]:`, its frames and
/// `created by` lines); its `panic: …` line stays.
pub fn without_noise<'a>(lines: &[&'a str]) -> Vec<&'a str> {
    // `file.go:N`, alone or, in a panic's trace, tab-indented with `+0x…` after it.
    fn is_file_line(l: &str) -> bool {
        let t = l.trim_start();
        let indented = t.len() < l.len();
        let mut words = t.split_whitespace();
        let first = words.next().unwrap_or_default();
        let rest_ok = match words.next() {
            None => true,
            Some(w) => indented && w.starts_with("+0x") && words.next().is_none(),
        };
        rest_ok
            && first.rsplit_once(':').is_some_and(|(file, n)| {
                (file.ends_with(".go") || file.ends_with(".s"))
                    && !n.is_empty()
                    && n.bytes().all(|b| b.is_ascii_digit())
            })
    }
    let goroutine = |l: &str| {
        let t = l.trim();
        (t.starts_with("goroutine ") && t.ends_with(':')) || t.starts_with("created by ")
    };
    let retrying = |l: &str| l.contains(" returned error, retrying after ");
    let mut kept: Vec<&str> = lines
        .iter()
        .enumerate()
        .filter(|(i, l)| {
            let frame = is_file_line(l)
                || goroutine(l)
                || (!l.starts_with(char::is_whitespace)
                    && lines.get(i + 1).is_some_and(|n| is_file_line(n)));
            !frame
        })
        .map(|(_, l)| *l)
        .collect();
    if kept.iter().any(|l| !retrying(l)) {
        kept.retain(|l| !retrying(l));
    }
    kept
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
    use crate::env::Secret;

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

    fn restic(repository: &str) -> Restic {
        Restic::new(&ResticSettings {
            repository: Secret::new(repository),
            env: vec![
                (
                    "AWS_SECRET_ACCESS_KEY".into(),
                    Secret::new("aws-very-secret"),
                ),
                ("RESTIC_PASSWORD".into(), Secret::new("hunter22")),
                (
                    "RESTIC_PASSWORD_FILE".into(),
                    Secret::new("/run/secrets/pw"),
                ),
                ("RESTIC_REPOSITORY".into(), Secret::new(repository)),
            ],
            preflight_timeout: reach::PREFLIGHT_TIMEOUT,
        })
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

    #[test]
    fn stderr_tail_of_018_exit_errors() {
        let r = restic("/tmp/stackshot-rec/repo-missing");
        let tail = |f| r.stderr_tail(f);
        assert_eq!(
            tail(include_str!(
                "../../tests/fixtures/restic/backup-wrong-password-0.18.stderr"
            )),
            "Fatal: wrong password or no key found"
        );
        // The exit_error's message spans three lines; the tail keeps it on one.
        assert_eq!(
            tail(include_str!(
                "../../tests/fixtures/restic/backup-missing-0.18.stderr"
            )),
            "Fatal: repository does not exist: unable to open config file: stat /tmp/stackshot-rec/repo-missing/config: no such file or directory Is there a repository at the following location? /tmp/stackshot-rec/repo-missing"
        );
        // A partial backup: the file errors, then the warning exit_error (code 3).
        let unreadable = tail(include_str!(
            "../../tests/fixtures/restic/backup-unreadable-0.18.stderr"
        ));
        assert!(
            unreadable.starts_with("data/locked: openfile for readdirnames failed")
                && unreadable.ends_with(
                    "permission denied | Warning: at least one source file could not be read"
                ),
            "{unreadable}"
        );
        assert_eq!(classify_backup_exit(3), BackupExit::Partial);
        // A repository under a regular file: 15 minutes of retries (dropped
        // from the tail), then exit 1.
        let not_a_dir =
            include_str!("../../tests/fixtures/restic/cat-config-not-a-directory-0.18.stderr");
        assert_eq!(
            classify_open_failure(V018, Some(1), not_a_dir),
            OpenFailure::Other
        );
        assert_eq!(
            tail(not_a_dir),
            "Stat(<config/>) failed: stat /tmp/stackshot-rec/file/repo/config: not a directory | Fatal: unable to open config file: stat /tmp/stackshot-rec/file/repo/config: not a directory | Is there a repository at the following location? | /tmp/stackshot-rec/file/repo"
        );
    }

    #[test]
    fn messages_hide_secrets() {
        let r = restic("rest:https://user:pa55word@backup.example:8000/shop");
        assert_eq!(
            r.repository(),
            "rest:https://user:***@backup.example:8000/shop"
        );
        let stderr = "noise\nFatal: rest:https://user:pa55word@backup.example:8000/shop: key aws-very-secret, password hunter22, file /run/secrets/pw\n";
        let msg = r.failure_message("snapshots", Some(1), stderr);
        assert_eq!(
            msg,
            "restic snapshots failed for repository rest:https://user:***@backup.example:8000/shop (exit code 1): noise | Fatal: rest:https://user:***@backup.example:8000/shop: key <hidden>, password <hidden>, file /run/secrets/pw"
        );
        let msg = r.failure_message("backup", None, "");
        assert!(
            msg.ends_with("(killed by a signal): restic printed no error message"),
            "{msg}"
        );
        assert!(
            r.failure_message("prune", Some(11), "x")
                .contains("exit code 11: the repository is locked")
        );
    }

    #[test]
    fn stderr_tail_keeps_last_lines_and_reads_json() {
        let r = restic("/repository");
        let many: String = (1..=15).map(|i| format!("line {i}\n")).collect();
        let tail = r.stderr_tail(&many);
        assert!(
            tail.starts_with("line 6 | ") && tail.ends_with("line 15"),
            "{tail}"
        );
        let json = r#"{"message_type":"exit_error","code":12,"message":"Fatal: wrong password or no key found"}"#;
        assert_eq!(r.stderr_tail(json), "Fatal: wrong password or no key found");
    }

    #[test]
    fn stderr_tail_drops_go_frames_and_retries() {
        let r = restic("/repository");
        let stderr = include_str!("../../tests/fixtures/restic/snapshots-read-only-0.14.stderr");
        let tail = r.stderr_tail(stderr);
        assert!(
            tail.starts_with("open /tmp/rorepo/locks/")
                && tail.ends_with(": read-only file system | unable to create lock in backend"),
            "{tail}"
        );
        // Retries alone are kept: they are the only clue.
        let only = "Save(<lock/1>) returned error, retrying after 1s: timeout";
        assert_eq!(r.stderr_tail(only), only);
    }

    #[test]
    fn a_panic_trace_is_dropped_and_its_panic_line_kept() {
        // The frames as restic 0.14 printed them in CI on a full repository
        // (the CI log kept the last eight worker lines); the lines before
        // them are of the same shape, not recorded.
        let lines = [
            "panic: send on closed channel",
            "",
            "goroutine 70 [running]:",
            "github.com/restic/restic/internal/archiver.(*TreeSaver).worker(0x0?, {0x104abd0, 0xc00015c7c0}, 0xc0001029c0)",
            "\tgithub.com/restic/restic/internal/archiver/tree_saver.go:136 +0x225",
            "github.com/restic/restic/internal/archiver.NewTreeSaver.func1()",
            "\tgithub.com/restic/restic/internal/archiver/tree_saver.go:32 +0x29",
            "golang.org/x/sync/errgroup.(*Group).Go.func1()",
            "\tgolang.org/x/sync/errgroup/errgroup.go:75 +0x64",
            "created by golang.org/x/sync/errgroup.(*Group).Go",
            "\tgolang.org/x/sync/errgroup/errgroup.go:72 +0xa5",
        ];
        assert_eq!(without_noise(&lines), ["panic: send on closed channel", ""]);
        // A message with a file name in it is no frame.
        let error =
            ["Fatal: unable to save snapshot: write /repository/data/x: no space left on device"];
        assert_eq!(without_noise(&error), error);
    }
}
