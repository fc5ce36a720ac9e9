//! The stop phase of the stop window: the containers of the plan stopped
//! (or frozen) wave by wave, dependents first, each one journaled before it
//! stops.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use futures_util::future::join_all;

use super::limit::limit_reached;
use super::{ContainerControl, OpenWindow, Shutdown, StopRest, Timed, journal};
use crate::plan::StopEntry;

impl<C: ContainerControl> OpenWindow<'_, C> {
    /// Stops the containers of `stops`, a wave at a time. Before each wave:
    /// the window must still be open (no signal, the limit not reached);
    /// then its containers still running are found, their pre-stop hooks
    /// run, they are journaled, and they are stopped together. An error
    /// says why the stopping ended early; then the work does not run, and
    /// what stopped is started again like on any other path.
    pub(super) async fn stop_waves(
        &mut self,
        stops: &[StopEntry],
        shutdown: &Shutdown,
    ) -> Result<()> {
        for wave in waves(stops) {
            self.still_open(shutdown)?;
            let entries = self.running_in(stops, wave).await?;
            if entries.is_empty() {
                continue;
            }
            pre_stop_hooks(self.ctl, stops, wave, &entries).await?;
            self.journal_wave(&entries)?;
            self.stop_wave(&entries).await?;
        }
        Ok(())
    }

    /// Errs when no further wave may be stopped: `shutdown` fired, or the
    /// window reached its limit.
    fn still_open(&self, shutdown: &Shutdown) -> Result<()> {
        if let Some(reason) = shutdown.requested() {
            bail!("interrupted by {reason} while stopping containers");
        }
        if let Some(deadline) = self.deadline
            && deadline.passed()
        {
            return Err(limit_reached(
                deadline.limit,
                &["stopping containers".to_string()],
            ));
        }
        Ok(())
    }

    /// The journal entries of the containers of `wave` that run now; those
    /// not running are reported, and stay stopped.
    async fn running_in(
        &mut self,
        stops: &[StopEntry],
        wave: usize,
    ) -> Result<Vec<journal::Entry>> {
        let mut entries = Vec::new();
        for s in stops.iter().filter(|s| s.wave == wave) {
            match self.ctl.is_running(&s.container.id).await {
                Ok(true) => entries.push(entry_of(s, self.freeze)),
                Ok(false) => self.report.not_running.push(s.container.container.clone()),
                Err(e) => {
                    return Err(
                        e.context(format!("cannot check container {}", s.container.container))
                    );
                }
            }
        }
        Ok(entries)
    }

    /// Writes the journal with a wave's `entries` in it, before any of them
    /// stops. When it cannot be written, the wave is forgotten again: none of
    /// it is stopped.
    fn journal_wave(&mut self, entries: &[journal::Entry]) -> Result<()> {
        self.state.stopped.extend(entries.iter().cloned());
        if let Err(e) = self.journal.write(&self.journaled()) {
            // Nothing of this wave is stopped yet: forget it and close the window.
            self.state.stopped.retain(|s| !entries.contains(s));
            return Err(
                e.context("cannot write the stop journal; no further container was stopped")
            );
        }
        Ok(())
    }

    /// Stops (or freezes) a wave's `entries` together, reporting each one
    /// and keeping each stop's tear-down for later. A container that cannot
    /// be frozen is stopped instead, and the report says why. Errs with the
    /// first stop that failed, once every call of the wave returned.
    async fn stop_wave(&mut self, entries: &[journal::Entry]) -> Result<()> {
        let (ctl, timeout) = (self.ctl, self.timeout);
        let results = join_all(entries.iter().map(|e| async move {
            let t = Instant::now();
            let held = hold(ctl, e, timeout).await;
            (e, t.elapsed().as_secs_f64(), held)
        }))
        .await;
        let mut failure = None;
        for (e, seconds, held) in results {
            let timed = Timed {
                container: e.name.clone(),
                seconds,
            };
            let r = match held {
                Held::Frozen => {
                    tracing::info!(container = %e.name, seconds, "frozen");
                    self.report.frozen.push(timed);
                    continue;
                }
                Held::Stopped(r) => r,
                Held::FellBack(why, r) => {
                    tracing::warn!(container = %e.name, reason = %why, "could not freeze the container; stopping it instead");
                    self.report
                        .freeze_fell_back
                        .push(format!("{}: {why}", e.name));
                    self.unfreeze_entry(&e.id);
                    r
                }
            };
            match r {
                Ok(rest) => {
                    tracing::info!(container = %e.name, seconds, "stopped");
                    self.report.stopped.push(timed);
                    self.rests.extend(rest.map(|r| (e.name.clone(), r)));
                }
                Err(err) => {
                    let msg = format!("could not stop {}: {err:#}", e.name);
                    tracing::error!("{msg}");
                    failure.get_or_insert_with(|| anyhow!(msg));
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// Marks the journaled entry `id` as stopped, not frozen, once a freeze
    /// fell back to a stop, so that the close starts it. The journal on disk
    /// is rewritten too; if that fails, a recovery's thaw still starts a
    /// container that is not frozen.
    fn unfreeze_entry(&mut self, id: &str) {
        for e in self.state.stopped.iter_mut().filter(|e| e.id == id) {
            e.frozen = false;
        }
        if let Err(e) = self.journal.write(&self.journaled()) {
            tracing::warn!(error = %format!("{e:#}"), "could not rewrite the stop journal after a freeze fell back to a stop");
        }
    }
}

/// How a container was held for the window.
enum Held {
    /// Frozen.
    Frozen,
    /// Stopped (or the stop's error).
    Stopped(Result<Option<StopRest>>),
    /// Not frozen, for the reason given; stopped instead (or the stop's error).
    FellBack(String, Result<Option<StopRest>>),
}

/// Holds one journaled container for the window: freezes it when its entry
/// says so, and stops it when it does not or when the freeze fails.
async fn hold<C: ContainerControl>(ctl: &C, e: &journal::Entry, timeout: Duration) -> Held {
    if e.frozen {
        // A pause returns once the freezer holds every process: seconds at most.
        match tokio::time::timeout(Duration::from_secs(30), ctl.freeze(&e.id)).await {
            Ok(Ok(())) => return Held::Frozen,
            Ok(Err(err)) => return Held::FellBack(format!("{err:#}"), stop(ctl, e, timeout).await),
            Err(_) => {
                // A freeze that did not answer may still land: thaw first.
                let _ = ctl.thaw(&e.id).await;
                return Held::FellBack(
                    "the engine's pause did not return within 30 s".into(),
                    stop(ctl, e, timeout).await,
                );
            }
        }
    }
    Held::Stopped(stop(ctl, e, timeout).await)
}

/// Stops one container; the engine kills it after `timeout`, and the outer
/// limit guards a hung engine.
async fn stop<C: ContainerControl>(
    ctl: &C,
    e: &journal::Entry,
    timeout: Duration,
) -> Result<Option<StopRest>> {
    tokio::time::timeout(
        timeout.saturating_add(Duration::from_secs(30)),
        ctl.stop(&e.id, timeout),
    )
    .await
    .unwrap_or_else(|_| Err(anyhow!("timed out stopping {}", e.name)))
}

/// The waves of `stops`, in their order (dependents first).
fn waves(stops: &[StopEntry]) -> Vec<usize> {
    let mut waves: Vec<usize> = stops.iter().map(|s| s.wave).collect();
    waves.dedup();
    waves
}

/// Runs the pre-stop hooks of `wave`'s running containers (`entries`), before
/// any of them stops. Errs with the first hook that failed: then none of the
/// wave is stopped.
async fn pre_stop_hooks<C: ContainerControl>(
    ctl: &C,
    stops: &[StopEntry],
    wave: usize,
    entries: &[journal::Entry],
) -> Result<()> {
    let hooked = join_all(
        stops
            .iter()
            .filter(|s| s.wave == wave && entries.iter().any(|e| e.id == s.container.id))
            .map(|s| ctl.before_stop(s)),
    )
    .await;
    if let Some(e) = hooked.into_iter().find_map(Result::err) {
        return Err(e.context("a pre-stop hook failed; its wave was not stopped"));
    }
    Ok(())
}

/// The journal entry of a container to stop, frozen when it asks for it and
/// the window may `freeze`.
pub(super) fn entry_of(s: &StopEntry, freeze: bool) -> journal::Entry {
    journal::Entry {
        id: s.container.id.clone(),
        name: s.container.container.clone(),
        wave: s.wave,
        after: Some(s.after.clone()),
        frozen: freeze && s.freeze,
    }
}
