//! What a load starts from, and the checks before it: the options of
//! `restore database`, a dump found in a run, the dump's SHA-256 against the
//! snapshot's `SHA256SUMS`, and its target (found and prepared, its engine
//! and version, whether it already has data).

use std::collections::BTreeMap;

use anyhow::{Result, anyhow, bail};

use super::{Scene, created, major, parse_sums, redis, small_file, stream_file};
use crate::container::ContainerInfo;
use crate::context::Context;
use crate::dumps::{self, DATABASES_DIR, Prepared};
use crate::engine::exec;
use crate::labels::Engine as DbEngine;
use crate::plan::{self, ContainerRef, DumpPlan};
use crate::restic::SnapshotInfo;

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

/// One dump in a run: the snapshot holding it and its path.
#[derive(Debug, Clone)]
pub(super) struct DumpFile {
    pub(super) snap: SnapshotInfo,
    /// The dump's path in the snapshot, such as `/databases/<service>/<file>.sql`.
    pub(super) path: String,
    /// The path relative to `/databases` (as in `SHA256SUMS`).
    pub(super) rel: String,
    /// The database of a per-database dump; `None` for an all-databases dump.
    pub(super) database: Option<String>,
}

/// A dump that passed every check and may be loaded.
pub(super) struct Checked {
    pub(super) file: DumpFile,
    pub(super) sha: String,
    pub(super) bytes: u64,
    pub(super) target: Prepared,
    pub(super) tables: u64,
    pub(super) databases_created: Vec<String>,
}

/// Everything before the first byte is loaded: the checksum, the target's
/// credentials and tools, its version, and whether it already has data.
///
/// Steps: read the snapshot's `SHA256SUMS` and the dump's manifest entry
/// ([`manifest_entry`]), tell the dump's engine if it can ([`engine_hint`]),
/// stream the dump to hash it while reading the databases it creates
/// ([`scanners`]), compare the hash ([`check_sum`]), prepare the target
/// ([`target`]), compare versions ([`check_version`]), then count the data
/// already there ([`user_tables`], [`refuse_data`]).
pub(super) async fn check_dump(
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
    let entry = manifest_entry(ctx, id, rel).await;
    let hint = engine_hint(entry.as_ref(), rel);
    let mut scans = scanners(hint, rel);
    let (bytes, sha) = stream_file(ctx, id, &file.path, None, |chunk| {
        scans.iter_mut().for_each(|s| s.feed(chunk));
    })
    .await?;
    check_sum(sums.as_ref(), rel, bytes, &sha)?;
    let target = target(ctx, sc, opts, hint).await?;
    let databases_created = created::Dialect::of(target.plan.engine)
        .and_then(|d| scans.into_iter().find(|s| s.dialect() == d))
        .map(created::Scanner::finish)
        .unwrap_or_default();
    check_version(entry.as_ref(), &target)?;
    let tables = user_tables(ctx, &target, file.database.as_deref()).await?;
    refuse_data(&target, tables, file.database.as_deref(), opts.replace)?;
    Ok(Checked {
        file: file.clone(),
        sha,
        bytes,
        target,
        tables,
        databases_created,
    })
}

/// The dump's entry in the snapshot's `manifest.json`, if the snapshot has
/// one that lists it.
async fn manifest_entry(ctx: &Context, id: &str, rel: &str) -> Option<serde_json::Value> {
    let manifest: Option<serde_json::Value> =
        small_file(ctx, id, &format!("{DATABASES_DIR}/manifest.json"))
            .await
            .and_then(|t| serde_json::from_str(&t).ok());
    manifest
        .as_ref()
        .and_then(|m| m["dumps"].as_array())
        .and_then(|d| d.iter().find(|e| e["file"] == rel).cloned())
}

/// The readers of the databases the dump creates (what --replace drops),
/// fed its statements as it streams by: its client's dialect when the engine
/// is known, else both, chosen once the target is.
fn scanners(hint: Option<DbEngine>, rel: &str) -> Vec<created::Scanner> {
    match hint {
        Some(e) => created::Dialect::of(e).into_iter().collect(),
        None if rel.ends_with(".sql") => vec![created::Dialect::Postgres, created::Dialect::Maria],
        None => vec![],
    }
    .into_iter()
    .map(created::Scanner::new)
    .collect()
}

/// Refuses a dump whose SHA-256 is not the one `SHA256SUMS` lists; a dump
/// it does not list (a split-mode snapshot) passes with a warning.
fn check_sum(
    sums: Option<&BTreeMap<String, String>>,
    rel: &str,
    bytes: u64,
    sha: &str,
) -> Result<()> {
    match sums.and_then(|s| s.get(rel)) {
        Some(want) if *want == sha => tracing::info!(file = %rel, bytes, "dump matches SHA256SUMS"),
        Some(want) => bail!(
            "refusing to restore {rel}: its SHA-256 is {sha}, SHA256SUMS says {want}; the dump is damaged — nothing was changed; try an older snapshot"
        ),
        None => {
            tracing::warn!(file = %rel, "no SHA256SUMS entry (a split-mode snapshot): relying on restic's own integrity checks")
        }
    }
    Ok(())
}

/// Refuses to restore a dump of a newer major version (as its manifest
/// entry says) into an older server.
fn check_version(entry: Option<&serde_json::Value>, target: &Prepared) -> Result<()> {
    if let Some(dump_version) = entry.and_then(|e| e["server_version"].as_str()) {
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
    Ok(())
}

/// Refuses to restore into a target that already holds `tables` tables (or
/// keys) in `database`, unless `replace`.
fn refuse_data(
    target: &Prepared,
    tables: u64,
    database: Option<&str>,
    replace: bool,
) -> Result<()> {
    if tables > 0 && !replace {
        bail!(
            "refusing to restore into {}: it already has data ({tables} {}{}); nothing was changed; add --replace to overwrite",
            target.plan.container.container,
            if target.plan.engine == DbEngine::Redis {
                "keys"
            } else {
                "tables"
            },
            database.map(|d| format!(" in {d}")).unwrap_or_default()
        );
    }
    Ok(())
}

/// The engine of a dump: as its `manifest.json` entry says, else as its
/// file name does (`dump.rdb`, `<engine>-all.sql`).
pub(super) fn engine_hint(entry: Option<&serde_json::Value>, rel: &str) -> Option<DbEngine> {
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

/// The restore's target: the `--target-container` (its engine from its
/// labels, else `engine_hint`), or the service's labelled database
/// container; prepared as a dump's would be (credentials, tools, version).
pub(super) async fn target(
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
pub(super) async fn user_tables(
    ctx: &Context,
    p: &Prepared,
    database: Option<&str>,
) -> Result<u64> {
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
