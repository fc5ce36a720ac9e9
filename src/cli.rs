//! The command line: `stackshot <command>`.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::engine::Engine;
use crate::env::Env;
use crate::journal::Journal;
use crate::report::Outcome;
use crate::restic::Restic;
use crate::run::{self, Context};
use crate::window::Shutdown;
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
    Backup {
        /// Print the run's report as JSON on stdout (progress stays on stderr).
        #[arg(long)]
        json: bool,
        /// Print the plan and touch nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Internal: runs inside the snapshot worker container.
    #[command(hide = true)]
    Worker {
        /// The command (`restic`) and its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
}

/// Exit code for bad configuration or input.
pub const EXIT_CONFIG: u8 = 2;

/// Runs the command line; returns the process's exit code.
pub async fn main(cli: Cli) -> ExitCode {
    if let Command::Worker { args } = &cli.command {
        // The worker gets its settings on stdin, not from the environment.
        let Some(("restic", rest)) = args.split_first().map(|(a, b)| (a.as_str(), b)) else {
            eprintln!("stackshot worker: expected `restic ARGS…`");
            return ExitCode::from(EXIT_CONFIG);
        };
        return worker::main(rest).await;
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

async fn print_plan(config: &Config, engine: &Engine, json: bool) -> Result<bool> {
    let found = discovery::discover(engine.docker(), config).await?;
    let plan = plan::build(&run::plan_options(config, &found), &found.containers);
    if json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        print!("{}", plan::render_table(&plan));
    }
    Ok(plan.is_ok())
}

async fn run(cli: Cli, config: Config) -> Result<ExitCode> {
    let engine = Engine::connect(config.docker_host.as_deref()).await?;
    match cli.command {
        Command::Plan { json } => {
            let ok = print_plan(&config, &engine, json).await?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_CONFIG)
            })
        }
        Command::Backup { json, dry_run } => {
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
            };
            let report = run::backup(&ctx, &shutdown).await;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.render());
            }
            Ok(if report.result == Outcome::Success {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Worker { .. } => unreachable!("handled before the configuration is read"),
    }
}
