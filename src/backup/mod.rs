//! One backup run, as a list of phases (`run` calls them in this order,
//! one line each):
//!
//! 1. recover: under the run lock, remove an interrupted run's worker and start
//!    the containers it left stopped;
//! 2. plan: discover the stack and build the plan (refuse a plan with errors);
//! 3. pre-backup hooks, before anything is stopped;
//! 4. [`preflight`]: repository, credentials, tools — before any container is
//!    touched;
//! 5. the stop window: [`short`] by default (pre-pass, pin ∥ files, dumps
//!    after the window, one merged snapshot), or [`full_window`] (dumps,
//!    then the snapshot(s), inside the window), which is also the short
//!    window's fallback; containers started again on every path;
//! 6. [`cleanup`]: dump files and stray workers removed;
//! 7. after a success, the copy to `COPY_REPOSITORY` ([`crate::copy`]),
//!    outside the window, before anyone is told.
//!
//! The post-backup hooks run after any of them once the pre-backup hooks
//! were reached ([`backup_as`]).

pub mod cleanup;
pub mod files;
pub mod full_window;
pub mod identity;
pub mod merge;
pub mod pause;
pub mod pin;
pub mod preflight;
pub mod prepass;
pub mod short;
pub mod snapshot;

use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow, bail};

use crate::config::StopWindow;
use crate::config::copy::CopyConfig;
use crate::container::ContainerInfo;
use crate::context::{Context, plan_options};
use crate::discovery::{self, Discovery};
use crate::dumps::{self, DATABASES_DIR, DumpResult};
use crate::engine::worker;
use crate::hooks;
use crate::plan::{self, HookPhase, Plan};
use crate::report::{CopyReport, Outcome, RunReport, SnapshotReport};
use crate::window;
use short::Short;
use window::Shutdown;

/// Runs one backup. Never panics and never returns early with a container
/// left stopped: the report says how it went.
pub async fn backup(ctx: &Context, shutdown: &Shutdown) -> RunReport {
    backup_as(ctx, shutdown, RunReport::start()).await
}

/// [`backup`] under a report its caller started, so that the run id the
/// caller announced (the daemon answers a trigger with it) is the one in
/// the report, the tags and the logs.
pub async fn backup_as(ctx: &Context, shutdown: &Shutdown, mut report: RunReport) -> RunReport {
    tracing::info!(run = %report.run_id, "backup starting");
    let notifier = &ctx.config.notify;
    let mut unnotified = notifier.started().await;
    let mut planned = None;
    let mut repository_id = None;
    let outcome = run(ctx, shutdown, &mut report, &mut planned, &mut repository_id).await;
    // Post-backup hooks: on every path once the pre-backup hooks were reached.
    let outcome = match &planned {
        Some(plan) => post_backup(ctx, plan, outcome).await,
        None => outcome,
    };
    let mut report = match outcome {
        Ok((outcome, reason)) => report.finish(outcome, reason),
        Err(e) => report.finish(Outcome::Failed, Some(format!("{e:#}"))),
    };
    if report.project.is_empty() {
        report.project = ctx.config.project.clone().unwrap_or_default();
    }
    if matches!(report.result, Outcome::Success | Outcome::Partial)
        && let Some(id) = repository_id
    {
        remember_repository(ctx, &id, &report.run_id);
    }
    // The copy, outside the window: the stack runs again by now.
    if report.result == Outcome::Success
        && let (Some(copy), Some(plan)) = (&ctx.config.copy, &planned)
    {
        report.copy = Some(copy_after_run(ctx, copy, plan).await);
    }
    match report.result {
        Outcome::Success => tracing::info!(seconds = report.seconds(), "backup succeeded"),
        _ => {
            tracing::error!(result = ?report.result, reason = report.reason.as_deref().unwrap_or(""), "backup did not succeed")
        }
    }
    // The stack runs again by now: telling people never holds it down.
    unnotified.extend(notifier.finished(&report).await);
    report.notify_failures = unnotified;
    report
}

/// Runs the post-backup hooks and folds their failure into the run's outcome:
/// a stack left in maintenance mode needs someone, so a failing post-backup
/// hook fails an otherwise good run (its snapshot stays: it is sound).
async fn post_backup(
    ctx: &Context,
    plan: &Plan,
    outcome: Result<(Outcome, Option<String>)>,
) -> Result<(Outcome, Option<String>)> {
    if !plan.hooks.iter().any(|h| h.phase == HookPhase::PostBackup) {
        return outcome;
    }
    match (
        outcome,
        hooks::run_phase(&ctx.engine, plan, HookPhase::PostBackup).await,
    ) {
        (o, Ok(())) => o,
        (Ok((Outcome::Failed, reason)), Err(e)) => Ok((
            Outcome::Failed,
            Some(format!(
                "{}; also, a post-backup hook failed: {e:#}",
                reason.unwrap_or_default()
            )),
        )),
        (Ok(_), Err(e)) => Ok((
            Outcome::Failed,
            Some(format!(
                "a post-backup hook failed (the snapshot was written): {e:#}"
            )),
        )),
        (Err(run), Err(e)) => Err(anyhow!("{run:#}; also, a post-backup hook failed: {e:#}")),
    }
}

/// Copies a successful run to the copy repository, unless the copy runs
/// on `COPY_CRON`; under the run lock, shared (a restore or a backup of
/// another process waits, a verify may read beside it).
async fn copy_after_run(ctx: &Context, copy: &CopyConfig, plan: &Plan) -> CopyReport {
    let repository = crate::config::mask_repository(copy.restic.repository.expose());
    if copy.cron.is_some() {
        return CopyReport::scheduled(repository);
    }
    match ctx.journal.lock_shared() {
        Ok(_lock) => crate::copy::copy(&ctx.restic, copy, &plan.host, &plan.project).await,
        Err(e) => CopyReport::failed(repository, format!("not copied after this run: {e:#}"), 0.0),
    }
}

/// Remembers the repository a run wrote a snapshot to ([`identity`]); a
/// failure to is logged: the run itself is sound.
fn remember_repository(ctx: &Context, id: &str, run_id: &str) {
    let store = identity::Store::in_dir(&ctx.config.state_dir);
    let location = identity::location(&ctx.restic.repository());
    if let Err(e) = store.set(&location, id, run_id) {
        tracing::warn!(error = %format!("{e:#}"), "cannot remember the repository's id; the next run cannot tell a replaced repository from this one");
    }
}

/// The phases, in order. Each returns early on failure; from the pre-backup
/// hooks on, [`backup_as`] runs the post-backup hooks whatever happened, and
/// every path through a window restarts what it stopped and cleans up.
async fn run(
    ctx: &Context,
    shutdown: &Shutdown,
    r: &mut RunReport,
    planned: &mut Option<Plan>,
    repository_id: &mut Option<String>,
) -> Result<(Outcome, Option<String>)> {
    // One backup or restore at a time in this container, across processes.
    let _lock = ctx.journal.lock()?;
    let (found, sidecar) = recover(ctx, r).await?;
    let plan = plan_run(ctx, r, &found)?;
    *planned = Some(plan.clone());
    pre_backup_hooks(ctx, r, &plan).await?;
    let ready = preflight::run(ctx, r, &plan, &sidecar).await?;
    *repository_id = Some(ready.repository_id.clone());
    match &plan.window_reason {
        None => {
            r.window_mode = Some(StopWindow::Short);
            let outcome = short::run(
                ctx,
                shutdown,
                r,
                &plan,
                &sidecar,
                &ready.prepared,
                &ready.in_window,
            )
            .await;
            cleanup::run(ctx, r, &plan.project, true).await;
            match outcome? {
                Short::Done(snapshots, dumps) => return Ok(short_done(r, snapshots, dumps)),
                Short::Fallback(why) => {
                    let note = format!(
                        "a pinned dump could not be trusted ({why}); the backup was repeated once in the full window"
                    );
                    tracing::warn!("{note}");
                    r.notes.push(note);
                    dumps::clear_dir(Path::new(DATABASES_DIR))?;
                }
            }
        }
        // The short window was asked for (the default) and cannot be had:
        // the report says why, not only the plan.
        Some(why) if ctx.config.stop_window == StopWindow::Short => {
            r.notes
                .push(format!("the full stop window was used: {why}"));
        }
        Some(_) => {}
    }
    r.window_mode = Some(StopWindow::Full);
    full_window::run(ctx, shutdown, r, &plan, &sidecar, &ready.prepared).await
}

/// Phase 1, under the run lock: the engine's API checked, the stack
/// discovered, and what a run that died left behind put right (its worker
/// removed, the containers it stopped started).
async fn recover(ctx: &Context, r: &mut RunReport) -> Result<(Discovery, ContainerInfo)> {
    let t = Instant::now();
    // A socket proxy that denies a part of the API fails here, in one line.
    crate::engine::access::check(&ctx.engine, ctx.config.docker_host_shown()).await?;
    let found = discovery::discover(ctx.engine.docker(), &ctx.config).await?;
    r.project = found.project.clone();
    let sidecar = found.self_container.clone().ok_or_else(|| {
        anyhow!("stackshot backup must run inside the sidecar container (the snapshot worker is started from its image): use `docker compose exec backup stackshot backup`")
    })?;
    // Leftovers of a run that died: its worker first, then its stopped containers.
    worker::remove_leftovers(&ctx.engine, &found.project).await;
    r.recovered = window::recover(&ctx.engine, &ctx.journal)
        .await
        .context("an earlier run died inside its stop window")?;
    r.phase("recover", t);
    Ok((found, sidecar))
}

/// Phase 2: the plan, refused with its errors before anything is touched.
fn plan_run(ctx: &Context, r: &mut RunReport, found: &Discovery) -> Result<Plan> {
    let t = Instant::now();
    if ctx.leave_down && found.swarm.is_some() {
        bail!(
            "backup --no-restart is not supported in a swarm: it would stop the databases' task containers, and swarm replaces a stopped task; run a normal backup, then scale the stack's services to 0 (docker service scale …); nothing was stopped"
        );
    }
    let mut opts = plan_options(&ctx.config, found);
    if ctx.leave_down {
        // The stack stays down: nothing is won by a short window.
        opts.full_window = Some(
            "backup --no-restart: the stack stays down afterwards, so the dumps and the snapshot run inside the window".into(),
        );
    }
    let plan = plan::build(&opts, &found.containers);
    if !plan.is_ok() {
        r.plan_refused = true;
        bail!(
            "the plan has errors, nothing was touched (see `stackshot plan`): {}",
            plan.errors.join("; ")
        );
    }
    if plan.volumes.is_empty() && plan.dumps.is_empty() {
        bail!(
            "nothing to back up: label services with stackshot.volumes=true or stackshot.postgres/mariadb/mysql=true"
        );
    }
    r.phase("plan", t);
    Ok(plan)
}

/// Phase 3: the pre-backup hooks, before anything is stopped.
async fn pre_backup_hooks(ctx: &Context, r: &mut RunReport, plan: &Plan) -> Result<()> {
    if plan.hooks.iter().any(|h| h.phase == HookPhase::PreBackup) {
        let t = Instant::now();
        hooks::run_phase(&ctx.engine, plan, HookPhase::PreBackup)
            .await
            .context("a pre-backup hook failed; nothing was stopped")?;
        r.phase("pre-backup hooks", t);
    }
    Ok(())
}

/// The outcome of a short window that wrote its snapshot: partial when some
/// files could not be read.
fn short_done(
    r: &mut RunReport,
    snapshots: Vec<SnapshotReport>,
    dumps: Vec<DumpResult>,
) -> (Outcome, Option<String>) {
    r.snapshots = snapshots;
    r.dumps = dumps;
    let unreadable: Vec<String> = r
        .snapshots
        .iter()
        .flat_map(|s| s.unreadable.iter().cloned())
        .collect();
    if unreadable.is_empty() {
        (Outcome::Success, None)
    } else {
        (
            Outcome::Partial,
            Some(format!(
                "some files could not be read: {}",
                unreadable.join("; ")
            )),
        )
    }
}
