//! The close of a final backup's window (`backup --no-restart`) whose work
//! succeeded: nothing is started again, and the databases, dumped by then,
//! are stopped too.

use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use futures_util::future::join_all;

use super::restart::settle;
use super::stop::entry_of;
use super::{ContainerControl, OpenWindow, WindowReport, journal};
use crate::plan::StopEntry;

impl<C: ContainerControl> OpenWindow<'_, C> {
    /// Closes the window of a final backup whose work succeeded: waits out
    /// the engine's tear-downs, then [leaves down](Self::stop_the_rest) what
    /// it stopped and the containers of `then_stop`. Returns whether they all
    /// stopped, and the window's report.
    pub(super) async fn leave_down(
        mut self,
        then_stop: &[StopEntry],
    ) -> (Result<()>, WindowReport) {
        settle(std::mem::take(&mut self.rests), self.timeout).await;
        let left = self.stop_the_rest(then_stop).await;
        self.report.seconds = self.opened.elapsed().as_secs_f64();
        (left, self.report)
    }

    /// Stops what a final backup leaves down, beside the window's containers:
    /// each of `then_stop` still running, its journal entry written first. Errors
    /// name every container that would not stop.
    async fn stop_the_rest(&mut self, then_stop: &[StopEntry]) -> Result<()> {
        let state = &mut self.state;
        state.left_down.append(&mut state.stopped);
        state.left_down_by = None;
        let entries = still_running(self.ctl, then_stop).await;
        state.left_down.extend(entries.iter().cloned());
        self.journal
            .write(state)
            .context("cannot write the stop journal; the databases were not stopped")?;
        let failed = stop_for_good(self.ctl, &entries, self.timeout).await;
        self.report.left_down = state.left_down.iter().map(|e| e.name.clone()).collect();
        if !failed.is_empty() {
            bail!(
                "the snapshot was written, but these databases would not stop after their dumps: {}",
                failed.join("; ")
            );
        }
        Ok(())
    }
}

/// The journal entries of the containers of `then_stop` that still run (or
/// cannot be checked).
async fn still_running<C: ContainerControl>(
    ctl: &C,
    then_stop: &[StopEntry],
) -> Vec<journal::Entry> {
    let mut entries = Vec::new();
    for s in then_stop {
        if ctl.is_running(&s.container.id).await.unwrap_or(true) {
            entries.push(entry_of(s, false));
        }
    }
    entries
}

/// Stops `entries` together, each one's tear-down awaited too. Returns those
/// that would not stop, each as `name: why`.
async fn stop_for_good<C: ContainerControl>(
    ctl: &C,
    entries: &[journal::Entry],
    timeout: Duration,
) -> Vec<String> {
    let results = join_all(entries.iter().map(|e| async move {
        let r = tokio::time::timeout(
            timeout.saturating_add(Duration::from_secs(30)),
            ctl.stop(&e.id, timeout),
        )
        .await
        .unwrap_or_else(|_| Err(anyhow!("timed out")));
        let r = match r {
            Ok(Some(rest)) => rest.await,
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        (e, r)
    }))
    .await;
    let mut failed = Vec::new();
    for (e, r) in results {
        match r {
            Ok(()) => tracing::info!(container = %e.name, "stopped after its dump"),
            Err(err) => failed.push(format!("{}: {err:#}", e.name)),
        }
    }
    failed
}
