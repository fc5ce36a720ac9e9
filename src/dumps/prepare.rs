//! What is decided before a dump runs: the container runs, its credentials
//! resolve and log in, its dump tools exist (or a SQLite worker stands in for
//! them), and the dumps to run are listed ([`Prepared`]). The queries a backup
//! and a restore send through that login go through [`query_lines`].

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow, bail};

use super::command::{self, DumpJob, Login, Tools};
use super::{DATABASES_DIR, sqlite_worker, stats};
use crate::container::ContainerInfo;
use crate::engine::{Engine, exec};
use crate::env::Secret;
use crate::labels::Engine as DbEngine;
use crate::plan::{CredentialSource, DumpPlan};

/// A database container checked and ready to dump.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The plan's entry for this database container.
    pub plan: DumpPlan,
    /// Directory of its dumps, relative to `/databases` (`postgres`, or `project/postgres`).
    pub rel_dir: String,
    /// The credentials resolved from the plan's credential sources.
    pub login: Login,
    /// The client tools found in the container.
    pub tools: Tools,
    /// The server's version, as it reports it.
    pub server_version: String,
    /// The dumps to run.
    pub jobs: Vec<DumpJob>,
    /// Row estimates of the dumped databases' tables, read by a backup's
    /// preflight ([`read_estimates`]; `None` elsewhere, or when the server
    /// would not say): `manifest.json` records them for the restore drill.
    pub estimates: Option<stats::TableRows>,
    /// SQLite in an image without `sqlite3`: the copies and queries run in
    /// a worker with the container's mount attached.
    pub sqlite_worker: Option<sqlite_worker::SqliteWorker>,
}

async fn resolve(
    engine: &Engine,
    container: &str,
    source: &CredentialSource,
    env: &BTreeMap<String, Secret>,
    service: &str,
) -> Result<Option<Secret>> {
    Ok(match source {
        CredentialSource::Env { var } => Some(env.get(var).cloned().ok_or_else(|| {
            anyhow!("service {service}: {var} vanished from the container's environment")
        })?),
        CredentialSource::FileInContainer { var } => {
            let path = env.get(var).ok_or_else(|| {
                anyhow!("service {service}: {var} vanished from the container's environment")
            })?;
            let cmd = vec!["cat".to_string(), path.expose().to_string()];
            let out = exec::capture(engine, container, &cmd, &[]).await?;
            if out.code != 0 {
                bail!(
                    "service {service}: cannot read {var}={:?} inside the container: {}",
                    path.expose(),
                    out.stderr
                );
            }
            let mut value = String::from_utf8(out.stdout)
                .map_err(|_| anyhow!("service {service}: the file named by {var} is not text"))?;
            if value.ends_with('\n') {
                value.pop();
            }
            Some(Secret::new(value))
        }
        CredentialSource::Default { value } => Some(Secret::new(value.clone())),
        CredentialSource::CommandArg { flag } => {
            let config = engine.inspect(container).await?.config.unwrap_or_default();
            let args: Vec<String> = config
                .entrypoint
                .into_iter()
                .flatten()
                .chain(config.cmd.into_iter().flatten())
                .collect();
            Some(Secret::new(
                crate::plan::flag_value(&args, flag).ok_or_else(|| {
                    anyhow!(
                        "service {service}: {flag} has no value in the container's command line"
                    )
                })?,
            ))
        }
        CredentialSource::None => None,
    })
}

fn describe(source: &CredentialSource) -> String {
    match source {
        CredentialSource::Env { var } | CredentialSource::FileInContainer { var } => var.clone(),
        CredentialSource::Default { value } => format!("default user {value}"),
        CredentialSource::CommandArg { flag } => format!("{flag} in its command line"),
        CredentialSource::None => "no password".into(),
    }
}

/// Checks one database container before the window opens: it runs, its
/// credentials resolve and log in, and its dump tools exist. A SQLite
/// container without `sqlite3` is reached through a worker from `sidecar`'s
/// image instead (`None`: it is refused).
pub async fn prepare(
    engine: &Engine,
    dump: &DumpPlan,
    sidecar: Option<&ContainerInfo>,
) -> Result<Prepared> {
    let id = &dump.container.id;
    let service = &dump.container.service;
    if !engine.is_running(id).await? {
        bail!(
            "service {service}: database container {} is not running; start it, or remove its stackshot.{} label",
            dump.container.container,
            dump.engine.as_str()
        );
    }
    let env = engine.env_of(id).await?;
    let user = resolve(engine, id, &dump.credentials.user, &env, service)
        .await?
        .map(|s| s.expose().to_string())
        .unwrap_or_else(|| "root".into());
    let password = resolve(engine, id, &dump.credentials.password, &env, service).await?;
    let login = Login { user, password };

    // An image without a shell fails the probe itself: no tools either.
    let tools = match exec::capture(engine, id, &command::probe_tools(dump.engine), &[]).await {
        Ok(probe) => command::pick_tools(dump.engine, &String::from_utf8_lossy(&probe.stdout)),
        Err(e) if dump.engine == DbEngine::Sqlite => {
            Err(format!("cannot look for sqlite3 ({e:#})"))
        }
        Err(e) => return Err(e),
    };
    let tools = match (tools, dump.engine, sidecar) {
        (Ok(t), _, _) => t,
        (Err(why), DbEngine::Sqlite, Some(sidecar)) => {
            return prepare_sqlite_worker(engine, dump, sidecar, login, &why).await;
        }
        (Err(e), DbEngine::Sqlite, None) => bail!(
            "service {service}: stackshot.sqlite {e}, and a copy from a worker needs the sidecar's image: run this inside the sidecar"
        ),
        (Err(e), _, _) => bail!("service {service}: {e}"),
    };
    if dump.engine == DbEngine::Sqlite {
        let mut argv: Vec<String> = [
            "sh",
            "-c",
            r#"for f; do [ -f "$f" ] || echo "$f"; done"#,
            "sh",
        ]
        .map(String::from)
        .to_vec();
        argv.extend(dump.databases.iter().cloned());
        let out = exec::capture(engine, id, &argv, &[]).await?;
        let missing = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.code != 0 || !missing.is_empty() {
            bail!(
                "service {service}: stackshot.sqlite names files that are not in the container: {}{}",
                missing.lines().collect::<Vec<_>>().join(", "),
                Some(out.stderr.trim())
                    .filter(|e| !e.is_empty())
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            );
        }
    }

    let query = command::version_query(dump.engine, &tools, &login);
    let out = exec::capture(engine, id, &query, &command::login_env(dump.engine, &login)).await?;
    if out.code != 0 {
        bail!(
            "service {service}: cannot log in to {} as {:?} (password from {}): {}",
            dump.engine.as_str(),
            login.user,
            describe(&dump.credentials.password),
            out.stderr
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let server_version = command::server_version(dump.engine, &stdout).ok_or_else(|| {
        anyhow!(
            "service {service}: cannot log in to {} as {:?} (password from {}): {}",
            dump.engine.as_str(),
            login.user,
            describe(&dump.credentials.password),
            format!("{} {}", stdout.trim(), out.stderr).trim()
        )
    })?;
    let rel_dir = rel_dir(dump)?;
    let jobs = command::dump_jobs(dump.engine, &tools, &login, &dump.databases);
    tracing::info!(target: super::LOG_TARGET, service = %service, engine = dump.engine.as_str(), version = %server_version, tool = %tools.dump_all, "database ready to dump");
    Ok(Prepared {
        plan: dump.clone(),
        rel_dir,
        login,
        tools,
        server_version,
        jobs,
        estimates: None,
        sqlite_worker: None,
    })
}

/// [`prepare`] for a SQLite container whose image has no `sqlite3` (`why`):
/// a worker checks that each file is a database it can read.
async fn prepare_sqlite_worker(
    engine: &Engine,
    dump: &DumpPlan,
    sidecar: &ContainerInfo,
    login: Login,
    why: &str,
) -> Result<Prepared> {
    let service = &dump.container.service;
    let info = ContainerInfo::from_inspect(&engine.inspect(&dump.container.id).await?);
    let w = sqlite_worker::SqliteWorker::new(sidecar, &info);
    let server_version = if dump.databases.is_empty() {
        rusqlite::version().to_string()
    } else {
        w.probe(engine, service, &dump.databases).await?
    };
    tracing::info!(target: super::LOG_TARGET, service = %service, why = %why, sqlite = %server_version, "no sqlite3 in the image: its files are copied by a worker with the mount attached");
    let tool = WORKER_COPY.to_string();
    let tools = Tools {
        dump_all: tool.clone(),
        dump_one: tool.clone(),
        client: tool,
    };
    let jobs = dump
        .databases
        .iter()
        .map(|path| DumpJob {
            database: Some(path.clone()),
            file: crate::layout::sqlite_file_name(path).to_string(),
            argv: vec![WORKER_COPY.to_string(), path.clone()],
        })
        .collect();
    Ok(Prepared {
        plan: dump.clone(),
        rel_dir: rel_dir(dump)?,
        login,
        tools,
        server_version,
        jobs,
        estimates: None,
        sqlite_worker: Some(w),
    })
}

/// The tool named in a worker copy's messages.
pub const WORKER_COPY: &str = "stackshot worker sqlite copy";

/// The directory of `dump`'s files, relative to `/databases`.
fn rel_dir(dump: &DumpPlan) -> Result<String> {
    dump.outputs
        .first()
        .and_then(|o| o.strip_prefix(&format!("{DATABASES_DIR}/")))
        .and_then(|o| o.rsplit_once('/'))
        .map(|(d, _)| d.to_string())
        .ok_or_else(|| {
            anyhow!(
                "service {}: the plan has no dump output",
                dump.container.service
            )
        })
}

/// Reads the row estimates a backup records in `manifest.json` (a failure is
/// logged and leaves them out: the drill then checks the load alone).
pub async fn read_estimates(engine: &Engine, p: &mut Prepared) {
    match stats::estimates(engine, p).await {
        Ok(e) => p.estimates = Some(e),
        Err(e) => {
            tracing::warn!(target: super::LOG_TARGET, service = %p.plan.container.service, error = %format!("{e:#}"), "no row estimates for manifest.json: a restore drill will check the load alone")
        }
    }
}

/// Runs `sql` on the server (in `db`) and returns its output lines; `what`
/// names the query in an error.
pub async fn query_lines(
    engine: &Engine,
    p: &Prepared,
    db: Option<&str>,
    sql: &str,
    what: &str,
) -> Result<Vec<String>> {
    let out = match (&p.sqlite_worker, db) {
        (Some(w), Some(path)) => w.query(engine, path, sql).await?,
        // No file to ask (the drill's "does it serve"): the worker's library
        // is this one, so an in-memory database here answers the same.
        (Some(_), None) => {
            return crate::worker::sqlite::query_in_memory(sql)
                .with_context(|| format!("service {}: cannot {what}", p.plan.container.service));
        }
        (None, _) => {
            let q = command::query(p.plan.engine, &p.tools, &p.login, db, sql);
            exec::capture(
                engine,
                &p.plan.container.id,
                &q,
                &command::login_env(p.plan.engine, &p.login),
            )
            .await?
        }
    };
    if out.code != 0 {
        bail!(
            "service {}: cannot {what}: {}",
            p.plan.container.service,
            out.stderr
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}
