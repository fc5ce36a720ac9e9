//! Taking snapshots: the atomic one (volumes and dumps, in a worker container
//! that has the plan's mounts), a volumes-only one, and per-database ones fed
//! straight from the dump into `restic backup --stdin`.

use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow, bail};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::container::ContainerInfo;
use crate::dumps::{self, DATABASES_DIR, DumpResult, Prepared, command::DumpJob};
use crate::engine::{Engine, worker};
use crate::env::Secret;
use crate::layout::{RunPart, SnapshotMode};
use crate::plan::{self, Plan};
use crate::report::SnapshotReport;
use crate::restic::json::{BackupEvent, BackupSummary, parse_backup_line};
use crate::restic::{self, BackupExit, Restic};
use crate::worker::WorkerEvent;

pub use crate::layout::{PART_TAG, VOLUMES_DIR};

/// Settings shared by every snapshot of a run.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// The host the run's snapshots are recorded under (restic's `--host`).
    pub host: &'a str,
    /// The compose project, tagged `project=<name>` on each snapshot.
    pub project: &'a str,
    /// restic's settings, handed to a worker on its stdin.
    pub secrets: &'a [(String, Secret)],
    /// The run, tagged `run=<id>` on each of its snapshots.
    pub run_id: &'a str,
    /// How long a worker's `restic backup` may go without progress.
    pub stall_timeout: std::time::Duration,
}

impl Target<'_> {
    /// The tags of a part of a run (the pre-pass, the window's files, the
    /// dumps): not `stackshot`, so that no listing, retention or restore
    /// mistakes a part for a backup. Parts are forgotten by the run.
    pub fn part_tags(&self, part: RunPart) -> Vec<String> {
        vec![
            PART_TAG.to_string(),
            format!("project={}", self.project),
            format!("run={}", self.run_id),
            format!("part={part}"),
        ]
    }

    /// The tags of a snapshot: `stackshot`, `project=`, `mode=`, `run=` and one
    /// `service=` per service it holds.
    pub fn tags(&self, mode: SnapshotMode, services: &[&str]) -> Vec<String> {
        let mut t = vec![
            "stackshot".to_string(),
            format!("project={}", self.project),
            format!("mode={mode}"),
            format!("run={}", self.run_id),
        ];
        let mut services: Vec<&str> = services.to_vec();
        services.sort_unstable();
        services.dedup();
        t.extend(services.iter().map(|s| format!("service={s}")));
        t
    }
}

/// Checks that `/databases` is a mount of the sidecar, so the worker can see the dumps.
pub fn check_databases_mount(sidecar: &ContainerInfo) -> Result<()> {
    if sidecar
        .mounts
        .iter()
        .any(|m| m.destination == DATABASES_DIR)
    {
        Ok(())
    } else {
        bail!(
            "{DATABASES_DIR} is not a volume of the sidecar {}, so the snapshot worker cannot see the dumps; \
             use the stackshot image (it declares the volume) or mount a volume at {DATABASES_DIR}",
            sidecar.name
        )
    }
}

fn report_from(
    mode: &str,
    service: Option<&str>,
    summary: &BackupSummary,
    started: Instant,
    unreadable: Vec<String>,
) -> SnapshotReport {
    SnapshotReport {
        mode: mode.into(),
        service: service.map(str::to_string),
        id: summary.snapshot_id.clone(),
        files_new: summary.files_new,
        files_changed: summary.files_changed,
        files_unmodified: summary.files_unmodified,
        bytes_added: summary.data_added,
        bytes_processed: summary.total_bytes_processed,
        seconds: started.elapsed().as_secs_f64(),
        unreadable,
    }
}

fn log_progress(p: &restic::json::Progress) {
    tracing::info!(
        percent = format!("{:.1}", p.percent_done * 100.0),
        bytes_done = p.bytes_done,
        total_bytes = p.total_bytes,
        files_done = p.files_done,
        total_files = p.total_files,
        eta_seconds = p.seconds_remaining,
        "snapshot progress"
    );
}

/// What a snapshot run ended with.
pub struct Snapshotted {
    /// The snapshot's part of the run report.
    pub report: SnapshotReport,
    /// How the backup ended: success, partial (some files unreadable) or failed.
    pub exit: BackupExit,
}

/// One `restic backup` in a worker container.
#[derive(Debug, Clone)]
pub struct SnapshotJob<'a> {
    /// What it is, for reports and messages (`atomic`, `volumes`, `pre-pass`, …):
    /// a snapshot's mode tag, or what part of a run it is.
    pub mode: &'a str,
    /// The plan's mounts attached (read-only) under `/volumes`.
    pub with_volumes: bool,
    /// Paths to back up.
    pub paths: &'a [&'a str],
    /// Tags: a part's ([`Target::part_tags`]) or a backup's ([`run_tags`]).
    pub tags: Vec<String>,
    /// `--parent` snapshot (the pre-pass), if any.
    pub parent: Option<String>,
    /// Which pass runs in the worker.
    pub pass: Pass,
}

/// Which program takes a snapshot in the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// `restic backup`, started when the worker gets its settings.
    Restic,
    /// rustic_core, the repository opened as soon as the worker gets its
    /// settings ([`StartedSnapshot::arm`]), the backup on `go`.
    Armed,
}

/// What the file pass leaves out of `/volumes`: the plan's excludes, and at
/// the root of each mount the restore swap's own directories and record
/// (an interrupted restore's `.stackshot-old` is not the stack's data).
/// restic and the armed pass (rustic) both get these as `--exclude`; a mount
/// whose path has a glob character cannot be named exactly in one, and has
/// no such exclude. Pure.
pub fn volume_excludes(plan: &Plan) -> Vec<String> {
    let mut out = plan.excludes.clone();
    for v in &plan.volumes {
        if !v
            .snapshot_path
            .contains(['*', '?', '[', ']', '{', '}', '\\', '!'])
        {
            out.extend(crate::worker::swap::backup_excludes(&v.snapshot_path));
        }
    }
    out
}

/// A snapshot worker started and waiting: [`StartedSnapshot::finish`] runs it.
pub struct StartedSnapshot {
    worker: worker::Started,
    mode: String,
    secrets: Vec<(String, Secret)>,
}

/// The run's tags for a backup snapshot of `paths` in `mode`: one `service=`
/// for each service of the plan whose mounts (`/volumes`) or dumps
/// (`/databases`) it holds. Pure.
pub fn run_tags(
    target: &Target<'_>,
    plan: &Plan,
    mode: SnapshotMode,
    paths: &[&str],
) -> Vec<String> {
    let mut services: Vec<&str> = Vec::new();
    if paths.contains(&VOLUMES_DIR) {
        services.extend(plan.volumes.iter().map(|v| v.container.service.as_str()));
    }
    if paths.contains(&DATABASES_DIR) {
        services.extend(plan.dumps.iter().map(|d| d.container.service.as_str()));
    }
    target.tags(mode, &services)
}

/// Starts the worker of `job` (created, attached, started); restic runs only
/// once [`StartedSnapshot::finish`] hands it its settings.
pub async fn start_in_worker(
    engine: &Engine,
    target: &Target<'_>,
    plan: &Plan,
    sidecar: &ContainerInfo,
    job: &SnapshotJob<'_>,
) -> Result<StartedSnapshot> {
    let binary = worker::own_binary();
    let mut args = vec![match job.pass {
        Pass::Restic => "restic".to_string(),
        Pass::Armed => "rustic".to_string(),
    }];
    args.extend(restic::backup_args(target.host, &job.tags, job.paths)?);
    if job.paths.contains(&VOLUMES_DIR) {
        for e in volume_excludes(plan) {
            args.extend(["--exclude".to_string(), e]);
        }
    }
    if let Some(parent) = &job.parent {
        args.extend(["--parent".to_string(), parent.clone()]);
    }
    let spec = worker::WorkerSpec {
        image: sidecar.image_id.clone(),
        binary,
        args,
        mounts: plan::mounts::worker_mounts(plan, sidecar, job.with_volumes),
        network_mode: Some(format!("container:{}", sidecar.id)),
        env: vec![],
        secrets: target.secrets.to_vec(),
        project: target.project.to_string(),
        stall_timeout: Some(target.stall_timeout),
    };
    Ok(StartedSnapshot {
        worker: worker::start(engine, &spec).await?,
        mode: job.mode.to_string(),
        secrets: target.secrets.to_vec(),
    })
}

/// What a snapshot worker said, gathered line by line.
struct Collector {
    mode: String,
    secrets: Vec<(String, Secret)>,
    started: Instant,
    summary: Option<BackupSummary>,
    unreadable: Vec<String>,
    log_tail: Vec<String>,
    /// The armed pass's `spooled`: files and bytes still to upload.
    spooled: Option<(u64, u64)>,
}

impl Collector {
    fn new(mode: String, secrets: Vec<(String, Secret)>) -> Self {
        Collector {
            mode,
            secrets,
            started: Instant::now(),
            summary: None,
            unreadable: Vec::new(),
            log_tail: Vec::new(),
            spooled: None,
        }
    }

    /// Takes one line; true when it is the armed worker's `ready` or
    /// `spooled`.
    fn line(&mut self, line: &str) -> bool {
        match serde_json::from_str::<WorkerEvent>(line) {
            Ok(WorkerEvent::Progress(p)) => log_progress(&p),
            Ok(WorkerEvent::Summary(s)) => self.summary = Some(s),
            Ok(WorkerEvent::FileError { item, message }) => {
                tracing::warn!(item = %item, error = %message, "a file could not be read");
                self.unreadable.push(format!("{item}: {message}"));
            }
            Ok(WorkerEvent::Log { line }) => {
                tracing::debug!(line = %line, "worker");
                // Enough lines to hold a panic's trace and what came before
                // it: `why` drops the trace and keeps the last eight others.
                self.log_tail.push(line);
                if self.log_tail.len() > 256 {
                    self.log_tail.remove(0);
                }
            }
            Ok(WorkerEvent::Ready { seconds }) => {
                tracing::info!(
                    mode = %self.mode,
                    seconds,
                    "file pass armed: repository opened and index loaded ahead"
                );
                return true;
            }
            Ok(WorkerEvent::Spooled { files, bytes }) => {
                tracing::info!(
                    mode = %self.mode,
                    files,
                    bytes,
                    "file pass spooled locally; it uploads after the window"
                );
                self.spooled = Some((files, bytes));
                return true;
            }
            Ok(WorkerEvent::Exit { .. }) => {}
            Err(_) => tracing::debug!(line, "worker said"),
        }
        false
    }

    fn why(&self) -> String {
        let lines: Vec<&str> = self.log_tail.iter().map(String::as_str).collect();
        let kept: Vec<&str> = restic::without_noise(&lines)
            .into_iter()
            .filter(|l| !l.trim().is_empty())
            .collect();
        let last = &kept[kept.len().saturating_sub(8)..];
        restic::redact(&last.join(" | "), &self.secrets)
    }

    fn finish(self, code: i64) -> Result<Snapshotted> {
        let exit = restic::classify_backup_exit(i32::try_from(code).unwrap_or(1));
        let mode = &self.mode;
        match (exit, &self.summary) {
            (BackupExit::Failed, _) | (_, None) => {
                let why = match code {
                    137 => "the worker container was killed".to_string(),
                    c if c == i64::from(crate::worker::stall::STALLED_EXIT) => {
                        "it stalled".to_string()
                    }
                    _ => format!("restic exited with code {code}"),
                };
                Err(anyhow!("{mode} snapshot failed: {why}: {}", self.why()))
            }
            (exit, Some(s)) => Ok(Snapshotted {
                report: report_from(mode, None, s, self.started, self.unreadable),
                exit,
            }),
        }
    }
}

impl StartedSnapshot {
    /// Runs restic in the waiting worker, to the end.
    pub async fn finish(self, engine: &Engine) -> Result<Snapshotted> {
        let mut c = Collector::new(self.mode, self.secrets);
        let code = self
            .worker
            .finish(engine, |line| {
                c.line(line);
            })
            .await?;
        c.finish(code)
    }

    /// For a worker started with [`Pass::Armed`]: hands it its settings and
    /// waits until it opened the repository and loaded the index. It then
    /// waits for [`ArmedSnapshot::finish`].
    pub async fn arm(self, engine: &Engine) -> Result<ArmedSnapshot> {
        let mut c = Collector::new(self.mode.clone(), self.secrets.clone());
        let worker = self
            .worker
            .arm(engine, |line| c.line(line))
            .await
            .map_err(|e| anyhow!("{e:#}: {}", c.why()))?;
        Ok(ArmedSnapshot {
            worker,
            mode: self.mode,
            secrets: self.secrets,
        })
    }
}

/// A worker with the repository opened, waiting for `go`.
pub struct ArmedSnapshot {
    worker: worker::Armed,
    mode: String,
    secrets: Vec<(String, Secret)>,
}

impl ArmedSnapshot {
    /// Says go and runs the pass until its snapshot is written: into the
    /// repository, or (a remote one) into the local spool, with the
    /// [`Upload`] still to wait for.
    pub async fn finish(self, engine: &Engine) -> Result<(Snapshotted, Option<Upload>)> {
        let mut c = Collector::new(self.mode.clone(), self.secrets.clone());
        match self.worker.fire_until(engine, |line| c.line(line)).await? {
            worker::Fired::Ended(code) => Ok((c.finish(code)?, None)),
            worker::Fired::Reached(running) => {
                let (files, bytes) = c.spooled.unwrap_or_default();
                // The worker exits 3 after file errors, 0 without.
                let code = if c.unreadable.is_empty() { 0 } else { 3 };
                let secrets = c.secrets.clone();
                let snapshotted = match c.finish(code) {
                    Ok(s) => s,
                    Err(e) => {
                        running.abort(engine).await;
                        return Err(e);
                    }
                };
                Ok((
                    snapshotted,
                    Some(Upload {
                        running,
                        mode: self.mode,
                        secrets,
                        files,
                        bytes,
                    }),
                ))
            }
        }
    }
}

/// An armed pass whose snapshot waits in the local spool, uploading.
pub struct Upload {
    running: worker::Running,
    mode: String,
    secrets: Vec<(String, Secret)>,
    /// How many spooled files wait to be uploaded.
    pub files: u64,
    /// The total size of those files in bytes.
    pub bytes: u64,
}

impl Upload {
    /// Waits until the spooled pass is in the repository. An error means
    /// the repository has no snapshot of the pass.
    pub async fn finish(self, engine: &Engine) -> Result<()> {
        let mut c = Collector::new(self.mode, self.secrets);
        let code = self
            .running
            .finish(engine, |line| {
                c.line(line);
            })
            .await?;
        match code {
            0 | 3 => Ok(()),
            _ => Err(anyhow!(
                "the {} snapshot's upload failed (exit code {code}): {}",
                c.mode,
                c.why()
            )),
        }
    }

    /// Stops the upload (the spool stays for the next run to sweep).
    pub async fn abort(self, engine: &Engine) {
        self.running.abort(engine).await;
    }
}

/// Runs restic in a worker container over `paths`; the worker sees the plan's
/// mounts (when `with_volumes`) and the sidecar's own.
pub async fn in_worker(
    engine: &Engine,
    target: &Target<'_>,
    plan: &Plan,
    sidecar: &ContainerInfo,
    mode: SnapshotMode,
    with_volumes: bool,
    paths: &[&str],
) -> Result<Snapshotted> {
    let job = SnapshotJob {
        mode: mode.as_str(),
        with_volumes,
        paths,
        tags: run_tags(target, plan, mode, paths),
        parent: None,
        pass: Pass::Restic,
    };
    start_in_worker(engine, target, plan, sidecar, &job)
        .await?
        .finish(engine)
        .await
}

/// Streams one dump into `restic backup --stdin` in the sidecar, as
/// `/databases/<rel_dir>/<file>` (no scratch disk needed).
pub async fn database_via_stdin(
    engine: &Engine,
    restic: &Restic,
    target: &Target<'_>,
    p: &Prepared,
    job: &DumpJob,
) -> Result<(DumpResult, Snapshotted)> {
    let started = Instant::now();
    let service = p.plan.container.service.as_str();
    let file = format!("{}/{}", p.rel_dir, job.file);
    let stdin_name = format!("{}/{file}", DATABASES_DIR.trim_start_matches('/'));
    let mut args = restic::backup_args(
        target.host,
        &target.tags(SnapshotMode::Database, &[service]),
        &[],
    )?;
    args.extend([
        "--stdin".to_string(),
        "--stdin-filename".to_string(),
        stdin_name,
    ]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = restic
        .command(&argv)
        .stdin(Stdio::piped())
        .spawn()
        .context("cannot run restic")?;
    let mut stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let out_task = tokio::spawn(async move {
        let mut summary = None;
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(BackupEvent::Summary(s)) = parse_backup_line(&line) {
                summary = Some(s);
            }
        }
        summary
    });
    let err_task = tokio::spawn(async move {
        let mut tail = crate::engine::exec::Tail::new(2048);
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tail.push(line.as_bytes());
            tail.push(b"\n");
        }
        tail.one_line()
    });
    let streamed = dumps::stream_into(engine, p, job, &mut stdin).await;
    if streamed.is_err() {
        // No snapshot from a broken dump: kill restic before closing its stdin,
        // which it would take for the end of a good stream and commit.
        let _ = child.start_kill();
    }
    drop(stdin);
    let status = child.wait().await.context("waiting for restic")?;
    let summary = out_task.await.unwrap_or(None);
    let stderr = err_task.await.unwrap_or_default();
    let streamed = streamed?;
    let exit = restic::classify_backup_exit(status.code().unwrap_or(1));
    let summary = match (exit, summary) {
        (BackupExit::Failed, _) | (_, None) => {
            bail!("database snapshot of {service} failed: restic exited with {status}: {stderr}")
        }
        (_, Some(s)) => s,
    };
    let dump = DumpResult {
        service: service.to_string(),
        engine: p.plan.engine,
        database: job.database.clone(),
        file,
        bytes: streamed.bytes,
        sha256: streamed.sha256,
        seconds: streamed.seconds,
        server_version: p.server_version.clone(),
        integrity_check: (p.plan.engine == crate::labels::Engine::Sqlite).then(|| "ok".to_string()),
        counted: streamed.counted,
    };
    tracing::info!(service, bytes = dump.bytes, snapshot = ?summary.snapshot_id, "database snapshot written");
    Ok((
        dump,
        Snapshotted {
            report: report_from(
                SnapshotMode::Database.as_str(),
                Some(service),
                &summary,
                started,
                vec![],
            ),
            exit,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::from_inspect_json;
    use crate::plan::{PlanOptions, build};

    #[test]
    fn the_restore_swap_is_left_out_of_every_mount_for_restic_and_rustic() {
        let cs =
            from_inspect_json(include_str!("../../tests/fixtures/stack-inspect.json")).unwrap();
        let sidecar = cs.iter().find(|c| c.service == "backup").unwrap();
        let mut plan = build(
            &PlanOptions {
                project: "stackshot-e2e".into(),
                host: "h".into(),
                atomic: true,
                include_all_projects: false,
                exclude_bind_mounts: false,
                self_id: Some(sidecar.id.clone()),
                full_window: None,
                append_only: false,
                copy: None,
                freeze: false,
            },
            &cs,
        );
        let excludes = volume_excludes(&plan);
        for name in [".stackshot-old", ".stackshot-restore", ".stackshot-swap"] {
            for mount in ["/volumes/app/data", "/volumes/app/uploads"] {
                let e = format!("{mount}/{name}");
                assert!(excludes.contains(&e), "{e} not in {excludes:?}");
            }
        }
        // The armed pass (rustic) takes them as they are.
        let mut args = vec!["backup".to_string(), "--host".into(), "h".into()];
        for e in &excludes {
            args.extend(["--exclude".to_string(), e.clone()]);
        }
        args.push("/volumes".into());
        let spec = crate::worker::rustic::parse_args(&args).unwrap();
        assert_eq!(spec.excludes, excludes);
        // A mount path with a glob character cannot be named exactly: left as it is.
        plan.volumes[0].snapshot_path = "/volumes/app/d[1]".into();
        assert!(!volume_excludes(&plan).iter().any(|e| e.contains("d[1]")));
    }

    #[test]
    fn redacts_secret_values_and_repository_passwords() {
        let secrets = vec![
            ("RESTIC_PASSWORD".to_string(), Secret::new("hunter22")),
            (
                "RESTIC_REPOSITORY".to_string(),
                Secret::new("rest:https://u:pw@host/r"),
            ),
        ];
        assert_eq!(
            restic::redact("Fatal: hunter22 at rest:https://u:pw@host/r", &secrets),
            "Fatal: <hidden> at rest:https://u:***@host/r"
        );
        // A password file's path is no secret, and helps: it stays.
        let secrets = vec![
            (
                "RESTIC_PASSWORD_FILE".to_string(),
                Secret::new("/run/secrets/pw"),
            ),
            (
                "AWS_SECRET_ACCESS_KEY".to_string(),
                Secret::new("wJalrXUtnFEMI"),
            ),
        ];
        assert_eq!(
            restic::redact("open /run/secrets/pw: denied; key wJalrXUtnFEMI", &secrets),
            "open /run/secrets/pw: denied; key <hidden>"
        );
    }

    /// The target the tag tests share: project `shop`, run `r1`.
    fn shop_target() -> Target<'static> {
        Target {
            host: "h",
            project: "shop",
            secrets: &[],
            run_id: "r1",
            stall_timeout: std::time::Duration::from_secs(600),
        }
    }

    #[test]
    fn tags_name_project_mode_run_and_services() {
        let t = shop_target();
        assert_eq!(
            t.tags(SnapshotMode::Atomic, &["pg", "app", "app"]),
            [
                "stackshot",
                "project=shop",
                "mode=atomic",
                "run=r1",
                "service=app",
                "service=pg"
            ]
        );
        assert_eq!(t.tags(SnapshotMode::Database, &["pg"])[4], "service=pg");
    }

    /// A part's tags: never `stackshot`, and `part=` as the repository
    /// already holds it.
    #[test]
    fn part_tags_name_the_part_project_and_run() {
        let t = shop_target();
        assert_eq!(
            t.part_tags(RunPart::Prepass),
            ["stackshot-part", "project=shop", "run=r1", "part=prepass"]
        );
        assert_eq!(t.part_tags(RunPart::Files)[3], "part=files");
        assert_eq!(t.part_tags(RunPart::Dumps)[3], "part=dumps");
    }
}
