//! One backup run, as a list of phases:
//!
//! 1. recover: under the run lock, remove an interrupted run's worker and start
//!    the containers it left stopped;
//! 2. plan: discover the stack and build the plan (refuse a plan with errors);
//! 3. preflight: repository, credentials, tools — before any container is touched;
//! 4. the stop window ([`short`] by default: pre-pass, pin ∥ files, dumps
//!    after the window, one merged snapshot; or full, and as the fallback:
//!    dumps, then the snapshot(s), inside the window); containers started again;
//! 5. cleanup: dump files and stray workers removed.

pub mod files;
pub mod identity;
pub mod merge;
pub mod pause;
pub mod pin;
pub mod prepass;
pub mod short;
pub mod snapshot;

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow, bail};
use futures_util::future::try_join_all;

use crate::config::StopWindow;
use crate::container::ContainerInfo;
use crate::context::{Context, plan_options};
use crate::discovery;
use crate::dumps::{self, DATABASES_DIR, DumpResult, Prepared};
use crate::engine::worker;
use crate::hooks;
use crate::plan::{self, HookPhase, Plan};
use crate::report::{Outcome, Phase, RunReport, SnapshotReport};
use crate::restic::BackupExit;
use crate::window;
use short::Short;
use snapshot::{Snapshotted, Target, VOLUMES_DIR};
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

/// Results gathered inside the window, kept even when a later step fails.
#[derive(Default)]
struct Gathered {
    dumps: Vec<DumpResult>,
    snapshots: Vec<Snapshotted>,
    phases: Vec<Phase>,
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

/// Remembers the repository a run wrote a snapshot to ([`identity`]); a
/// failure to is logged: the run itself is sound.
fn remember_repository(ctx: &Context, id: &str, run_id: &str) {
    let store = identity::Store::in_dir(&ctx.config.state_dir);
    let location = identity::location(&ctx.restic.repository());
    if let Err(e) = store.set(&location, id, run_id) {
        tracing::warn!(error = %format!("{e:#}"), "cannot remember the repository's id; the next run cannot tell a replaced repository from this one");
    }
}

/// Opens the repository at `RESTIC_REPOSITORY`, or creates it, as
/// [`identity::decide`] says; its id. `Ok((id, initialised))`.
async fn open_repository(ctx: &Context) -> Result<(String, bool)> {
    let found = ctx.restic.open().await?;
    let shown = ctx.restic.repository();
    let store = identity::Store::in_dir(&ctx.config.state_dir);
    let remembered = store.get(&identity::location(&shown))?.map(|r| r.id);
    let accept_new = ctx.config.accept_new_repository;
    match identity::decide(&shown, remembered.as_deref(), found.as_deref(), accept_new) {
        identity::Decision::Refuse(line) => bail!(line),
        identity::Decision::Use(id) => {
            if let Some(old) = remembered.filter(|old| *old != id) {
                tracing::warn!(repository = %shown, id = %id, remembered = %old, "{}=true: writing to a repository other than the last successful run's", identity::ACCEPT_NEW);
            }
            Ok((id, false))
        }
        identity::Decision::Init => {
            if let Some(old) = &remembered {
                tracing::warn!(repository = %shown, remembered = %old, "{}=true: creating a new repository where the last successful run wrote to another", identity::ACCEPT_NEW);
            }
            Ok((ctx.restic.init().await?, true))
        }
    }
}

async fn run(
    ctx: &Context,
    shutdown: &Shutdown,
    r: &mut RunReport,
    planned: &mut Option<Plan>,
    repository_id: &mut Option<String>,
) -> Result<(Outcome, Option<String>)> {
    // One backup or restore at a time in this container, across processes.
    let _lock = ctx.journal.lock()?;
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

    let t = Instant::now();
    if ctx.leave_down && found.swarm.is_some() {
        bail!(
            "backup --no-restart is not supported in a swarm: it would stop the databases' task containers, and swarm replaces a stopped task; run a normal backup, then scale the stack's services to 0 (docker service scale …); nothing was stopped"
        );
    }
    let mut opts = plan_options(&ctx.config, &found);
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

    // Pre-backup hooks, before anything is stopped; from here on the
    // post-backup hooks run on every path.
    *planned = Some(plan.clone());
    if plan.hooks.iter().any(|h| h.phase == HookPhase::PreBackup) {
        let t = Instant::now();
        hooks::run_phase(&ctx.engine, &plan, HookPhase::PreBackup)
            .await
            .context("a pre-backup hook failed; nothing was stopped")?;
        r.phase("pre-backup hooks", t);
    }

    let t = Instant::now();
    check_local_repository(ctx.config.restic.repository.expose())?;
    let version = ctx.restic.version().await?;
    tracing::info!(restic = %version, "preflight");
    if let Some(why) = split_unsupported(version, plan.atomic, !plan.dumps.is_empty()) {
        bail!("{why}");
    }
    let (id, initialised) = open_repository(ctx).await?;
    r.repository_initialised = initialised;
    *repository_id = Some(id);
    ctx.restic
        .unlock()
        .await
        .context("cannot clear stale restic locks")?;
    if let Some(lock) = ctx.restic.exclusive_lock().await? {
        bail!(
            "the repository {} is locked exclusively by {} (a restic prune, check or forget); nothing was stopped: \
             back up after it ends, or run `restic unlock` if that process is gone",
            ctx.restic.repository(),
            lock.holder(jiff::Timestamp::now())
        );
    }
    let mut prepared = try_join_all(
        plan.dumps
            .iter()
            .map(|d| dumps::prepare(&ctx.engine, d, Some(&sidecar))),
    )
    .await?;
    for p in &mut prepared {
        dumps::read_estimates(&ctx.engine, p).await;
    }
    if plan.atomic && !plan.dumps.is_empty() {
        snapshot::check_databases_mount(&sidecar)?;
        dumps::clear_dir(Path::new(DATABASES_DIR))?;
    }
    // Which databases are dumped inside the short window, and why.
    let mut in_window = Vec::new();
    if plan.window_reason.is_none() && !ctx.config.append_only {
        r.notes
            .extend(prepass::forget_leftovers(&ctx.restic, &plan.project, &plan.host).await?);
    }
    if plan.window_reason.is_none() {
        for (i, p) in prepared.iter().enumerate() {
            let why = match &p.plan.window_reason {
                Some(why) => Some(why.clone()),
                None => pin::unpinnable_reason(&ctx.engine, p).await?,
            };
            if let Some(why) = why {
                let note = format!(
                    "{}: dumped inside the window: {why}",
                    p.plan.container.service
                );
                tracing::info!("{note}");
                r.notes.push(note);
                in_window.push(i);
            }
        }
    }
    r.phase("preflight", t);

    if plan.window_reason.is_none() {
        r.window_mode = "short".into();
        let outcome = short::run(ctx, shutdown, r, &plan, &sidecar, &prepared, &in_window).await;
        let t = Instant::now();
        if let Err(e) = dumps::clear_dir(Path::new(DATABASES_DIR)) {
            tracing::warn!(error = %format!("{e:#}"), "could not remove the dump files");
        }
        worker::remove_leftovers(&ctx.engine, &plan.project).await;
        r.phase("cleanup", t);
        match outcome? {
            Short::Done(snapshots, dumps) => {
                r.snapshots = snapshots;
                r.dumps = dumps;
                let unreadable: Vec<String> = r
                    .snapshots
                    .iter()
                    .flat_map(|s| s.unreadable.iter().cloned())
                    .collect();
                return Ok(if unreadable.is_empty() {
                    (Outcome::Success, None)
                } else {
                    (
                        Outcome::Partial,
                        Some(format!(
                            "some files could not be read: {}",
                            unreadable.join("; ")
                        )),
                    )
                });
            }
            Short::Fallback(why) => {
                let note = format!(
                    "a pinned dump could not be trusted ({why}); the backup was repeated once in the full window"
                );
                tracing::warn!("{note}");
                r.notes.push(note);
                r.window_mode = "full".into();
                dumps::clear_dir(Path::new(DATABASES_DIR))?;
            }
        }
    } else {
        r.window_mode = "full".into();
        // The short window was asked for (the default) and cannot be had:
        // the report says why, not only the plan.
        if let (StopWindow::Short, Some(why)) = (ctx.config.stop_window, &plan.window_reason) {
            r.notes
                .push(format!("the full stop window was used: {why}"));
        }
    }

    let t = Instant::now();
    let gathered = Mutex::new(Gathered::default());
    let work = || work(ctx, &plan, &sidecar, &prepared, &gathered, &r.run_id);
    let times = window::Times {
        stop: ctx.config.stop_timeout,
        limit: Some(ctx.config.window_limit(StopWindow::Full)),
    };
    let (result, window) = if ctx.leave_down {
        window::with_final_stop_window(
            &ctx.engine,
            &ctx.journal,
            &r.run_id,
            &plan.stop,
            &database_stops(&plan),
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

    let t = Instant::now();
    if plan.atomic
        && !plan.dumps.is_empty()
        && let Err(e) = dumps::clear_dir(Path::new(DATABASES_DIR))
    {
        tracing::warn!(error = %format!("{e:#}"), "could not remove the dump files");
    }
    worker::remove_leftovers(&ctx.engine, &plan.project).await;
    r.phase("cleanup", t);

    window::running_again(&restart_failed, &ctx.journal, result)?;
    if partial.is_empty() {
        Ok((Outcome::Success, None))
    } else {
        Ok((Outcome::Partial, Some(partial.join("; "))))
    }
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
                snapshot::in_worker(&ctx.engine, &target, plan, sidecar, "atomic", true, &paths),
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
                        "volumes",
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

/// Why restic `version` cannot take this plan's dumps, or `None`. Pure.
/// restic 0.18.0 fails `backup --stdin` under a directory ("open /databases:
/// no such file or directory", restic#5324, fixed in 0.18.1), which the
/// split layout (`ATOMIC_BACKUP=false`, each dump streamed into its own
/// snapshot) needs; the atomic layout writes files and is not affected.
pub fn split_unsupported(
    version: crate::restic::Version,
    atomic: bool,
    has_dumps: bool,
) -> Option<String> {
    (!atomic && has_dumps && version == crate::restic::Version::new(0, 18, 0)).then(|| {
        "restic 0.18.0 cannot stream a dump into its own snapshot (ATOMIC_BACKUP=false; restic#5324, fixed in 0.18.1); nothing was stopped: use restic 0.18.1 or newer (the stackshot image carries 0.19.1), or ATOMIC_BACKUP=true".to_string()
    })
}

/// A local repository must be a directory that exists (a mounted volume):
/// `restic init` would otherwise create it in the container's own file system,
/// where it would vanish with the container. It must also take a file: a
/// repository mounted read-only opens, but every backup fails to lock it, and
/// in the full window that would be found out only with the stack stopped.
fn check_local_repository(repository: &str) -> Result<()> {
    let path = repository.strip_prefix("local:").unwrap_or(repository);
    if !path.starts_with('/') {
        return Ok(());
    }
    if !Path::new(path).is_dir() {
        bail!(
            "RESTIC_REPOSITORY={path:?} does not exist in the sidecar; mount a volume there \
             (volumes: - repository:{path}) so the repository outlives the container"
        );
    }
    let probe = Path::new(path).join(format!(".stackshot-write-test-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem => bail!(
            "RESTIC_REPOSITORY={path:?} is read-only in the sidecar; a backup writes there: \
             mount it read-write (drop :ro from the volume)"
        ),
        Err(e) => bail!(
            "RESTIC_REPOSITORY={path:?} cannot be written in the sidecar ({e}); a backup writes \
             there: give the sidecar's user write access"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::{check_local_repository, split_unsupported};

    #[test]
    fn restic_0_18_0_refuses_only_split_dumps() {
        use crate::restic::Version;
        let v180 = Version::new(0, 18, 0);
        let why = split_unsupported(v180, false, true).expect("refused");
        assert!(
            why.starts_with("restic 0.18.0 cannot stream a dump into its own snapshot")
                && why.contains("nothing was stopped")
                && why.contains("ATOMIC_BACKUP=true"),
            "{why}"
        );
        assert_eq!(
            split_unsupported(v180, true, true),
            None,
            "atomic writes files"
        );
        assert_eq!(split_unsupported(v180, false, false), None, "no dumps");
        for other in [
            Version::new(0, 14, 0),
            Version::new(0, 18, 1),
            Version::new(0, 19, 1),
        ] {
            assert_eq!(split_unsupported(other, false, true), None, "{other}");
        }
    }

    #[test]
    fn local_repository_must_be_mounted() {
        let dir = tempfile::tempdir().unwrap();
        check_local_repository(dir.path().to_str().unwrap()).unwrap();
        check_local_repository(&format!("local:{}", dir.path().display())).unwrap();
        check_local_repository("s3:https://example.invalid/bucket").unwrap();
        let e = check_local_repository("/nonexistent/repository")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("RESTIC_REPOSITORY=\"/nonexistent/repository\" does not exist in the sidecar; mount a volume"), "{e}");
        // The write probe leaves nothing behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
