//! Running a dump in its container and streaming its output: each chunk is
//! hashed, counted ([`rows`]) and written into a sink as it arrives, never
//! held in memory, and the verdict ([`Streamed`]) needs the tool to have
//! exited 0 and written something. A pinned MariaDB dump is watched for its
//! transaction ([`PinWatch`], [`Watching`]); a SQLite copy may come from a
//! worker instead ([`sqlite_worker`]).

use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use bollard::container::LogOutput;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::command::{self, DumpJob};
use super::{Prepared, WORKER_COPY, rows, sqlite_worker};
use crate::engine::{Engine, exec};
use crate::labels::Engine as DbEngine;

/// What streaming one dump produced.
#[derive(Debug)]
pub struct Streamed {
    /// The size of the dump in bytes, as streamed.
    pub bytes: u64,
    /// The dump's SHA-256, in lowercase hex.
    pub sha256: String,
    /// How long streaming the dump took, in seconds.
    pub seconds: f64,
    /// SQL dumps: the rows counted in the stream.
    pub counted: Option<rows::Counted>,
}

/// Lowercase hex of `bytes`: how dump digests are written (`SHA256SUMS`, the
/// run report) and compared. Pure.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Streams one dump's stdout into `sink`, hashing it; fails unless the tool
/// exited 0 and wrote something. The stderr tail goes into the error.
pub async fn stream_into<W: AsyncWrite + Unpin>(
    engine: &Engine,
    p: &Prepared,
    job: &DumpJob,
    sink: &mut W,
) -> Result<Streamed> {
    stream_into_watching(engine, p, job, sink, Watching::default()).await
}

/// Sent once `mariadb-dump --single-transaction --verbose` has started its
/// consistent-snapshot transaction: the dump's read view is pinned.
pub type PinSignal = tokio::sync::oneshot::Sender<()>;

/// The stderr line `mariadb-dump --verbose` prints just before `START
/// TRANSACTION WITH CONSISTENT SNAPSHOT`; the line after it comes once that
/// statement has run.
pub const STARTING_TRANSACTION: &str = "-- Starting transaction...";

/// Watches stderr lines for the pin: the first complete line after
/// [`STARTING_TRANSACTION`]. Pure.
#[derive(Debug, Default)]
pub struct PinWatch {
    pending: Vec<u8>,
    starting_seen: bool,
}

impl PinWatch {
    /// Feeds stderr bytes; true once the pin happened.
    pub fn feed(&mut self, bytes: &[u8]) -> bool {
        self.pending.extend_from_slice(bytes);
        let mut pinned = false;
        while let Some(nl) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line);
            if self.starting_seen {
                pinned = true;
            } else if line.trim() == STARTING_TRANSACTION {
                self.starting_seen = true;
            }
        }
        pinned
    }
}

/// How a pinned dump is watched (all empty for a plain dump).
#[derive(Default)]
pub struct Watching {
    /// Fired when the dump's stderr shows its transaction pinned (see [`PinWatch`]).
    pub signal: Option<PinSignal>,
    /// The dump's exec, started armed and fired by the caller ([`exec::start_armed`]);
    /// `None`: started here.
    pub started: Option<exec::Exec>,
    /// Once pinned, the dump's output is not read until this turns true (the
    /// stop window closed): a dump streaming hundreds of MB would compete
    /// with the window's file pass for the CPU and the disk. Dropped: read on.
    pub hold: Option<tokio::sync::watch::Receiver<bool>>,
}

/// [`stream_into`], watched as `w` says.
pub async fn stream_into_watching<W: AsyncWrite + Unpin>(
    engine: &Engine,
    p: &Prepared,
    job: &DumpJob,
    sink: &mut W,
    w: Watching,
) -> Result<Streamed> {
    let Watching {
        mut signal,
        started: pre,
        mut hold,
    } = w;
    let mut watch = PinWatch::default();
    let started = Instant::now();
    let service = &p.plan.container.service;
    let tool = job.argv[0]
        .rsplit('/')
        .next()
        .unwrap_or(&job.argv[0])
        .to_string();
    if let Some(w) = &p.sqlite_worker {
        return stream_from_worker(engine, w, service, job, sink).await;
    }
    let mut exec = match pre {
        Some(e) => e,
        None => {
            exec::start(
                engine,
                &p.plan.container.id,
                &job.argv,
                &command::login_env(p.plan.engine, &p.login),
            )
            .await?
        }
    };
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let mut stderr = exec::Tail::new(4096);
    let mut counter = match p.plan.engine {
        DbEngine::Postgres => Some(rows::RowCounter::new(true, job.database.as_deref())),
        DbEngine::Mariadb | DbEngine::Mysql => {
            Some(rows::RowCounter::new(false, job.database.as_deref()))
        }
        DbEngine::Redis | DbEngine::Sqlite => None,
    };
    while let Some(chunk) = exec.output.next().await {
        match chunk.with_context(|| format!("service {service}: reading {tool}'s output"))? {
            LogOutput::StdOut { message } => {
                write_chunk(sink, &mut hasher, &mut bytes, &message, service).await?;
                if let Some(c) = &mut counter {
                    c.feed(&message);
                }
            }
            LogOutput::StdErr { message } => {
                stderr.push(&message);
                if signal.is_some() && watch.feed(&message) {
                    let _ = signal.take().map(|s| s.send(()));
                }
            }
            _ => {}
        }
        if signal.is_none()
            && let Some(mut h) = hold.take()
        {
            // Pinned: wait for the window to close (or the gate to go away).
            let _ = h.wait_for(|closed| *closed).await;
        }
    }
    sink.flush()
        .await
        .with_context(|| format!("service {service}: writing the dump"))?;
    let code = exec::exit_code(engine, &exec.id).await?;
    let mut s = streamed(service, &tool, code, &stderr, bytes, hasher, started)?;
    s.counted = counter.map(rows::RowCounter::finish);
    if s.counted.as_ref().is_some_and(|c| !c.complete) {
        tracing::warn!(target: super::LOG_TARGET, service = %service, file = %job.file, "the dump's stream did not end as a whole dump does: the drill will report it");
    }
    Ok(s)
}

/// One chunk of a dump into `sink`, hashed and counted.
async fn write_chunk<W: AsyncWrite + Unpin>(
    sink: &mut W,
    hasher: &mut Sha256,
    bytes: &mut u64,
    message: &[u8],
    service: &str,
) -> Result<()> {
    hasher.update(message);
    *bytes += message.len() as u64;
    sink.write_all(message)
        .await
        .with_context(|| format!("service {service}: writing the dump"))
}

/// The verdict on a finished dump: it exited 0 and wrote something.
fn streamed(
    service: &str,
    tool: &str,
    code: i64,
    stderr: &exec::Tail,
    bytes: u64,
    hasher: Sha256,
    started: Instant,
) -> Result<Streamed> {
    if code != 0 {
        bail!(
            "service {service}: {tool} exited with code {code}: {}",
            stderr.one_line()
        );
    }
    if bytes == 0 {
        bail!(
            "service {service}: {tool} wrote nothing: {}",
            stderr.one_line()
        );
    }
    Ok(Streamed {
        bytes,
        sha256: hex(&hasher.finalize()),
        seconds: started.elapsed().as_secs_f64(),
        counted: None,
    })
}

/// A SQLite copy made by a worker ([`sqlite_worker`]): its stdout is the
/// checked copy. The worker is removed on every path.
async fn stream_from_worker<W: AsyncWrite + Unpin>(
    engine: &Engine,
    w: &sqlite_worker::SqliteWorker,
    service: &str,
    job: &DumpJob,
    sink: &mut W,
) -> Result<Streamed> {
    let started = Instant::now();
    let path = job
        .database
        .as_deref()
        .ok_or_else(|| anyhow!("service {service}: a SQLite copy names no file"))?;
    let mut raw = w
        .copy(engine, path)
        .await
        .with_context(|| format!("service {service}: cannot start the SQLite worker"))?;
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let mut stderr = exec::Tail::new(4096);
    let pumped = async {
        while let Some(chunk) = raw.output.next().await {
            match chunk.with_context(|| format!("service {service}: reading the worker's copy"))? {
                LogOutput::StdOut { message } => {
                    write_chunk(sink, &mut hasher, &mut bytes, &message, service).await?
                }
                LogOutput::StdErr { message } => stderr.push(&message),
                _ => {}
            }
        }
        sink.flush()
            .await
            .with_context(|| format!("service {service}: writing the dump"))
    }
    .await;
    if let Err(e) = pumped {
        raw.abort(engine).await;
        return Err(e);
    }
    let code = raw.finish(engine).await?;
    streamed(service, WORKER_COPY, code, &stderr, bytes, hasher, started)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_is_the_line_after_starting_transaction() {
        let mut w = PinWatch::default();
        assert!(!w.feed(b"-- Connecting to localhost...\n-- Starting trans"));
        assert!(!w.feed(b"action...\n"), "not before the statement has run");
        assert!(!w.feed(b"-- Setting save"));
        assert!(w.feed(b"point...\n"));
        let mut w = PinWatch::default();
        assert!(
            w.feed(b"-- Starting transaction...\n-- Retrieving table structure for table t...\n")
        );
    }
}
