//! `stackshot worker`: what runs inside the worker container. It reads its
//! restic settings from stdin (one JSON line; secrets never sit in the
//! container's configuration), runs restic, and prints JSON-lines events on
//! stdout for the sidecar. It never touches a container: stopping and starting
//! stay in the sidecar, so a dying worker cannot leave the stack down.

use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::engine::worker::Payload;
use crate::restic::json::{BackupEvent, BackupSummary, Progress, parse_backup_line};

/// One line the worker prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WorkerEvent {
    /// restic's progress (at most about once a second).
    Progress(Progress),
    /// A file restic could not read.
    FileError {
        /// The path.
        item: String,
        /// What went wrong.
        message: String,
    },
    /// restic's summary: the snapshot was written.
    Summary(BackupSummary),
    /// A line of restic's own output that is not one of the above.
    Log {
        /// The line.
        line: String,
    },
    /// restic's exit code.
    Exit {
        /// Exit code.
        code: i32,
    },
}

fn emit(event: &WorkerEvent) {
    // One write per line so lines never interleave.
    println!(
        "{}",
        serde_json::to_string(event).expect("events serialise")
    );
}

async fn read_payload() -> Result<Payload> {
    let mut stdin = tokio::io::stdin();
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    // Read exactly one line: the sidecar closes stdin after it.
    while stdin.read(&mut byte).await? == 1 && byte[0] != b'\n' {
        buf.push(byte[0]);
        if buf.len() > 1 << 20 {
            bail!("the settings line is too long");
        }
    }
    serde_json::from_slice(&buf)
        .context("the worker expects its settings as one JSON line on stdin")
}

/// Empties `dir` (a restore target under `/volumes`), keeping the directory.
fn clear(dir: &str) -> Result<()> {
    if !dir.starts_with("/volumes/") || dir.contains("/../") {
        bail!("refusing to clear {dir:?}: only restore targets under /volumes/ are cleared");
    }
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(dir)
        .with_context(|| format!("cannot read {dir}"))?
        .dev();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {dir}"))? {
        let path = entry?.path();
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.is_dir() && meta.dev() != dev {
            // Another target mounted inside this one: it is cleared on its own.
            continue;
        }
        if meta.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        }
        .with_context(|| format!("cannot remove {}", path.display()))?;
    }
    Ok(())
}

/// Runs `restic <args>` with the settings from stdin, reporting as JSON lines;
/// first empties each directory of `clear_dirs` (restore targets).
pub async fn run(clear_dirs: &[String], args: &[String]) -> Result<i32> {
    let payload = read_payload().await?;
    for dir in clear_dirs {
        clear(dir)?;
        emit(&WorkerEvent::Log {
            line: format!("emptied {dir} for the restore"),
        });
    }
    let mut child = tokio::process::Command::new("restic")
        .args(args)
        .envs(payload.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot run restic in the worker")?;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let err_task = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            match parse_backup_line(&line) {
                Some(BackupEvent::Error(e)) => emit(&WorkerEvent::FileError {
                    item: e.item,
                    message: e.message.unwrap_or_default(),
                }),
                _ if line.trim().is_empty() => {}
                _ => emit(&WorkerEvent::Log { line }),
            }
        }
    });
    let mut lines = BufReader::new(stdout).lines();
    let mut last_progress = Instant::now() - Duration::from_secs(10);
    while let Some(line) = lines.next_line().await? {
        match parse_backup_line(&line) {
            Some(BackupEvent::Status(p)) => {
                if last_progress.elapsed() >= Duration::from_secs(1) {
                    last_progress = Instant::now();
                    emit(&WorkerEvent::Progress(p));
                }
            }
            Some(BackupEvent::Summary(s)) => emit(&WorkerEvent::Summary(s)),
            Some(BackupEvent::Error(e)) => emit(&WorkerEvent::FileError {
                item: e.item,
                message: e.message.unwrap_or_default(),
            }),
            Some(BackupEvent::ExitError(e)) => emit(&WorkerEvent::Log { line: e.message }),
            None if line.trim().is_empty() => {}
            None => emit(&WorkerEvent::Log { line }),
        }
    }
    let status = child.wait().await.context("waiting for restic")?;
    let _ = err_task.await;
    let code = status.code().unwrap_or(1);
    emit(&WorkerEvent::Exit { code });
    Ok(code)
}

/// The `stackshot worker` entry point.
pub async fn main(clear_dirs: &[String], args: &[String]) -> ExitCode {
    match run(clear_dirs, args).await {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            emit(&WorkerEvent::Log {
                line: format!("stackshot worker: {e:#}"),
            });
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        let events = [
            WorkerEvent::Progress(Progress {
                percent_done: 0.5,
                bytes_done: 10,
                ..Default::default()
            }),
            WorkerEvent::Summary(BackupSummary {
                snapshot_id: Some("abc".into()),
                files_new: 3,
                ..Default::default()
            }),
            WorkerEvent::FileError {
                item: "/volumes/x".into(),
                message: "permission denied".into(),
            },
            WorkerEvent::Exit { code: 3 },
        ];
        for e in events {
            let line = serde_json::to_string(&e).unwrap();
            let back: WorkerEvent = serde_json::from_str(&line).unwrap();
            assert_eq!(back, e, "{line}");
        }
        let line = serde_json::to_string(&WorkerEvent::Exit { code: 0 }).unwrap();
        assert_eq!(line, r#"{"event":"exit","code":0}"#);
    }
}
