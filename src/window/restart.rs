//! The restart phase of the stop window: starting stopped containers again,
//! dependencies first, checking that they stay up, and waiting out the
//! engine's tear-downs before any start.

use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared, join_all};

use super::{ContainerControl, OpenWindow, StopRest, Timed, WindowReport, journal};

/// Starts journal entries (thaws the frozen ones), dependencies first: each one as soon as every
/// entry it depends on has started (or given up), not a whole wave at a
/// time, so one slow start holds back only what depends on it. Each start is
/// retried up to three times; a dependency that could not start does not hold
/// its dependents down.
pub(super) async fn start_entries<C: ContainerControl>(
    ctl: &C,
    entries: &[journal::Entry],
) -> (Vec<Timed>, Vec<String>) {
    type Start<'a> = Shared<BoxFuture<'a, (f64, Option<String>)>>;
    // Dependencies are in later waves: built first, so each dependent finds
    // theirs.
    let mut order: Vec<&journal::Entry> = entries.iter().collect();
    order.sort_by_key(|e| std::cmp::Reverse(e.wave));
    let mut starts: Vec<(&journal::Entry, Start<'_>)> = Vec::new();
    for e in order {
        let deps: Vec<Start<'_>> = starts
            .iter()
            .filter(|(d, _)| starts_after(e, d))
            .map(|(_, s)| s.clone())
            .collect();
        let start = async move {
            join_all(deps).await;
            let t = Instant::now();
            let mut last = None;
            for attempt in 0..3u64 {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_secs(attempt)).await;
                }
                let r = if e.frozen {
                    ctl.thaw(&e.id).await
                } else {
                    ctl.start(&e.id).await
                };
                match r {
                    Ok(()) => {
                        last = None;
                        break;
                    }
                    Err(err) => last = Some(format!("{err:#}")),
                }
            }
            (t.elapsed().as_secs_f64(), last)
        }
        .boxed()
        .shared();
        starts.push((e, start));
    }
    let results = join_all(starts.iter().map(|(e, s)| {
        let s = s.clone();
        async move { (*e, s.await) }
    }))
    .await;
    let mut started = Vec::new();
    let mut failed = Vec::new();
    for (e, (seconds, err)) in results {
        match err {
            None => {
                let how = if e.frozen { "thawed" } else { "started" };
                tracing::info!(container = %e.name, seconds, "{how}");
                started.push(Timed {
                    container: e.name.clone(),
                    seconds,
                });
            }
            Some(err) => {
                tracing::error!(container = %e.name, error = %err, "could not start the container again");
                failed.push(format!("{}: {err}", e.name));
            }
        }
    }
    (started, failed)
}

/// True when `e` starts only after `d`: `d` is in a later wave and `e`
/// depends on it (every later wave, for a journal without dependencies).
fn starts_after(e: &journal::Entry, d: &journal::Entry) -> bool {
    d.wave > e.wave && e.after.as_ref().is_none_or(|after| after.contains(&d.id))
}

/// Of the `entries` that `started` names, those not running
/// [`ContainerControl::stay_up`] after their start, each as `name: why`. They
/// keep the journal, like a failed start: the next run or daemon start
/// starts them once more.
pub(super) async fn exited_after_start<C: ContainerControl>(
    ctl: &C,
    entries: &[journal::Entry],
    started: &[Timed],
) -> Vec<String> {
    let started: Vec<&journal::Entry> = entries
        .iter()
        .filter(|e| started.iter().any(|t| t.container == e.name))
        .collect();
    if started.is_empty() {
        return vec![];
    }
    let wait = ctl.stay_up();
    tokio::time::sleep(wait).await;
    let checked = join_all(
        started
            .iter()
            .map(|e| async move { (e, ctl.is_running(&e.id).await) }),
    )
    .await;
    let mut exited = Vec::new();
    for (e, running) in checked {
        let why = match running {
            Ok(true) => continue,
            Ok(false) => format!(
                "exited within {:.1} s of its start (`docker logs {}` says why)",
                wait.as_secs_f64(),
                e.name
            ),
            Err(err) => format!("cannot check that it runs: {err:#}"),
        };
        tracing::error!(container = %e.name, reason = %why, "a container did not stay up after its start");
        exited.push(format!("{}: {why}", e.name));
    }
    exited
}

/// Awaits the stop calls still tearing their container down, so that no start
/// races the engine's own clean-up. Their containers are down already, so a
/// failure here is only logged: the container is started like the others.
pub(super) async fn settle(rests: Vec<(String, StopRest)>, timeout: Duration) {
    if rests.is_empty() {
        return;
    }
    let limit = timeout.saturating_add(Duration::from_secs(30));
    for (name, r) in join_all(
        rests
            .into_iter()
            .map(|(name, rest)| async move { (name, tokio::time::timeout(limit, rest).await) }),
    )
    .await
    {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(container = %name, error = %format!("{e:#}"), "the engine's stop call failed after the container was down")
            }
            Err(_) => {
                tracing::warn!(container = %name, "the engine's stop call did not return after the container was down")
            }
        }
    }
}

impl<C: ContainerControl> OpenWindow<'_, C> {
    /// Closes the window: on every path, but for a final backup whose work
    /// succeeded. Waits out the engine's tear-downs, takes over what a
    /// window inside this one left stopped, starts everything stopped again
    /// and checks that it stays up, then clears the journal, or keeps in it
    /// what does not run again. Returns the window's report.
    pub(super) async fn close(mut self) -> WindowReport {
        // The engine first finishes its tear-downs.
        settle(std::mem::take(&mut self.rests), self.timeout).await;
        self.take_over_inner();
        self.restart().await;
        self.close_journal()
    }

    /// What a window opened inside this one named and did not start (the
    /// work was dropped on a signal in the middle of it) is started too.
    fn take_over_inner(&mut self) {
        if let Ok(Some(now)) = self.journal.read() {
            for e in now.stopped {
                if !self.outer.stopped.contains(&e) && !self.state.stopped.contains(&e) {
                    tracing::warn!(container = %e.name, "stopped by a window inside this one, which did not close: starting it too");
                    self.state.stopped.push(e);
                }
            }
        }
    }

    /// Starts every container the window stopped and checks that each stays
    /// up; reports what started, what did not, and the window's length.
    async fn restart(&mut self) {
        let (started, mut failed) = start_entries(self.ctl, &self.state.stopped).await;
        self.report.seconds = self.opened.elapsed().as_secs_f64();
        failed.extend(exited_after_start(self.ctl, &self.state.stopped, &started).await);
        self.report.started = started;
        self.report.restart_failed = failed;
    }

    /// Clears the journal once everything runs again (back to the outer
    /// window's journal, for a window inside another); otherwise marks it
    /// closed, its failed containers kept for the next run. A journal that
    /// cannot be written is only logged. Returns the window's report.
    fn close_journal(self) -> WindowReport {
        let (journal, outer) = (self.journal, &self.outer);
        if self.report.restart_failed.is_empty() {
            let closed = if outer.stopped.is_empty() {
                journal.close(self.run_id, self.state.left_down_by, self.state.left_down)
            } else {
                // Back to the journal of the window this one was opened inside.
                journal.write(&journal::State {
                    run_id: outer.run_id.clone(),
                    stopped: outer.stopped.clone(),
                    left_down: self.state.left_down,
                    left_down_by: self.state.left_down_by,
                    opened: outer.opened,
                    limit: outer.limit,
                    closed: false,
                })
            };
            if let Err(e) = closed {
                tracing::warn!(error = %format!("{e:#}"), "could not clear the stop journal");
            }
        } else if outer.stopped.is_empty() {
            // Closed, its failed containers kept for the next run: not a window
            // whose owner died.
            let kept = journal::State {
                closed: true,
                ..self.journaled()
            };
            if let Err(e) = journal.write(&kept) {
                tracing::warn!(error = %format!("{e:#}"), "could not mark the stop journal closed");
            }
        }
        self.report
    }
}
