//! Running a restic process and collecting what it printed: to completion
//! ([`Restic::run`]), or for at most a given time ([`Restic::finish_within`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail};

use super::Restic;

/// Why [`Restic::finish_within`] has no result.
pub(super) enum Bounded {
    /// restic could not be started (or waited for).
    Spawn(String),
    /// The limit passed; restic was killed. Its stderr until then.
    TimedOut { stderr: String },
}

/// A finished restic process.
pub(super) struct Finished {
    /// Its exit code; `None` when a signal killed it.
    pub(super) code: Option<i32>,
    /// Everything it printed on stdout.
    pub(super) stdout: String,
    /// Everything it printed on stderr.
    pub(super) stderr: String,
}

impl Restic {
    /// Runs restic to completion and returns its stdout. A non-zero exit is an
    /// error naming the masked repository, the exit code and restic's last
    /// stderr lines (secrets hidden).
    pub async fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let done = self.finish(args).await.map_err(|detail| {
            anyhow!(
                "cannot run restic ({}): {detail}; install restic 0.14 or newer and put it on PATH",
                self.binary.display()
            )
        })?;
        if done.code != Some(0) {
            let subcommand = args.iter().find(|a| !a.starts_with('-')).unwrap_or(&"");
            bail!(self.failure_message(subcommand, done.code, &done.stderr));
        }
        Ok(done.stdout)
    }

    /// Runs restic for at most `limit`, then kills it; on a timeout, what it
    /// had printed on stderr comes back with the error (its retry lines say
    /// why it is stuck).
    pub(super) async fn finish_within(
        &self,
        args: &[&str],
        limit: Duration,
    ) -> Result<Finished, Bounded> {
        use tokio::io::AsyncReadExt;
        let mut child = self
            .command(args)
            .spawn()
            .map_err(|e| Bounded::Spawn(e.to_string()))?;
        let stderr_buf = Arc::new(Mutex::new(Vec::new()));
        let mut stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&stderr_buf);
        let err_task = tokio::spawn(async move {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("stderr buffer")
                    .extend_from_slice(&chunk[..n]);
            }
        });
        let out_task = tokio::spawn(async move {
            let mut out = Vec::new();
            let _ = stdout.read_to_end(&mut out).await;
            out
        });
        let waited = tokio::time::timeout(limit, child.wait()).await;
        let text = |buf: &Arc<Mutex<Vec<u8>>>| {
            String::from_utf8_lossy(&buf.lock().expect("stderr buffer")).into_owned()
        };
        match waited {
            Ok(status) => {
                let status = status.map_err(|e| Bounded::Spawn(e.to_string()))?;
                let stdout = out_task.await.unwrap_or_default();
                let _ = err_task.await;
                Ok(Finished {
                    code: status.code(),
                    stdout: String::from_utf8_lossy(&stdout).into_owned(),
                    stderr: text(&stderr_buf),
                })
            }
            Err(_) => {
                let _ = child.kill().await;
                err_task.abort();
                out_task.abort();
                Err(Bounded::TimedOut {
                    stderr: text(&stderr_buf),
                })
            }
        }
    }

    /// Runs restic to completion and collects its exit code and output.
    async fn finish(&self, args: &[&str]) -> Result<Finished, String> {
        let out = self
            .command(args)
            .output()
            .await
            .map_err(|e| e.to_string())?;
        Ok(Finished {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}
