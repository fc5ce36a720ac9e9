//! `stackshot daemon`: the scheduler, the control socket and the HTTP endpoints.
//!
//! Start-up order matters: a journal left by a run that died inside its stop
//! window is honoured first, so the stack runs again before `/healthz` answers.
//! Runs never overlap: a tick or a request during a run is refused and logged.
//! On SIGTERM an open stop window closes (containers started) before the
//! process exits; outside a window the daemon exits at once.

mod client;
pub mod control;
pub mod history;
pub mod scheduler;
pub mod seed;
pub mod state;
pub mod watch;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};
use chrono::Utc;

use crate::backup as run;
use crate::context::{self, Context};
use crate::plan::{Plan, PlanSummary};
use crate::report::{Outcome, RunReport};
use crate::retention::{self, RetentionReport};
use crate::window::{self, Shutdown};
use state::{DaemonState, Maintenance, MaintenanceKind, PlanStatus, Running, Trigger};

/// The daemon's shared parts.
pub struct Daemon {
    ctx: Context,
    /// The compose project the daemon backs up.
    project: String,
    /// restic's `--host` when `BACKUP_HOST` is not set
    /// ([`crate::discovery::Discovery::default_host`]).
    default_host: String,
    state: Arc<Mutex<DaemonState>>,
    metrics: metrics::Metrics,
    /// Held for the length of every run and maintenance task.
    busy: tokio::sync::Mutex<()>,
    /// The maintenance task holding `busy`, when one does.
    maintaining: Mutex<Option<MaintenanceKind>>,
    shutdown: Shutdown,
    /// The current plan, kept up to date by [`watch::follow`].
    plan: Mutex<Option<Plan>>,
}

/// A maintenance task with a schedule of its own.
#[derive(Debug, Clone, Copy)]
enum Task {
    /// `restic forget --prune` (`PRUNE_CRON`).
    Prune,
    /// `restic check` (`CHECK_CRON`).
    Check,
    /// `stackshot verify` of the latest run (`VERIFY_CRON`).
    Verify,
    /// `stackshot drill` of the latest run (`DRILL_CRON`).
    Drill,
    /// The copy to the copy repository (`COPY_CRON`).
    Copy,
}

impl Task {
    /// The maintenance record, metric label and log field the task goes by.
    fn kind(self) -> MaintenanceKind {
        match self {
            Task::Prune => MaintenanceKind::Prune,
            Task::Check => MaintenanceKind::Check,
            Task::Verify => MaintenanceKind::Verify,
            Task::Drill => MaintenanceKind::Drill,
            Task::Copy => MaintenanceKind::Copy,
        }
    }

    /// The task's name in logs and the `task` label of the refused runs.
    fn name(self) -> &'static str {
        self.kind().as_str()
    }
}

/// Runs `task` on `schedule` (when set) until shutdown.
async fn maintenance_schedule(
    d: &Arc<Daemon>,
    task: Task,
    schedule: Option<crate::schedule::Schedule>,
) {
    let Some(schedule) = schedule else { return };
    let tz = d.ctx.config.tz;
    scheduler::every(
        task.name(),
        &schedule,
        tz,
        &d.shutdown,
        |_| {},
        || d.task(task),
    )
    .await
}

impl Daemon {
    /// The daemon's parts at start-up: its state (with the containers
    /// `recovered` at start-up), its metrics (reading the open window from
    /// the journal) and no plan yet.
    fn new(
        ctx: Context,
        found: &crate::discovery::Discovery,
        shutdown: Shutdown,
        recovered: Vec<String>,
    ) -> Daemon {
        let mut state = DaemonState::new(Utc::now());
        state.recovered = recovered;
        // The runs before this start, for the status page and `status`.
        state.history = history::load(&ctx.config.state_dir);
        let metrics = metrics::Metrics::new(env!("CARGO_PKG_VERSION"));
        metrics.watch_journal(ctx.journal.clone());
        Daemon {
            metrics,
            state: Arc::new(Mutex::new(state)),
            busy: tokio::sync::Mutex::new(()),
            maintaining: Mutex::new(None),
            shutdown,
            project: found.project.clone(),
            default_host: found.default_host(),
            ctx,
            plan: Mutex::new(None),
        }
    }

    /// Runs a maintenance task unless a backup is running here, or another
    /// process (an exec'd backup, restore, verify or drill) holds the run
    /// lock: then it is skipped until its next tick, logged and counted
    /// (`stackshot_runs_refused_total`).
    async fn task(&self, task: Task) {
        let Ok(_guard) = self.busy.try_lock() else {
            tracing::warn!(task = task.name(), "skipped: a backup is running");
            self.metrics.record_refused(task.name());
            return;
        };
        let _lock = match self.maintenance_lock() {
            Ok(lock) => lock,
            Err(e) => {
                tracing::warn!(task = task.name(), reason = %format!("{e:#}"), "skipped until its next tick");
                self.metrics.record_refused(task.name());
                return;
            }
        };
        *self.maintaining.lock().unwrap() = Some(task.kind());
        self.run_task(task).await;
        *self.maintaining.lock().unwrap() = None;
    }

    /// The run lock, shared, for a maintenance task of this daemon: never
    /// beside a backup or restore (of this daemon or an exec'd one).
    fn maintenance_lock(&self) -> Result<crate::window::journal::RunLock> {
        self.ctx.journal.lock_shared()
    }

    /// Waits while another process holds the run lock (an exec'd restore
    /// exclusively, a verify or drill shared); says so once, and counts the
    /// run as delayed.
    /// Returns `false` when shut down meanwhile.
    async fn wait_for_run_lock(&self, trigger: Trigger) -> bool {
        let mut shutdown = self.shutdown.clone();
        let mut told = false;
        loop {
            match self.ctx.journal.lock() {
                Ok(_free) => return true,
                Err(e) => {
                    if !told {
                        tracing::warn!(trigger = trigger.as_str(), reason = %format!("{e:#}"), "backup delayed until the run lock is free");
                        self.metrics.record_delayed("backup");
                        told = true;
                    }
                }
            }
            tokio::select! {
                _ = shutdown.wait() => return false,
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    }

    async fn run_task(&self, task: Task) {
        match task {
            Task::Prune if self.ctx.config.append_only => {
                tracing::info!("{}", retention::APPEND_ONLY_LINE);
            }
            Task::Prune => {
                self.forget(true).await;
            }
            Task::Check => {
                let r = retention::check(&self.ctx.restic).await;
                self.maintenance(MaintenanceKind::Check, r).await;
            }
            Task::Verify => {
                let r = crate::restore::verify(&self.ctx, "latest", None, false)
                    .await
                    .and_then(|problems| {
                        if problems.is_empty() {
                            Ok(())
                        } else {
                            Err(anyhow::anyhow!("{}", problems.join("; ")))
                        }
                    });
                self.maintenance(MaintenanceKind::Verify, r).await;
            }
            Task::Drill => {
                let r = crate::restore::drill(&self.ctx, "latest")
                    .await
                    .and_then(|report| {
                        tracing::info!(report = %report.render(), "drill");
                        let problems = report.problems();
                        if problems.is_empty() {
                            Ok(())
                        } else {
                            Err(anyhow::anyhow!("{}", problems.join("; ")))
                        }
                    });
                self.metrics.record_drill(r.is_ok(), Utc::now());
                self.maintenance(MaintenanceKind::Drill, r).await;
            }
            Task::Copy => {
                let Some(copy) = &self.ctx.config.copy else {
                    return;
                };
                let host = self.host();
                let report = crate::copy::copy(&self.ctx.restic, copy, &host, &self.project).await;
                self.copy_done(report).await;
            }
        }
    }

    /// Records what a copy did: `/metrics`, the status page, `stackshot
    /// status` and the `copy` maintenance record.
    async fn copy_done(&self, report: crate::report::CopyReport) {
        let now = Utc::now();
        self.metrics.record_copy(&report, now);
        let result = if report.failed_anything() {
            Err(anyhow::anyhow!("{}", report.line()))
        } else {
            Ok(())
        };
        self.state.lock().unwrap().last_copy = Some((now, report));
        self.maintenance(MaintenanceKind::Copy, result).await;
    }

    /// Reads the engine again and installs the plan it gives.
    async fn replan(&self) -> Result<()> {
        let found = crate::discovery::discover(self.ctx.engine.docker(), &self.ctx.config).await?;
        let plan = crate::plan::build(
            &context::plan_options(&self.ctx.config, &found),
            &found.containers,
        );
        self.set_plan(plan);
        Ok(())
    }

    /// Installs `plan` as the current one: logs each change since the last
    /// one (a new error at error level), and updates `stackshot status`,
    /// `/healthz` and the `stackshot_plan_*` gauges.
    fn set_plan(&self, plan: Plan) {
        let now = Utc::now();
        let mut current = self.plan.lock().unwrap();
        let changes = current.as_ref().map(|old| crate::plan::changes(old, &plan));
        for line in changes.iter().flatten() {
            if line.starts_with("plan error: ") {
                tracing::error!(change = %line, "plan changed; backups will fail until it is fixed");
            } else {
                tracing::info!(change = %line, "plan changed");
            }
        }
        let changed = changes.is_none_or(|c| !c.is_empty());
        {
            let mut state = self.state.lock().unwrap();
            let changed_at = match &state.plan {
                Some(p) if !changed => p.changed_at,
                _ => now,
            };
            state.plan = Some(PlanStatus {
                summary: PlanSummary::of(&plan),
                changed_at,
                checked_at: now,
            });
        }
        self.metrics.set_plan(&plan);
        *current = Some(plan);
    }

    fn running(&self) -> Option<Running> {
        self.state.lock().unwrap().running.clone()
    }

    /// Runs a backup unless one is running; `Err(running)` when busy.
    async fn backup(
        &self,
        trigger: Trigger,
        on_start: impl FnOnce(&str),
    ) -> Result<RunReport, Option<Running>> {
        let _guard = match self.busy.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                let maintaining = *self.maintaining.lock().unwrap();
                match (self.running(), maintaining) {
                    (None, Some(task)) => {
                        // Maintenance is no reason to miss a backup: it runs
                        // as soon as the task ends.
                        tracing::warn!(
                            trigger = trigger.as_str(),
                            task = task.as_str(),
                            "backup delayed: a maintenance task is running; it starts when the task ends"
                        );
                        self.metrics.record_delayed("backup");
                        self.busy.lock().await
                    }
                    (running, _) => {
                        tracing::warn!(trigger = trigger.as_str(), running = ?running.as_ref().map(|r| &r.run_id), "a run is in progress; this one is refused");
                        self.metrics.record_refused("backup");
                        return Err(running);
                    }
                }
            }
        };
        if !self.wait_for_run_lock(trigger).await {
            return Err(None);
        }
        // One run id: the one announced is the report's own.
        let report = RunReport::start();
        on_start(&report.run_id);
        self.state.lock().unwrap().running = Some(Running {
            run_id: report.run_id.clone(),
            started_at: report.started_at,
            trigger,
        });
        self.metrics.set_running(true);
        let mut report = run::backup_as(&self.ctx, &self.shutdown, report).await;
        let runs = {
            let mut state = self.state.lock().unwrap();
            state.finish(&report, trigger);
            state.history.clone()
        };
        history::save(&self.ctx.config.state_dir, &runs);
        self.metrics.record_run(&report);
        self.metrics.set_running(false);
        if let Some(copy) = report.copy.as_ref().filter(|c| c.ran()) {
            self.copy_done(copy.clone()).await;
        }
        if report.result == Outcome::Success {
            report.retention = Some(if self.ctx.config.append_only {
                RetentionReport::append_only()
            } else if self.ctx.config.prune_cron.is_some() {
                RetentionReport::scheduled()
            } else {
                match self.maintenance_lock() {
                    Ok(_lock) => self.forget(true).await,
                    Err(e) => {
                        self.metrics.record_refused(MaintenanceKind::Prune.as_str());
                        RetentionReport::failed(format!("not pruned after this run: {e:#}"))
                    }
                }
            });
        }
        Ok(report)
    }

    /// Reads the last success back from the repository ([`seed`]) into
    /// `/healthz` and `/metrics`; logs where it came from, or why not.
    async fn seed_last_success(&self) {
        let host = self.host();
        let limit = self.ctx.config.restic.preflight_timeout;
        let repository = self.ctx.restic.repository();
        match seed::read(&self.ctx.restic, &host, &self.project, limit).await {
            Ok(Some(found)) => {
                self.state.lock().unwrap().seed_last_success(found.time);
                self.metrics.seed_last_success(found.time);
                tracing::info!(
                    source = "repository",
                    repository = %repository,
                    snapshot = %found.short_id,
                    time = %found.time.to_rfc3339(),
                    "last successful backup read from the repository's latest snapshot of this project and host"
                );
            }
            Ok(None) => tracing::info!(
                repository = %repository,
                host = %host,
                "the repository holds no snapshot of this project and host yet; /healthz says starting until a run finishes"
            ),
            Err(e) => tracing::warn!(
                repository = %repository,
                reason = %format!("{e:#}"),
                "cannot read the last successful backup from the repository; /healthz says starting until a run finishes"
            ),
        }
    }

    /// restic's `--host`: `BACKUP_HOST`, else the default.
    fn host(&self) -> String {
        self.ctx
            .config
            .backup_host
            .clone()
            .unwrap_or_else(|| self.default_host.clone())
    }

    async fn maintenance(&self, kind: MaintenanceKind, result: Result<()>) {
        let (ok, message) = match result {
            Ok(()) => (true, None),
            Err(e) => {
                let m = format!("{e:#}");
                tracing::error!(task = kind.as_str(), error = %m, "maintenance failed");
                (false, Some(m))
            }
        };
        self.metrics.record_maintenance(kind, ok);
        self.state.lock().unwrap().maintenance_done(Maintenance {
            kind,
            at: Utc::now(),
            ok,
            message,
        });
    }

    async fn forget(&self, prune: bool) -> RetentionReport {
        let host = self.host();
        let r = retention::forget(
            &self.ctx.restic,
            &self.ctx.config.retention,
            &host,
            &self.project,
            prune,
        )
        .await;
        let report = match &r {
            Ok(report) => report.clone(),
            Err(e) => RetentionReport::failed(format!("{e:#}")),
        };
        let kind = if prune {
            MaintenanceKind::Prune
        } else {
            MaintenanceKind::Forget
        };
        self.maintenance(kind, r.map(|_| ())).await;
        report
    }
}

pub mod health;
pub mod http;
pub mod metrics;
pub mod orphans;
pub mod page;

/// The socket path (`STACKSHOT_SOCKET`, for tests and odd setups).
pub fn socket_path() -> PathBuf {
    std::env::var_os("STACKSHOT_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(control::DEFAULT_SOCKET))
}

/// Runs the daemon until SIGTERM/SIGINT. The steps: bind the control
/// socket; 1. start again what an interrupted run left stopped
/// (`recover_at_start`), watch for exec'd runs that die in their window
/// ([`orphans`]), read the first plan (`first_plan`) and the last success
/// (in the background); 2. serve HTTP (`serve_http`); 3. serve the control
/// socket (`client::serve_control`); 4. run the schedules (`schedules`) until
/// shutdown; 5. stop (`stop`).
pub async fn run(ctx: Context) -> Result<()> {
    let shutdown = Shutdown::on_signals()?;
    // Bound first, so a `stackshot backup` arriving during start-up waits in the
    // backlog for this daemon instead of running a backup of its own beside it.
    let listener = control::bind(&socket_path())?;
    // 1. Before anything else: containers an interrupted run left stopped.
    let found = crate::discovery::discover(ctx.engine.docker(), &ctx.config).await?;
    let recovered = recover_at_start(&ctx, &found.project).await?;
    // From now on, a `docker exec`'d run that dies inside its window is
    // noticed within seconds, not at the next daemon start.
    tokio::spawn(orphans::watch(
        ctx.engine.clone(),
        ctx.journal.clone(),
        found.project.clone(),
        shutdown.clone(),
    ));
    let plan = first_plan(&ctx, &found);
    let daemon = Arc::new(Daemon::new(ctx, &found, shutdown.clone(), recovered));
    daemon.set_plan(plan);
    // The last success, from the repository, in the background: `/healthz`
    // answers (`starting`) while restic lists the snapshots.
    let seeding = {
        let daemon = daemon.clone();
        tokio::spawn(async move { daemon.seed_last_success().await })
    };
    // 2. HTTP: /healthz, /metrics and the status page only.
    let http_task = serve_http(&daemon);
    // 3. The control socket (bound at start-up; served from here on).
    let control_task = client::serve_control(&daemon, listener);
    // 4. Schedules.
    schedules(&daemon).await;
    // 5. Stopping.
    stop(&daemon, &shutdown, control_task, seeding, http_task).await;
    Ok(())
}

/// Starts again the containers an interrupted run left stopped (and removes
/// its leftover workers) — unless another process (a `docker exec … backup`
/// or restore) holds the run lock: then that window is open and its owner
/// will close it. Returns the containers started.
async fn recover_at_start(ctx: &Context, project: &str) -> Result<Vec<String>> {
    let recovered = match ctx.journal.lock() {
        Ok(_lock) => {
            crate::engine::worker::remove_leftovers(&ctx.engine, project).await;
            window::recover(&ctx.engine, &ctx.journal).await.context(
                "an earlier run died inside its stop window and its containers could not all be started",
            )?
        }
        Err(e) => {
            tracing::warn!(reason = %format!("{e:#}"), "not recovering at start-up");
            vec![]
        }
    };
    if !recovered.is_empty() {
        tracing::warn!(containers = ?recovered, "started containers an interrupted run had stopped");
    }
    Ok(recovered)
}

/// The plan at start-up, logged with the daemon's start (and each of its
/// errors).
fn first_plan(ctx: &Context, found: &crate::discovery::Discovery) -> Plan {
    let plan = crate::plan::build(
        &context::plan_options(&ctx.config, found),
        &found.containers,
    );
    tracing::info!(
        project = %found.project,
        stop = plan.stop.len(),
        dumps = plan.dumps.len(),
        volumes = plan.volumes.len(),
        errors = plan.errors.len(),
        schedule = %ctx.config.backup_cron,
        tz = %ctx.config.tz,
        "daemon starting"
    );
    for e in &plan.errors {
        tracing::error!(error = %e, "the plan has an error; backups will fail until it is fixed");
    }
    plan
}

/// Serves `/healthz`, `/metrics` and the status page until shutdown.
fn serve_http(daemon: &Arc<Daemon>) -> tokio::task::JoinHandle<()> {
    let config = &daemon.ctx.config;
    let site = http::Site {
        page: page::Settings {
            project: daemon.project.clone(),
            repository: crate::config::mask_repository(config.restic.repository.expose()),
            copy: config.copy.as_ref().map(|c| c.shown()),
            schedule: config.backup_cron.to_string(),
            tz: config.tz,
            version: env!("CARGO_PKG_VERSION").to_string(),
        },
        auth: config.http_auth.clone(),
    };
    if let Some(auth) = &site.auth {
        tracing::info!(
            user = auth.user(),
            "HTTP: / and /metrics ask for HTTP_AUTH's user"
        );
    }
    let router = http::router(
        daemon.state.clone(),
        daemon.metrics.clone(),
        config.health_max_age,
        site,
    );
    let http_shutdown = {
        let mut s = daemon.shutdown.clone();
        async move {
            s.wait().await;
        }
    };
    let addr = daemon.ctx.config.http_addr;
    tokio::spawn(async move {
        if let Err(e) = http::serve(addr, router, http_shutdown).await {
            tracing::error!(error = %format!("{e:#}"), "HTTP server stopped");
        }
    })
}

/// Runs the backup schedule, the maintenance schedules and the plan's
/// watch, until shutdown.
async fn schedules(daemon: &Arc<Daemon>) {
    let tz = daemon.ctx.config.tz;
    let backups = {
        let d = daemon.clone();
        async move {
            let schedule = d.ctx.config.backup_cron.clone();
            let state = d.state.clone();
            let metrics = d.metrics.clone();
            scheduler::every(
                "backup",
                &schedule,
                tz,
                &d.shutdown,
                |next| {
                    state.lock().unwrap().next_run = next;
                    metrics.set_next_run(next);
                },
                || async {
                    let _ = d.backup(Trigger::Schedule, |_| {}).await;
                },
            )
            .await
        }
    };
    let config = &daemon.ctx.config;
    let prune = maintenance_schedule(daemon, Task::Prune, config.prune_cron.clone());
    let check = maintenance_schedule(daemon, Task::Check, config.check_cron.clone());
    let verify = maintenance_schedule(daemon, Task::Verify, config.verify_cron.clone());
    let drill = maintenance_schedule(daemon, Task::Drill, config.drill_cron.clone());
    let copy_cron = config.copy.as_ref().and_then(|c| c.cron.clone());
    let copy = maintenance_schedule(daemon, Task::Copy, copy_cron);
    let watch = watch::follow(daemon.clone());
    tokio::join!(backups, prune, check, verify, drill, copy, watch);
}

/// Stops: a run in progress closes its window first (it saw the same
/// signal); then the control socket's task and the seeding end, the socket
/// is removed, and HTTP gets 5 seconds to finish.
async fn stop(
    daemon: &Daemon,
    shutdown: &Shutdown,
    control_task: tokio::task::JoinHandle<()>,
    seeding: tokio::task::JoinHandle<()>,
    http_task: tokio::task::JoinHandle<()>,
) {
    let reason = shutdown.requested().unwrap_or_else(|| "shutdown".into());
    tracing::info!(reason = %reason, "stopping");
    let _last = tokio::time::timeout(Duration::from_secs(600), daemon.busy.lock()).await;
    control_task.abort();
    seeding.abort();
    let _ = std::fs::remove_file(socket_path());
    let _ = tokio::time::timeout(Duration::from_secs(5), http_task).await;
    tracing::info!("stopped");
}
