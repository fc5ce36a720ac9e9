//! The control socket: a unix socket inside the sidecar's container through
//! which `stackshot backup` and `stackshot status` talk to the daemon. JSON
//! lines both ways. Only processes in the container (`docker exec`) reach it.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::state::{DaemonState, Running};
use crate::report::RunReport;

/// Where the daemon listens.
pub const DEFAULT_SOCKET: &str = "/run/stackshot.sock";

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// Run a backup now and stream its progress.
    Backup,
    /// Send the daemon's state, for `stackshot status`.
    Status,
    /// The daemon's plan, read from the engine at the request (the one in
    /// use while a run is in progress).
    Plan,
}

/// What the daemon answers, one JSON line each.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reply {
    /// The requested backup started.
    Accepted {
        /// The id of the run that started.
        run_id: String,
    },
    /// A run is already in progress; nothing was started.
    Busy {
        /// The run in progress.
        running: Option<Running>,
    },
    /// One log line of the run in progress, forwarded to the client as it is logged.
    Log {
        /// The log line as the daemon's log writes it.
        line: String,
    },
    /// The run finished; this is the last reply to a backup request.
    Report {
        /// The finished run's report.
        report: Box<RunReport>,
    },
    /// The daemon's state, the answer to a status request.
    Status {
        /// The daemon's state, with the containers a `backup --no-restart` left down read anew.
        state: Box<DaemonState>,
    },
    /// The daemon's current plan.
    Plan {
        /// The plan as `stackshot plan --json` prints it.
        plan: serde_json::Value,
        /// The plan as `stackshot plan` prints it.
        table: String,
        /// Whether the plan has no errors, so that a backup may run from it.
        ok: bool,
        /// When the daemon last read the engine for it.
        checked_at: chrono::DateTime<chrono::Utc>,
    },
    /// The request could not be served.
    Error {
        /// Why the request could not be served, in one line.
        message: String,
    },
}

/// Binds the socket, replacing a stale one left by a dead daemon.
pub fn bind(path: &Path) -> Result<UnixListener> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "{} is in use: another stackshot daemon runs in this container",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))
}

/// Writes one reply line.
pub async fn send(stream: &mut (impl AsyncWriteExt + Unpin), reply: &Reply) -> Result<()> {
    let mut line = serde_json::to_vec(reply)?;
    line.push(b'\n');
    stream.write_all(&line).await?;
    stream.flush().await?;
    Ok(())
}

/// The longest request line read (a request is a few hundred bytes).
pub const MAX_REQUEST: u64 = 64 * 1024;
/// How long a client has to send its request line.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads the client's request line: at most [`MAX_REQUEST`] bytes, within
/// [`REQUEST_TIMEOUT`]; a longer or later one is refused, unread.
pub async fn read_request(stream: &mut (impl AsyncBufRead + Unpin)) -> Result<Request> {
    read_request_within(stream, REQUEST_TIMEOUT).await
}

async fn read_request_within(
    stream: &mut (impl AsyncBufRead + Unpin),
    limit: std::time::Duration,
) -> Result<Request> {
    let mut line = String::new();
    let read = tokio::time::timeout(
        limit,
        (&mut *stream).take(MAX_REQUEST + 1).read_line(&mut line),
    )
    .await
    .map_err(|_| anyhow!("no request on the control socket within {limit:?}"))??;
    if read as u64 > MAX_REQUEST {
        bail!("request on the control socket longer than {MAX_REQUEST} bytes");
    }
    serde_json::from_str(line.trim()).context("bad request on the control socket")
}

/// A client connection, or `None` when no daemon listens (then the caller runs
/// in-process).
pub async fn connect(path: &Path) -> Option<UnixStream> {
    UnixStream::connect(path).await.ok()
}

/// Sends `request` and hands each reply to `on_reply` until the daemon closes.
pub async fn call(
    stream: UnixStream,
    request: &Request,
    mut on_reply: impl FnMut(Reply),
) -> Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        on_reply(
            serde_json::from_str(&line)
                .with_context(|| format!("unexpected reply from the daemon: {line}"))?,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format() {
        assert_eq!(
            serde_json::to_string(&Request::Backup).unwrap(),
            r#"{"request":"backup"}"#
        );
        let line = serde_json::to_string(&Reply::Log {
            line: "INFO stopped".into(),
        })
        .unwrap();
        assert_eq!(line, r#"{"kind":"log","line":"INFO stopped"}"#);
        assert!(matches!(
            serde_json::from_str::<Reply>(&line).unwrap(),
            Reply::Log { .. }
        ));
    }

    /// A request is read whole up to its bound; a longer one, or a client
    /// that sends nothing, is refused in one line instead of held.
    #[tokio::test]
    async fn requests_are_bounded_in_size_and_time() {
        let ok = b"{\"request\":\"backup\"}\n".to_vec();
        assert_eq!(
            read_request(&mut ok.as_slice()).await.unwrap(),
            Request::Backup
        );
        let huge = vec![b' '; MAX_REQUEST as usize + 10];
        let e = read_request(&mut huge.as_slice()).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("request on the control socket longer than {MAX_REQUEST} bytes")
        );
        let (client, server) = UnixStream::pair().unwrap();
        let mut server = BufReader::new(server);
        let e = read_request_within(&mut server, std::time::Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("no request on the control socket within"),
            "{e}"
        );
        drop(client);
    }

    #[tokio::test]
    async fn stale_socket_is_replaced_and_a_live_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let first = bind(&path).unwrap();
        assert!(
            bind(&path)
                .unwrap_err()
                .to_string()
                .contains("another stackshot daemon")
        );
        drop(first);
        bind(&path).unwrap();
    }
}
