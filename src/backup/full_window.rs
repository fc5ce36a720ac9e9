//! The full stop window: everything stopped for the whole of the dumps and
//! the snapshot(s), as the older tools do. Used when the configuration asks
//! for it or the short window cannot be had (the report says why), for
//! `backup --no-restart`, and as the short window's fallback.

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Result, anyhow};

use super::cleanup;
use super::snapshot::{self, Snapshotted, Target, VOLUMES_DIR};
use crate::config::StopWindow;
use crate::container::ContainerInfo;
use crate::context::Context;
use crate::dumps::{self, DATABASES_DIR, DumpResult, Prepared};
use crate::layout::SnapshotMode;
use crate::plan::{self, Plan};
use crate::report::{Outcome, Phase, RunReport, SnapshotReport};
use crate::restic::BackupExit;
use crate::window::{self, Shutdown};

/// Stops `plan.stop` (and, for `--no-restart`, the databases after their
/// dumps), dumps and snapshots inside the window, starts everything again,
/// cleans up, and gives the run's outcome: partial when some files could
/// not be read, an error that names the containers left down first.
pub async fn run(
    ctx: &Context,
    shutdown: &Shutdown,
    r: &mut RunReport,
    plan: &Plan,
    sidecar: &ContainerInfo,
    prepared: &[Prepared],
) -> Result<(Outcome, Option<String>)> {
    let t = Instant::now();
    let gathered = Mutex::new(Gathered::default());
    let work = || work(ctx, plan, sidecar, prepared, &gathered, &r.run_id);
    let times = window::Times {
        stop: ctx.config.stop_timeout,
        limit: Some(ctx.config.window_limit(StopWindow::Full)),
        freeze: true,
    };
    let (result, window) = if ctx.leave_down {
        window::with_final_stop_window(
            &ctx.engine,
            &ctx.journal,
            &r.run_id,
            &plan.stop,
            &database_stops(plan),
            times,
            shutdown,
            work,
        )
        .await
    } else {
        window::with_stop_window(
            &ctx.engine,
            &ctx.journal,
            &r.run_id,
            &plan.stop,
            times,
            shutdown,
            work,
        )
        .await
    };
    r.phase("window", t);
    let gathered = gathered.into_inner().unwrap_or_default();
    r.phases.extend(gathered.phases);
    r.dumps = gathered.dumps;
    let partial: Vec<String> = gathered
        .snapshots
        .iter()
        .filter(|s| s.exit == BackupExit::Partial)
        .map(|s| {
            format!(
                "{} snapshot {}: some files could not be read",
                s.report.mode,
                s.report.id.as_deref().unwrap_or("?")
            )
        })
        .collect();
    r.snapshots = gathered
        .snapshots
        .into_iter()
        .map(|s| s.report)
        .collect::<Vec<SnapshotReport>>();
    let restart_failed = window.restart_failed.clone();
    r.window = Some(window);

    cleanup::run(ctx, r, &plan.project, plan.atomic && !plan.dumps.is_empty()).await;

    window::running_again(&restart_failed, &ctx.journal, result)?;
    if partial.is_empty() {
        Ok((Outcome::Success, None))
    } else {
        Ok((Outcome::Partial, Some(partial.join("; "))))
    }
}

/// Results gathered inside the window, kept even when a later step fails.
#[derive(Default)]
struct Gathered {
    dumps: Vec<DumpResult>,
    snapshots: Vec<Snapshotted>,
    phases: Vec<Phase>,
}

/// The database containers as stop entries: each dumped container not in the
/// stop list, once (a final backup stops them after their dumps; a data
/// directory copy, those it copies). Pure.
fn database_stops(plan: &Plan) -> Vec<plan::StopEntry> {
    let mut out: Vec<plan::StopEntry> = Vec::new();
    for d in &plan.dumps {
        if plan.stop.iter().any(|s| s.container.id == d.container.id)
            || out.iter().any(|s| s.container.id == d.container.id)
        {
            continue;
        }
        out.push(plan::StopEntry {
            container: d.container.clone(),
            wave: 0,
            after: vec![],
            running: true,
            pre_stop: None,
            freeze: false,
        });
    }
    out
}

/// Runs `snapshot` with the database servers whose data directory is copied
/// as files (`stackshot.volumes.data-dir`) stopped: a window inside the
/// run's, after their dumps. Without any, just runs it.
async fn with_data_dirs_stopped<T, Fut>(
    ctx: &Context,
    plan: &Plan,
    run_id: &str,
    snapshot: impl FnOnce() -> Fut,
) -> Result<T>
where
    Fut: std::future::Future<Output = Result<T>>,
{
    let stops: Vec<plan::StopEntry> = database_stops(plan)
        .into_iter()
        .filter(|s| {
            plan.dumps
                .iter()
                .any(|d| d.data_dir && d.container.id == s.container.id)
        })
        .collect();
    if stops.is_empty() {
        return snapshot().await;
    }
    // The run's own signal handling is the outer window's: it closes this one too.
    let (_never_fires, never) = Shutdown::new();
    let (result, window) = window::with_stop_window(
        &ctx.engine,
        &ctx.journal,
        run_id,
        &stops,
        ctx.config.stop_timeout,
        &never,
        snapshot,
    )
    .await;
    let result = match window.stop_failed {
        Some(why) => Err(anyhow!(
            "cannot stop a database to copy its data directory: {why}"
        )),
        None => result,
    };
    window::running_again(&window.restart_failed, &ctx.journal, result)
}

/// Inside the window: dumps, then the snapshot(s).
async fn work(
    ctx: &Context,
    plan: &Plan,
    sidecar: &ContainerInfo,
    prepared: &[Prepared],
    gathered: &Mutex<Gathered>,
    run_id: &str,
) -> Result<()> {
    let target = Target {
        host: &plan.host,
        project: &plan.project,
        secrets: &ctx.config.restic.env,
        stall_timeout: ctx.config.snapshot_stall_timeout,
        run_id,
    };
    let push_phase = |name: &str, t: Instant| {
        gathered.lock().unwrap().phases.push(Phase {
            name: name.into(),
            seconds: t.elapsed().as_secs_f64(),
        })
    };
    if plan.atomic {
        if !prepared.is_empty() {
            let t = Instant::now();
            let results = dumps::dump_all(&ctx.engine, prepared, Path::new(DATABASES_DIR)).await?;
            dumps::write_sums(Path::new(DATABASES_DIR), &results, prepared)?;
            gathered.lock().unwrap().dumps = results;
            push_phase("dumps", t);
        }
        let t = Instant::now();
        let mut paths = Vec::new();
        if !plan.volumes.is_empty() {
            paths.push(VOLUMES_DIR);
        }
        if !prepared.is_empty() {
            paths.push(DATABASES_DIR);
        }
        let snap = with_data_dirs_stopped(ctx, plan, run_id, || {
            crate::activity::track(
                "restic backup of the volumes and dumps",
                snapshot::in_worker(
                    &ctx.engine,
                    &target,
                    plan,
                    sidecar,
                    SnapshotMode::Atomic,
                    true,
                    &paths,
                ),
            )
        })
        .await?;
        gathered.lock().unwrap().snapshots.push(snap);
        push_phase("snapshot", t);
    } else {
        let t = Instant::now();
        for p in prepared {
            for job in &p.jobs {
                let (dump, snap) = crate::activity::track(
                    format!("{} into restic", dumps::describe_job(p, job)),
                    snapshot::database_via_stdin(&ctx.engine, &ctx.restic, &target, p, job),
                )
                .await?;
                let mut g = gathered.lock().unwrap();
                g.dumps.push(dump);
                g.snapshots.push(snap);
            }
        }
        push_phase("dumps", t);
        if !plan.volumes.is_empty() {
            let t = Instant::now();
            let snap = with_data_dirs_stopped(ctx, plan, run_id, || {
                crate::activity::track(
                    "restic backup of the volumes",
                    snapshot::in_worker(
                        &ctx.engine,
                        &target,
                        plan,
                        sidecar,
                        SnapshotMode::Volumes,
                        true,
                        &[VOLUMES_DIR],
                    ),
                )
            })
            .await?;
            gathered.lock().unwrap().snapshots.push(snap);
            push_phase("snapshot", t);
        }
    }
    Ok(())
}
