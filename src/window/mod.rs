//! The stop window: stop what must be stopped, run the work, and start again
//! what was stopped — whatever the work returned, whether it failed, panicked
//! or was interrupted by a signal.
//!
//! `Drop` cannot await in async Rust, so the restart is not a guard: it is the
//! explicit last step of [`with_stop_window`], which owns the work as a future
//! and cannot return before the restart ran. A process killed outright (SIGKILL)
//! leaves its [`Journal`]; [`recover`] restarts from it on the next start-up.

mod engine;
pub mod journal;
mod leave_down;
mod limit;
mod restart;
mod stop;
mod work;

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};

pub use crate::engine::stop::StopRest;
use crate::plan::StopEntry;
pub use crate::report::{Timed, WindowReport};
pub use crate::shutdown::{Shutdown, ShutdownTrigger};
use journal::Journal;
use limit::Deadline;
use restart::start_entries;
use work::run_work;

/// Stopping and starting containers: the engine, or a fake in tests.
pub trait ContainerControl: Sync {
    /// Stops a container, giving it `timeout` before the engine kills it.
    /// Returns once the container is down: its processes gone. What the
    /// engine still does then (tearing the container down) may come back as
    /// a [`StopRest`], which the window awaits before it starts anything.
    fn stop(
        &self,
        id: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<Option<StopRest>>> + Send;
    /// Starts a container (a running one is left alone).
    fn start(&self, id: &str) -> impl Future<Output = Result<()>> + Send;
    /// Freezes a container: the engine's pause, the cgroup freezer. Returns
    /// once its processes are frozen. An error means it was not frozen (a
    /// swarm service, an engine without the freezer): the window stops it
    /// instead. The default cannot freeze.
    fn freeze(&self, id: &str) -> impl Future<Output = Result<()>> + Send {
        let id = id.to_string();
        async move { Err(anyhow!("this engine cannot pause container {id}")) }
    }
    /// Thaws a container the window froze. One that is not frozen (a journal
    /// says frozen, but it was stopped since) is started instead, so that
    /// it runs again either way. The default starts it.
    fn thaw(&self, id: &str) -> impl Future<Output = Result<()>> + Send {
        self.start(id)
    }
    /// True when the container runs now.
    fn is_running(&self, id: &str) -> impl Future<Output = Result<bool>> + Send;
    /// How long a started container must keep running to count as running
    /// again: one whose command exits at once (a broken configuration, a
    /// mount gone) is reported, not taken for running.
    fn stay_up(&self) -> Duration {
        STAY_UP
    }
    /// Runs the container's pre-stop hook (`stackshot.exec.pre-stop`), when
    /// it has one, just before it is stopped. The default has none to run.
    fn before_stop(&self, entry: &StopEntry) -> impl Future<Output = Result<()>> + Send {
        let _ = entry;
        async { Ok(()) }
    }
}

/// The default of [`ContainerControl::stay_up`]. A second: the window is
/// measured before it, so it lengthens the run, not the stack's downtime.
pub const STAY_UP: Duration = Duration::from_secs(1);

/// The window's times: how long each container is given to stop, and how
/// long the window may stay open (`WINDOW_LIMIT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    /// Given to each container to stop (`STOP_TIMEOUT`) before the engine kills it.
    pub stop: Duration,
    /// From the first stop to the end of the work: when it is reached, the
    /// work is abandoned and the window closes. `None`: no limit (a window
    /// opened inside another, whose limit holds; a restore).
    pub limit: Option<Duration>,
    /// Whether the entries that ask for it ([`StopEntry::freeze`]) are
    /// frozen instead of stopped: only a backup's window, whose work reads.
    /// A restore writes under its containers and always stops them.
    pub freeze: bool,
}

impl From<Duration> for Times {
    /// A window without a limit or freezing, its containers given `stop` to stop.
    fn from(stop: Duration) -> Times {
        Times {
            stop,
            limit: None,
            freeze: false,
        }
    }
}

/// Restarts the containers named by a journal that an earlier run left behind
/// (it died inside its window). Returns the names restarted; clears the journal
/// when every one of them runs again. What a `backup --no-restart` left down
/// is never started: it is logged, and dropped from the journal once it runs
/// again (started by hand).
pub async fn recover<C: ContainerControl>(ctl: &C, journal: &Journal) -> Result<Vec<String>> {
    let Some(state) = journal.read()? else {
        return Ok(vec![]);
    };
    let mut left_down = Vec::new();
    for e in state.left_down {
        // A container gone or unreadable stays in the record.
        if !ctl.is_running(&e.id).await.unwrap_or(false) {
            left_down.push(e);
        }
    }
    let by = state.left_down_by.or(Some(state.run_id.clone()));
    if !left_down.is_empty() {
        let names: Vec<&str> = left_down.iter().map(|e| e.name.as_str()).collect();
        tracing::warn!(
            run = by.as_deref().unwrap_or(""),
            containers = ?names,
            "left down by `stackshot backup --no-restart`; not starting them (start them with `docker compose start`)"
        );
    }
    if state.stopped.is_empty() {
        journal.close(&state.run_id, by, left_down)?;
        return Ok(vec![]);
    }
    tracing::warn!(
        run = %state.run_id,
        containers = state.stopped.len(),
        "a previous run died inside its stop window; starting its containers again"
    );
    let (started, failed) = start_entries(ctl, &state.stopped).await;
    if !failed.is_empty() {
        return Err(anyhow!(
            "could not start again containers of an interrupted run: {}; start them by hand (docker start …), then delete {}",
            failed.join("; "),
            journal.path().display()
        ));
    }
    journal.close(&state.run_id, by, left_down)?;
    Ok(started.into_iter().map(|t| t.container).collect())
}

/// The one check after a stop window closed: `work`'s own result when every
/// container the window stopped runs again. Otherwise an error that names
/// them first, with `work`'s error after them, and says what to do: the
/// journal keeps them, so the next run or the sidecar's next start starts
/// them again, and `docker start` does it now. Pure.
pub fn running_again<T>(
    restart_failed: &[String],
    journal: &Journal,
    work: Result<T>,
) -> Result<T> {
    if restart_failed.is_empty() {
        return work;
    }
    let also = work
        .err()
        .map(|e| format!("; also: {e:#}"))
        .unwrap_or_default();
    Err(anyhow!(
        "containers are NOT running again: {}; {} keeps them, and stackshot starts them at its next run or start-up (or now: docker start NAME){also}",
        restart_failed.join("; "),
        journal.path().display()
    ))
}

/// Opens the stop window over `stops`, runs `work`, and closes the window.
///
/// Every container this call stopped is started again before it returns, on
/// every path: `work` succeeded, failed, panicked, a stop failed midway, or
/// `shutdown` fired. Containers already stopped stay stopped. The journal
/// names each container before it is stopped and is cleared once all run again.
pub async fn with_stop_window<C, T, Fut>(
    ctl: &C,
    journal: &Journal,
    run_id: &str,
    stops: &[StopEntry],
    times: impl Into<Times>,
    shutdown: &Shutdown,
    work: impl FnOnce() -> Fut,
) -> (Result<T>, WindowReport)
where
    C: ContainerControl,
    Fut: Future<Output = Result<T>>,
{
    window(
        ctl,
        journal,
        run_id,
        stops,
        times.into(),
        shutdown,
        None,
        work,
    )
    .await
}

/// The window of a final backup (`backup --no-restart`): like
/// [`with_stop_window`], except that when `work` succeeds nothing is started
/// again, and the containers of `then_stop` (the databases, dumped by then)
/// are stopped too. All of them are kept in the journal as
/// [`left_down`](journal::State::left_down), which no later start-up
/// "recovers". When `work` fails, every container it stopped is started
/// again, as in any window: a final backup that did not happen leaves the
/// stack as it found it.
#[allow(clippy::too_many_arguments)]
pub async fn with_final_stop_window<C, T, Fut>(
    ctl: &C,
    journal: &Journal,
    run_id: &str,
    stops: &[StopEntry],
    then_stop: &[StopEntry],
    times: impl Into<Times>,
    shutdown: &Shutdown,
    work: impl FnOnce() -> Fut,
) -> (Result<T>, WindowReport)
where
    C: ContainerControl,
    Fut: Future<Output = Result<T>>,
{
    window(
        ctl,
        journal,
        run_id,
        stops,
        times.into(),
        shutdown,
        Some(then_stop),
        work,
    )
    .await
}

/// The state of an open stop window, from its opening to its close: what it
/// stopped and journaled, what the journal named before it, and its report.
struct OpenWindow<'a, C> {
    /// Stops and starts the containers.
    ctl: &'a C,
    /// The journal each container is written to before it is stopped.
    journal: &'a Journal,
    /// The run that opened the window.
    run_id: &'a str,
    /// Given to each container to stop.
    timeout: Duration,
    /// Whether entries that ask to be frozen are ([`Times::freeze`]).
    freeze: bool,
    /// What the journal named when the window opened. It stays in it: what
    /// an earlier final backup left down, and the containers of a window
    /// this one is opened inside (a Redis load inside `restore all`'s),
    /// which that window starts.
    outer: journal::State,
    /// This window's own journal: what it stopped, and what stays down.
    state: journal::State,
    /// Stop calls still tearing their container down: (name, the rest).
    rests: Vec<(String, StopRest)>,
    /// When the window opened, for its length.
    opened: Instant,
    /// When the window reaches its limit, if it has one.
    deadline: Option<Deadline>,
    /// What the window did so far.
    report: WindowReport,
}

impl<'a, C: ContainerControl> OpenWindow<'a, C> {
    /// Opens a window: reads what the journal names already, and starts this
    /// window's journal and clock. Nothing is stopped yet.
    fn open(ctl: &'a C, journal: &'a Journal, run_id: &'a str, times: Times) -> Self {
        let report = WindowReport::default();
        let outer = journal.read().ok().flatten().unwrap_or_default();
        let (left_down_by, left_down) = outer.left_down_record();
        // A window inside another keeps the outer one's opening and limit.
        let state = journal::State {
            run_id: run_id.to_string(),
            stopped: vec![],
            left_down,
            left_down_by,
            opened: outer
                .opened
                .filter(|_| !outer.stopped.is_empty())
                .or(Some(chrono::Utc::now().timestamp())),
            limit: outer
                .limit
                .filter(|_| !outer.stopped.is_empty())
                .or(times.limit.map(|l| l.as_secs())),
            closed: false,
        };
        OpenWindow {
            ctl,
            journal,
            run_id,
            timeout: times.stop,
            freeze: times.freeze,
            outer,
            state,
            rests: Vec::new(),
            opened: Instant::now(),
            deadline: Deadline::from_now(times.limit),
            report,
        }
    }

    /// The journal to write: this window's, with the containers of the
    /// window it is opened inside first.
    fn journaled(&self) -> journal::State {
        journal::State {
            stopped: self
                .outer
                .stopped
                .iter()
                .chain(&self.state.stopped)
                .cloned()
                .collect(),
            ..self.state.clone()
        }
    }
}

/// The stop window of [`with_stop_window`] and [`with_final_stop_window`],
/// in four steps:
///
/// 1. [open](OpenWindow::open) it: read what the journal names already;
/// 2. [stop](OpenWindow::stop_waves) the containers of `stops` wave by
///    wave, each one journaled before it stops;
/// 3. [run](run_work) `work`, when every wave stopped, until it returns,
///    panics, `shutdown` fires or the window reaches its limit;
/// 4. close it: after a final backup (`then_stop`) whose work succeeded,
///    [leave](OpenWindow::leave_down) everything down; on every other path,
///    [start](OpenWindow::close) again all it stopped and clear the journal.
#[allow(clippy::too_many_arguments)]
async fn window<C, T, Fut>(
    ctl: &C,
    journal: &Journal,
    run_id: &str,
    stops: &[StopEntry],
    times: Times,
    shutdown: &Shutdown,
    then_stop: Option<&[StopEntry]>,
    work: impl FnOnce() -> Fut,
) -> (Result<T>, WindowReport)
where
    C: ContainerControl,
    Fut: Future<Output = Result<T>>,
{
    // A final backup leaves its containers down: stopped, never frozen.
    let times = Times {
        freeze: times.freeze && then_stop.is_none(),
        ..times
    };
    let mut open = OpenWindow::open(ctl, journal, run_id, times);
    let result = match open.stop_waves(stops, shutdown).await {
        Ok(()) => run_work(work, shutdown, open.deadline).await,
        Err(e) => {
            open.report.stop_failed = Some(format!("{e:#}"));
            Err(e)
        }
    };
    // A final backup that succeeded leaves everything down.
    if let (Some(then_stop), Ok(_)) = (then_stop, &result) {
        let (left, report) = open.leave_down(then_stop).await;
        return (left.and(result), report);
    }
    // Close the window: always.
    (result, open.close().await)
}

#[cfg(test)]
mod tests;
