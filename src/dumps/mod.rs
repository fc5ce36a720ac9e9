//! Database dumps: credentials and tools checked before any container is
//! touched ([`prepare()`]), then each dump streamed from `docker exec` into a
//! file — hashed as it is written, never held in memory — and renamed into
//! place only when the dump tool exited 0 ([`dump_to_file`]).
//!
//! The parts, in the order a backup uses them:
//! - [`prepare`](mod@prepare) decides what can be dumped before the window
//!   opens: the container runs, its credentials log in, its tools exist, and
//!   its dump jobs are listed. [`command`] builds the argv of each tool and
//!   query (pure), and [`sqlite_worker`] copies SQLite files through a worker
//!   when the image has no `sqlite3`.
//! - [`stream`] runs one dump in its container and streams its output into a
//!   sink, hashing it and counting its rows ([`rows`], with [`sql_text`]) as
//!   it goes; a pinned MariaDB dump is watched there for its transaction.
//! - [`file`](mod@file) keeps the dump files on disk: each written whole or
//!   not at all, then `SHA256SUMS` and `manifest.json` beside them.
//! - [`stats`] reads the row estimates and counts that `manifest.json` and a
//!   restore drill compare.
//!
//! This file joins them: [`dump_to_file`] streams one dump into its file, and
//! [`dump_all`] runs every dump of the prepared containers.

pub mod command;
pub mod file;
pub mod prepare;
pub mod rows;
pub mod sql_text;
pub mod sqlite_worker;
pub mod stats;
pub mod stream;

use std::path::Path;

use anyhow::{Result, bail};
use futures_util::future::join_all;

use crate::engine::Engine;
use crate::labels::Engine as DbEngine;
pub use crate::report::DumpResult;
use command::DumpJob;
pub use file::{clear_dir, is_out_of_space, write_sums, write_whole};
pub use prepare::{Prepared, WORKER_COPY, prepare, query_lines, read_estimates};
pub use stream::{
    PinSignal, PinWatch, STARTING_TRANSACTION, Streamed, Watching, hex, stream_into,
    stream_into_watching,
};

pub use crate::layout::DATABASES_DIR;

/// The target of the log events of this module and of its parts in their own
/// files: `stackshot::dumps` for all of them, so that a log line names the
/// module it named before the parts moved out of this file.
const LOG_TARGET: &str = module_path!();

/// Dumps into `root/<rel_dir>/<file>` through a `.partial` file renamed only on success.
pub async fn dump_to_file(
    engine: &Engine,
    p: &Prepared,
    job: &DumpJob,
    root: &Path,
) -> Result<DumpResult> {
    dump_to_file_watching(engine, p, job, root, Watching::default()).await
}

/// [`dump_to_file`], watched as `w` says: the dump is streamed
/// ([`stream_into_watching`]) into a file written whole ([`write_whole`]),
/// logged, and described as a [`DumpResult`].
pub async fn dump_to_file_watching(
    engine: &Engine,
    p: &Prepared,
    job: &DumpJob,
    root: &Path,
    w: Watching,
) -> Result<DumpResult> {
    let (path, streamed) = write_whole(&root.join(&p.rel_dir), &job.file, async |sink| {
        stream_into_watching(engine, p, job, sink, w).await
    })
    .await?;
    tracing::info!(service = %p.plan.container.service, file = %path.display(), bytes = streamed.bytes, seconds = streamed.seconds, "dumped");
    Ok(DumpResult {
        service: p.plan.container.service.clone(),
        engine: p.plan.engine,
        database: job.database.clone(),
        file: format!("{}/{}", p.rel_dir, job.file),
        bytes: streamed.bytes,
        sha256: streamed.sha256,
        seconds: streamed.seconds,
        server_version: p.server_version.clone(),
        integrity_check: (p.plan.engine == DbEngine::Sqlite).then(|| "ok".to_string()),
        counted: streamed.counted,
    })
}

/// A dump job as messages name it: `pg_dump of app in postgres`, or
/// `pg_dumpall in postgres` for a dump of every database.
pub fn describe_job(p: &Prepared, job: &DumpJob) -> String {
    let argv0 = job.argv.first().map(String::as_str).unwrap_or("dump");
    let tool = argv0.rsplit('/').next().unwrap_or(argv0);
    match &job.database {
        Some(db) => format!("{tool} of {db} in {}", p.plan.container.service),
        None => format!("{tool} in {}", p.plan.container.service),
    }
}

/// Runs every dump: containers concurrently, one container's dumps in turn.
/// Fails with every failure named, after all dumps finished.
pub async fn dump_all(
    engine: &Engine,
    prepared: &[Prepared],
    root: &Path,
) -> Result<Vec<DumpResult>> {
    let per_container = join_all(prepared.iter().map(|p| async move {
        let mut out = Vec::new();
        for job in &p.jobs {
            let dumped = dump_to_file(engine, p, job, root);
            out.push(crate::activity::track(describe_job(p, job), dumped).await?);
        }
        Ok::<_, anyhow::Error>(out)
    }))
    .await;
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for r in per_container {
        match r {
            Ok(mut v) => results.append(&mut v),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("; "));
    }
    Ok(results)
}
