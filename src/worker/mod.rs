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

pub mod rustic;
pub mod sqlite;
pub mod stall;
pub mod swap;

/// One line the worker prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WorkerEvent {
    /// restic's progress (at most about once a second).
    Progress(Progress),
    /// A file restic could not read.
    FileError {
        /// The path restic could not read.
        item: String,
        /// restic's message about it.
        message: String,
    },
    /// restic's summary: the snapshot was written.
    Summary(BackupSummary),
    /// A line of restic's own output that is not one of the above.
    Log {
        /// The line, as restic (or the worker) printed it.
        line: String,
    },
    /// The armed file pass opened the repository and waits for `go`.
    Ready {
        /// How long opening took (key derivation and index).
        seconds: f64,
    },
    /// The armed pass wrote its snapshot into the local spool and uploads it
    /// now: the window need not wait for the rest.
    Spooled {
        /// Files waiting to go up.
        files: u64,
        /// The total size of those files in bytes.
        bytes: u64,
    },
    /// The worker's last line: the exit code of restic or of the armed file pass.
    Exit {
        /// The exit code, which the worker also exits with.
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

/// Runs `restic <args>` with the settings from stdin, reporting as JSON lines.
///
/// With `swap_dirs` (the mounts of a restore), restic runs once per mount with
/// `--target <mount>/.stackshot-restore --include <mount>`, and the restored
/// files are swapped in only when every mount was restored: a failure before
/// that leaves every mount as it was (see [`swap`]).
pub async fn run(swap_dirs: &[String], args: &[String]) -> Result<i32> {
    let payload = read_payload().await?;
    let code = if swap_dirs.is_empty() {
        restic(&payload, args).await?
    } else {
        let targets = swap_dirs
            .iter()
            .map(|d| swap::Target::new(d))
            .collect::<Result<Vec<_>>>()?;
        let code = restore_all(&payload, &targets, args).await;
        for t in &targets {
            if let Err(e) = t.discard() {
                emit(&WorkerEvent::Log {
                    line: format!("{e:#}"),
                });
            }
        }
        code?
    };
    Ok(code)
}

/// Restores every target into its staging directory, then swaps them all in
/// (or none: see [`swap::swap_all`]). What an interrupted restore left is
/// recovered first ([`swap::recover`]).
async fn restore_all(payload: &Payload, targets: &[swap::Target], args: &[String]) -> Result<i32> {
    for line in swap::recover(&mut swap::Fs::default(), targets)? {
        emit(&WorkerEvent::Log { line });
    }
    for t in targets {
        let mut a = args.to_vec();
        a.extend(["--target".into(), t.stage().display().to_string()]);
        a.extend(["--include".into(), t.dir.display().to_string()]);
        // A mount nested in this one is restored (and swapped) on its own.
        for other in targets {
            if other.dir != t.dir && other.dir.starts_with(&t.dir) {
                a.extend(["--exclude".into(), other.dir.display().to_string()]);
            }
        }
        let code = restic(payload, &a).await?;
        if code != 0 {
            emit(&WorkerEvent::Log {
                line: format!(
                    "restic restore of {} failed (exit code {code}); nothing was swapped: every mount holds its old files",
                    t.dir.display()
                ),
            });
            return Ok(code);
        }
    }
    let restore = format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        std::process::id()
    );
    let lines = swap::swap_all(&mut swap::Fs::default(), targets, &restore)?;
    for line in lines {
        emit(&WorkerEvent::Log { line });
    }
    Ok(0)
}

/// Runs one `restic` with the payload's environment; streams its output as events.
async fn restic(payload: &Payload, args: &[String]) -> Result<i32> {
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
    let mut last_progress: Option<Instant> = None;
    let mut watch = payload
        .stall_seconds
        .map(|s| stall::Stall::new(Duration::from_secs(s), Instant::now()));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut stalled = false;
    loop {
        let line = tokio::select! {
            line = lines.next_line() => line?,
            _ = tick.tick(), if watch.is_some() && !stalled => {
                let w = watch.as_ref().expect("watched");
                if w.stalled(Instant::now()) {
                    stalled = true;
                    emit(&WorkerEvent::Log {
                        line: format!(
                            "restic made no progress for {} (SNAPSHOT_STALL_TIMEOUT); the worker stopped it",
                            humantime::format_duration(w.limit())
                        ),
                    });
                    let _ = child.start_kill();
                }
                continue;
            }
        };
        let Some(line) = line else { break };
        match parse_backup_line(&line) {
            Some(BackupEvent::Status(p)) => {
                if let Some(w) = watch.as_mut() {
                    w.observe(&p, Instant::now());
                }
                if last_progress.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    last_progress = Some(Instant::now());
                    emit(&WorkerEvent::Progress(p));
                }
            }
            Some(BackupEvent::Summary(s)) => {
                // Every snapshot shows progress at least once, also one that
                // ended before restic's first status line.
                if last_progress.is_none() {
                    last_progress = Some(Instant::now());
                    emit(&WorkerEvent::Progress(s.final_progress()));
                }
                emit(&WorkerEvent::Summary(s))
            }
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
    if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status) {
        remove_stale_lock(payload, signal).await;
    }
    if stalled {
        return Ok(stall::STALLED_EXIT);
    }
    Ok(status.code().unwrap_or(1))
}

/// A restic killed by a signal leaves its lock in the repository, where
/// `check` and `prune` would find it "locked" for the next 30 minutes (other
/// hosts cannot tell it is stale). Here, in the same container (same host
/// name), `restic unlock` sees that its process is gone and removes it, and
/// only it: live locks are left alone.
async fn remove_stale_lock(payload: &Payload, signal: i32) {
    let out = tokio::process::Command::new("restic")
        .args(["unlock", "-q"])
        .envs(payload.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    // On the full or broken repository that got restic stopped, unlock
    // could hang as well: it gets a minute.
    let Ok(out) = tokio::time::timeout(Duration::from_secs(60), out).await else {
        emit(&WorkerEvent::Log {
            line: format!(
                "restic was killed by signal {signal}; restic unlock did not finish in 60 s, its lock is left"
            ),
        });
        return;
    };
    let line = match out {
        Ok(o) if o.status.success() => {
            format!("restic was killed by signal {signal}; its stale lock was removed")
        }
        Ok(o) => format!(
            "restic was killed by signal {signal}; removing its lock failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => format!("restic was killed by signal {signal}; cannot run restic unlock: {e}"),
    };
    emit(&WorkerEvent::Log { line });
}

/// Exit code for arguments that fit none of the worker's forms: the command
/// line's code for bad configuration or input.
pub const EXIT_USAGE: u8 = 2;

/// What a `stackshot worker ARGS…` call asks for: one of the worker's forms,
/// with its arguments.
#[derive(Debug, PartialEq, Eq)]
pub enum Invocation<'a> {
    /// `rustic ARGS…`: the armed file pass ([`rustic`]).
    Rustic(&'a [String]),
    /// `sqlite probe|copy|query|stat …`: SQLite for images without sqlite3
    /// ([`sqlite`]).
    Sqlite(&'a [String]),
    /// `[--swap PATH]… restic ARGS…`: restic, restoring into the mounts
    /// given with `--swap` when there are any ([`run`]).
    Restic {
        /// The `--swap` mounts, in order.
        swap: Vec<String>,
        /// The arguments handed to restic, after `restic`.
        args: &'a [String],
    },
}

impl<'a> Invocation<'a> {
    /// Reads the worker's arguments; `None` when they fit none of its forms.
    /// Pure.
    pub fn parse(args: &'a [String]) -> Option<Invocation<'a>> {
        // Form: [--swap PATH]… restic ARGS…, rustic ARGS… (the armed file pass), or sqlite ARGS…
        if let Some(("rustic", backup_args)) = args.split_first().map(|(a, b)| (a.as_str(), b)) {
            return Some(Invocation::Rustic(backup_args));
        }
        // sqlite probe|copy|query|stat …: SQLite for images without sqlite3.
        if let Some(("sqlite", sqlite_args)) = args.split_first().map(|(a, b)| (a.as_str(), b)) {
            return Some(Invocation::Sqlite(sqlite_args));
        }
        let mut swap = Vec::new();
        let mut rest = args;
        while let [flag, path, tail @ ..] = rest {
            if flag != "--swap" {
                break;
            }
            swap.push(path.clone());
            rest = tail;
        }
        let Some(("restic", restic_args)) = rest.split_first().map(|(a, b)| (a.as_str(), b)) else {
            return None;
        };
        Some(Invocation::Restic {
            swap,
            args: restic_args,
        })
    }
}

/// The `stackshot worker ARGS…` entry point: runs the form ARGS name. The
/// worker gets its settings on stdin, not from the environment.
pub async fn main(args: &[String]) -> ExitCode {
    match Invocation::parse(args) {
        Some(Invocation::Rustic(args)) => finish(rustic::run(args).await),
        Some(Invocation::Sqlite(args)) => sqlite::main(args),
        Some(Invocation::Restic { swap, args }) => finish(run(&swap, args).await),
        None => {
            eprintln!("stackshot worker: expected `[--swap PATH]… restic ARGS…`");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn finish(result: Result<i32>) -> ExitCode {
    match result {
        Ok(code) => {
            emit(&WorkerEvent::Exit { code });
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
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

    #[test]
    fn the_worker_s_forms() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let a = args(&["rustic", "backup", "--swap", "x"]);
        assert_eq!(Invocation::parse(&a), Some(Invocation::Rustic(&a[1..])));
        let a = args(&["sqlite", "probe", "/p", "/q"]);
        assert_eq!(Invocation::parse(&a), Some(Invocation::Sqlite(&a[1..])));
        let a = args(&["restic", "snapshots", "--json"]);
        assert_eq!(
            Invocation::parse(&a),
            Some(Invocation::Restic {
                swap: vec![],
                args: &a[1..]
            })
        );
        let a = args(&["--swap", "/a", "--swap", "/b", "restic", "restore", "x"]);
        assert_eq!(
            Invocation::parse(&a),
            Some(Invocation::Restic {
                swap: args(&["/a", "/b"]),
                args: &a[5..]
            })
        );
        // `rustic` and `sqlite` come first or not at all.
        for bad in [
            &[][..],
            &["--swap", "/a", "rustic", "backup"],
            &["--swap", "/a"],
            &["--swap"],
            &["backup"],
        ] {
            assert_eq!(Invocation::parse(&args(bad)), None, "{bad:?}");
        }
    }
}
