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
mod messages;
mod open;
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
pub use messages::{redact, without_noise};
pub use open::RepoOpened;

/// A way to run restic against one repository.
#[derive(Debug)]
pub struct Restic {
    binary: PathBuf,
    settings: ResticSettings,
    version: OnceCell<Version>,
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
