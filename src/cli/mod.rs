//! The command line: `stackshot <command>`.
//!
//! This file holds the commands and maps each onto the part that does it
//! (`run`); the glue of each command sits beside it, by group: `backup.rs`
//! (plan, backup), `repository.rs` (snapshots, verify, drill, restore) and
//! `sidecar.rs` (daemon, status, healthcheck, idle). The worker's own
//! arguments are the worker's business ([`worker::main`]).

mod backup;
mod repository;
mod sidecar;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::context::Context;
use crate::engine::Engine;
use crate::env::Env;
use crate::restic::Restic;
use crate::window::journal::Journal;
use crate::{logging, worker};

/// stackshot: one consistent restic snapshot of a compose stack's volumes and databases.
#[derive(Debug, Parser)]
#[command(name = "stackshot", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what a backup would stop, dump and snapshot, and what it leaves out and why.
    Plan {
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a backup now: stop, dump, snapshot, start again. Exits 0 only on success.
    ///
    /// With a daemon running in this container, asks it to run and streams its
    /// progress; without one, runs in this process.
    Backup {
        /// Print the run's report as JSON on stdout (progress stays on stderr).
        #[arg(long)]
        json: bool,
        /// Print the plan and touch nothing.
        #[arg(long)]
        dry_run: bool,
        /// A final backup, for a migration: leave every stopped container
        /// down afterwards, and stop the database containers too once they
        /// are dumped. Runs in the full window, in this process (not through
        /// the daemon). A backup that fails starts everything again.
        #[arg(long)]
        no_restart: bool,
    },
    /// Run as the sidecar: scheduled backups, /healthz and /metrics, the control socket.
    Daemon,
    /// Show the daemon's current run, its last runs and the next one.
    Status {
        /// Print the state as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Exit 0 when /healthz answers 200 (for the compose healthcheck; the image has no curl).
    Healthcheck,
    /// List the backup runs in the repository, newest first.
    Snapshots {
        /// Print them as JSON.
        #[arg(long)]
        json: bool,
        /// `--from`: the repository to read.
        #[command(flatten)]
        reading: Reading,
    },
    /// Bring volumes and databases back from a snapshot.
    #[command(subcommand)]
    Restore(RestoreCommand),
    /// Check the repository (`restic check`) and a run's dumps against their SHA256SUMS.
    Verify {
        /// `latest`, a run id or a snapshot id.
        #[arg(long, default_value = "latest")]
        snapshot: String,
        /// Also read this part of the pack data, e.g. `10%` or `1/5` (restic --read-data-subset).
        #[arg(long)]
        read_data_subset: Option<String>,
        /// Structure and dump checksums only: skip reading the run's other
        /// file data (verify says what it did not read).
        #[arg(long)]
        quick: bool,
        /// `--from`: the repository to read.
        #[command(flatten)]
        reading: Reading,
    },
    /// Prove a run's dumps load: each into a throwaway container of its
    /// database service (same image and environment, fresh volumes), then
    /// every table counted against the estimates recorded at backup time.
    /// The throwaways are removed afterwards. Exit code 1 when a dump fails.
    Drill {
        /// `latest`, a run id or a snapshot id.
        #[arg(long, default_value = "latest")]
        snapshot: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// `--from`: the repository to read.
        #[command(flatten)]
        reading: Reading,
    },
    /// Keeps the container up without a schedule or HTTP port, until
    /// SIGTERM: for backups started from outside (`docker compose exec
    /// backup stackshot backup` from a host's cron or CI). The image has no
    /// shell to idle with.
    Idle,
    /// Internal: runs inside the snapshot worker container.
    #[command(hide = true)]
    Worker {
        /// The command (`restic`) and its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
}

/// What `stackshot restore` brings back.
#[derive(Debug, Subcommand)]
pub enum RestoreCommand {
    /// Put the files of services' mounts back (their containers are stopped meanwhile).
    Volumes {
        /// `latest`, a run id or a snapshot id.
        #[arg(long, default_value = "latest")]
        snapshot: String,
        /// Only this service (repeatable); default: every backed-up mount.
        #[arg(long = "service")]
        services: Vec<String>,
        /// Restore into this volume instead (inspection, migration); one mount only.
        #[arg(long)]
        to_volume: Option<String>,
        /// Show what would be overwritten and stop.
        #[arg(long)]
        dry_run: bool,
        /// Overwrite; without it, stackshot shows what it would overwrite and stops.
        #[arg(long)]
        yes: bool,
        /// `--from`: the repository to read.
        #[command(flatten)]
        reading: Reading,
    },
    /// Load a dump back into its database container, after checking its SHA-256.
    Database {
        /// The database service whose dump to restore.
        #[arg(long)]
        service: String,
        /// `latest`, a run id or a snapshot id.
        #[arg(long, default_value = "latest")]
        snapshot: String,
        /// One database (a dump made with stackshot.databases).
        #[arg(long)]
        database: Option<String>,
        /// Load into this container instead of the service's.
        #[arg(long)]
        target_container: Option<String>,
        /// Overwrite a target that already has data.
        #[arg(long)]
        replace: bool,
        /// `--from`: the repository to read.
        #[command(flatten)]
        reading: Reading,
    },
    /// Volumes, then databases, for the whole stack.
    All {
        /// `latest`, a run id or a snapshot id.
        #[arg(long, default_value = "latest")]
        snapshot: String,
        /// Overwrite; without it, stackshot shows what it would do and stops.
        #[arg(long)]
        yes: bool,
        /// Overwrite databases that already have data.
        #[arg(long)]
        replace: bool,
        /// `--from`: the repository to read.
        #[command(flatten)]
        reading: Reading,
    },
}

impl RestoreCommand {
    /// The repository the restore reads.
    fn source(&self) -> Source {
        match self {
            RestoreCommand::Volumes { reading, .. }
            | RestoreCommand::Database { reading, .. }
            | RestoreCommand::All { reading, .. } => reading.from,
        }
    }
}

/// `--from`, for the commands that read a repository.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Reading {
    /// The repository to read: `primary` (RESTIC_REPOSITORY) or `copy`
    /// (COPY_REPOSITORY), for when the primary is lost.
    #[arg(long, value_enum, default_value_t = Source::Primary)]
    pub from: Source,
}

/// The repository a command reads (`--from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// The repository every run writes to (`RESTIC_REPOSITORY`).
    Primary,
    /// The copy repository (`COPY_REPOSITORY`).
    Copy,
}

impl Command {
    /// The repository the command reads: `--from`, else the primary one.
    fn source(&self) -> Source {
        match self {
            Command::Snapshots { reading, .. }
            | Command::Verify { reading, .. }
            | Command::Drill { reading, .. } => reading.from,
            Command::Restore(what) => what.source(),
            _ => Source::Primary,
        }
    }
}

/// `config` reading the copy repository in place of the primary one: every
/// restic command and rustic then goes there. An error when there is none.
fn reading_copy(mut config: Config) -> Result<Config, String> {
    let Some(copy) = &config.copy else {
        return Err("--from copy: no copy repository is configured; accepted: --from primary, or set COPY_REPOSITORY and COPY_PASSWORD[_FILE] in the sidecar's environment".into());
    };
    config.restic = copy.restic.clone();
    Ok(config)
}

/// Exit code for bad configuration or input.
pub const EXIT_CONFIG: u8 = 2;

/// Runs the command line; returns the process's exit code.
pub async fn main(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Worker { args } => worker::main(&args).await,
        Command::Idle => sidecar::idle().await,
        Command::Healthcheck => sidecar::healthcheck().await,
        command => configured(command).await,
    }
}

/// Runs a command that needs the configuration: reads it (a bad one is one
/// line and exit code 2), sets up logging, then [`run`]s the command; its
/// error is one line on stderr and exit code 1.
async fn configured(command: Command) -> ExitCode {
    let config = match Config::from_env(&Env::from_process()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("stackshot: configuration error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    logging::init(config.log_level, config.log_format);
    let config = match command.source() {
        Source::Primary => config,
        Source::Copy => match reading_copy(config) {
            Ok(c) => {
                tracing::info!(repository = %crate::config::mask_repository(c.restic.repository.expose()), "reading the copy repository");
                c
            }
            Err(e) => {
                eprintln!("stackshot: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
    };
    match run(command, config).await {
        Ok(code) => code,
        Err(e) => {
            // One line: the error and its causes, outermost first.
            eprintln!("stackshot: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Maps a command onto the part that does it. First the commands a running
/// daemon answers (`status`; `backup`, when a daemon listens); then the
/// engine is connected and the command runs in this process.
async fn run(command: Command, config: Config) -> Result<ExitCode> {
    match command {
        Command::Status { json } => return sidecar::status(json).await,
        // ACCEPT_NEW_REPOSITORY is this process's setting: such a run does
        // not go through the daemon, which does not see it.
        Command::Backup {
            json,
            dry_run: false,
            no_restart: false,
        } if !config.accept_new_repository => {
            if let Some(code) = backup::via_daemon(json).await? {
                return Ok(code);
            }
        }
        _ => {}
    }
    let engine = Engine::connect(config.docker_host.as_deref()).await?;
    match command {
        Command::Daemon => sidecar::daemon(context(config, engine)).await,
        Command::Status { .. } => unreachable!("answered above"),
        Command::Snapshots { json, .. } => {
            repository::snapshots(&context(config, engine), json).await
        }
        Command::Drill { snapshot, json, .. } => {
            repository::drill(&context(config, engine), &snapshot, json).await
        }
        Command::Verify {
            snapshot,
            read_data_subset,
            quick,
            ..
        } => {
            let subset = read_data_subset.as_deref();
            repository::verify(&context(config, engine), &snapshot, subset, quick).await
        }
        Command::Restore(what) => repository::restore(&context(config, engine), what).await,
        Command::Plan { json } => backup::plan(&config, &engine, json).await,
        Command::Backup {
            json,
            dry_run: true,
            ..
        } => backup::dry_run(&config, &engine, json).await,
        Command::Backup {
            json, no_restart, ..
        } => backup::backup(config, engine, json, no_restart).await,
        Command::Worker { .. } | Command::Healthcheck | Command::Idle => {
            unreachable!("handled before the configuration is read")
        }
    }
}

/// What every command run against the stack needs, for a run that starts
/// every container it stops again.
fn context(config: Config, engine: Engine) -> Context {
    Context {
        restic: Restic::new(&config.restic),
        journal: Journal::in_dir(&config.state_dir),
        engine,
        config,
        leave_down: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_s_bad_use_exits_like_bad_input() {
        assert_eq!(worker::EXIT_USAGE, EXIT_CONFIG);
    }
}
