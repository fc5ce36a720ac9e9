//! `restore volumes`: the files of services' mounts put back from a run,
//! through a worker container, with the containers that use them stopped
//! inside the same always-closing stop window as a backup (or into a new
//! volume, which stops nothing).

use anyhow::{Result, anyhow, bail};

use super::{Scene, scene};
use crate::catalog::{self, Run};
use crate::container::{ContainerInfo, MountKind, ROLE_LABEL};
use crate::context::Context;
use crate::engine::worker;
use crate::layout::VOLUMES_DIR;
use crate::plan::{self, StopEntry, VolumePlan};
use crate::report::WindowReport;
use crate::restic::SnapshotInfo;
use crate::window::{self, Shutdown};

/// Options of `restore volumes`.
#[derive(Debug, Clone)]
pub struct VolumeOptions {
    /// `latest`, a run id or a snapshot id.
    pub snapshot: String,
    /// Only these services (empty: all).
    pub services: Vec<String>,
    /// Restore into this volume instead (one mount only).
    pub to_volume: Option<String>,
    /// Only show what would happen (`--dry-run`), changing nothing.
    pub dry_run: bool,
    /// Overwrite the mounts (`--yes`); without it, the restore shows what it
    /// would overwrite and stops.
    pub yes: bool,
}

pub(super) fn print_targets(
    run: &Run,
    snap: &SnapshotInfo,
    targets: &[VolumePlan],
    to_volume: Option<&str>,
) {
    println!(
        "Restore from snapshot {} (run {}, {}):",
        snap.short_id,
        run.run_id.as_deref().unwrap_or("-"),
        run.time
    );
    for t in targets {
        let into = match to_volume {
            Some(v) => format!("volume {v} (instead of {})", t.source),
            None => format!(
                "{} {}",
                if t.kind == MountKind::Bind {
                    "bind"
                } else {
                    "volume"
                },
                t.source
            ),
        };
        println!(
            "  {:<12} {} -> {} at {}: its current content is REPLACED",
            t.container.service, t.snapshot_path, into, t.destination
        );
    }
}

/// Puts the files of the chosen services' mounts back. Returns false when it
/// only showed what it would do (`--dry-run`, or no `--yes`).
/// Once started, a volume restore runs to its end (a signal does not cut it
/// short: the app must not start on a half-written volume), then the window closes.
pub async fn volumes(ctx: &Context, opts: &VolumeOptions) -> Result<bool> {
    let sc = scene(ctx, opts.yes && !opts.dry_run).await?;
    volumes_in(ctx, &sc, opts, || async { Ok(()) }).await
}

/// Restores the mounts of `opts` inside a stop window of the containers that
/// use them; `then` runs inside the same window, after the files are back and
/// the database containers among the stopped ones are started again (so
/// `restore all` loads the dumps before any app starts).
///
/// Steps: find the run's snapshot of `/volumes` ([`volumes_snapshot`]), check
/// the chosen services ([`check_services`]), pick the mounts to restore
/// ([`targets`]), show them ([`print_targets`]) and stop there unless
/// [`confirmed`]; then run the restore worker ([`worker_spec`],
/// [`run_worker`]) and `then`: straight away for `--to-volume`, else inside
/// the stop window ([`restore_in_window`]).
pub(super) async fn volumes_in<F, Fut>(
    ctx: &Context,
    sc: &Scene,
    opts: &VolumeOptions,
    then: F,
) -> Result<bool>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let (run, snap) = volumes_snapshot(sc, &opts.snapshot)?;
    check_services(sc, &opts.services)?;
    let targets = targets(ctx, sc, opts, snap).await?;
    print_targets(run, snap, &targets, opts.to_volume.as_deref());
    if !confirmed(opts) {
        return Ok(false);
    }
    let spec = worker_spec(ctx, sc, snap, &targets);
    if opts.to_volume.is_some() {
        run_worker(ctx, &spec).await?;
        then().await?;
    } else {
        restore_in_window(ctx, sc, &targets, &spec, then).await?;
    }
    Ok(true)
}

/// The run `selector` names, and its snapshot of `/volumes`.
fn volumes_snapshot<'a>(sc: &'a Scene, selector: &str) -> Result<(&'a Run, &'a SnapshotInfo)> {
    let run = catalog::resolve(&sc.runs, selector)?;
    let snap = run.volumes_snapshot().ok_or_else(|| {
        anyhow!(
            "run {} has no snapshot of {VOLUMES_DIR}",
            run.run_id.as_deref().unwrap_or(&run.time)
        )
    })?;
    Ok((run, snap))
}

/// Refuses a chosen service that has no backed-up mounts in the plan.
fn check_services(sc: &Scene, services: &[String]) -> Result<()> {
    for s in services {
        if !sc.plan.volumes.iter().any(|v| &v.container.service == s) {
            bail!(
                "service {s:?} has no backed-up mounts in the current plan; services with mounts: {}",
                sc.plan
                    .volumes
                    .iter()
                    .map(|v| v.container.service.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ok(())
}

/// The mounts to restore: the chosen services' mounts that `snap` holds
/// (an error when none is), put into the `--to-volume` volume when given.
async fn targets(
    ctx: &Context,
    sc: &Scene,
    opts: &VolumeOptions,
    snap: &SnapshotInfo,
) -> Result<Vec<VolumePlan>> {
    let mut targets: Vec<VolumePlan> = Vec::new();
    for v in &sc.plan.volumes {
        if !opts.services.is_empty() && !opts.services.contains(&v.container.service) {
            continue;
        }
        // `restic ls ID DIR` lists DIR and its direct children: cheap on large volumes.
        let listing = ctx.restic.run(&["ls", &snap.id, &v.snapshot_path]).await?;
        if listing.lines().any(|l| l == v.snapshot_path) {
            targets.push(v.clone());
        } else {
            tracing::warn!(path = %v.snapshot_path, "not in the snapshot; left as it is");
        }
    }
    if targets.is_empty() {
        bail!(
            "nothing to restore: none of the chosen mounts is in snapshot {}",
            snap.short_id
        );
    }
    if let Some(v) = &opts.to_volume {
        if targets.len() != 1 {
            bail!(
                "--to-volume restores one mount; choose it with --service (it has {} mounts here)",
                targets.len()
            );
        }
        targets[0].source = v.clone();
        targets[0].kind = MountKind::Volume;
    }
    Ok(targets)
}

/// Whether to go on and overwrite: not with `--dry-run`, nor without `--yes`
/// (each says so).
fn confirmed(opts: &VolumeOptions) -> bool {
    if opts.dry_run {
        println!("Dry run: nothing was changed.");
        return false;
    }
    if !opts.yes {
        println!("Nothing was changed: add --yes to overwrite these mounts.");
        return false;
    }
    true
}

/// The restore worker: each mount is restored into a staging directory on
/// itself and swapped in only when every mount is restored (the worker's
/// `--swap`).
fn worker_spec(
    ctx: &Context,
    sc: &Scene,
    snap: &SnapshotInfo,
    targets: &[VolumePlan],
) -> worker::WorkerSpec {
    let mut args = Vec::new();
    for t in targets {
        args.extend(["--swap".to_string(), t.snapshot_path.clone()]);
    }
    args.extend(["restic", "restore", &snap.id].map(String::from));
    worker::WorkerSpec {
        image: sc.sidecar.image_id.clone(),
        binary: worker::own_binary(),
        args,
        mounts: plan::mounts::mounts_for(targets, &sc.sidecar, false),
        network_mode: Some(format!("container:{}", sc.sidecar.id)),
        env: vec![],
        secrets: ctx.config.restic.env.clone(),
        project: sc.found.project.clone(),
        // restic 0.14's restore reports no progress to watch.
        stall_timeout: None,
    }
}

/// Runs the restore worker to its end, logging its lines; an error with its
/// last lines when it fails.
async fn run_worker(ctx: &Context, spec: &worker::WorkerSpec) -> Result<()> {
    let mut tail = Vec::new();
    let code = worker::run(&ctx.engine, spec, |line| {
        let line = match serde_json::from_str::<crate::worker::WorkerEvent>(line) {
            Ok(crate::worker::WorkerEvent::Log { line }) => line,
            Ok(crate::worker::WorkerEvent::Exit { .. }) => return,
            _ => line.to_string(),
        };
        tracing::info!(line = %line, "restore");
        tail.push(line);
        if tail.len() > 6 {
            tail.remove(0);
        }
    })
    .await?;
    if code != 0 {
        bail!(
            "the restore worker exited with code {code}: {}",
            tail.join(" | ")
        );
    }
    Ok(())
}

/// Runs the restore worker, then `then`, with every container using a
/// restored mount stopped; the window starts them again on every path.
///
/// Steps: find the containers in scope ([`scope`]) and the mounts' users
/// among them ([`users`]), refuse to stop one that must not be
/// ([`refuse_swarm`]), order the stops, find the databases among them
/// ([`databases_stopped`]); in the window: the worker, the databases started
/// first (the loads need them), then `then` (the apps stay down until it is
/// done, and the window starts them last). After it: whether every container
/// runs again (before any error of the work), then what was stopped
/// ([`print_restored`]).
async fn restore_in_window<F, Fut>(
    ctx: &Context,
    sc: &Scene,
    targets: &[VolumePlan],
    spec: &worker::WorkerSpec,
    then: F,
) -> Result<()>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let scope = scope(sc);
    let users = users(&scope, targets);
    refuse_swarm(&users)?;
    let stops = plan::stop_order(&scope, &users);
    let run_id = format!("restore-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S"));
    let (_never_fires, never) = Shutdown::new();
    let databases = databases_stopped(sc, &scope, &stops);
    let (result, report) = window::with_stop_window(
        &ctx.engine,
        &ctx.journal,
        &run_id,
        &stops,
        ctx.config.stop_timeout,
        &never,
        || async {
            run_worker(ctx, spec).await?;
            // Databases first (the loads need them); the apps stay down
            // until `then` is done, and the window starts them last.
            for id in &databases {
                window::ContainerControl::start(&ctx.engine, id).await?;
            }
            then().await
        },
    )
    .await;
    window::running_again(&report.restart_failed, &ctx.journal, result)?;
    print_restored(targets.len(), &report);
    Ok(())
}

/// The stack's containers a restore may stop: not the sidecar, not one-off
/// containers, not stackshot's own.
fn scope(sc: &Scene) -> Vec<&ContainerInfo> {
    sc.found
        .containers
        .iter()
        .filter(|c| {
            c.id != sc.sidecar.id
                && !c.oneoff
                && !crate::container::is_own_role(c.labels.get(ROLE_LABEL).map(String::as_str))
        })
        .collect()
}

/// The containers of `scope` that use a restored mount: they are stopped
/// for the time of the restore.
fn users<'a>(scope: &[&'a ContainerInfo], targets: &[VolumePlan]) -> Vec<&'a ContainerInfo> {
    let sources: Vec<&str> = targets.iter().map(|t| t.source.as_str()).collect();
    scope
        .iter()
        .copied()
        .filter(|c| {
            c.mounts
                .iter()
                .any(|m| sources.contains(&m.name.as_deref().unwrap_or(&m.source)))
        })
        .collect()
}

/// Refuses the restore when a user of its mounts is a swarm task the stop
/// window cannot stop.
fn refuse_swarm(users: &[&ContainerInfo]) -> Result<()> {
    if let Some((c, why)) = users
        .iter()
        .find_map(|c| plan::swarm::refusal(c, plan::swarm::StopFor::Restore).map(|why| (c, why)))
    {
        bail!(
            "cannot restore the mounts of {}: it must be stopped meanwhile, and {why}",
            c.service
        );
    }
    Ok(())
}

/// The database containers among `stops` (the ids the window stops): they
/// start again right after the restore, before `then`.
fn databases_stopped(sc: &Scene, scope: &[&ContainerInfo], stops: &[StopEntry]) -> Vec<String> {
    sc.plan
        .dumps
        .iter()
        .filter_map(|d| {
            let target = scope
                .iter()
                .find(|c| c.id == d.container.id)
                .map_or(d.container.id.clone(), |c| plan::swarm::target_of(c));
            stops
                .iter()
                .any(|s| s.container.id == target)
                .then_some(target)
        })
        .collect()
}

/// The volume restore's result line: how many mounts, and which containers
/// were stopped and started again.
fn print_restored(mounts: usize, report: &WindowReport) {
    println!(
        "Restored {} mount(s); stopped and started again: {}",
        mounts,
        report
            .stopped
            .iter()
            .map(|t| t.container.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
}
