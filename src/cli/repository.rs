//! The commands on what the repository holds: `stackshot snapshots`,
//! `verify`, `drill` and `restore`.

use std::process::ExitCode;

use anyhow::Result;

use super::RestoreCommand;
use crate::context::Context;
use crate::window::Shutdown;
use crate::{catalog, discovery, restore};

/// `stackshot snapshots`: the runs of this project in the repository.
pub(super) async fn snapshots(ctx: &Context, json: bool) -> Result<ExitCode> {
    ctx.restic.reachable().await?;
    let found = discovery::discover(ctx.engine.docker(), &ctx.config).await?;
    let runs = catalog::list(&ctx.restic, &found.project).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
    } else if runs.is_empty() {
        println!(
            "No stackshot snapshots of project {:?} in the repository yet.",
            found.project
        );
    } else {
        print!("{}", catalog::render(&runs));
    }
    Ok(ExitCode::SUCCESS)
}

/// `stackshot drill`: loads a run's dumps into throwaway containers; exit
/// code 1 when a dump fails.
pub(super) async fn drill(ctx: &Context, snapshot: &str, json: bool) -> Result<ExitCode> {
    // Not beside a backup or restore in this container (beside
    // another drill: each has its own throwaways).
    let _lock = ctx.journal.lock_shared()?;
    let report = restore::drill(ctx, snapshot).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(success_if(report.problems().is_empty()))
}

/// `stackshot verify`: checks the repository and a run's dumps; each
/// problem is a line on stderr, and exit code 1.
pub(super) async fn verify(
    ctx: &Context,
    snapshot: &str,
    read_data_subset: Option<&str>,
    quick: bool,
) -> Result<ExitCode> {
    // Not beside a backup or restore in this container.
    let _lock = ctx.journal.lock_shared()?;
    let problems = restore::verify(ctx, snapshot, read_data_subset, quick).await?;
    for p in &problems {
        eprintln!("stackshot: verify: {p}");
    }
    Ok(success_if(problems.is_empty()))
}

/// `stackshot restore …`: takes the run lock and holds off signals when the
/// restore overwrites anything, then restores; exit code 1 when it did not
/// (a restore that only showed what it would do, say).
pub(super) async fn restore(ctx: &Context, what: RestoreCommand) -> Result<ExitCode> {
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
    Ok(success_if(restore_what(ctx, what).await?))
}

/// Runs the restore `what` asks for; `true` when it is done (or was a dry
/// run).
async fn restore_what(ctx: &Context, what: RestoreCommand) -> Result<bool> {
    Ok(match what {
        RestoreCommand::Volumes {
            snapshot,
            services,
            to_volume,
            dry_run,
            yes,
            ..
        } => {
            let opts = restore::VolumeOptions {
                snapshot,
                services,
                to_volume,
                dry_run,
                yes,
            };
            restore::volumes(ctx, &opts).await? || dry_run
        }
        RestoreCommand::Database {
            service,
            snapshot,
            database,
            target_container,
            replace,
            ..
        } => {
            let opts = restore::DatabaseOptions {
                snapshot,
                service,
                database,
                target_container,
                replace,
            };
            restore::database(ctx, &opts).await?;
            true
        }
        RestoreCommand::All {
            snapshot,
            yes,
            replace,
            ..
        } => restore::all(ctx, &snapshot, yes, replace).await?,
    })
}

/// Exit code 0 when `ok`, else 1.
fn success_if(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
