//! Pin: inside the stop window, fix every pinnable database at the moment of
//! the stop; after the window, stream the dumps of that moment.
//!
//! - PostgreSQL: one session per database holds a repeatable-read transaction
//!   and exports its snapshot (`pg_export_snapshot()`); `pg_dump --snapshot`
//!   run later sees exactly that moment. A snapshot cannot be used in another
//!   database, hence one session each, kept open until its dump exits. Roles
//!   (`pg_dumpall --globals-only`, no `--snapshot`) are dumped in the window.
//! - MariaDB/MySQL: `mariadb-dump --single-transaction --verbose` is started in
//!   the window; the stderr line after `-- Starting transaction...` says its
//!   read view is pinned (never a fixed sleep). It then streams after the window.
//!
//! Each server's schema fingerprint is taken at the pin and again after its
//! dump: a migration that ran meanwhile (an app restarted after the window)
//! fails the pinned dump, and the run falls back to the full window.

use std::collections::BTreeMap;
use std::path::Path;
use std::pin::Pin as StdPin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use bollard::container::LogOutput;
use futures_util::StreamExt;
use futures_util::future::try_join_all;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::dumps::command::{self, DumpJob};
use crate::dumps::query_lines;
use crate::dumps::{self, DumpResult, Prepared};
use crate::engine::{Engine, exec};
use crate::labels::Engine as DbEngine;

/// How long a pin may take before the run falls back to the full window.
const PIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a prepared database cannot be pinned (dumped inside the window
/// instead), or `None`. Checked before the window: MariaDB/MySQL tables that
/// are not InnoDB are not covered by `--single-transaction`.
pub async fn unpinnable_reason(engine: &Engine, p: &Prepared) -> Result<Option<String>> {
    if p.plan.engine == DbEngine::Postgres {
        return Ok(None);
    }
    let tables = query_lines(
        engine,
        p,
        None,
        command::MARIA_NON_INNODB_SQL,
        "list its table engines",
    )
    .await?;
    Ok((!tables.is_empty()).then(|| {
        format!(
            "tables that are not InnoDB are not covered by a consistent-snapshot transaction: {}",
            tables.join(", ")
        )
    }))
}

/// One PostgreSQL session holding an exported snapshot open.
struct PgSession {
    db: String,
    snapshot: String,
    fingerprint: String,
    /// Behind a mutex only so that the session may be shared across awaits
    /// (the exec's streams are not `Sync`); it is locked once, to close it.
    exec: std::sync::Mutex<exec::Exec>,
}

/// One database server pinned at the stop.
pub enum Pinned {
    /// PostgreSQL: sessions per database, roles dumped in the window.
    Postgres {
        /// The database container, checked and ready to dump.
        prepared: Prepared,
        /// One session per database to dump.
        sessions: Vec<PgSessionHandle>,
        /// `pg_dumpall --globals-only`, for an all-databases dump.
        globals: Option<Vec<u8>>,
    },
    /// MariaDB/MySQL: dumps running, their transactions started.
    Maria {
        /// The database container, checked and ready to dump.
        prepared: Prepared,
        /// The dumps started at the pin, each in its own task.
        running: Vec<JoinHandle<Result<DumpResult>>>,
        /// Schema fingerprint at the pin.
        fingerprint: String,
    },
}

/// An opaque PostgreSQL session (kept open until its dump is done).
pub struct PgSessionHandle(PgSession);

impl Pinned {
    /// The compose service of the pinned database server.
    pub fn service(&self) -> &str {
        match self {
            Pinned::Postgres { prepared, .. } | Pinned::Maria { prepared, .. } => {
                &prepared.plan.container.service
            }
        }
    }
}

async fn fingerprint(engine: &Engine, p: &Prepared, db: Option<&str>) -> Result<String> {
    let sql = match p.plan.engine {
        DbEngine::Postgres => command::PG_FINGERPRINT_SQL,
        _ => command::MARIA_FINGERPRINT_SQL,
    };
    let lines = query_lines(engine, p, db, sql, "read its schema").await?;
    Ok(lines
        .first()
        .map(|l| l.trim_start_matches("fp:").to_string())
        .unwrap_or_default())
}

async fn pg_databases(engine: &Engine, p: &Prepared) -> Result<Vec<String>> {
    if !p.plan.databases.is_empty() {
        return Ok(p.plan.databases.clone());
    }
    query_lines(
        engine,
        p,
        None,
        command::PG_DATABASES_SQL,
        "list its databases",
    )
    .await
}

/// Reads a session's stdout lines until every prefix in `want` was seen;
/// returns their values in that order.
async fn read_tagged(ex: &mut exec::Exec, want: &[&str]) -> Result<Vec<String>> {
    let mut found: Vec<Option<String>> = vec![None; want.len()];
    let mut pending = Vec::new();
    let mut stderr = exec::Tail::new(2048);
    let read = async {
        while found.iter().any(Option::is_none) {
            match ex.output.next().await {
                Some(Ok(LogOutput::StdOut { message })) => {
                    pending.extend_from_slice(&message);
                    while let Some(nl) = pending.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=nl).collect();
                        let line = String::from_utf8_lossy(&line).trim().to_string();
                        for (i, w) in want.iter().enumerate() {
                            if let Some(v) = line.strip_prefix(w) {
                                found[i] = Some(v.to_string());
                            }
                        }
                    }
                }
                Some(Ok(LogOutput::StdErr { message })) => stderr.push(&message),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(anyhow!("{e}")),
                None => bail!("psql ended: {}", stderr.one_line()),
            }
        }
        Ok(())
    };
    tokio::time::timeout(PIN_TIMEOUT, read)
        .await
        .map_err(|_| anyhow!("timed out"))
        .and_then(|r| r)?;
    Ok(found.into_iter().map(Option::unwrap_or_default).collect())
}

/// Opens a `psql` session in `db`, connected (it answered), holding nothing
/// yet: before the window.
async fn pg_open_session(engine: &Engine, p: &Prepared, db: &str) -> Result<exec::Exec> {
    let service = &p.plan.container.service;
    let argv = command::pg_session(&p.tools, &p.login, db);
    let mut ex = exec::start_with_stdin(
        engine,
        &p.plan.container.id,
        &argv,
        &command::login_env(p.plan.engine, &p.login),
    )
    .await?;
    let input = ex.input.as_mut().expect("started with stdin");
    input
        .write_all(b"SELECT 'ready:' || current_database();\n")
        .await
        .with_context(|| format!("service {service}: cannot open a session in database {db}"))?;
    input.flush().await.ok();
    read_tagged(&mut ex, &["ready:"])
        .await
        .with_context(|| format!("service {service}: cannot open a session in database {db}"))?;
    Ok(ex)
}

/// Pins one open session: its repeatable-read transaction and exported snapshot.
async fn pg_pin_session(p: &Prepared, db: String, mut ex: exec::Exec) -> Result<PgSession> {
    let service = &p.plan.container.service;
    let input = ex.input.as_mut().expect("started with stdin");
    input
        .write_all(command::pg_pin_sql().as_bytes())
        .await
        .with_context(|| format!("service {service}: cannot pin database {db}"))?;
    input.flush().await.ok();
    let got = read_tagged(&mut ex, &["snap:", "fp:"])
        .await
        .with_context(|| format!("service {service}: cannot pin database {db}"))?;
    Ok(PgSession {
        db,
        snapshot: got[0].clone(),
        fingerprint: got[1].clone(),
        exec: std::sync::Mutex::new(ex),
    })
}

/// A database server made ready to pin, before the window: everything slow
/// (execs started, connections open) is done, the moment itself is not.
pub enum Armed {
    /// PostgreSQL: a connected session per database to dump.
    Postgres {
        /// The database container, checked and ready to dump.
        prepared: Prepared,
        /// Each database to dump, with its connected session.
        sessions: Vec<(String, exec::Exec)>,
    },
    /// MariaDB/MySQL: each dump and the schema query started, waiting to be fired.
    Maria {
        /// The database container, checked and ready to dump.
        prepared: Prepared,
        /// Each dump job, with its armed `mariadb-dump` exec.
        dumps: Vec<(DumpJob, exec::Exec)>,
        /// The armed schema fingerprint query.
        fingerprint: exec::Exec,
    },
}

impl Armed {
    /// The compose service of the armed database server.
    pub fn service(&self) -> &str {
        match self {
            Armed::Postgres { prepared, .. } | Armed::Maria { prepared, .. } => {
                &prepared.plan.container.service
            }
        }
    }
}

/// Arms one server, before the window (see [`Armed`]).
pub async fn arm(engine: &Engine, p: &Prepared) -> Result<Armed> {
    let t = Instant::now();
    let env = command::login_env(p.plan.engine, &p.login);
    let armed = match p.plan.engine {
        DbEngine::Postgres => {
            let dbs = pg_databases(engine, p).await?;
            let sessions =
                try_join_all(dbs.iter().map(|db| pg_open_session(engine, p, db))).await?;
            Armed::Postgres {
                prepared: p.clone(),
                sessions: dbs.into_iter().zip(sessions).collect(),
            }
        }
        DbEngine::Mariadb | DbEngine::Mysql => {
            let mut dumps = Vec::new();
            for job in &p.jobs {
                let job = command::maria_pinnable(job);
                let ex = exec::start_armed(engine, &p.plan.container.id, &job.argv, &env).await?;
                dumps.push((job, ex));
            }
            let q = command::query(
                p.plan.engine,
                &p.tools,
                &p.login,
                None,
                command::MARIA_FINGERPRINT_SQL,
            );
            let fingerprint = exec::start_armed(engine, &p.plan.container.id, &q, &env).await?;
            Armed::Maria {
                prepared: p.clone(),
                dumps,
                fingerprint,
            }
        }
        // The plan dumps these inside the window: there is nothing to pin.
        DbEngine::Redis | DbEngine::Sqlite => anyhow::bail!(
            "service {}: Redis and SQLite are dumped inside the window, never pinned",
            p.plan.container.service
        ),
    };
    tracing::info!(service = %p.plan.container.service, seconds = t.elapsed().as_secs_f64(), "database armed (sessions open, nothing pinned yet)");
    Ok(armed)
}

/// Pins one armed server, inside the window. Returns once its state is
/// fixed. A MariaDB dump's output waits for `hold` to turn true.
pub async fn pin(
    engine: &Engine,
    armed: Armed,
    root: &Path,
    hold: tokio::sync::watch::Receiver<bool>,
) -> Result<Pinned> {
    let t = Instant::now();
    let pinned = match armed {
        Armed::Postgres {
            prepared: p,
            sessions,
        } => {
            let globals = async {
                if !p.plan.databases.is_empty() {
                    return Ok(None);
                }
                let job = DumpJob {
                    database: None,
                    file: String::new(),
                    argv: command::pg_globals(&p.tools, &p.login),
                };
                let mut buf: Vec<u8> = Vec::new();
                dumps::stream_into(engine, &p, &job, &mut buf).await?;
                Ok::<_, anyhow::Error>(Some(buf))
            };
            let (sessions, globals) = tokio::join!(
                try_join_all(
                    sessions
                        .into_iter()
                        .map(|(db, ex)| pg_pin_session(&p, db, ex))
                ),
                globals
            );
            let (sessions, globals) = (sessions?, globals?);
            Pinned::Postgres {
                prepared: p,
                sessions: sessions.into_iter().map(PgSessionHandle).collect(),
                globals,
            }
        }
        Armed::Maria {
            prepared: p,
            dumps,
            mut fingerprint,
        } => {
            let service = p.plan.container.service.clone();
            let mut running = Vec::new();
            let mut signals = Vec::new();
            for (job, mut ex) in dumps {
                ex.fire().await?;
                let (tx, rx) = tokio::sync::oneshot::channel();
                let (engine, p2, root, hold) =
                    (engine.clone(), p.clone(), root.to_path_buf(), hold.clone());
                running.push(tokio::spawn(async move {
                    let w = dumps::Watching {
                        signal: Some(tx),
                        started: Some(ex),
                        hold: Some(hold),
                    };
                    dumps::dump_to_file_watching(&engine, &p2, &job, &root, w).await
                }));
                signals.push(rx);
            }
            for rx in signals {
                let waited = tokio::time::timeout(PIN_TIMEOUT, rx).await;
                if !matches!(waited, Ok(Ok(()))) {
                    for r in &running {
                        r.abort();
                    }
                    bail!(
                        "service {service}: the dump did not report its consistent-snapshot transaction started{}",
                        if waited.is_err() {
                            " in time"
                        } else {
                            " (it ended first)"
                        }
                    );
                }
            }
            fingerprint.fire().await?;
            let out = fingerprint.collect(engine, "the schema query").await?;
            if out.code != 0 {
                for r in &running {
                    r.abort();
                }
                bail!("service {service}: cannot read its schema: {}", out.stderr);
            }
            let fingerprint = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or_default()
                .trim_start_matches("fp:")
                .to_string();
            Pinned::Maria {
                prepared: p,
                running,
                fingerprint,
            }
        }
    };
    tracing::info!(service = %pinned.service(), seconds = t.elapsed().as_secs_f64(), "database pinned");
    Ok(pinned)
}

/// Hashes and counts what passes through to the inner writer.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Hashing<W> {
    fn poll_write(
        mut self: StdPin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let n = match StdPin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => n,
            other => return other,
        };
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Poll::Ready(Ok(n))
    }
    fn poll_flush(mut self: StdPin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        StdPin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: StdPin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        StdPin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The pg_dumpall-shaped file of a pinned server: roles, then `postgres`
/// (after `\connect postgres`), then every other database with `--create`.
async fn pg_all_to_file(
    engine: &Engine,
    p: &Prepared,
    sessions: &[PgSessionHandle],
    globals: &[u8],
    root: &Path,
) -> Result<DumpResult> {
    let started = Instant::now();
    let job = p.jobs.first().ok_or_else(|| anyhow!("no dump job"))?;
    // Each database's rows, counted in its pg_dump's stream.
    let mut counted = crate::dumps::rows::Counted {
        complete: true,
        ..Default::default()
    };
    let written = dumps::write_whole(&root.join(&p.rel_dir), &job.file, async |file| {
        let mut sink = Hashing {
            inner: file,
            hasher: Sha256::new(),
            bytes: 0,
        };
        sink.write_all(b"--\n-- stackshot: roles (pg_dumpall --globals-only), then each database as of one moment (pg_dump --snapshot)\n--\n\n").await?;
        sink.write_all(globals).await?;
        for PgSessionHandle(s) in sessions {
            let create = s.db != "postgres";
            if !create {
                sink.write_all(b"\n\\connect postgres\n\n").await?;
            }
            let job = DumpJob {
                database: Some(s.db.clone()),
                file: job.file.clone(),
                argv: command::pg_dump_pinned(&p.tools, &p.login, &s.db, &s.snapshot, create),
            };
            let streamed = dumps::stream_into(engine, p, &job, &mut sink).await?;
            let c = streamed.counted.unwrap_or_default();
            counted.complete &= c.complete;
            counted.tables.extend(c.tables);
        }
        Ok((sink.hasher, sink.bytes))
    })
    .await;
    let (path, (hasher, bytes)) = written?;
    tracing::info!(service = %p.plan.container.service, file = %path.display(), bytes, seconds = started.elapsed().as_secs_f64(), "dumped (pinned)");
    Ok(DumpResult {
        service: p.plan.container.service.clone(),
        engine: p.plan.engine,
        database: None,
        file: format!("{}/{}", p.rel_dir, job.file),
        bytes,
        sha256: dumps::hex(&hasher.finalize()),
        seconds: started.elapsed().as_secs_f64(),
        server_version: p.server_version.clone(),
        integrity_check: None,
        counted: Some(counted),
    })
}

async fn close_session(s: PgSession) {
    let mut ex = s.exec.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(input) = ex.input.as_mut() {
        let _ = input.write_all(b"COMMIT;\n").await;
        let _ = input.shutdown().await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while ex.output.next().await.is_some() {}
    })
    .await;
}

/// After the window: streams a pinned server's dumps into `root`, closes its
/// sessions, and checks that its schema did not change meanwhile.
pub async fn finish(engine: &Engine, pinned: Pinned, root: &Path) -> Result<Vec<DumpResult>> {
    match pinned {
        Pinned::Postgres {
            prepared: p,
            sessions,
            globals,
        } => {
            let result = async {
                let results = match &globals {
                    Some(g) => vec![pg_all_to_file(engine, &p, &sessions, g, root).await?],
                    None => {
                        let mut out = Vec::new();
                        for PgSessionHandle(s) in &sessions {
                            let job = p
                                .jobs
                                .iter()
                                .find(|j| j.database.as_deref() == Some(s.db.as_str()))
                                .ok_or_else(|| anyhow!("no dump job for {}", s.db))?;
                            let pinned_job = DumpJob {
                                argv: command::pg_dump_pinned(&p.tools, &p.login, &s.db, &s.snapshot, false),
                                ..job.clone()
                            };
                            out.push(dumps::dump_to_file(engine, &p, &pinned_job, root).await?);
                        }
                        out
                    }
                };
                let mut drift = BTreeMap::new();
                for PgSessionHandle(s) in &sessions {
                    let now = fingerprint(engine, &p, Some(&s.db)).await?;
                    if now != s.fingerprint {
                        drift.insert(s.db.clone(), ());
                    }
                }
                if !drift.is_empty() {
                    bail!(
                        "service {}: the schema of {} changed while its pinned dump ran (a migration?)",
                        p.plan.container.service,
                        drift.keys().cloned().collect::<Vec<_>>().join(", ")
                    );
                }
                Ok(results)
            }
            .await;
            for PgSessionHandle(s) in sessions {
                close_session(s).await;
            }
            result
        }
        Pinned::Maria {
            prepared: p,
            running,
            fingerprint: before,
        } => {
            let mut results = Vec::new();
            let mut errors = Vec::new();
            for r in running {
                match r.await {
                    Ok(Ok(d)) => results.push(d),
                    Ok(Err(e)) => errors.push(format!("{e:#}")),
                    Err(e) => errors.push(format!("the dump task failed: {e}")),
                }
            }
            if !errors.is_empty() {
                bail!("{}", errors.join("; "));
            }
            let now = fingerprint(engine, &p, None).await?;
            if now != before {
                bail!(
                    "service {}: its schema changed while its pinned dump ran (a migration?)",
                    p.plan.container.service
                );
            }
            Ok(results)
        }
    }
}
