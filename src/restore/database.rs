//! `restore database`: a dump checked against the snapshot's `SHA256SUMS`,
//! its target checked (engine, version, emptiness, or `--replace`: in
//! [`check`](mod@super::check)), then streamed into the database container.

use anyhow::{Context as _, Result, anyhow, bail};
use bollard::container::LogOutput;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::check::{Checked, DatabaseOptions, DumpFile, check_dump};
use super::{place, redis, scene, sqlite, stream_file};
use crate::catalog::{self, Run};
use crate::context::Context;
use crate::dumps::{self, DATABASES_DIR, Prepared};
use crate::engine::exec;
use crate::labels::Engine as DbEngine;
use crate::layout::SnapshotMode;
use crate::plan::Plan;

pub(super) fn dump_dir(plan: &Plan, service: &str) -> String {
    plan.dumps
        .iter()
        .find(|d| d.container.service == service)
        .and_then(|d| d.outputs.first())
        .and_then(|o| o.rsplit_once('/').map(|(d, _)| d.to_string()))
        .unwrap_or_else(|| format!("{DATABASES_DIR}/{service}"))
}

/// Every dump of `service` in `run`, whether atomic (listed from the snapshot)
/// or split (one snapshot per dump).
pub(super) async fn dump_files(
    ctx: &Context,
    run: &Run,
    plan: &Plan,
    service: &str,
) -> Result<Vec<DumpFile>> {
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
        let paths: Vec<String> = match catalog::snapshot_mode(snap) {
            Some(SnapshotMode::Database) => snap.paths.clone(),
            Some(SnapshotMode::Atomic) if snap.paths.iter().any(|p| p == DATABASES_DIR) => ctx
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

pub(super) fn choose<'a>(
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

/// The argv running one SQL statement with the target's `client`: in
/// database `db` for PostgreSQL (named as a connection-string value).
pub(super) fn statement_argv(
    engine: DbEngine,
    client: &[String],
    db: &str,
    statement: String,
) -> Vec<String> {
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
pub(super) fn load_argv(
    engine: DbEngine,
    client: &[String],
    database: Option<&str>,
) -> Vec<String> {
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
pub(super) fn pg_drop_database(db: &str) -> String {
    format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        dumps::command::pg_quote_ident(db)
    )
}

/// `CREATE DATABASE "db" OWNER "owner"`, both quoted as identifiers.
pub(super) fn pg_create_database(db: &str, owner: &str) -> String {
    format!(
        "CREATE DATABASE {} OWNER {}",
        dumps::command::pg_quote_ident(db),
        dumps::command::pg_quote_ident(owner)
    )
}

/// Runs one SQL statement with the target's client, as its user.
pub(super) async fn sql(
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
pub(super) async fn wait_ready(ctx: &Context, p: &Prepared) -> Result<()> {
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
///
/// Steps: a Redis or SQLite dump goes to its own loader ([`redis::load`],
/// [`sqlite::load`]); for the SQL servers: wait until the target answers
/// ([`wait_ready`]), make room in PostgreSQL ([`prepare_postgres`]), stream
/// the dump into the client ([`pipe_dump`]), judge the load
/// ([`Piped::judge`]), then print or log the result line.
pub(super) async fn load_dump(
    ctx: &Context,
    c: &Checked,
    replace: bool,
    announce: bool,
) -> Result<()> {
    let p = &c.target;
    if p.plan.engine == DbEngine::Redis {
        // The file replaces the whole data set: --replace has nothing to drop.
        return redis::load(ctx, c, announce).await;
    }
    if p.plan.engine == DbEngine::Sqlite {
        return sqlite::load(ctx, c, announce).await;
    }
    wait_ready(ctx, p).await?;
    let client = dumps::command::client(p.plan.engine, &p.tools, &p.login);
    if p.plan.engine == DbEngine::Postgres {
        prepare_postgres(ctx, c, replace, &client).await?;
    }
    let load = load_argv(p.plan.engine, &client, c.file.database.as_deref());
    pipe_dump(ctx, c, &load).await?.judge(c)?;
    place::announce(&restored_line(c), announce);
    Ok(())
}

/// PostgreSQL before a load: with `--replace` on a target holding data, the
/// databases the dump creates are dropped (and `postgres` emptied for an
/// all-databases dump); a per-database dump gets its database created.
async fn prepare_postgres(
    ctx: &Context,
    c: &Checked,
    replace: bool,
    client: &[String],
) -> Result<()> {
    let p = &c.target;
    let database = c.file.database.as_deref();
    if replace && c.tables > 0 {
        drop_for_replace(ctx, c, client).await?;
    }
    if let Some(db) = database {
        // A per-database dump (pg_dump) needs its database; "already exists" is fine.
        let _ = sql(
            ctx,
            p,
            client,
            "postgres",
            pg_create_database(db, &p.login.user),
        )
        .await;
    }
    Ok(())
}

/// `--replace` in PostgreSQL: drops the dump's database (or every database an
/// all-databases dump creates, but the built-in ones), and empties `postgres`
/// for an all-databases dump.
async fn drop_for_replace(ctx: &Context, c: &Checked, client: &[String]) -> Result<()> {
    let p = &c.target;
    let database = c.file.database.as_deref();
    let drop: Vec<String> = match database {
        Some(d) => vec![d.to_string()],
        None => c.databases_created.clone(),
    };
    for db in drop
        .iter()
        .filter(|d| !["postgres", "template0", "template1"].contains(&d.as_str()))
    {
        sql(ctx, p, client, "postgres", pg_drop_database(db))
            .await
            .with_context(|| format!("cannot drop database {db} for --replace"))?;
        tracing::warn!(database = %db, "dropped for --replace");
    }
    if database.is_none() {
        // pg_dumpall fills `postgres` without creating it: empty it too.
        sql(
            ctx,
            p,
            client,
            "postgres",
            "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public".into(),
        )
        .await
        .context("cannot empty database postgres for --replace")?;
    }
    Ok(())
}

/// What streaming a dump into the client's stdin gave.
struct Piped {
    /// The SHA-256 of the bytes streamed.
    sha: String,
    /// The client's exit code.
    code: i64,
    /// The client's `ERROR` lines (but "already exists").
    errors: Vec<String>,
    /// The end of the client's stderr, on one line.
    tail: String,
}

/// Runs `load` (the client) in the target and streams the dump into its
/// stdin, reading its stderr meanwhile; then reads its exit code.
async fn pipe_dump(ctx: &Context, c: &Checked, load: &[String]) -> Result<Piped> {
    let p = &c.target;
    let login_env = dumps::command::login_env(p.plan.engine, &p.login);
    let mut ex =
        exec::start_with_stdin(&ctx.engine, &p.plan.container.id, load, &login_env).await?;
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
    let (_, sha) = written?;
    let code = exec::exit_code(&ctx.engine, &ex.id).await?;
    Ok(Piped {
        sha,
        code,
        errors,
        tail,
    })
}

impl Piped {
    /// Fails the load when the dump streamed is not the one checked, or when
    /// the client failed or reported errors.
    fn judge(self, c: &Checked) -> Result<()> {
        let p = &c.target;
        let rel = &c.file.rel;
        let Piped {
            sha: loaded_sha,
            code,
            errors,
            tail,
        } = self;
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
        Ok(())
    }
}

/// The result line of a loaded SQL dump.
fn restored_line(c: &Checked) -> String {
    let p = &c.target;
    let rel = &c.file.rel;
    format!(
        "Restored {rel} ({} bytes, sha256 {}) into {} ({} {})",
        c.bytes,
        &c.sha[..16],
        p.plan.container.container,
        p.plan.engine.as_str(),
        p.server_version
    )
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
