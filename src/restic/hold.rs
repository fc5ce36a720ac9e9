//! A restic lock held while stackshot writes through rustic.
//!
//! rustic writes packs, trees and snapshot files without taking restic's
//! locks. A `restic prune` started meanwhile (on another host, from a cron,
//! from another sidecar's `PRUNE_CRON`) would see packs that no snapshot
//! references yet and delete them. So, for as long as a short-window run
//! writes (the armed file pass, the merge, the check of what was merged), a
//! restic process holds a non-exclusive lock in the repository: restic's own
//! format, refreshed as restic refreshes it, removed when it ends. A prune or
//! check on any host then waits or refuses, exactly as beside a running
//! `restic backup`.
//!
//! The holder is `restic key add`: it takes the repository's non-exclusive
//! lock, then waits for the new key's password on stdin, reading nothing
//! else and loading no index. It is never given one. Closing its stdin ends
//! it ("an empty password is not allowed"), and on the way out it removes its
//! lock; if stackshot dies, the pipe closes and the same happens. No key is
//! ever added.

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use tokio::io::AsyncReadExt as _;
use tokio::process::{Child, ChildStdin};

use super::Restic;

/// How long restic may take to open the repository and write its lock.
const TAKE_TIMEOUT: Duration = Duration::from_secs(120);

/// How long restic may take to remove its lock once told to end.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(60);

/// A non-exclusive restic lock in the repository, held by a restic process
/// until [`HeldLock::release`] (or until this is dropped: its stdin closes).
#[derive(Debug)]
pub struct HeldLock {
    child: Child,
    stdin: Option<ChildStdin>,
    pid: u32,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Restic {
    /// Takes a non-exclusive lock in the repository and holds it until
    /// released. Fails with restic's own words when the repository is
    /// locked exclusively (a prune or check running).
    pub async fn hold_lock(&self) -> Result<HeldLock> {
        let before: HashSet<String> = self.lock_ids().await?.into_iter().collect();
        let mut cmd = self.command(&["--no-cache", "key", "add"]);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .kill_on_drop(false);
        let mut child = cmd.spawn().with_context(|| {
            format!("cannot run restic to lock repository {}", self.repository())
        })?;
        let pid = child.id().ok_or_else(|| anyhow!("restic ended at once"))?;
        let stdin = child.stdin.take();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(mut err) = child.stderr.take() {
            let sink = Arc::clone(&stderr);
            tokio::spawn(async move {
                let mut chunk = [0u8; 1024];
                while let Ok(n) = err.read(&mut chunk).await {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend_from_slice(&chunk[..n]);
                }
            });
        }
        let mut held = HeldLock {
            child,
            stdin,
            pid,
            stderr,
        };
        let deadline = tokio::time::Instant::now() + TAKE_TIMEOUT;
        let mut others = before;
        let mut pause = Duration::from_millis(50);
        loop {
            if let Some(status) = held.child.try_wait()? {
                bail!(
                    "cannot lock repository {} for the run's own writes (restic {status}): {}",
                    self.repository(),
                    held.said(self)
                );
            }
            if held.find_own(self, &mut others).await?.is_some() {
                tracing::debug!("repository locked for the run's own writes");
                return Ok(held);
            }
            if tokio::time::Instant::now() > deadline {
                let _ = held.child.start_kill();
                bail!(
                    "restic did not lock repository {} within {}s: {}",
                    self.repository(),
                    TAKE_TIMEOUT.as_secs(),
                    held.said(self)
                );
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }
}

impl HeldLock {
    /// Ok while the holder runs and its lock is in the repository (restic
    /// renames it on each refresh, so it is found by process id). Anything
    /// else means a prune could have run meanwhile: what was written since
    /// the lock was taken cannot be trusted.
    pub async fn check(&mut self, restic: &Restic) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "the restic that held repository {} locked for this run ended ({status}): {}; a prune may have run meanwhile",
                restic.repository(),
                self.said(restic)
            );
        }
        if self.find_own(restic, &mut HashSet::new()).await?.is_some() {
            return Ok(());
        }
        bail!(
            "this run's lock is gone from repository {} (removed by `restic unlock --remove-all`?); a prune may have run meanwhile",
            restic.repository()
        )
    }

    /// The id of the holder's lock (non-exclusive, its process id), if the
    /// repository has it. Locks named in `others` are not read; the others
    /// read are added to it.
    async fn find_own(
        &self,
        restic: &Restic,
        others: &mut HashSet<String>,
    ) -> Result<Option<String>> {
        for id in restic.lock_ids().await? {
            if others.contains(&id) {
                continue;
            }
            match restic.read_lock(&id).await {
                Some(lock) if lock.pid == u64::from(self.pid) && !lock.exclusive => {
                    return Ok(Some(id));
                }
                Some(_) => {
                    others.insert(id);
                }
                None => {}
            }
        }
        Ok(None)
    }

    /// Ends the holder and waits until its lock is removed.
    pub async fn release(mut self, restic: &Restic) -> Result<()> {
        drop(self.stdin.take());
        match tokio::time::timeout(RELEASE_TIMEOUT, self.child.wait()).await {
            Ok(_) => Ok(()),
            Err(_) => {
                let _ = self.child.start_kill();
                Err(anyhow!(
                    "restic did not remove this run's lock from repository {} within {}s; `restic unlock` removes it once stale",
                    restic.repository(),
                    RELEASE_TIMEOUT.as_secs()
                ))
            }
        }
    }

    /// The holder's last stderr lines, secrets hidden.
    fn said(&self, restic: &Restic) -> String {
        let text = self
            .stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let text = String::from_utf8_lossy(&text);
        let tail: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let tail = tail[tail.len().saturating_sub(6)..].join("; ");
        restic.redact(if tail.is_empty() { "no message" } else { &tail })
    }
}
