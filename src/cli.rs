//! The command line: `stackshot <command>`.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::env::Env;
use crate::plan::{self, PlanOptions};
use crate::{discovery, docker, logging};

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
}

/// Exit code for bad configuration or input.
pub const EXIT_CONFIG: u8 = 2;

/// Runs the command line; returns the process's exit code.
pub async fn main(cli: Cli) -> ExitCode {
    let config = match Config::from_env(&Env::from_process()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("stackshot: configuration error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    logging::init(config.log_level, config.log_format);
    match run(cli, &config).await {
        Ok(code) => code,
        Err(e) => {
            // One line: the error and its causes, outermost first.
            eprintln!("stackshot: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, config: &Config) -> Result<ExitCode> {
    match cli.command {
        Command::Plan { json } => {
            let docker = docker::connect(config.docker_host.as_deref()).await?;
            let found = discovery::discover(&docker, config).await?;
            let opts = PlanOptions {
                host: config
                    .backup_host
                    .clone()
                    .unwrap_or_else(|| found.project.clone()),
                project: found.project,
                atomic: config.atomic,
                include_all_projects: config.include_all_projects,
                exclude_bind_mounts: config.exclude_bind_mounts,
                self_id: found.self_container.map(|c| c.id),
            };
            let plan = plan::build(&opts, &found.containers);
            if json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                print!("{}", plan::render_table(&plan));
            }
            Ok(if plan.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_CONFIG)
            })
        }
    }
}
