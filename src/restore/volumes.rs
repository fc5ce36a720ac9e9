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
use crate::plan::{self, VolumePlan};
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
    /// Show what would happen.
    pub dry_run: bool,
    /// Really overwrite.
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
    let run = catalog::resolve(&sc.runs, &opts.snapshot)?;
    let snap = run.volumes_snapshot().ok_or_else(|| {
        anyhow!(
            "run {} has no snapshot of /volumes",
            run.run_id.as_deref().unwrap_or(&run.time)
        )
    })?;
    for s in &opts.services {
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
    print_targets(run, snap, &targets, opts.to_volume.as_deref());
    if opts.dry_run {
        println!("Dry run: nothing was changed.");
        return Ok(false);
    }
    if !opts.yes {
        println!("Nothing was changed: add --yes to overwrite these mounts.");
        return Ok(false);
    }

    // Each mount is restored into a staging directory on itself and swapped
    // in only when every mount is restored (the worker's `--swap`).
    let mut args = Vec::new();
    for t in &targets {
        args.extend(["--swap".to_string(), t.snapshot_path.clone()]);
    }
    args.extend(["restic", "restore", &snap.id].map(String::from));
    let spec = worker::WorkerSpec {
        image: sc.sidecar.image_id.clone(),
        binary: worker::own_binary(),
        args,
        mounts: plan::mounts::mounts_for(&targets, &sc.sidecar, false),
        network_mode: Some(format!("container:{}", sc.sidecar.id)),
        env: vec![],
        secrets: ctx.config.restic.env.clone(),
        project: sc.found.project.clone(),
        // restic 0.14's restore reports no progress to watch.
        stall_timeout: None,
    };
    let restore = || async {
        let mut tail = Vec::new();
        let code = worker::run(&ctx.engine, &spec, |line| {
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
    };
    if opts.to_volume.is_some() {
        restore().await?;
        then().await?;
    } else {
        // Stop every container using a restored mount, for the time of the restore.
        let sources: Vec<&str> = targets.iter().map(|t| t.source.as_str()).collect();
        let scope: Vec<&ContainerInfo> = sc
            .found
            .containers
            .iter()
            .filter(|c| {
                c.id != sc.sidecar.id
                    && !c.oneoff
                    && !crate::container::is_own_role(c.labels.get(ROLE_LABEL).map(String::as_str))
            })
            .collect();
        let users: Vec<&ContainerInfo> = scope
            .iter()
            .copied()
            .filter(|c| {
                c.mounts
                    .iter()
                    .any(|m| sources.contains(&m.name.as_deref().unwrap_or(&m.source)))
            })
            .collect();
        if let Some((c, why)) = users.iter().find_map(|c| {
            plan::swarm::refusal(c, plan::swarm::StopFor::Restore).map(|why| (c, why))
        }) {
            bail!(
                "cannot restore the mounts of {}: it must be stopped meanwhile, and {why}",
                c.service
            );
        }
        let stops = plan::stop_order(&scope, &users);
        let run_id = format!("restore-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S"));
        let (_never_fires, never) = Shutdown::new();
        let databases: Vec<String> = sc
            .plan
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
            .collect();
        let (result, report) = window::with_stop_window(
            &ctx.engine,
            &ctx.journal,
            &run_id,
            &stops,
            ctx.config.stop_timeout,
            &never,
            || async {
                restore().await?;
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
        println!(
            "Restored {} mount(s); stopped and started again: {}",
            targets.len(),
            report
                .stopped
                .iter()
                .map(|t| t.container.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(true)
}
