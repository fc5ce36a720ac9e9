//! `/metrics`: the design's metrics (prefix `stackshot_`), kept with the
//! official `prometheus-client` crate.
//!
//! prometheus-client writes OpenMetrics text. `promtool check metrics` (the
//! classic text parser) rejects that (`unknown metric type "info"`, and a
//! counter's `_total` samples do not match its family name), so [`Metrics::encode`]
//! rewrites it to the classic text format 0.0.4 ([`CONTENT_TYPE`]), which
//! promtool accepts and every Prometheus server scrapes.
//!
//! "Last run" metrics describe the last finished run only: a run that failed
//! before its dumps leaves no `stackshot_dump_*` series and zero bytes added.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use super::state::MaintenanceKind;
use crate::report::{Outcome, RunReport};

/// The content type of [`Metrics::encode`]'s output: Prometheus' classic text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `repository` label of the copy repository's metrics.
pub const COPY_REPOSITORY_LABEL: &str = "copy";

/// A gauge holding seconds or a Unix timestamp.
type Seconds = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SchemeLabel {
    scheme: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DumpLabels {
    service: String,
    engine: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabel {
    task: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RepositoryLabel {
    repository: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RepositoryResultLabels {
    repository: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: String,
}

/// Handles to the registered metrics (each is a shared, cloneable cell).
#[derive(Default)]
struct Handles {
    runs: Family<ResultLabel, Counter>,
    last_success: Seconds,
    last_run: Seconds,
    last_run_success: Gauge,
    duration: Seconds,
    stop_window: Seconds,
    phases: Family<PhaseLabel, Seconds>,
    running: Gauge,
    next_run: Seconds,
    bytes_added: Gauge,
    files: Family<StateLabel, Gauge>,
    dump_bytes: Family<DumpLabels, Gauge>,
    dump_seconds: Family<DumpLabels, Seconds>,
    containers_stopped: Gauge,
    containers_frozen: Gauge,
    maintenance: Family<TaskLabel, Gauge>,
    drill_last_success: Gauge,
    drill_last: Seconds,
    plan_ok: Gauge,
    plan_stop: Gauge,
    plan_dumps: Gauge,
    plan_mounts: Gauge,
    plan_unlabelled: Gauge,
    notify_failures: Family<SchemeLabel, Counter>,
    window_open: Gauge,
    window_limit: Gauge,
    refused: Family<TaskLabel, Counter>,
    delayed: Family<TaskLabel, Counter>,
    copy_runs: Family<RepositoryResultLabels, Counter>,
    copy_last_success: Family<RepositoryLabel, Seconds>,
    copy_last_run: Family<RepositoryLabel, Seconds>,
    copy_last_run_success: Family<RepositoryLabel, Gauge>,
    copy_snapshots: Family<RepositoryLabel, Gauge>,
}

struct Inner {
    registry: Registry,
    /// Held while a run is recorded and while encoding, so a scrape sees one whole run.
    consistent: Mutex<()>,
    m: Handles,
    /// The stop journal read at each scrape for the open window's age
    /// (also a window of a `docker exec`'d run).
    journal: Mutex<Option<crate::window::journal::Journal>>,
}

/// The daemon's metrics. Cloning is cheap: clones share the same values.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn unix_seconds(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Metrics {
    /// Registers every metric; `version` goes into `stackshot_build_info`.
    /// `stackshot_backup_runs_total` starts at 0 for each result. The steps:
    /// the handles, the series that exist from the start, then each family
    /// of metrics in the order of the exposition (runs, maintenance, plan,
    /// operations, build).
    pub fn new(version: &str) -> Metrics {
        let m = Handles::default();
        let _ = m.refused.get_or_create(&TaskLabel {
            task: "backup".into(),
        });
        let _ = m.delayed.get_or_create(&TaskLabel {
            task: "backup".into(),
        });
        for result in ["success", "partial", "failed"] {
            let _ = m.runs.get_or_create(&ResultLabel {
                result: result.into(),
            });
        }
        for state in ["new", "changed", "unmodified"] {
            let _ = m.files.get_or_create(&StateLabel {
                state: state.into(),
            });
        }
        let mut r = Registry::with_prefix("stackshot");
        register_runs(&mut r, &m);
        register_maintenance(&mut r, &m);
        register_copy(&mut r, &m);
        register_plan(&mut r, &m);
        register_operations(&mut r, &m);
        register_build(&mut r, version);
        Metrics {
            inner: Arc::new(Inner {
                registry: r,
                consistent: Mutex::new(()),
                m,
                journal: Mutex::new(None),
            }),
        }
    }

    /// Records a finished run: counts it and replaces every "last run" metric.
    /// `stackshot_backup_last_success_timestamp_seconds` moves only on success;
    /// a partial run counts as not successful.
    pub fn record_run(&self, report: &RunReport) {
        let m = &self.inner.m;
        let _consistent = self
            .inner
            .consistent
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let result = report.result.as_str();
        m.runs
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc();
        for f in &report.notify_failures {
            m.notify_failures
                .get_or_create(&SchemeLabel {
                    scheme: f.scheme.clone(),
                })
                .inc();
        }
        let end = unix_seconds(report.finished_at);
        let success = report.result == Outcome::Success;
        m.last_run.set(end);
        if success {
            m.last_success.set(end);
        }
        m.last_run_success.set(i64::from(success));
        m.duration.set(report.seconds());
        let window = report.window.as_ref();
        m.stop_window.set(window.map_or(0.0, |w| w.seconds));
        // The last run's phases only: a phase it did not reach is gone.
        m.phases.clear();
        for p in &report.phases {
            m.phases
                .get_or_create(&PhaseLabel {
                    phase: p.name.clone(),
                })
                .inc_by(p.seconds);
        }
        m.containers_stopped
            .set(window.map_or(0, |w| int(w.stopped.len() as u64)));
        m.containers_frozen
            .set(window.map_or(0, |w| int(w.frozen.len() as u64)));

        let sum = |f: fn(&crate::report::SnapshotReport) -> u64| {
            int(report.snapshots.iter().map(f).sum())
        };
        m.bytes_added.set(sum(|s| s.bytes_added));
        for (state, n) in [
            ("new", sum(|s| s.files_new)),
            ("changed", sum(|s| s.files_changed)),
            ("unmodified", sum(|s| s.files_unmodified)),
        ] {
            m.files
                .get_or_create(&StateLabel {
                    state: state.into(),
                })
                .set(n);
        }

        m.dump_bytes.clear();
        m.dump_seconds.clear();
        for d in &report.dumps {
            let labels = DumpLabels {
                service: d.service.clone(),
                engine: d.engine.as_str().into(),
            };
            m.dump_bytes.get_or_create(&labels).inc_by(int(d.bytes));
            m.dump_seconds.get_or_create(&labels).inc_by(d.seconds);
        }
    }

    /// Sets `stackshot_backup_last_success_timestamp_seconds` to `at`, read
    /// back from the repository at start-up, unless a run since start-up
    /// succeeded later.
    pub fn seed_last_success(&self, at: DateTime<Utc>) {
        let _consistent = self
            .inner
            .consistent
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let m = &self.inner.m;
        let at = unix_seconds(at);
        if m.last_success.get() < at {
            m.last_success.set(at);
        }
    }

    /// Sets `stackshot_backup_running` to 1 while a backup runs and to 0 otherwise.
    pub fn set_running(&self, running: bool) {
        self.inner.m.running.set(i64::from(running));
    }

    /// Sets `stackshot_next_run_timestamp_seconds`; `None` (nothing scheduled) is 0.
    pub fn set_next_run(&self, at: Option<DateTime<Utc>>) {
        self.inner.m.next_run.set(at.map_or(0.0, unix_seconds));
    }

    /// Records the result of a maintenance task (`forget`, `prune`, `check`,
    /// `verify`). A task's series appears once it has run.
    pub fn record_maintenance(&self, kind: MaintenanceKind, ok: bool) {
        self.inner
            .m
            .maintenance
            .get_or_create(&TaskLabel {
                task: kind.as_str().into(),
            })
            .set(i64::from(ok));
    }

    /// Records the current plan (from the plan itself, not its summary: the
    /// counts are containers, where the summary names services).
    pub fn set_plan(&self, plan: &crate::plan::Plan) {
        let m = &self.inner.m;
        let unlabelled = plan.unlabelled().count();
        m.plan_ok.set(i64::from(plan.is_ok()));
        m.plan_stop.set(plan.stop.len() as i64);
        m.plan_dumps.set(plan.dumps.len() as i64);
        m.plan_mounts.set(plan.volumes.len() as i64);
        m.plan_unlabelled.set(unlabelled as i64);
    }

    /// Records a finished restore drill.
    pub fn record_drill(&self, ok: bool, at: DateTime<Utc>) {
        let _consistent = self
            .inner
            .consistent
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.inner.m.drill_last_success.set(i64::from(ok));
        self.inner.m.drill_last.set(unix_seconds(at));
    }

    /// Records a copy to the copy repository that ran (after a run or on
    /// `COPY_CRON`), ending at `at`: the `stackshot_copy_*` series, with
    /// the label `repository="copy"`. A copy whose retention failed counts
    /// as failed.
    pub fn record_copy(&self, report: &crate::report::CopyReport, at: DateTime<Utc>) {
        let m = &self.inner.m;
        let _consistent = self
            .inner
            .consistent
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let ok = !report.failed_anything();
        let repository = RepositoryLabel {
            repository: COPY_REPOSITORY_LABEL.into(),
        };
        m.copy_runs
            .get_or_create(&RepositoryResultLabels {
                repository: COPY_REPOSITORY_LABEL.into(),
                result: if ok { "success" } else { "failed" }.into(),
            })
            .inc();
        m.copy_last_run
            .get_or_create(&repository)
            .set(unix_seconds(at));
        if ok {
            m.copy_last_success
                .get_or_create(&repository)
                .set(unix_seconds(at));
        }
        m.copy_last_run_success
            .get_or_create(&repository)
            .set(i64::from(ok));
        m.copy_snapshots
            .get_or_create(&repository)
            .set(int(report.copied.len() as u64));
    }

    /// Counts a run of `task` refused (`stackshot_runs_refused_total`).
    pub fn record_refused(&self, task: &str) {
        self.inner
            .m
            .refused
            .get_or_create(&TaskLabel { task: task.into() })
            .inc();
    }

    /// Counts a run of `task` delayed, then run (`stackshot_runs_delayed_total`).
    pub fn record_delayed(&self, task: &str) {
        self.inner
            .m
            .delayed
            .get_or_create(&TaskLabel { task: task.into() })
            .inc();
    }

    /// Reads the open stop window from `journal` at each [`encode`](Self::encode).
    pub fn watch_journal(&self, journal: crate::window::journal::Journal) {
        *self.inner.journal.lock().unwrap_or_else(|e| e.into_inner()) = Some(journal);
    }

    /// The open stop window from the watched journal, as `(open seconds,
    /// limit)`; `None` when none is open (or no journal is watched).
    pub fn open_window(&self) -> Option<(i64, Option<u64>)> {
        let journal = self
            .inner
            .journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        journal.and_then(|j| j.open_window())
    }

    /// The text exposition, in the classic text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let open = self.open_window();
        let _consistent = self
            .inner
            .consistent
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let (age, limit) = open.unwrap_or((0, None));
        self.inner.m.window_open.set(age);
        self.inner.m.window_limit.set(limit.map(int).unwrap_or(0));
        let mut openmetrics = String::new();
        prometheus_client::encoding::text::encode(&mut openmetrics, &self.inner.registry)
            .expect("writing to a String cannot fail");
        to_classic(&openmetrics)
    }
}

/// Registers the metrics of the backup runs: their count, the last run's
/// result, times, stop window, snapshot and dumps, and the schedule.
fn register_runs(r: &mut Registry, m: &Handles) {
    // Counters get `_total` from the encoder.
    r.register(
        "backup_runs",
        "Finished backup runs, by result",
        m.runs.clone(),
    );
    r.register(
        "backup_last_success_timestamp_seconds",
        "End of the last successful run, Unix seconds (0: none yet)",
        m.last_success.clone(),
    );
    r.register(
        "backup_last_run_timestamp_seconds",
        "End of the last finished run, Unix seconds (0: none yet)",
        m.last_run.clone(),
    );
    r.register(
        "backup_last_run_success",
        "1 when the last finished run succeeded, else 0",
        m.last_run_success.clone(),
    );
    r.register(
        "backup_duration_seconds",
        "Duration of the last finished run",
        m.duration.clone(),
    );
    r.register(
        "backup_stop_window_seconds",
        "Stop window of the last finished run, first stop to last start (0: none opened)",
        m.stop_window.clone(),
    );
    // An addition to the design's list: where a run's time goes.
    r.register(
        "backup_phase_seconds",
        "Seconds each phase of the last finished run took (the run report's phases)",
        m.phases.clone(),
    );
    r.register(
        "backup_running",
        "1 while a backup runs, else 0",
        m.running.clone(),
    );
    r.register(
        "next_run_timestamp_seconds",
        "Next scheduled run, Unix seconds (0: none scheduled)",
        m.next_run.clone(),
    );
    r.register(
        "snapshot_bytes_added",
        "Bytes added to the repository by the last finished run, over all its snapshots",
        m.bytes_added.clone(),
    );
    r.register(
        "snapshot_files",
        "Files in the last finished run's snapshots, by state against the parent snapshot",
        m.files.clone(),
    );
    r.register(
        "dump_bytes",
        "Bytes dumped per database service in the last finished run",
        m.dump_bytes.clone(),
    );
    r.register(
        "dump_duration_seconds",
        "Seconds spent dumping per database service in the last finished run",
        m.dump_seconds.clone(),
    );
    r.register(
        "containers_stopped",
        "Containers stopped during the last finished run's stop window",
        m.containers_stopped.clone(),
    );
    // An addition to the design's list: freeze mode.
    r.register(
        "containers_frozen",
        "Containers frozen (paused) instead of stopped during the last finished run's stop window",
        m.containers_frozen.clone(),
    );
}

/// Registers the metrics of the maintenance tasks and the restore drill.
fn register_maintenance(r: &mut Registry, m: &Handles) {
    // An addition to the design's list.
    r.register(
        "maintenance_last_success",
        "1 when the last run of a maintenance task (forget, prune, check, verify, drill, copy) succeeded, else 0",
        m.maintenance.clone(),
    );
    r.register(
        "drill_last_success",
        "1 when the last restore drill (DRILL_CRON) loaded every dump of the latest run, else 0",
        m.drill_last_success.clone(),
    );
    r.register(
        "drill_last_timestamp_seconds",
        "Unix time the last restore drill finished (0: none yet)",
        m.drill_last.clone(),
    );
}

/// Registers the metrics of the copy repository (`COPY_REPOSITORY`); each
/// series carries `repository="copy"`, and none exists before a copy ran.
fn register_copy(r: &mut Registry, m: &Handles) {
    // Additions to the design's list.
    r.register(
        "copy_runs",
        "Copies to the copy repository (after a run or on COPY_CRON), by result",
        m.copy_runs.clone(),
    );
    r.register(
        "copy_last_success_timestamp_seconds",
        "Unix time the last successful copy to the copy repository ended",
        m.copy_last_success.clone(),
    );
    r.register(
        "copy_last_run_timestamp_seconds",
        "Unix time the last copy to the copy repository ended",
        m.copy_last_run.clone(),
    );
    r.register(
        "copy_last_run_success",
        "1 when the last copy to the copy repository (and its retention) succeeded, else 0",
        m.copy_last_run_success.clone(),
    );
    r.register(
        "copy_snapshots_copied",
        "Snapshots the last copy sent to the copy repository",
        m.copy_snapshots.clone(),
    );
}

/// Registers the metrics of the current plan.
fn register_plan(r: &mut Registry, m: &Handles) {
    // The current plan (issue 17), kept up to date from the engine's events.
    r.register(
        "plan_ok",
        "1 when the current plan has no errors (tonight's run may proceed), else 0",
        m.plan_ok.clone(),
    );
    r.register(
        "plan_containers_to_stop",
        "Containers the current plan stops during a backup",
        m.plan_stop.clone(),
    );
    r.register(
        "plan_dumps",
        "Database containers the current plan dumps",
        m.plan_dumps.clone(),
    );
    r.register(
        "plan_mounts",
        "Mounts the current plan backs up",
        m.plan_mounts.clone(),
    );
    r.register(
        "plan_unlabelled_containers",
        "Containers in scope with no stackshot label: nothing backs them up",
        m.plan_unlabelled.clone(),
    );
}

/// Registers the metrics of what goes on around the runs: failed
/// notifications, the stop window now open, and runs refused or delayed.
fn register_operations(r: &mut Registry, m: &Handles) {
    r.register(
        "notify_failures",
        "Notifications (NOTIFY_URLS) and pings (PING_URL, scheme=\"ping\") that failed, by scheme",
        m.notify_failures.clone(),
    );
    r.register(
        "stop_window_open_seconds",
        "How long the stop window now open has been open, from its first stop (0: no window open); also a window of a `docker exec`'d run",
        m.window_open.clone(),
    );
    r.register(
        "stop_window_limit_seconds",
        "The limit (WINDOW_LIMIT) of the stop window now open (0: no window open, or one without a limit, such as a restore's)",
        m.window_limit.clone(),
    );
    r.register(
        "runs_refused",
        "Runs not started because another held their place, by task (backup: a backup was running; prune, check, verify, drill: a backup, restore or another process held the run lock; they run at their next tick)",
        m.refused.clone(),
    );
    r.register(
        "runs_delayed",
        "Backups that waited for a maintenance task or another process's run lock to end, then ran",
        m.delayed.clone(),
    );
}

/// Registers `stackshot_build_info`, holding `version`.
fn register_build(r: &mut Registry, version: &str) {
    // An info metric: the encoder adds `_info`.
    r.register(
        "build",
        "stackshot's version",
        Info::new(VersionLabel {
            version: version.into(),
        }),
    );
}

/// Rewrites prometheus-client's OpenMetrics text to the classic text format:
/// no `# EOF` and `# UNIT` lines; a counter family is named like its `_total`
/// samples; an info family becomes a gauge named like its `_info` sample.
/// Sample lines never start with `#` (label values escape newlines), so a
/// line-by-line rewrite is exact.
fn to_classic(openmetrics: &str) -> String {
    let mut suffix_of = std::collections::HashMap::new();
    for line in openmetrics.lines() {
        let Some((name, kind)) = line.strip_prefix("# TYPE ").and_then(|t| t.split_once(' '))
        else {
            continue;
        };
        match kind {
            "counter" => suffix_of.insert(name, ("_total", "counter")),
            "info" => suffix_of.insert(name, ("_info", "gauge")),
            _ => None,
        };
    }
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let header = ["# HELP ", "# TYPE "]
            .into_iter()
            .find(|p| line.starts_with(p));
        match header {
            Some(prefix) => {
                let rest = &line[prefix.len()..];
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                match suffix_of.get(name) {
                    Some((suffix, kind)) if prefix == "# TYPE " => {
                        out.push_str(&format!("{prefix}{name}{suffix} {kind}"))
                    }
                    Some((suffix, _)) => out.push_str(&format!("{prefix}{name}{suffix} {tail}")),
                    None => out.push_str(line),
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dumps::DumpResult;
    use crate::labels::Engine;
    use crate::report::{Phase, SnapshotReport};
    use crate::window::{Timed, WindowReport};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn dump(service: &str, engine: Engine, bytes: u64, seconds: f64) -> DumpResult {
        DumpResult {
            service: service.into(),
            engine,
            database: None,
            file: format!("{service}/{}-all.sql", engine.as_str()),
            bytes,
            sha256: "0".repeat(64),
            seconds,
            server_version: "16".into(),
            integrity_check: None,
            counted: None,
        }
    }

    fn success() -> RunReport {
        let mut r = RunReport::start();
        r.project = "shop".into();
        r.started_at = at("2024-06-01T02:00:00Z");
        r.finished_at = at("2024-06-01T02:00:05.5Z");
        r.result = Outcome::Success;
        let timed = |c: &str| Timed {
            container: c.into(),
            seconds: 0.5,
        };
        r.phases = ["recover", "plan", "window", "dumps", "merge"]
            .iter()
            .zip([0.5, 0.25, 1.25, 2.0, 1.5])
            .map(|(name, seconds)| Phase {
                name: name.to_string(),
                seconds,
            })
            .collect();
        r.window = Some(WindowReport {
            stopped: vec![timed("shop_worker_1"), timed("shop_app_1")],
            started: vec![timed("shop_app_1"), timed("shop_worker_1")],
            seconds: 1.25,
            ..Default::default()
        });
        r.dumps = vec![
            dump("postgres", Engine::Postgres, 28838, 0.25),
            dump("mariadb", Engine::Mariadb, 2000, 0.5),
            dump("mariadb", Engine::Mariadb, 336, 0.25),
        ];
        r.snapshots = vec![SnapshotReport {
            mode: "atomic".into(),
            id: Some("ac9b0775".into()),
            files_new: 7,
            files_changed: 2,
            files_unmodified: 40,
            bytes_added: 39280,
            ..Default::default()
        }];
        r
    }

    fn failed() -> RunReport {
        let mut r = RunReport::start();
        r.started_at = at("2024-06-02T02:00:00Z");
        r.finished_at = at("2024-06-02T02:00:02Z");
        r.result = Outcome::Failed;
        r.reason = Some("service postgres: cannot log in to postgres".into());
        r
    }

    fn lines(m: &Metrics) -> Vec<String> {
        m.encode().lines().map(String::from).collect()
    }

    fn assert_has(text: &[String], expected: &[&str]) {
        for e in expected {
            assert!(
                text.iter().any(|l| l == e),
                "missing line {e:?} in:\n{}",
                text.join("\n")
            );
        }
    }

    #[test]
    fn before_any_run() {
        let m = Metrics::new("1.2.3");
        let text = lines(&m);
        assert_has(
            &text,
            &[
                "# TYPE stackshot_backup_runs_total counter",
                r#"stackshot_backup_runs_total{result="success"} 0"#,
                r#"stackshot_backup_runs_total{result="partial"} 0"#,
                r#"stackshot_backup_runs_total{result="failed"} 0"#,
                "stackshot_backup_running 0",
                "# TYPE stackshot_build_info gauge",
                r#"stackshot_build_info{version="1.2.3"} 1"#,
            ],
        );
        assert!(!text.iter().any(|l| l.starts_with("stackshot_dump_")));
        assert!(!text.iter().any(|l| l == "# EOF" || l.starts_with("# UNIT")));
    }

    #[test]
    fn a_successful_run() {
        let m = Metrics::new("1.2.3");
        m.set_running(true);
        m.record_run(&success());
        m.set_next_run(Some(at("2024-06-02T02:00:00Z")));
        m.record_maintenance(MaintenanceKind::Prune, true);
        m.record_maintenance(MaintenanceKind::Check, false);
        m.record_drill(false, at("2024-06-02T03:00:00Z"));
        assert_has(
            &lines(&m),
            &[
                "stackshot_drill_last_success 0",
                "stackshot_drill_last_timestamp_seconds 1717297200.0",
                r#"stackshot_backup_runs_total{result="success"} 1"#,
                r#"stackshot_backup_runs_total{result="failed"} 0"#,
                "stackshot_backup_last_success_timestamp_seconds 1717207205.5",
                "stackshot_backup_last_run_timestamp_seconds 1717207205.5",
                "stackshot_backup_last_run_success 1",
                "stackshot_backup_duration_seconds 5.5",
                "stackshot_backup_stop_window_seconds 1.25",
                "stackshot_backup_running 1",
                "stackshot_next_run_timestamp_seconds 1717293600.0",
                "stackshot_snapshot_bytes_added 39280",
                r#"stackshot_snapshot_files{state="new"} 7"#,
                r#"stackshot_snapshot_files{state="changed"} 2"#,
                r#"stackshot_snapshot_files{state="unmodified"} 40"#,
                r#"stackshot_dump_bytes{service="postgres",engine="postgres"} 28838"#,
                r#"stackshot_dump_bytes{service="mariadb",engine="mariadb"} 2336"#,
                r#"stackshot_dump_duration_seconds{service="postgres",engine="postgres"} 0.25"#,
                r#"stackshot_dump_duration_seconds{service="mariadb",engine="mariadb"} 0.75"#,
                "stackshot_containers_stopped 2",
                r#"stackshot_backup_phase_seconds{phase="window"} 1.25"#,
                r#"stackshot_backup_phase_seconds{phase="dumps"} 2.0"#,
                r#"stackshot_backup_phase_seconds{phase="merge"} 1.5"#,
                r#"stackshot_maintenance_last_success{task="prune"} 1"#,
                r#"stackshot_maintenance_last_success{task="check"} 0"#,
            ],
        );
    }

    #[test]
    fn the_open_window_is_read_from_the_journal_at_each_scrape() {
        let dir = tempfile::tempdir().unwrap();
        let journal = crate::window::journal::Journal::in_dir(dir.path());
        let m = Metrics::new("1.2.3");
        m.watch_journal(journal.clone());
        let closed = [
            "stackshot_stop_window_open_seconds 0",
            "stackshot_stop_window_limit_seconds 0",
        ];
        assert_has(&lines(&m), &closed);
        journal
            .write(&crate::window::journal::State {
                run_id: "r".into(),
                stopped: vec![crate::window::journal::Entry {
                    id: "a".into(),
                    name: "app".into(),
                    wave: 0,
                    after: None,
                    frozen: false,
                }],
                opened: Some(Utc::now().timestamp() - 1000),
                limit: Some(900),
                ..Default::default()
            })
            .unwrap();
        let text = lines(&m);
        let age: i64 = text
            .iter()
            .find_map(|l| l.strip_prefix("stackshot_stop_window_open_seconds "))
            .unwrap()
            .parse()
            .unwrap();
        assert!((1000..1100).contains(&age), "{age}");
        assert_has(&text, &["stackshot_stop_window_limit_seconds 900"]);
        journal.clear().unwrap();
        assert_has(&lines(&m), &closed);
    }

    #[test]
    fn a_failed_run_after_a_success() {
        let m = Metrics::new("1.2.3");
        m.record_run(&success());
        m.record_run(&failed());
        m.set_running(false);
        m.set_next_run(None);
        let text = lines(&m);
        assert_has(
            &text,
            &[
                r#"stackshot_backup_runs_total{result="success"} 1"#,
                r#"stackshot_backup_runs_total{result="partial"} 0"#,
                r#"stackshot_backup_runs_total{result="failed"} 1"#,
                "stackshot_backup_last_success_timestamp_seconds 1717207205.5",
                "stackshot_backup_last_run_timestamp_seconds 1717293602.0",
                "stackshot_backup_last_run_success 0",
                "stackshot_backup_duration_seconds 2.0",
                "stackshot_backup_stop_window_seconds 0.0",
                "stackshot_backup_running 0",
                "stackshot_next_run_timestamp_seconds 0.0",
                "stackshot_snapshot_bytes_added 0",
                r#"stackshot_snapshot_files{state="new"} 0"#,
                "stackshot_containers_stopped 0",
            ],
        );
        // The failed run reached no phase: the success's phases are gone.
        assert!(
            !text
                .iter()
                .any(|l| l.starts_with("stackshot_backup_phase_seconds{")),
            "{text:?}"
        );
        // The failed run wrote no dumps: the last run's dump series are gone.
        assert!(
            !text.iter().any(|l| l.starts_with("stackshot_dump_")),
            "{text:#?}"
        );
    }

    #[test]
    fn a_partial_run_is_not_a_success() {
        let m = Metrics::new("1.2.3");
        let mut r = success();
        r.result = Outcome::Partial;
        m.record_run(&r);
        assert_has(
            &lines(&m),
            &[
                r#"stackshot_backup_runs_total{result="partial"} 1"#,
                "stackshot_backup_last_run_success 0",
                "stackshot_backup_last_success_timestamp_seconds 0.0",
            ],
        );
    }

    #[test]
    fn a_last_success_read_at_start_up() {
        let m = Metrics::new("1.2.3");
        m.seed_last_success(at("2024-06-01T00:00:00.25Z"));
        assert_has(
            &lines(&m),
            &["stackshot_backup_last_success_timestamp_seconds 1717200000.25"],
        );
        // A run's later success stays; an older seed does not move it back.
        m.record_run(&success());
        m.seed_last_success(at("2024-06-01T00:00:00.25Z"));
        assert_has(
            &lines(&m),
            &["stackshot_backup_last_success_timestamp_seconds 1717207205.5"],
        );
    }

    #[test]
    fn openmetrics_to_classic() {
        let om = "# HELP x_runs Runs.\n# TYPE x_runs counter\nx_runs_total{a=\"#b\"} 1\n\
                  # HELP x_up Up.\n# TYPE x_up_seconds gauge\n# UNIT x_up_seconds seconds\nx_up_seconds 2.5\n\
                  # HELP x_build Build.\n# TYPE x_build info\nx_build_info{version=\"1\"} 1\n# EOF\n";
        assert_eq!(
            to_classic(om),
            "# HELP x_runs_total Runs.\n# TYPE x_runs_total counter\nx_runs_total{a=\"#b\"} 1\n\
             # HELP x_up Up.\n# TYPE x_up_seconds gauge\nx_up_seconds 2.5\n\
             # HELP x_build_info Build.\n# TYPE x_build_info gauge\nx_build_info{version=\"1\"} 1\n"
        );
    }

    #[test]
    fn clones_share_values() {
        let m = Metrics::new("1.2.3");
        m.clone().set_running(true);
        assert!(m.encode().contains("\nstackshot_backup_running 1\n"));
    }

    fn copy_report(ok: bool) -> crate::report::CopyReport {
        use crate::report::CopyReport;
        if ok {
            CopyReport {
                outcome: crate::report::CopyOutcome::Copied,
                repository: "/copy".into(),
                copied: vec!["1a2b3c4d".into(), "5e6f7a8b".into()],
                initialised: false,
                retention: None,
                seconds: 1.0,
                error: None,
            }
        } else {
            CopyReport::failed("/copy".into(), "cannot connect".into(), 0.1)
        }
    }

    #[test]
    fn copies_carry_the_repository_label() {
        let m = Metrics::new("1.2.3");
        assert!(!m.encode().contains("stackshot_copy_runs_total{"));
        m.record_copy(&copy_report(true), at("2024-06-02T02:00:00Z"));
        m.record_copy(&copy_report(false), at("2024-06-03T02:00:00Z"));
        assert_has(
            &lines(&m),
            &[
                r#"stackshot_copy_runs_total{repository="copy",result="success"} 1"#,
                r#"stackshot_copy_runs_total{repository="copy",result="failed"} 1"#,
                r#"stackshot_copy_last_success_timestamp_seconds{repository="copy"} 1717293600.0"#,
                r#"stackshot_copy_last_run_timestamp_seconds{repository="copy"} 1717380000.0"#,
                r#"stackshot_copy_last_run_success{repository="copy"} 0"#,
                r#"stackshot_copy_snapshots_copied{repository="copy"} 0"#,
            ],
        );
    }

    #[test]
    fn promtool_accepts_the_exposition() {
        let m = Metrics::new("1.2.3");
        m.record_run(&success());
        m.record_run(&failed());
        m.record_run(&success());
        m.record_copy(&copy_report(true), at("2024-06-02T02:00:00Z"));
        m.record_copy(&copy_report(false), at("2024-06-03T02:00:00Z"));
        m.set_next_run(Some(at("2024-06-02T02:00:00Z")));
        m.record_maintenance(MaintenanceKind::Prune, true);
        let text = m.encode();
        let child = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => panic!(
                "this test needs promtool ({e}); install it with `apt-get install prometheus` (Debian) \
                 or put Prometheus' promtool on PATH"
            ),
        };
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics refused the exposition ({}):\n{}{}\n--- exposition:\n{text}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
