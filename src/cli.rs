//! The command line: `stackshot <command>`.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::backup as run;
use crate::config::Config;
use crate::context::{self, Context};
use crate::daemon::control::{self, Reply, Request};
use crate::daemon::{self, http};
use crate::engine::Engine;
use crate::env::Env;
use crate::report::Outcome;
use crate::restic::Restic;
use crate::window::Shutdown;
use crate::window::journal::Journal;
use crate::{discovery, logging, plan, worker};

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
    },
}

/// Exit code for bad configuration or input.
pub const EXIT_CONFIG: u8 = 2;

/// Runs the command line; returns the process's exit code.
pub async fn main(cli: Cli) -> ExitCode {
    if let Command::Worker { args } = &cli.command {
        // The worker gets its settings on stdin, not from the environment.
        return worker::main(args).await;
    }
    if let Command::Idle = &cli.command {
        return idle().await;
    }
    if let Command::Healthcheck = &cli.command {
        // Only HTTP_ADDR: the health check must not depend on the rest of the
        // configuration (the image's HEALTHCHECK runs it wherever the image runs).
        let addr = match Config::http_addr_from_env(&Env::from_process()) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("stackshot: configuration error: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        };
        return match http::healthcheck(addr, std::time::Duration::from_secs(10)).await {
            Ok((code, body)) => {
                println!("{body}");
                if code == 200 {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("stackshot: error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let config = match Config::from_env(&Env::from_process()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("stackshot: configuration error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    logging::init(config.log_level, config.log_format);
    match run(cli, config).await {
        Ok(code) => code,
        Err(e) => {
            // One line: the error and its causes, outermost first.
            eprintln!("stackshot: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `stackshot idle`: hosts `docker exec`s, and starts again the containers
/// of an exec'd run that died inside its stop window
/// ([`daemon::orphans`]). Without a usable configuration it only waits:
/// the container still hosts execs, which then say what is wrong.
async fn idle() -> ExitCode {
    let mut shutdown = match crate::window::Shutdown::on_signals() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("stackshot: error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    match Config::from_env(&Env::from_process()) {
        Ok(config) => {
            logging::init(config.log_level, config.log_format);
            match idle_watch(config, shutdown.clone()).await {
                Ok(()) => {}
                Err(e) => tracing::warn!(
                    error = %format!("{e:#}"),
                    "not watching for stop windows whose run died"
                ),
            }
        }
        Err(e) => eprintln!(
            "stackshot idle: not watching for stop windows whose run died: configuration error: {e}"
        ),
    }
    shutdown.wait().await;
    ExitCode::SUCCESS
}

async fn idle_watch(config: Config, shutdown: crate::window::Shutdown) -> Result<()> {
    let engine = Engine::connect(config.docker_host.as_deref()).await?;
    let found = discovery::discover(engine.docker(), &config).await?;
    let journal = Journal::in_dir(&config.state_dir);
    tracing::info!(project = %found.project, journal = %journal.path().display(), "idle: watching for stop windows whose run died");
    tokio::spawn(daemon::orphans::watch(
        engine,
        journal,
        found.project,
        shutdown,
    ));
    Ok(())
}

/// The running daemon's current plan, printed; `None` when no daemon listens
/// or it has none yet.
async fn print_daemon_plan(json: bool) -> Result<Option<bool>> {
    let Some(stream) = control::connect(&daemon::socket_path()).await else {
        return Ok(None);
    };
    let mut answer = None;
    control::call(stream, &Request::Plan, |reply| {
        if let Reply::Plan {
            plan,
            table,
            ok,
            checked_at,
        } = reply
        {
            answer = Some((plan, table, ok, checked_at));
        }
    })
    .await?;
    let Some((plan, table, ok, checked_at)) = answer else {
        return Ok(None);
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        eprintln!(
            "stackshot: the running daemon's plan, as of {} (read from the engine by the daemon)",
            checked_at.to_rfc3339()
        );
        print!("{table}");
    }
    Ok(Some(ok))
}

async fn print_plan(config: &Config, engine: &Engine, json: bool) -> Result<bool> {
    let found = discovery::discover(engine.docker(), config).await?;
    let plan = plan::build(&context::plan_options(config, &found), &found.containers);
    if json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        if let Some(line) = discovery::swarm_line(&found, &plan.host) {
            println!("{line}");
        }
        print!("{}", plan::render_table(&plan));
    }
    Ok(plan.is_ok())
}

fn context(config: Config, engine: Engine) -> Context {
    Context {
        restic: Restic::new(&config.restic),
        journal: Journal::in_dir(&config.state_dir),
        engine,
        config,
        leave_down: false,
    }
}

/// A backup's exit code: 0 on success, 2 when the plan had errors (nothing
/// was touched; `stackshot plan` exits 2 for the same plan), else 1. The
/// same whether the run was this process's or the daemon's. Pure.
fn exit_code(report: &crate::report::RunReport) -> u8 {
    if report.result == Outcome::Success {
        0
    } else if report.plan_refused {
        EXIT_CONFIG
    } else {
        1
    }
}

fn exit_for(report: &crate::report::RunReport) -> ExitCode {
    ExitCode::from(exit_code(report))
}

fn print_report(report: &crate::report::RunReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(())
}

/// Asks the daemon over its socket; `None` when no daemon listens.
async fn backup_via_daemon(json: bool) -> Result<Option<ExitCode>> {
    let Some(stream) = control::connect(&daemon::socket_path()).await else {
        return Ok(None);
    };
    let mut code = ExitCode::FAILURE;
    let mut answered = false;
    control::call(stream, &Request::Backup, |reply| match reply {
        Reply::Accepted { run_id } => eprintln!("stackshot: the daemon started run {run_id}"),
        Reply::Log { line } => eprintln!("{line}"),
        Reply::Report { report } => {
            answered = true;
            code = exit_for(&report);
            let _ = print_report(&report, json);
        }
        Reply::Busy { running } => {
            answered = true;
            match running {
                Some(r) => eprintln!(
                    "stackshot: a backup is already running (run {}, {} since {}); nothing was started",
                    r.run_id, r.trigger, r.started_at.to_rfc3339()
                ),
                None => eprintln!("stackshot: the daemon is shutting down; nothing was started"),
            }
        }
        Reply::Error { message } => eprintln!("stackshot: error: {message}"),
        Reply::Status { .. } | Reply::Plan { .. } => {}
    })
    .await?;
    if !answered {
        eprintln!("stackshot: the daemon closed the connection without a report (did it stop?)");
    }
    Ok(Some(code))
}

async fn status(json: bool) -> Result<ExitCode> {
    let Some(stream) = control::connect(&daemon::socket_path()).await else {
        eprintln!(
            "stackshot: no daemon is running in this container (start it with `stackshot daemon`, the image's default command)"
        );
        return Ok(ExitCode::FAILURE);
    };
    let mut state = None;
    control::call(stream, &Request::Status, |reply| {
        if let Reply::Status { state: s } = reply {
            state = Some(*s);
        }
    })
    .await?;
    let state = state.ok_or_else(|| anyhow::anyhow!("the daemon sent no status"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&state)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("daemon up since {}", state.started_at.to_rfc3339());
    match &state.running {
        Some(r) => println!(
            "running: run {} ({}) since {}",
            r.run_id,
            r.trigger,
            r.started_at.to_rfc3339()
        ),
        None => println!("running: nothing"),
    }
    if !state.left_down.is_empty() {
        println!(
            "left down by backup --no-restart (run {}): {}; stackshot will not start them (docker compose start does)",
            state.left_down_by.as_deref().unwrap_or("?"),
            state.left_down.join(", ")
        );
    }
    match state.next_run {
        Some(t) => println!("next run: {}", t.to_rfc3339()),
        None => println!("next run: none scheduled"),
    }
    println!(
        "last success: {}",
        state
            .last_success
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "never".into())
    );
    if let Some(p) = &state.plan {
        println!(
            "plan: {} (changed {})",
            p.summary.line(),
            p.changed_at.to_rfc3339()
        );
        for e in &p.summary.errors {
            println!("  plan error: {e}");
        }
    }
    if !state.recovered.is_empty() {
        println!(
            "started at daemon start-up (interrupted run): {}",
            state.recovered.join(", ")
        );
    }
    if !state.history.is_empty() {
        println!(
            "
last runs:"
        );
        for r in &state.history {
            println!(
                "  {}  {:<8} {:<8} {:>6.1}s  {}",
                r.started_at.to_rfc3339(),
                r.trigger,
                format!("{:?}", r.result).to_lowercase(),
                (r.finished_at - r.started_at).num_milliseconds() as f64 / 1000.0,
                r.reason.as_deref().unwrap_or("")
            );
        }
    }
    for m in &state.maintenance {
        println!(
            "{} at {}: {}",
            m.kind,
            m.at.to_rfc3339(),
            if m.ok {
                "ok".to_string()
            } else {
                format!("FAILED: {}", m.message.as_deref().unwrap_or(""))
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn run(cli: Cli, config: Config) -> Result<ExitCode> {
    match cli.command {
        Command::Status { json } => return status(json).await,
        // ACCEPT_NEW_REPOSITORY is this process's setting: such a run does
        // not go through the daemon, which does not see it.
        Command::Backup {
            json,
            dry_run: false,
            no_restart: false,
        } if !config.accept_new_repository => {
            if let Some(code) = backup_via_daemon(json).await? {
                return Ok(code);
            }
        }
        _ => {}
    }
    let engine = Engine::connect(config.docker_host.as_deref()).await?;
    match cli.command {
        Command::Daemon => {
            daemon::run(context(config, engine)).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { .. } => unreachable!("answered above"),
        Command::Snapshots { json } => {
            let ctx = context(config, engine);
            ctx.restic.reachable().await?;
            let found = discovery::discover(ctx.engine.docker(), &ctx.config).await?;
            let runs = crate::catalog::list(&ctx.restic, &found.project).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
            } else if runs.is_empty() {
                println!(
                    "No stackshot snapshots of project {:?} in the repository yet.",
                    found.project
                );
            } else {
                print!("{}", crate::catalog::render(&runs));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Drill { snapshot, json } => {
            let ctx = context(config, engine);
            // Not beside a backup or restore in this container (beside
            // another drill: each has its own throwaways).
            let _lock = ctx.journal.lock_shared()?;
            let report = crate::restore::drill(&ctx, &snapshot).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.render());
            }
            Ok(if report.problems().is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Verify {
            snapshot,
            read_data_subset,
            quick,
        } => {
            let ctx = context(config, engine);
            // Not beside a backup or restore in this container.
            let _lock = ctx.journal.lock_shared()?;
            let problems =
                crate::restore::verify(&ctx, &snapshot, read_data_subset.as_deref(), quick).await?;
            for p in &problems {
                eprintln!("stackshot: verify: {p}");
            }
            Ok(if problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Restore(what) => {
            let ctx = context(config, engine);
            let mutates = match &what {
                RestoreCommand::Volumes { dry_run, yes, .. } => *yes && !*dry_run,
                RestoreCommand::Database { .. } => true,
                RestoreCommand::All { yes, .. } => *yes,
            };
            // One backup or restore at a time in this container; and once a
            // restore has begun, SIGINT/SIGTERM no longer cut it short (its
            // stop window closes when it ends).
            let _lock = if mutates {
                Some(ctx.journal.lock()?)
            } else {
                None
            };
            let _signals = if mutates {
                Some(Shutdown::on_signals()?)
            } else {
                None
            };
            let done = match what {
                RestoreCommand::Volumes {
                    snapshot,
                    services,
                    to_volume,
                    dry_run,
                    yes,
                } => {
                    let opts = crate::restore::VolumeOptions {
                        snapshot,
                        services,
                        to_volume,
                        dry_run,
                        yes,
                    };
                    crate::restore::volumes(&ctx, &opts).await? || dry_run
                }
                RestoreCommand::Database {
                    service,
                    snapshot,
                    database,
                    target_container,
                    replace,
                } => {
                    let opts = crate::restore::DatabaseOptions {
                        snapshot,
                        service,
                        database,
                        target_container,
                        replace,
                    };
                    crate::restore::database(&ctx, &opts).await?;
                    true
                }
                RestoreCommand::All {
                    snapshot,
                    yes,
                    replace,
                } => crate::restore::all(&ctx, &snapshot, yes, replace).await?,
            };
            Ok(if done {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Plan { json } => {
            let ok = match print_daemon_plan(json).await? {
                Some(ok) => ok,
                None => print_plan(&config, &engine, json).await?,
            };
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_CONFIG)
            })
        }
        Command::Backup {
            json,
            dry_run,
            no_restart,
        } => {
            if dry_run {
                let ok = print_plan(&config, &engine, json).await?;
                if !json {
                    println!("\nDry run: nothing was stopped, dumped or snapshotted.");
                }
                return Ok(if ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(EXIT_CONFIG)
                });
            }
            let shutdown = Shutdown::on_signals()?;
            let ctx = Context {
                restic: Restic::new(&config.restic),
                journal: Journal::in_dir(&config.state_dir),
                engine,
                config,
                leave_down: no_restart,
            };
            let report = run::backup(&ctx, &shutdown).await;
            print_report(&report, json)?;
            Ok(exit_for(&report))
        }
        Command::Worker { .. } | Command::Healthcheck | Command::Idle => {
            unreachable!("handled before the configuration is read")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::RunReport;

    #[test]
    fn the_worker_s_bad_use_exits_like_bad_input() {
        assert_eq!(worker::EXIT_USAGE, EXIT_CONFIG);
    }

    #[test]
    fn a_backup_refused_for_its_plan_exits_2_like_plan() {
        let ok = RunReport::start().finish(Outcome::Success, None);
        assert_eq!(exit_code(&ok), 0);
        let failed = RunReport::start().finish(Outcome::Failed, Some("x".into()));
        assert_eq!(exit_code(&failed), 1);
        let partial = RunReport::start().finish(Outcome::Partial, None);
        assert_eq!(exit_code(&partial), 1);
        let mut refused = RunReport::start();
        refused.plan_refused = true;
        let refused = refused.finish(Outcome::Failed, Some("the plan has errors".into()));
        assert_eq!(exit_code(&refused), EXIT_CONFIG);
        // A daemon's report read by a client that knows the field, and one
        // from a daemon that did not send it.
        let v = serde_json::to_value(&refused).unwrap();
        assert_eq!(v["plan_refused"], true);
        let back: RunReport = serde_json::from_value(v).unwrap();
        assert_eq!(exit_code(&back), EXIT_CONFIG);
        let mut old = serde_json::to_value(&failed).unwrap();
        old.as_object_mut().unwrap().remove("plan_refused");
        let back: RunReport = serde_json::from_value(old).unwrap();
        assert_eq!(exit_code(&back), 1);
    }
}
