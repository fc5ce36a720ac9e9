//! Running restic: opening (or creating) the repository, listing snapshots,
//! building the `backup` command line, and reading exit codes.
//!
//! Secrets travel only in the child's environment (never in argv), and every
//! message built here shows the repository through [`mask_repository`] and
//! hides secret values ([`Restic::redact`]). Works with restic 0.14 and newer:
//! where restic's behaviour differs (exit codes 10/11/12 exist from 0.17), the
//! version from `restic version` decides. The JSON formats are in [`json`].
//!
//! # The files
//!
//! - This file holds [`Restic`]: how a restic command is built (the
//!   settings' variables in its environment, stdin closed, output piped),
//!   restic's version, `restic unlock` and the snapshot listing.
//! - `run.rs` runs a restic process and collects its exit code and output,
//!   to completion or for at most a given time.
//! - `messages.rs` turns what restic printed into one-line messages: secret
//!   values hidden, Go's stack traces and retry lines dropped, the exit
//!   code's meaning named.
//! - `open.rs` opens the repository for the preflight: it checks that the
//!   server takes a connection and the password fits, and runs `restic init`
//!   where there is no repository.
//! - `args.rs` builds the `restic backup` command line and reads its exit
//!   code; `error.rs` says why the repository cannot be used
//!   ([`ResticError`]).
//! - [`json`] parses restic's JSON output, [`reach`] probes the storage
//!   server, and [`locks`] and [`hold`] read and hold the repository's locks.
//! - [`backend`] maps the repository to a rustic backend, [`rustic`] opens
//!   it with rustic_core, and [`spool`] keeps the stop window's file pass on
//!   local disk until it is uploaded.

mod args;
pub mod backend;
mod error;
pub mod hold;
pub mod json;
pub mod locks;
mod messages;
mod open;
pub mod reach;
mod run;
pub mod rustic;
pub mod spool;

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{Context, anyhow};
use tokio::process::Command;
use tokio::sync::OnceCell;

use crate::config::{RESTIC_PREFIXES, ResticSettings, mask_repository};
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

    /// The same restic binary, for another repository (the copy's).
    pub fn with_settings(&self, settings: &ResticSettings) -> Restic {
        Restic::with_binary(self.binary.clone(), settings)
    }

    /// The repository, masked for logs and messages.
    pub fn repository(&self) -> String {
        mask_repository(self.settings.repository.expose())
    }

    /// A restic command with the settings' variables in its environment, stdin
    /// closed, stdout and stderr piped, killed when dropped.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        // restic reads only the settings' variables, none inherited from
        // this process (the settings hold each of them already, `_FILE`
        // forms read): a command for the copy repository never sees the
        // primary's password file, and no command sees a variable its
        // settings left out.
        for (name, _) in std::env::vars_os() {
            if let Some(name) = name.to_str()
                && RESTIC_PREFIXES.iter().any(|p| name.starts_with(p))
            {
                cmd.env_remove(name);
            }
        }
        for (name, value) in &self.settings.env {
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
}
