//! Windows whose owner died: a `docker exec`'d backup or restore killed
//! (SIGKILL, an OOM kill) inside its stop window leaves the journal naming
//! the containers it stopped, and nobody to start them. Every long-running
//! stackshot (the daemon, `stackshot idle`) looks every few seconds.
//!
//! The owner of a window holds the run lock exclusively ([`Journal::lock`])
//! for as long as the window is open, and the kernel releases it when the
//! owner dies. So a journal naming stopped containers while nobody holds the
//! run lock exclusively has lost its owner: whoever takes it shared then
//! recovers the window, holding it, so no new window opens meanwhile.

use std::time::Duration;

use anyhow::Result;

use crate::engine::Engine;
use crate::window::journal::{Journal, RunLock};
use crate::window::{self, Shutdown};

/// How often the journal is looked at.
pub const EVERY: Duration = Duration::from_secs(2);

/// What one look found.
#[derive(Debug, PartialEq, Eq)]
pub enum Look {
    /// No window is open.
    Closed,
    /// A window is open and its owner holds the run lock.
    Owned,
    /// A window's owner was gone: these containers were started again.
    Recovered(Vec<String>),
}

/// The run lock, shared, when the journal names stopped containers of a
/// window not [`closed`](crate::window::journal::State::closed) and its owner is
/// gone: nobody holds the lock exclusively, as a window's owner does until
/// its window closes. Maintenance holds it shared, so a window is recovered
/// beside a verify or a drill too. `None` when no window is open or its
/// owner holds the lock.
pub fn orphaned(journal: &Journal) -> Option<RunLock> {
    let open = || {
        journal
            .read()
            .ok()
            .flatten()
            .is_some_and(|s| !s.stopped.is_empty() && !s.closed)
    };
    if !open() {
        return None;
    }
    let lock = journal.lock_shared().ok()?;
    // Read again under the lock: the owner may have closed it meanwhile.
    open().then_some(lock)
}

/// Looks once: when the window's owner is gone ([`orphaned`]), removes the
/// project's worker containers (a restore worker of the dead run may still
/// write into the volumes; it must be gone before the containers start),
/// then starts what the journal names.
pub async fn look(engine: &Engine, journal: &Journal, project: &str) -> Result<Look> {
    let Some(_lock) = orphaned(journal) else {
        return Ok(match journal.read() {
            Ok(Some(s)) if !s.stopped.is_empty() && !s.closed => Look::Owned,
            _ => Look::Closed,
        });
    };
    tracing::warn!(
        journal = %journal.path().display(),
        "a run died inside its stop window (its process is gone): removing its workers and starting its containers again"
    );
    crate::engine::worker::remove_leftovers(engine, project).await;
    match window::recover(engine, journal).await {
        Ok(started) => Ok(Look::Recovered(started)),
        Err(e) => {
            // Tried once: the next run or daemon start tries again, not this
            // watcher every few seconds.
            if let Ok(Some(state)) = journal.read() {
                let _ = journal.write(&crate::window::journal::State {
                    closed: true,
                    ..state
                });
            }
            Err(e.context(
                "a run died inside its stop window and its containers could not all be started",
            ))
        }
    }
}

/// Looks every [`EVERY`] until `shutdown` fires. Failures are logged; a
/// window whose containers would not start is left to the next run.
pub async fn watch(engine: Engine, journal: Journal, project: String, mut shutdown: Shutdown) {
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
        match look(&engine, &journal, &project).await {
            Ok(Look::Recovered(started)) => {
                tracing::warn!(containers = ?started, "started the containers of a run that died inside its stop window");
            }
            Ok(Look::Closed | Look::Owned) => {}
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "recovering a stop window whose run died")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::journal::{Entry, State};

    fn stopped() -> State {
        State {
            run_id: "r".into(),
            stopped: vec![Entry {
                id: "a".into(),
                name: "app".into(),
                wave: 0,
                after: None,
                frozen: false,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_window_is_orphaned_only_when_its_owner_let_the_run_lock_go() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::in_dir(dir.path());
        assert!(orphaned(&journal).is_none(), "no journal: nothing open");

        // The owner (another open file description, as another process
        // would have) holds the run lock while its window is open.
        let owner = journal.lock().unwrap();
        journal.write(&stopped()).unwrap();
        assert!(orphaned(&journal).is_none(), "the owner holds the lock");

        // The owner dies: the kernel lets its lock go.
        drop(owner);
        let recovering = orphaned(&journal).expect("the owner is gone");
        assert!(
            journal.lock().is_err(),
            "no window opens during the recovery"
        );
        drop(recovering);

        // A drill or verify (shared) does not hide a dead owner.
        let drill = journal.lock_shared().unwrap();
        assert!(orphaned(&journal).is_some(), "recovered beside a drill");
        drop(drill);

        // What a final backup left down on purpose is not a window.
        journal
            .write(&State {
                left_down: stopped().stopped,
                ..Default::default()
            })
            .unwrap();
        assert!(orphaned(&journal).is_none());

        // A window closed with containers that would not start: kept for the
        // next run, not an orphan.
        journal
            .write(&State {
                closed: true,
                ..stopped()
            })
            .unwrap();
        assert!(orphaned(&journal).is_none());
    }
}
