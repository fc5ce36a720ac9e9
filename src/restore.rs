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
use crate::discovery::{self, Discovery};
use crate::dumps::{self, DATABASES_DIR, Prepared};
use crate::engine::{exec, worker};
use crate::labels::Engine as DbEngine;
use crate::plan::{self, ContainerRef, DumpPlan, Plan, VolumePlan};
use crate::restic::SnapshotInfo;
use crate::run::{Context, plan_options};
use crate::snapshot;
use crate::window::{self, Shutdown};

/// Discovery, plan and the repository's runs: what every restore starts from.
struct Scene {
    found: Discovery,
    sidecar: ContainerInfo,
    plan: Plan,
    runs: Vec<Run>,
}

async fn scene(ctx: &Context) -> Result<Scene> {
    let recovered = window::recover(&ctx.engine, &ctx.journal).await?;
    if !recovered.is_empty() {
        tracing::warn!(containers = ?recovered, "started containers an interrupted run had stopped");
    }
    let found = discovery::discover(ctx.engine.docker(), &ctx.config).await?;
    let sidecar = found
        .self_container
        .clone()
        .ok_or_else(|| anyhow!("restore must run inside the sidecar container: use `docker compose exec backup stackshot restore …`"))?;
    let plan = plan::build(&plan_options(&ctx.config, &found), &found.containers);
    let runs = catalog::list(&ctx.restic, &found.project).await?;
    Ok(Scene {
        found,
        sidecar,
        plan,
        runs,
    })
}

/// Streams `path` of snapshot `id` out of the repository into `sink` (or just
/// hashes it when `sink` is `None`); returns (bytes, sha256 hex).
async fn stream_file(
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
        bail!(
            "restic dump {path} from snapshot {id} failed: {}",
            ctx.restic.redact(stderr.trim())
        );
    }
    Ok((
        bytes,
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    ))
}

async fn small_file(ctx: &Context, id: &str, path: &str) -> Option<String> {
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
pub async fn volumes(ctx: &Context, opts: &VolumeOptions, shutdown: &Shutdown) -> Result<bool> {
    let sc = scene(ctx).await?;
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

    let mut args = Vec::new();
    for t in &targets {
        args.extend(["--clear".to_string(), t.snapshot_path.clone()]);
    }
    args.extend(["restic", "restore", &snap.id, "--target", "/"].map(String::from));
    for t in &targets {
        args.extend(["--include".to_string(), t.snapshot_path.clone()]);
    }
    let spec = worker::WorkerSpec {
        image: sc.sidecar.image_id.clone(),
        binary: std::env::current_exe()
            .ok()
            .and_then(|p| p.to_str().map(str::to_string))
            .unwrap_or_else(|| "/usr/local/bin/stackshot".into()),
        args,
        mounts: snapshot::mounts_for(&targets, &sc.sidecar, false),
        network_mode: Some(format!("container:{}", sc.sidecar.id)),
        env: vec![],
        secrets: ctx.config.restic.env.clone(),
        project: sc.found.project.clone(),
    };
    let restore = || async {
        let mut tail = Vec::new();
        let code = worker::run(&ctx.engine, &spec, |line| {
            tracing::info!(line, "restore");
            tail.push(line.to_string());
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
    } else {
        // Stop every container using a restored mount, for the time of the restore.
        let sources: Vec<&str> = targets.iter().map(|t| t.source.as_str()).collect();
        let scope: Vec<&ContainerInfo> = sc
            .found
            .containers
            .iter()
            .filter(|c| c.id != sc.sidecar.id && !c.oneoff && !c.labels.contains_key(ROLE_LABEL))
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
        let stops = plan::stop_order(&scope, &users);
        let run_id = format!("restore-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S"));
        let (result, report) = window::with_stop_window(
            &ctx.engine,
            &ctx.journal,
            &run_id,
            &stops,
            ctx.config.stop_timeout,
            shutdown,
            restore,
        )
        .await;
        if !report.restart_failed.is_empty() {
            bail!(
                "containers are NOT running again: {}",
                report.restart_failed.join("; ")
            );
        }
        result?;
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
        credentials: plan::credentials(engine, &info.env_names),
        outputs: vec![format!("{DATABASES_DIR}/{}/restore.sql", info.service)],
    };
    dumps::prepare(&ctx.engine, &dp).await
}

/// Tables holding data in the target (in `database`, or in any database).
async fn user_tables(ctx: &Context, p: &Prepared, database: Option<&str>) -> Result<u64> {
    let login_env = dumps::command::login_env(p.plan.engine, &p.login);
    let q = |sql: String, db: &str| -> Vec<String> {
        let mut v = dumps::command::version_query(p.plan.engine, &p.tools, &p.login);
        match p.plan.engine {
            DbEngine::Postgres => {
                // psql … -d postgres -c SHOW…: replace the database and the query.
                let n = v.len();
                v[n - 3] = db.to_string();
                v[n - 1] = sql;
            }
            _ => {
                let n = v.len();
                v[n - 1] = sql;
            }
        }
        v
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
                Some(d) => format!("table_schema = '{}'", d.replace('\'', "''")),
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

/// Verifies a dump against `SHA256SUMS`, then streams it into a database container.
pub async fn database(ctx: &Context, opts: &DatabaseOptions) -> Result<()> {
    let sc = scene(ctx).await?;
    let run = catalog::resolve(&sc.runs, &opts.snapshot)?;
    let snap = run.database_snapshot(&opts.service).ok_or_else(|| {
        anyhow!(
            "run {} has no dump of service {:?}; it holds {}",
            run.run_id.as_deref().unwrap_or(&run.time),
            opts.service,
            run.services.join(", ")
        )
    })?;
    let dir = dump_dir(&sc.plan, &opts.service);
    let listing = ctx.restic.run(&["ls", &snap.id, &dir]).await?;
    let files: Vec<&str> = listing
        .lines()
        .filter(|l| l.starts_with(&format!("{dir}/")) && l.ends_with(".sql"))
        .collect();
    let path = match &opts.database {
        Some(db) => files
            .iter()
            .find(|f| f.ends_with(&format!("/{db}.sql")))
            .ok_or_else(|| {
                anyhow!(
                    "no dump of database {db:?} for {:?}; the snapshot has {files:?}",
                    opts.service
                )
            })?
            .to_string(),
        None => match files.as_slice() {
            [one] => one.to_string(),
            [] => bail!("snapshot {} has no dump under {dir}", snap.short_id),
            many => many
                .iter()
                .find(|f| f.ends_with("-all.sql"))
                .ok_or_else(|| {
                    anyhow!(
                        "several dumps for {:?} ({many:?}): choose one with --database",
                        opts.service
                    )
                })?
                .to_string(),
        },
    };
    let rel = path
        .strip_prefix(&format!("{DATABASES_DIR}/"))
        .unwrap_or(&path)
        .to_string();

    // 1. The dump must match SHA256SUMS before it goes anywhere.
    let sums = small_file(ctx, &snap.id, &format!("{DATABASES_DIR}/SHA256SUMS"))
        .await
        .map(|t| parse_sums(&t));
    let manifest: Option<serde_json::Value> =
        small_file(ctx, &snap.id, &format!("{DATABASES_DIR}/manifest.json"))
            .await
            .and_then(|t| serde_json::from_str(&t).ok());
    let entry = manifest
        .as_ref()
        .and_then(|m| m["dumps"].as_array())
        .and_then(|d| d.iter().find(|e| e["file"] == rel.as_str()).cloned());
    let mut databases_created: Vec<String> = Vec::new();
    let mut pending = Vec::new();
    let (bytes, sha) = stream_file(ctx, &snap.id, &path, None, |chunk| {
        // Collect `CREATE DATABASE name` lines (pg_dumpall) for --replace.
        pending.extend_from_slice(chunk);
        while let Some(nl) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=nl).collect();
            if let Some(rest) = line.strip_prefix(b"CREATE DATABASE ") {
                let name = String::from_utf8_lossy(rest);
                let name = name
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .trim_matches('"')
                    .to_string();
                databases_created.push(name);
            }
        }
    })
    .await?;
    match sums.as_ref().and_then(|s| s.get(&rel)) {
        Some(want) if *want == sha => tracing::info!(file = %rel, bytes, "dump matches SHA256SUMS"),
        Some(want) => bail!(
            "refusing to restore {rel}: its SHA-256 is {sha}, SHA256SUMS says {want}; the dump is damaged — nothing was changed; try an older snapshot"
        ),
        None => {
            tracing::warn!(file = %rel, "no SHA256SUMS entry (a split-mode snapshot): relying on restic's own integrity checks")
        }
    }

    // 2. The target: credentials, tools, version, emptiness.
    let hint = entry
        .as_ref()
        .and_then(|e| serde_json::from_value::<DbEngine>(e["engine"].clone()).ok())
        .or_else(|| {
            let file = rel.rsplit('/').next().unwrap_or("");
            [DbEngine::Postgres, DbEngine::Mariadb, DbEngine::Mysql]
                .into_iter()
                .find(|e| file == format!("{}-all.sql", e.as_str()))
        });
    let p = target(ctx, &sc, opts, hint).await?;
    if let Some(dump_version) = entry.as_ref().and_then(|e| e["server_version"].as_str()) {
        if let (Some(from), Some(to)) = (
            major(p.plan.engine, dump_version),
            major(p.plan.engine, &p.server_version),
        ) {
            if from > to {
                bail!(
                    "refusing to restore a dump of {} {dump_version:?} into the older server {:?} of {}; restore into a server of the same or a newer major version",
                    p.plan.engine.as_str(),
                    p.server_version,
                    p.plan.container.container
                );
            }
        }
    }
    let database = opts.database.as_deref();
    let tables = user_tables(ctx, &p, database).await?;
    if tables > 0 && !opts.replace {
        bail!(
            "refusing to restore into {}: it already has data ({tables} tables{}); nothing was changed; add --replace to overwrite",
            p.plan.container.container,
            database.map(|d| format!(" in {d}")).unwrap_or_default()
        );
    }

    // 3. Replace: drop what the dump will create.
    let login_env = dumps::command::login_env(p.plan.engine, &p.login);
    let mut client = dumps::command::version_query(p.plan.engine, &p.tools, &p.login);
    let n = client.len();
    client.truncate(n - 2); // drop "-c SQL" / "-e SQL"
    if p.plan.engine == DbEngine::Postgres {
        client.truncate(client.len() - 2); // drop "-d postgres"
        client.retain(|a| a != "-A" && a != "-t");
    } else {
        client.retain(|a| a != "-N" && a != "-B");
    }
    if opts.replace && tables > 0 && p.plan.engine == DbEngine::Postgres {
        let targets: Vec<String> = match database {
            Some(d) => vec![d.to_string()],
            None => databases_created.clone(),
        };
        for db in targets
            .iter()
            .filter(|d| !["postgres", "template0", "template1"].contains(&d.as_str()))
        {
            let mut cmd = client.clone();
            cmd.extend([
                "-d".into(),
                "postgres".into(),
                "-c".into(),
                format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"),
            ]);
            let out = exec::capture(&ctx.engine, &p.plan.container.id, &cmd, &login_env).await?;
            if out.code != 0 {
                bail!("cannot drop database {db} for --replace: {}", out.stderr);
            }
            if database.is_some() {
                let mut cmd = client.clone();
                cmd.extend([
                    "-d".into(),
                    "postgres".into(),
                    "-c".into(),
                    format!("CREATE DATABASE \"{db}\" OWNER \"{}\"", p.login.user),
                ]);
                exec::capture(&ctx.engine, &p.plan.container.id, &cmd, &login_env).await?;
            }
            tracing::warn!(database = %db, "dropped for --replace");
        }
    } else if p.plan.engine == DbEngine::Postgres && database.is_some() {
        // A per-database dump needs its database to exist.
        let mut cmd = client.clone();
        cmd.extend([
            "-d".into(),
            "postgres".into(),
            "-c".into(),
            format!(
                "CREATE DATABASE \"{}\" OWNER \"{}\"",
                database.unwrap(),
                p.login.user
            ),
        ]);
        let _ = exec::capture(&ctx.engine, &p.plan.container.id, &cmd, &login_env).await;
    }

    // 4. Load: stream from the repository straight into the client's stdin.
    let mut load = client.clone();
    if p.plan.engine == DbEngine::Postgres {
        load.extend([
            "-q".into(),
            "-v".into(),
            "ON_ERROR_STOP=0".into(),
            "-d".into(),
            database.unwrap_or("postgres").to_string(),
        ]);
    }
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
        let r = stream_file(ctx, &snap.id, &path, Some(&mut input), |_| {}).await;
        let _ = input.shutdown().await;
        drop(input);
        r
    };
    let (written, (errors, tail)) = tokio::join!(writer, reader);
    let (_, loaded_sha) = written?;
    let code = exec::exit_code(&ctx.engine, &ex.id).await?;
    if loaded_sha != sha {
        bail!("the dump changed between verification and loading ({sha} then {loaded_sha})");
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
    println!(
        "Restored {rel} ({bytes} bytes, sha256 {}) into {} ({} {})",
        &sha[..16],
        p.plan.container.container,
        p.plan.engine.as_str(),
        p.server_version
    );
    Ok(())
}

/// `restore all`: every mount (inside a stop window), then every database dump.
pub async fn all(
    ctx: &Context,
    snapshot: &str,
    yes: bool,
    replace: bool,
    shutdown: &Shutdown,
) -> Result<bool> {
    let sc = scene(ctx).await?;
    let run = catalog::resolve(&sc.runs, snapshot)?.clone();
    let run_sel = run.snapshots[0].id.clone();
    let restored = volumes(
        ctx,
        &VolumeOptions {
            snapshot: run_sel.clone(),
            services: vec![],
            to_volume: None,
            dry_run: !yes,
            yes,
        },
        shutdown,
    )
    .await?;
    let services: Vec<String> = sc
        .plan
        .dumps
        .iter()
        .map(|d| d.container.service.clone())
        .filter(|s| run.database_snapshot(s).is_some())
        .collect();
    if !yes {
        println!("Databases that would be restored: {}", services.join(", "));
        return Ok(false);
    }
    for service in services {
        database(
            ctx,
            &DatabaseOptions {
                snapshot: run_sel.clone(),
                service,
                database: None,
                target_container: None,
                replace,
            },
        )
        .await?;
    }
    Ok(restored)
}

// ---------------------------------------------------------------- verify

/// `stackshot verify`: `restic check` (optionally reading a subset of the data)
/// and every dump of the run against its `SHA256SUMS`. Returns the problems found.
pub async fn verify(
    ctx: &Context,
    snapshot: &str,
    read_data_subset: Option<&str>,
) -> Result<Vec<String>> {
    let found = discovery::discover(ctx.engine.docker(), &ctx.config).await?;
    let runs = catalog::list(&ctx.restic, &found.project).await?;
    let run = catalog::resolve(&runs, snapshot)?;
    let mut problems = Vec::new();
    let subset_arg = read_data_subset.map(|s| format!("--read-data-subset={s}"));
    let mut args = vec!["check"];
    if let Some(a) = &subset_arg {
        args.push(a);
    }
    match ctx.restic.run(&args).await {
        Ok(_) => println!(
            "restic check{}: ok",
            subset_arg.map(|a| format!(" {a}")).unwrap_or_default()
        ),
        Err(e) => problems.push(format!("restic check: {e:#}")),
    }
    let mut checked = 0;
    for snap in run
        .snapshots
        .iter()
        .filter(|s| s.paths.iter().any(|p| p == DATABASES_DIR))
    {
        let Some(sums) = small_file(ctx, &snap.id, &format!("{DATABASES_DIR}/SHA256SUMS")).await
        else {
            problems.push(format!(
                "snapshot {} has /databases but no SHA256SUMS",
                snap.short_id
            ));
            continue;
        };
        for (rel, want) in parse_sums(&sums) {
            let path = format!("{DATABASES_DIR}/{rel}");
            match stream_file(ctx, &snap.id, &path, None, |_| {}).await {
                Ok((_, got)) if got == want => {
                    checked += 1;
                    println!("{rel}: OK");
                }
                Ok((_, got)) => problems.push(format!(
                    "{rel}: SHA-256 {got} does not match SHA256SUMS {want}"
                )),
                Err(e) => problems.push(format!("{rel}: {e:#}")),
            }
        }
    }
    println!(
        "verified run {}: {checked} dump(s) match their checksums, {} problem(s)",
        run.run_id.as_deref().unwrap_or(&run.time),
        problems.len()
    );
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_parse_like_sha256sum_writes_them() {
        let s = parse_sums("abc  postgres/postgres-all.sql\ndef  mariadb/shop.sql\n");
        assert_eq!(s["postgres/postgres-all.sql"], "abc");
        assert_eq!(s.len(), 2);
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
