//! What a run is doing at this moment, by name: the dumps and passes in
//! flight. A stop window that reaches its limit names them in its error, so
//! the report says what hung, not only that something did.
//!
//! One registry per process: a process runs one backup or restore at a time
//! (the run lock), so what is registered belongs to that run.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

static RUNNING: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(0);

/// One piece of work in flight, registered until dropped.
#[derive(Debug)]
pub struct Doing {
    id: u64,
}

impl Drop for Doing {
    fn drop(&mut self) {
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|(id, _)| *id != self.id);
    }
}

/// Registers `what` (such as "pg_dump of app in postgres") as running until
/// the returned guard is dropped.
pub fn begin(what: impl Into<String>) -> Doing {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    running.push((id, what.into()));
    Doing { id }
}

/// Runs `work`, registered as `what` while it runs: also when it is dropped
/// before it finished (the registration goes with it).
pub async fn track<F: Future>(what: impl Into<String>, work: F) -> F::Output {
    let _doing = begin(what);
    work.await
}

/// What runs now, in the order it started.
pub fn running() -> Vec<String> {
    let running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    running.iter().map(|(_, what)| what.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn registered_while_running_and_gone_when_dropped() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let work = tokio::spawn(track("a dump that waits (activity test)", async move {
            let _ = rx.await;
        }));
        while !running()
            .iter()
            .any(|w| w == "a dump that waits (activity test)")
        {
            tokio::task::yield_now().await;
        }
        // Dropped before it finished: aborted, its registration goes too.
        work.abort();
        let _ = work.await;
        drop(tx);
        assert!(
            !running()
                .iter()
                .any(|w| w == "a dump that waits (activity test)")
        );
        track("done (activity test)", async {}).await;
        assert!(!running().iter().any(|w| w == "done (activity test)"));
    }
}
