//! Restore: volumes back into their volumes and bind mounts (through a worker
//! container, inside the same always-closing stop window as a backup), and
//! dumps back into database containers — each dump checked against the
//! snapshot's `SHA256SUMS` before a byte reaches the database.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, anyhow, bail};
use bollard::container::LogOutput;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::catalog::{self, Run};
use crate::container::{ContainerInfo, MountKind, ROLE_LABEL};
use crate::context::{Context, plan_options};
use crate::discovery::{self, Discovery};
use crate::dumps::{self, DATABASES_DIR, Prepared};
use crate::engine::{exec, worker};
use crate::labels::Engine as DbEngine;
use crate::plan::{self, ContainerRef, DumpPlan, Plan, VolumePlan};
use crate::restic::SnapshotInfo;
use crate::window::{self, Shutdown};

/// Discovery, plan and the repository's runs: what every restore starts from.
struct Scene {
    found: Discovery,
    sidecar: ContainerInfo,
    plan: Plan,
    runs: Vec<Run>,
}

/// `mutate`: the caller holds the run lock and will change things; only then are
/// an interrupted run's worker removed and its containers started.
async fn scene(ctx: &Context, mutate: bool) -> Result<Scene> {
    crate::engine::access::check(&ctx.engine, ctx.config.docker_host_shown()).await?;
    ctx.restic.reachable().await?;
    let found = discovery::discover(ctx.engine.docker(), &ctx.config).await?;
    let sidecar = found.self_container.clone().ok_or_else(|| {
        anyhow!("restore must run inside the sidecar container: use `docker compose exec backup stackshot restore …`")
    })?;
    if mutate {
        worker::remove_leftovers(&ctx.engine, &found.project).await;
        let recovered = window::recover(&ctx.engine, &ctx.journal).await?;
        if !recovered.is_empty() {
            tracing::warn!(containers = ?recovered, "started containers an interrupted run had stopped");
        }
    }
    let plan = plan::build(&plan_options(&ctx.config, &found), &found.containers);
    let runs = catalog::list_here(&ctx.restic, &found, &plan.host).await?;
    Ok(Scene {
        found,
        sidecar,
        plan,
        runs,
    })
}

/// Streams `path` of snapshot `id` out of the repository into `sink` (or just
/// hashes it when `sink` is `None`); returns (bytes, sha256 hex).
pub(crate) async fn stream_file(
    ctx: &Context,
    id: &str,
    path: &str,
    mut sink: Option<&mut (dyn tokio::io::AsyncWrite + Send + Unpin)>,
    mut on_chunk: impl FnMut(&[u8]),
) -> Result<(u64, String)> {
    let mut child = ctx
        .restic
        .command(&["dump", id, path])
        .spawn()
        .context("cannot run restic dump")?;
    let mut out = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let err_task = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    });
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = out.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        on_chunk(&buf[..n]);
        bytes += n as u64;
        if let Some(s) = sink.as_mut() {
            s.write_all(&buf[..n])
                .await
                .context("writing into the database container")?;
        }
    }
    let status = child.wait().await?;
    let stderr = err_task.await.unwrap_or_default();
    if !status.success() {
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        bail!(
            "restic dump {path} from snapshot {id} failed: {}",
            ctx.restic.redact(last)
        );
    }
    Ok((bytes, crate::dumps::hex(&hasher.finalize())))
}

pub(crate) async fn small_file(ctx: &Context, id: &str, path: &str) -> Option<String> {
    let out = ctx.restic.run(&["dump", id, path]).await.ok()?;
    Some(out)
}

/// Parses `SHA256SUMS` into relative path → hash.
pub fn parse_sums(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(h, p)| (p.trim().to_string(), h.trim().to_string()))
        .collect()
}

/// The major version to compare: PostgreSQL's first number, MariaDB/MySQL's first two.
pub fn major(engine: DbEngine, version: &str) -> Option<(u32, u32)> {
    let mut nums = version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse::<u32>().ok());
    let a = nums.next()?;
    Some(match engine {
        // One file format across SQLite 3 versions: any copy opens.
        DbEngine::Sqlite => return None,
        DbEngine::Postgres => (a, 0),
        _ => (a, nums.next().unwrap_or(0)),
    })
}

// ---------------------------------------------------------------- volumes

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

fn print_targets(run: &Run, snap: &SnapshotInfo, targets: &[VolumePlan], to_volume: Option<&str>) {
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
async fn volumes_in<F, Fut>(
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

// ---------------------------------------------------------------- databases

/// Options of `restore database`.
#[derive(Debug, Clone)]
pub struct DatabaseOptions {
    /// `latest`, a run id or a snapshot id.
    pub snapshot: String,
    /// The service whose dump to restore.
    pub service: String,
    /// One database (its `<name>.sql`); default: the service's only or all-databases dump.
    pub database: Option<String>,
    /// Load into this container instead of the service's.
    pub target_container: Option<String>,
    /// Overwrite a database that already has data.
    pub replace: bool,
}

fn dump_dir(plan: &Plan, service: &str) -> String {
    plan.dumps
        .iter()
        .find(|d| d.container.service == service)
        .and_then(|d| d.outputs.first())
        .and_then(|o| o.rsplit_once('/').map(|(d, _)| d.to_string()))
        .unwrap_or_else(|| format!("{DATABASES_DIR}/{service}"))
}

async fn target(
    ctx: &Context,
    sc: &Scene,
    opts: &DatabaseOptions,
    engine_hint: Option<DbEngine>,
) -> Result<Prepared> {
    let (info, engine) = match &opts.target_container {
        Some(c) => {
            let info = ContainerInfo::from_inspect(&ctx.engine.inspect(c).await?);
            let engine = crate::labels::parse(&info.labels).engine.or(engine_hint).ok_or_else(|| {
                anyhow!("cannot tell the database engine of {c}: label it, or restore from a snapshot with a manifest")
            })?;
            (info, engine)
        }
        None => {
            let d = sc.plan.dumps.iter().find(|d| d.container.service == opts.service).ok_or_else(|| {
                anyhow!("service {:?} is not a labelled database in this stack; name a container with --target-container", opts.service)
            })?;
            let info = sc
                .found
                .containers
                .iter()
                .find(|c| c.id == d.container.id)
                .cloned()
                .expect("plan from discovery");
            (info, d.engine)
        }
    };
    let dp = DumpPlan {
        container: ContainerRef {
            project: info.project.clone(),
            service: info.service.clone(),
            container: info.name.clone(),
            id: info.id.clone(),
        },
        engine,
        databases: vec![],
        pinned: false,
        window_reason: None,
        data_dir: false,
        credentials: plan::credentials(engine, &info.env_names, &info.cmd_flags),
        outputs: vec![format!("{DATABASES_DIR}/{}/restore.sql", info.service)],
    };
    dumps::prepare(&ctx.engine, &dp, Some(&sc.sidecar)).await
}

/// Tables holding data in the target (in `database`, or in any database).
async fn user_tables(ctx: &Context, p: &Prepared, database: Option<&str>) -> Result<u64> {
    let login_env = dumps::command::login_env(p.plan.engine, &p.login);
    let q = |sql: String, db: &str| -> Vec<String> {
        let db = (!db.is_empty()).then_some(db);
        dumps::command::query(p.plan.engine, &p.tools, &p.login, db, &sql)
    };
    let login_env = &login_env;
    let run = |cmd: Vec<String>| async move {
        let out = exec::capture(&ctx.engine, &p.plan.container.id, &cmd, login_env).await?;
        if out.code != 0 {
            bail!("cannot inspect the target database: {}", out.stderr);
        }
        Ok::<_, anyhow::Error>(String::from_utf8_lossy(&out.stdout).to_string())
    };
    match p.plan.engine {
        DbEngine::Redis => Ok(redis::keys(ctx, p).await?.max(0) as u64),
        // No file yet (or one that will not open) holds no tables.
        DbEngine::Sqlite => Ok(match database {
            Some(path) => dumps::query_lines(
                &ctx.engine,
                p,
                Some(path),
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                "count its tables",
            )
            .await
            .ok()
            .and_then(|l| l.first().and_then(|n| n.parse().ok()))
            .unwrap_or(0),
            None => 0,
        }),
        DbEngine::Postgres => {
            let dbs = match database {
                Some(d) => vec![d.to_string()],
                None => run(q(
                    "SELECT datname FROM pg_database WHERE NOT datistemplate".into(),
                    "postgres",
                ))
                .await?
                .lines()
                .map(str::to_string)
                .collect(),
            };
            let mut n = 0;
            for db in dbs {
                let sql = "SELECT count(*) FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace \
                           WHERE c.relkind IN ('r','p','v','m','S') AND s.nspname NOT IN ('pg_catalog','information_schema') \
                           AND s.nspname NOT LIKE 'pg_toast%'";
                match run(q(sql.into(), &db)).await {
                    Ok(out) => n += out.trim().parse::<u64>().unwrap_or(0),
                    Err(_) if database.is_some() => {} // the database does not exist yet: empty
                    Err(e) => return Err(e),
                }
            }
            Ok(n)
        }
        _ => {
            let filter = match database {
                Some(d) => format!("table_schema = {}", dumps::command::maria_quote_literal(d)),
                None => {
                    "table_schema NOT IN ('mysql','information_schema','performance_schema','sys')"
                        .into()
                }
            };
            let out = run(q(
                format!("SELECT count(*) FROM information_schema.tables WHERE {filter}"),
                "",
            ))
            .await?;
            Ok(out.trim().parse().unwrap_or(0))
        }
    }
}

/// One dump in a run: the snapshot holding it and its path.
#[derive(Debug, Clone)]
struct DumpFile {
    snap: SnapshotInfo,
    /// `/databases/<service>/<file>.sql`
    path: String,
    /// The path relative to `/databases` (as in `SHA256SUMS`).
    rel: String,
    /// The database of a per-database dump; `None` for an all-databases dump.
    database: Option<String>,
}

/// Every dump of `service` in `run`, whether atomic (listed from the snapshot)
/// or split (one snapshot per dump).
async fn dump_files(ctx: &Context, run: &Run, plan: &Plan, service: &str) -> Result<Vec<DumpFile>> {
    let dir = dump_dir(plan, service);
    // SQLite copies keep their own names: each is its file in the container
    // (the one the label names now by that name).
    let sqlite: Option<&Vec<String>> = plan
        .dumps
        .iter()
        .find(|d| d.container.service == service && d.engine == DbEngine::Sqlite)
        .map(|d| &d.databases);
    let mut out = Vec::new();
    for snap in run
        .snapshots
        .iter()
        .filter(|s| catalog::tag_values(s, "service").contains(&service))
    {
        let paths: Vec<String> = match catalog::tag_values(snap, "mode").first().copied() {
            Some("database") => snap.paths.clone(),
            Some("atomic") | None if snap.paths.iter().any(|p| p == DATABASES_DIR) => ctx
                .restic
                .run(&["ls", &snap.id, &dir])
                .await?
                .lines()
                .map(str::to_string)
                .collect(),
            _ => continue,
        };
        for path in paths.into_iter().filter(|p| {
            p.starts_with(&format!("{dir}/"))
                && (sqlite.is_some() || p.ends_with(".sql") || p.ends_with(".rdb"))
        }) {
            let name = path.rsplit('/').next().unwrap_or("").to_string();
            // The database it restores: a SQLite copy's file in the
            // container, a per-database dump's database; none for the rest.
            let database = match sqlite {
                Some(paths) => paths
                    .iter()
                    .find(|p| crate::layout::sqlite_file_name(p) == name)
                    .cloned(),
                None => {
                    let stem = name.trim_end_matches(".sql");
                    (!stem.ends_with("-all") && !name.ends_with(".rdb")).then(|| stem.to_string())
                }
            };
            out.push(DumpFile {
                snap: snap.clone(),
                rel: path
                    .strip_prefix(&format!("{DATABASES_DIR}/"))
                    .unwrap_or(&path)
                    .to_string(),
                database,
                path,
            });
        }
    }
    Ok(out)
}

fn choose<'a>(
    files: &'a [DumpFile],
    database: Option<&str>,
    service: &str,
) -> Result<&'a DumpFile> {
    let names = || {
        files
            .iter()
            .map(|f| f.rel.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match database {
        Some(db) => files
            .iter()
            .find(|f| f.database.as_deref() == Some(db))
            .ok_or_else(|| {
                anyhow!(
                    "no dump of database {db:?} for service {service:?}; the run has: {}",
                    names()
                )
            }),
        None => match files {
            [] => bail!("the run has no dump of service {service:?}"),
            [one] => Ok(one),
            many => many.iter().find(|f| f.database.is_none()).ok_or_else(|| {
                anyhow!(
                    "several dumps for service {service:?} ({}): choose one with --database",
                    names()
                )
            }),
        },
    }
}

/// A dump that passed every check and may be loaded.
struct Checked {
    file: DumpFile,
    sha: String,
    bytes: u64,
    target: Prepared,
    tables: u64,
    databases_created: Vec<String>,
}

/// Everything before the first byte is loaded: the checksum, the target's
/// credentials and tools, its version, and whether it already has data.
async fn check_dump(
    ctx: &Context,
    sc: &Scene,
    opts: &DatabaseOptions,
    file: &DumpFile,
) -> Result<Checked> {
    let id = &file.snap.id;
    let rel = &file.rel;
    let sums = small_file(ctx, id, &format!("{DATABASES_DIR}/SHA256SUMS"))
        .await
        .map(|t| parse_sums(&t));
    let manifest: Option<serde_json::Value> =
        small_file(ctx, id, &format!("{DATABASES_DIR}/manifest.json"))
            .await
            .and_then(|t| serde_json::from_str(&t).ok());
    let entry = manifest
        .as_ref()
        .and_then(|m| m["dumps"].as_array())
        .and_then(|d| d.iter().find(|e| e["file"] == rel.as_str()).cloned());
    let hint = engine_hint(entry.as_ref(), rel);
    // The databases the dump creates (what --replace drops), read from its
    // statements as it streams by: its client's dialect when the engine is
    // known, else both, chosen once the target is.
    let mut scans: Vec<created::Scanner> = match hint {
        Some(e) => created::Dialect::of(e).into_iter().collect(),
        None if rel.ends_with(".sql") => vec![created::Dialect::Postgres, created::Dialect::Maria],
        None => vec![],
    }
    .into_iter()
    .map(created::Scanner::new)
    .collect();
    let (bytes, sha) = stream_file(ctx, id, &file.path, None, |chunk| {
        scans.iter_mut().for_each(|s| s.feed(chunk));
    })
    .await?;
    match sums.as_ref().and_then(|s| s.get(rel.as_str())) {
        Some(want) if *want == sha => tracing::info!(file = %rel, bytes, "dump matches SHA256SUMS"),
        Some(want) => bail!(
            "refusing to restore {rel}: its SHA-256 is {sha}, SHA256SUMS says {want}; the dump is damaged — nothing was changed; try an older snapshot"
        ),
        None => {
            tracing::warn!(file = %rel, "no SHA256SUMS entry (a split-mode snapshot): relying on restic's own integrity checks")
        }
    }
    let target = target(ctx, sc, opts, hint).await?;
    let databases_created = created::Dialect::of(target.plan.engine)
        .and_then(|d| scans.into_iter().find(|s| s.dialect() == d))
        .map(created::Scanner::finish)
        .unwrap_or_default();
    if let Some(dump_version) = entry.as_ref().and_then(|e| e["server_version"].as_str()) {
        let engine = target.plan.engine;
        if let (Some(from), Some(to)) = (
            major(engine, dump_version),
            major(engine, &target.server_version),
        ) && from > to
        {
            bail!(
                "refusing to restore a dump of {} {dump_version:?} into the older server {:?} of {}; restore into a server of the same or a newer major version",
                engine.as_str(),
                target.server_version,
                target.plan.container.container
            );
        }
    }
    let tables = user_tables(ctx, &target, file.database.as_deref()).await?;
    if tables > 0 && !opts.replace {
        bail!(
            "refusing to restore into {}: it already has data ({tables} {}{}); nothing was changed; add --replace to overwrite",
            target.plan.container.container,
            if target.plan.engine == DbEngine::Redis {
                "keys"
            } else {
                "tables"
            },
            file.database
                .as_deref()
                .map(|d| format!(" in {d}"))
                .unwrap_or_default()
        );
    }
    Ok(Checked {
        file: file.clone(),
        sha,
        bytes,
        target,
        tables,
        databases_created,
    })
}

/// The engine of a dump: as its `manifest.json` entry says, else as its
/// file name does (`dump.rdb`, `<engine>-all.sql`).
fn engine_hint(entry: Option<&serde_json::Value>, rel: &str) -> Option<DbEngine> {
    entry
        .and_then(|e| serde_json::from_value::<DbEngine>(e["engine"].clone()).ok())
        .or_else(|| {
            let name = rel.rsplit('/').next().unwrap_or("");
            if name == crate::layout::REDIS_DUMP {
                return Some(DbEngine::Redis);
            }
            [DbEngine::Postgres, DbEngine::Mariadb, DbEngine::Mysql]
                .into_iter()
                .find(|e| name == format!("{}-all.sql", e.as_str()))
        })
}

/// The argv running one SQL statement with the target's `client`: in
/// database `db` for PostgreSQL (named as a connection-string value).
fn statement_argv(engine: DbEngine, client: &[String], db: &str, statement: String) -> Vec<String> {
    let mut cmd = client.to_vec();
    if engine == DbEngine::Postgres {
        cmd.extend(dumps::command::pg_database_args(db));
        cmd.extend(["-c".into(), statement]);
    } else {
        cmd.extend(["-e".into(), statement]);
    }
    cmd
}

/// The argv loading a dump read on stdin with the target's `client`:
/// PostgreSQL into `database` (`postgres` for an all-databases dump).
fn load_argv(engine: DbEngine, client: &[String], database: Option<&str>) -> Vec<String> {
    let mut load = client.to_vec();
    if engine == DbEngine::Postgres {
        load.extend(["-q", "-v", "ON_ERROR_STOP=0"].map(String::from));
        load.extend(dumps::command::pg_database_args(
            database.unwrap_or("postgres"),
        ));
    }
    load
}

/// `DROP DATABASE IF EXISTS "db" WITH (FORCE)`, `db` quoted as an identifier.
fn pg_drop_database(db: &str) -> String {
    format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        dumps::command::pg_quote_ident(db)
    )
}

/// `CREATE DATABASE "db" OWNER "owner"`, both quoted as identifiers.
fn pg_create_database(db: &str, owner: &str) -> String {
    format!(
        "CREATE DATABASE {} OWNER {}",
        dumps::command::pg_quote_ident(db),
        dumps::command::pg_quote_ident(owner)
    )
}

/// Runs one SQL statement with the target's client, as its user.
async fn sql(
    ctx: &Context,
    p: &Prepared,
    client: &[String],
    db: &str,
    statement: String,
) -> Result<()> {
    let cmd = statement_argv(p.plan.engine, client, db, statement);
    let out = exec::capture(
        &ctx.engine,
        &p.plan.container.id,
        &cmd,
        &dumps::command::login_env(p.plan.engine, &p.login),
    )
    .await?;
    if out.code != 0 {
        bail!("{}", out.stderr);
    }
    Ok(())
}

/// Waits (up to two minutes) until the target database answers: a volume
/// restore may just have restarted its container.
async fn wait_ready(ctx: &Context, p: &Prepared) -> Result<()> {
    let query = dumps::command::version_query(p.plan.engine, &p.tools, &p.login);
    let env = dumps::command::login_env(p.plan.engine, &p.login);
    let mut last = String::new();
    for attempt in 0..120 {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        match exec::capture(&ctx.engine, &p.plan.container.id, &query, &env).await {
            Ok(out)
                if out.code == 0
                    && dumps::command::server_version(
                        p.plan.engine,
                        &String::from_utf8_lossy(&out.stdout),
                    )
                    .is_some() =>
            {
                return Ok(());
            }
            Ok(out) if out.code == 0 => last = String::from_utf8_lossy(&out.stdout).to_string(),
            Ok(out) => last = out.stderr,
            Err(e) => last = format!("{e:#}"),
        }
    }
    bail!(
        "{} does not accept connections after two minutes: {last}",
        p.plan.container.container
    )
}

/// Loads a checked dump: with `--replace`, first drops what it will create.
/// `announce`: print the "Restored …" line (the drill logs it instead, so
/// that its `--json` output stays JSON, and loads into a throwaway: a Redis
/// load stops it under a journal of its own, not the run lock's).
async fn load_dump(ctx: &Context, c: &Checked, replace: bool, announce: bool) -> Result<()> {
    let p = &c.target;
    if p.plan.engine == DbEngine::Redis {
        // The file replaces the whole data set: --replace has nothing to drop.
        return redis::load(ctx, c, announce).await;
    }
    if p.plan.engine == DbEngine::Sqlite {
        return sqlite::load(ctx, c, announce).await;
    }
    wait_ready(ctx, p).await?;
    let rel = &c.file.rel;
    let database = c.file.database.as_deref();
    let login_env = dumps::command::login_env(p.plan.engine, &p.login);
    let client = dumps::command::client(p.plan.engine, &p.tools, &p.login);
    if p.plan.engine == DbEngine::Postgres {
        if replace && c.tables > 0 {
            let drop: Vec<String> = match database {
                Some(d) => vec![d.to_string()],
                None => c.databases_created.clone(),
            };
            for db in drop
                .iter()
                .filter(|d| !["postgres", "template0", "template1"].contains(&d.as_str()))
            {
                sql(ctx, p, &client, "postgres", pg_drop_database(db))
                    .await
                    .with_context(|| format!("cannot drop database {db} for --replace"))?;
                tracing::warn!(database = %db, "dropped for --replace");
            }
            if database.is_none() {
                // pg_dumpall fills `postgres` without creating it: empty it too.
                sql(
                    ctx,
                    p,
                    &client,
                    "postgres",
                    "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public".into(),
                )
                .await
                .context("cannot empty database postgres for --replace")?;
            }
        }
        if let Some(db) = database {
            // A per-database dump (pg_dump) needs its database; "already exists" is fine.
            let _ = sql(
                ctx,
                p,
                &client,
                "postgres",
                pg_create_database(db, &p.login.user),
            )
            .await;
        }
    }

    let load = load_argv(p.plan.engine, &client, database);
    let mut ex =
        exec::start_with_stdin(&ctx.engine, &p.plan.container.id, &load, &login_env).await?;
    let mut input = ex.input.take().expect("stdin requested");
    let reader = async {
        let mut errors = Vec::new();
        let mut tail = exec::Tail::new(4096);
        while let Some(chunk) = ex.output.next().await {
            if let Ok(LogOutput::StdErr { message }) = chunk {
                tail.push(&message);
                for l in String::from_utf8_lossy(&message).lines() {
                    if l.contains("ERROR") && !l.contains("already exists") {
                        errors.push(l.trim().to_string());
                    }
                }
            }
        }
        (errors, tail.one_line())
    };
    let writer = async {
        let r = stream_file(ctx, &c.file.snap.id, &c.file.path, Some(&mut input), |_| {}).await;
        let _ = input.shutdown().await;
        drop(input);
        r
    };
    let (written, (errors, tail)) = tokio::join!(writer, reader);
    let (_, loaded_sha) = written?;
    let code = exec::exit_code(&ctx.engine, &ex.id).await?;
    if loaded_sha != c.sha {
        bail!(
            "the dump changed between verification and loading ({} then {loaded_sha})",
            c.sha
        );
    }
    if code != 0 || !errors.is_empty() {
        bail!(
            "loading {rel} into {} failed (exit code {code}): {}",
            p.plan.container.container,
            if errors.is_empty() {
                tail
            } else {
                errors.into_iter().take(3).collect::<Vec<_>>().join(" | ")
            }
        );
    }
    let line = format!(
        "Restored {rel} ({} bytes, sha256 {}) into {} ({} {})",
        c.bytes,
        &c.sha[..16],
        p.plan.container.container,
        p.plan.engine.as_str(),
        p.server_version
    );
    place::announce(&line, announce);
    Ok(())
}

/// Verifies a dump against `SHA256SUMS`, checks the target, then streams the
/// dump into the database container.
pub async fn database(ctx: &Context, opts: &DatabaseOptions) -> Result<()> {
    let sc = scene(ctx, true).await?;
    let run = catalog::resolve(&sc.runs, &opts.snapshot)?;
    let files = dump_files(ctx, run, &sc.plan, &opts.service).await?;
    let file = choose(&files, opts.database.as_deref(), &opts.service)?;
    let checked = check_dump(ctx, &sc, opts, file).await?;
    load_dump(ctx, &checked, opts.replace, true).await
}

/// `restore all`: every database dump is checked first (checksum, version,
/// emptiness); then every mount is restored (inside a stop window); then the
/// dumps are loaded.
pub async fn all(ctx: &Context, snapshot: &str, yes: bool, replace: bool) -> Result<bool> {
    let sc = scene(ctx, yes).await?;
    let run = catalog::resolve(&sc.runs, snapshot)?.clone();
    let selector = run.snapshots[0].id.clone();
    let mut files = Vec::new();
    for d in &sc.plan.dumps {
        files.extend(
            dump_files(ctx, &run, &sc.plan, &d.container.service)
                .await?
                .into_iter()
                .map(|f| (d.container.service.clone(), f)),
        );
    }
    let every_mount = |dry_run: bool| VolumeOptions {
        snapshot: selector.clone(),
        services: vec![],
        to_volume: None,
        dry_run,
        yes: !dry_run,
    };
    if !yes {
        volumes_in(ctx, &sc, &every_mount(true), || async { Ok(()) }).await?;
        println!(
            "Databases that would be restored: {}",
            files
                .iter()
                .map(|(_, f)| f.rel.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!("Nothing was changed: add --yes to restore.");
        return Ok(false);
    }
    let mut checked = Vec::new();
    for (service, file) in &files {
        let opts = DatabaseOptions {
            snapshot: selector.clone(),
            service: service.clone(),
            database: file.database.clone(),
            target_container: None,
            replace,
        };
        checked.push(check_dump(ctx, &sc, &opts, file).await?);
    }
    // The dumps are loaded inside the volume restore's window: no app starts
    // between the first restored file and the last loaded row.
    volumes_in(ctx, &sc, &every_mount(false), || async {
        for c in &checked {
            load_dump(ctx, c, replace, true).await?;
        }
        Ok(())
    })
    .await?;
    Ok(true)
}

// ---------------------------------------------------------------- verify

pub mod created;
pub mod drill;
pub mod place;
pub mod redis;
pub mod sqlite;
pub mod verify;
pub use drill::drill;
pub use verify::verify;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_parse_like_sha256sum_writes_them() {
        let s = parse_sums("abc  postgres/postgres-all.sql\ndef  mariadb/shop.sql\n");
        assert_eq!(s["postgres/postgres-all.sql"], "abc");
        assert_eq!(s.len(), 2);
    }

    fn psql() -> Vec<String> {
        ["/bin/psql", "-U", "app", "-w", "-h", "127.0.0.1", "-X"]
            .map(String::from)
            .to_vec()
    }

    /// The database of each PostgreSQL statement and load is a
    /// connection-string value: a name with `host=` connects nowhere else.
    #[test]
    fn restore_commands_name_the_database_as_a_conninfo_value() {
        let evil = "host=evil.example port=5432";
        let argv = statement_argv(DbEngine::Postgres, &psql(), evil, "SELECT 1".into());
        assert_eq!(
            argv[psql().len()..],
            [
                "-d",
                "dbname='host=evil.example port=5432'",
                "-c",
                "SELECT 1"
            ]
        );
        assert_eq!(
            load_argv(DbEngine::Postgres, &psql(), Some("it's \\ my db"))[psql().len()..],
            [
                "-q",
                "-v",
                "ON_ERROR_STOP=0",
                "-d",
                r"dbname='it\'s \\ my db'"
            ]
        );
        assert_eq!(
            load_argv(DbEngine::Postgres, &psql(), None)[psql().len()..],
            ["-q", "-v", "ON_ERROR_STOP=0", "-d", "dbname='postgres'"]
        );
        let maria: Vec<String> = vec!["/usr/bin/mariadb".into(), "-u".into(), "root".into()];
        assert_eq!(load_argv(DbEngine::Mariadb, &maria, Some("-x")), maria);
        assert_eq!(
            statement_argv(DbEngine::Mariadb, &maria, "-x", "SELECT 1".into())[3..],
            ["-e", "SELECT 1"]
        );
    }

    /// `--replace` and a per-database restore quote the names they put into
    /// SQL as identifiers.
    #[test]
    fn replace_statements_quote_names_as_identifiers() {
        assert_eq!(
            pg_drop_database("a\"b"),
            "DROP DATABASE IF EXISTS \"a\"\"b\" WITH (FORCE)"
        );
        assert_eq!(
            pg_drop_database("x\" WITH (FORCE); DROP DATABASE \"prod"),
            "DROP DATABASE IF EXISTS \"x\"\" WITH (FORCE); DROP DATABASE \"\"prod\" WITH (FORCE)"
        );
        assert_eq!(
            pg_create_database("my db", "o\"wner"),
            "CREATE DATABASE \"my db\" OWNER \"o\"\"wner\""
        );
    }

    #[test]
    fn the_engine_of_a_dump_from_its_manifest_entry_or_name() {
        let entry = serde_json::json!({"engine": "mariadb"});
        assert_eq!(
            engine_hint(Some(&entry), "db/postgres-all.sql"),
            Some(DbEngine::Mariadb)
        );
        assert_eq!(
            engine_hint(None, "db/postgres-all.sql"),
            Some(DbEngine::Postgres)
        );
        assert_eq!(engine_hint(None, "cache/dump.rdb"), Some(DbEngine::Redis));
        assert_eq!(engine_hint(None, "db/shop.sql"), None);
    }

    #[test]
    fn major_versions() {
        assert_eq!(
            major(DbEngine::Postgres, "15.18 (Debian 15.18-0+deb12u1)"),
            Some((15, 0))
        );
        assert_eq!(major(DbEngine::Postgres, "16.2"), Some((16, 0)));
        assert_eq!(
            major(DbEngine::Mariadb, "10.11.18-MariaDB-0+deb12u1"),
            Some((10, 11))
        );
        assert!(
            major(DbEngine::Mariadb, "11.4.2-MariaDB")
                > major(DbEngine::Mariadb, "10.11.18-MariaDB")
        );
        assert_eq!(major(DbEngine::Mysql, "unknown"), None);
    }
}
