//! Every exit path of the stop window, with a recording fake engine. (The real
//! engine is exercised by the end-to-end tests.)

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use super::*;
use crate::plan::{ContainerRef, StopEntry};

#[derive(Default)]
struct Fake {
    running: Mutex<BTreeSet<String>>,
    log: Arc<Mutex<Vec<String>>>,
    fail_stop: BTreeSet<String>,
    /// Each stop returns once the container is down, and hands back its
    /// tear-down, which takes this long (zero: a stop returns when all is done).
    tear_down: Duration,
    /// The tear-downs of these containers fail.
    fail_tear_down: BTreeSet<String>,
    /// Starts of this container fail this many times.
    fail_start: Mutex<BTreeMap<String, usize>>,
    /// The journal, checked at each stop.
    journal: Option<Journal>,
    /// How long each stop and start takes (zero: they never await).
    delay: Duration,
    /// (`stop`/`start`, id, began, ended) of every call.
    spans: Mutex<Vec<(&'static str, String, Instant, Instant)>>,
    /// Pre-stop hooks of these containers fail.
    fail_hook: BTreeSet<String>,
    /// These containers start, then exit at once (their command fails).
    exit_after_start: BTreeSet<String>,
    /// (id, how many `log` lines there were) at each `is_running`.
    checks: Mutex<Vec<(String, usize)>>,
    /// The containers frozen now (still running, as the engine says).
    frozen: Mutex<BTreeSet<String>>,
    /// Freezes of these containers fail.
    fail_freeze: BTreeSet<String>,
}

impl Fake {
    fn new(running: &[&str]) -> Fake {
        Fake {
            running: Mutex::new(running.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }
    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
    fn running(&self) -> BTreeSet<String> {
        self.running.lock().unwrap().clone()
    }
}

impl ContainerControl for Fake {
    async fn stop(&self, id: &str, _timeout: Duration) -> Result<Option<StopRest>> {
        let began = Instant::now();
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
            self.spans
                .lock()
                .unwrap()
                .push(("stop", id.to_string(), began, Instant::now()));
        }
        if let Some(j) = &self.journal {
            let state = j.read().unwrap().expect("journal written before the stop");
            assert!(
                state
                    .stopped
                    .iter()
                    .chain(&state.left_down)
                    .any(|e| e.id == id),
                "{id} not journaled before its stop"
            );
        }
        self.log.lock().unwrap().push(format!("stop {id}"));
        if self.fail_stop.contains(id) {
            return Err(anyhow!("engine refused"));
        }
        self.running.lock().unwrap().remove(id);
        if self.tear_down.is_zero() {
            return Ok(None);
        }
        let (log, wait, id) = (self.log.clone(), self.tear_down, id.to_string());
        let fails = self.fail_tear_down.contains(&id);
        Ok(Some(Box::pin(async move {
            tokio::time::sleep(wait).await;
            log.lock().unwrap().push(format!("torn down {id}"));
            if fails {
                return Err(anyhow!("engine error while tearing {id} down"));
            }
            Ok(())
        })))
    }
    async fn start(&self, id: &str) -> Result<()> {
        let began = Instant::now();
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
            self.spans
                .lock()
                .unwrap()
                .push(("start", id.to_string(), began, Instant::now()));
        }
        self.log.lock().unwrap().push(format!("start {id}"));
        let mut fails = self.fail_start.lock().unwrap();
        if let Some(n) = fails.get_mut(id)
            && *n > 0
        {
            *n -= 1;
            return Err(anyhow!("engine refused"));
        }
        if !self.exit_after_start.contains(id) {
            self.running.lock().unwrap().insert(id.to_string());
        }
        Ok(())
    }
    async fn is_running(&self, id: &str) -> Result<bool> {
        let at = self.log.lock().unwrap().len();
        self.checks.lock().unwrap().push((id.to_string(), at));
        Ok(self.running.lock().unwrap().contains(id))
    }
    fn stay_up(&self) -> Duration {
        Duration::from_millis(10)
    }
    async fn freeze(&self, id: &str) -> Result<()> {
        if let Some(j) = &self.journal {
            let state = j
                .read()
                .unwrap()
                .expect("journal written before the freeze");
            assert!(
                state.stopped.iter().any(|e| e.id == id && e.frozen),
                "{id} not journaled as frozen before its freeze"
            );
        }
        self.log.lock().unwrap().push(format!("freeze {id}"));
        if self.fail_freeze.contains(id) {
            return Err(anyhow!("no freezer"));
        }
        self.frozen.lock().unwrap().insert(id.to_string());
        Ok(())
    }
    /// As the engine: a container that is not frozen is started.
    async fn thaw(&self, id: &str) -> Result<()> {
        if !self.frozen.lock().unwrap().remove(id) {
            return self.start(id).await;
        }
        self.log.lock().unwrap().push(format!("thaw {id}"));
        Ok(())
    }
    async fn before_stop(&self, entry: &StopEntry) -> Result<()> {
        let id = &entry.container.id;
        self.log.lock().unwrap().push(format!("hook {id}"));
        if self.fail_hook.contains(id) {
            return Err(anyhow!("hook exited with 1"));
        }
        Ok(())
    }
}

fn entry(id: &str, wave: usize) -> StopEntry {
    StopEntry {
        container: ContainerRef {
            project: "p".into(),
            service: id.into(),
            container: id.into(),
            id: id.into(),
        },
        wave,
        after: Vec::new(),
        running: true,
        pre_stop: None,
        freeze: false,
    }
}

/// `web` and `worker` depend on `app`.
fn stops() -> Vec<StopEntry> {
    let mut web = entry("web", 0);
    web.after = vec!["app".into()];
    let mut worker = entry("worker", 0);
    worker.after = vec!["app".into()];
    vec![web, worker, entry("app", 1)]
}

struct Bench {
    _dir: tempfile::TempDir,
    journal: Journal,
    fake: Fake,
}

fn bench(running: &[&str]) -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::in_dir(dir.path());
    let mut fake = Fake::new(running);
    fake.journal = Some(journal.clone());
    Bench {
        _dir: dir,
        journal,
        fake,
    }
}

const ALL: &[&str] = &["web", "worker", "app", "db"];

async fn window<T>(
    b: &Bench,
    shutdown: &Shutdown,
    work: impl Future<Output = Result<T>>,
) -> (Result<T>, WindowReport) {
    with_stop_window(
        &b.fake,
        &b.journal,
        "run-1",
        &stops(),
        Duration::from_secs(5),
        shutdown,
        || work,
    )
    .await
}

fn assert_all_back(b: &Bench) {
    assert_eq!(
        b.fake.running(),
        ALL.iter().map(|s| s.to_string()).collect()
    );
    assert_eq!(b.journal.read().unwrap(), None, "journal cleared");
}

#[tokio::test]
async fn success_stops_dependents_first_and_starts_in_reverse() {
    let b = bench(ALL);
    let (_t, never) = Shutdown::new();
    let (r, report) = window(&b, &never, async {
        // Inside the window: everything labelled is stopped, the database is not.
        assert_eq!(b.fake.running(), BTreeSet::from(["db".to_string()]));
        Ok(42)
    })
    .await;
    assert_eq!(r.unwrap(), 42);
    let log = b.fake.log();
    let pos = |s: &str| log.iter().position(|l| l == s).unwrap();
    assert!(
        pos("stop web") < pos("stop app") && pos("stop worker") < pos("stop app"),
        "{log:?}"
    );
    assert!(
        pos("start app") < pos("start web") && pos("start app") < pos("start worker"),
        "{log:?}"
    );
    assert_eq!(report.stopped.len(), 3);
    assert_eq!(report.started.len(), 3);
    assert_all_back(&b);
}

/// Stops and starts that take time: a wave begins only after every stop (or
/// start) of the wave before it has ended, and the containers of one wave are
/// stopped (and started) concurrently.
#[tokio::test]
async fn waves_wait_for_each_other_and_run_concurrently_inside() {
    let mut b = bench(ALL);
    b.fake.delay = Duration::from_millis(60);
    let (_t, never) = Shutdown::new();
    let (r, _) = window(&b, &never, async { Ok(()) }).await;
    r.unwrap();
    let spans = b.fake.spans.lock().unwrap().clone();
    let span = |kind: &str, id: &str| {
        spans
            .iter()
            .find(|(k, i, _, _)| *k == kind && i == id)
            .map(|(_, _, a, b)| (*a, *b))
            .unwrap_or_else(|| panic!("no {kind} of {id}: {spans:?}"))
    };
    let (web, worker, app) = (
        span("stop", "web"),
        span("stop", "worker"),
        span("stop", "app"),
    );
    assert!(
        app.0 >= web.1 && app.0 >= worker.1,
        "app (wave 1) stopped before wave 0 had stopped: {spans:?}"
    );
    assert!(
        web.0 < worker.1 && worker.0 < web.1,
        "the stops of one wave did not overlap: {spans:?}"
    );
    let (web, worker, app) = (
        span("start", "web"),
        span("start", "worker"),
        span("start", "app"),
    );
    assert!(
        web.0 >= app.1 && worker.0 >= app.1,
        "wave 0 started before app (its dependency) had started: {spans:?}"
    );
    assert!(
        web.0 < worker.1 && worker.0 < web.1,
        "the starts of one wave did not overlap: {spans:?}"
    );
}

#[tokio::test]
async fn failing_work_still_restarts() {
    let b = bench(ALL);
    let (_t, never) = Shutdown::new();
    let (r, report) = window::<()>(&b, &never, async { Err(anyhow!("dump failed")) }).await;
    assert_eq!(r.unwrap_err().to_string(), "dump failed");
    assert_eq!(report.started.len(), 3);
    assert_all_back(&b);
}

#[tokio::test]
async fn panicking_work_still_restarts() {
    let b = bench(ALL);
    let (_t, never) = Shutdown::new();
    let (r, _) = window::<()>(&b, &never, async { panic!("boom") }).await;
    assert!(r.unwrap_err().to_string().contains("panicked: boom"));
    assert_all_back(&b);
}

#[tokio::test]
async fn signal_inside_the_window_interrupts_the_work_and_restarts() {
    let b = bench(ALL);
    let (trigger, shutdown) = Shutdown::new();
    let (r, _) = window::<()>(&b, &shutdown, async {
        trigger.trigger("SIGTERM");
        std::future::pending::<()>().await;
        unreachable!()
    })
    .await;
    assert_eq!(
        r.unwrap_err().to_string(),
        "interrupted by SIGTERM inside the stop window"
    );
    assert_all_back(&b);
}

#[tokio::test]
async fn signal_before_the_window_stops_nothing() {
    let b = bench(ALL);
    let (trigger, shutdown) = Shutdown::new();
    trigger.trigger("SIGTERM");
    let (r, _) = window(&b, &shutdown, async { Ok(()) }).await;
    assert!(
        r.unwrap_err()
            .to_string()
            .contains("interrupted by SIGTERM")
    );
    assert!(b.fake.log().is_empty(), "{:?}", b.fake.log());
    assert_all_back(&b);
}

#[tokio::test]
async fn failed_stop_skips_the_work_and_restarts_what_stopped() {
    let mut b = bench(ALL);
    b.fake.fail_stop.insert("app".into());
    let (_t, never) = Shutdown::new();
    let ran = Mutex::new(false);
    let (r, report) = window(&b, &never, async {
        *ran.lock().unwrap() = true;
        Ok(())
    })
    .await;
    assert!(r.unwrap_err().to_string().contains("could not stop app"));
    assert!(
        !*ran.lock().unwrap(),
        "work must not run with a half-open window"
    );
    assert!(report.stop_failed.is_some());
    assert_all_back(&b);
}

#[tokio::test]
async fn container_already_stopped_stays_stopped() {
    let b = bench(&["web", "app", "db"]);
    let (_t, never) = Shutdown::new();
    let (r, report) = window(&b, &never, async { Ok(()) }).await;
    r.unwrap();
    assert_eq!(report.not_running, ["worker"]);
    assert!(
        !b.fake.log().iter().any(|l| l.ends_with("worker")),
        "{:?}",
        b.fake.log()
    );
    assert_eq!(
        b.fake.running(),
        BTreeSet::from(["web".into(), "app".into(), "db".into()])
    );
}

#[tokio::test]
async fn flaky_start_is_retried() {
    let b = bench(ALL);
    b.fake.fail_start.lock().unwrap().insert("app".into(), 2);
    let (_t, never) = Shutdown::new();
    let (r, report) = window(&b, &never, async { Ok(()) }).await;
    r.unwrap();
    assert!(report.restart_failed.is_empty());
    assert_all_back(&b);
}

#[tokio::test]
async fn failed_restart_keeps_the_journal_and_recover_finishes_it() {
    let b = bench(ALL);
    b.fake.fail_start.lock().unwrap().insert("app".into(), 10);
    let (_t, never) = Shutdown::new();
    let (r, report) = window(&b, &never, async { Ok(()) }).await;
    r.unwrap();
    assert_eq!(report.restart_failed.len(), 1);
    assert!(report.restart_failed[0].starts_with("app: "));
    let kept = b.journal.read().unwrap().expect("journal kept");
    assert_eq!(kept.stopped.len(), 3);
    // The next start-up: the engine works again.
    b.fake.fail_start.lock().unwrap().clear();
    let mut restarted = recover(&b.fake, &b.journal).await.unwrap();
    restarted.sort();
    assert_eq!(restarted, ["app", "web", "worker"]);
    assert_all_back(&b);
}

#[tokio::test]
async fn recover_after_a_killed_run() {
    // A run killed with SIGKILL inside its window left this journal behind.
    let b = bench(&["db"]);
    b.journal
        .write(&journal::State {
            run_id: "dead".into(),
            stopped: vec![
                journal::Entry {
                    id: "web".into(),
                    name: "web".into(),
                    wave: 0,
                    after: None,
                    frozen: false,
                },
                journal::Entry {
                    id: "app".into(),
                    name: "app".into(),
                    wave: 1,
                    after: None,
                    frozen: false,
                },
            ],
            ..Default::default()
        })
        .unwrap();
    let restarted = recover(&b.fake, &b.journal).await.unwrap();
    assert_eq!(restarted, ["app", "web"], "dependencies first");
    assert_eq!(b.journal.read().unwrap(), None);
    assert_eq!(
        recover(&b.fake, &b.journal).await.unwrap(),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn unwritable_journal_stops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"").unwrap();
    let journal = Journal::in_dir(&file.join("sub"));
    let fake = Fake::new(ALL);
    let (_t, never) = Shutdown::new();
    let (r, _) = with_stop_window(
        &fake,
        &journal,
        "r",
        &stops(),
        Duration::from_secs(1),
        &never,
        || async { Ok(()) },
    )
    .await;
    assert!(
        r.unwrap_err()
            .to_string()
            .contains("cannot write the stop journal")
    );
    // The first wave's pre-stop hooks ran; no container was stopped or started.
    assert!(
        fake.log().iter().all(|l| l.starts_with("hook ")),
        "{:?}",
        fake.log()
    );
}

#[tokio::test]
async fn pre_stop_hooks_run_before_their_wave_and_a_failing_one_stops_it() {
    let mut b = bench(ALL);
    b.fake.fail_hook = BTreeSet::from(["app".to_string()]);
    let (_t, never) = Shutdown::new();
    let (r, report) = window(&b, &never, async { Ok(()) }).await;
    let e = format!("{:#}", r.unwrap_err());
    assert!(
        e.starts_with("a pre-stop hook failed; its wave was not stopped"),
        "{e}"
    );
    let log = b.fake.log();
    let pos = |s: &str| log.iter().position(|l| l == s);
    // Wave 0: both hooks, then both stops; wave 1: the hook fails, app is never stopped.
    assert!(
        pos("hook web") < pos("stop web") && pos("hook worker") < pos("stop web"),
        "{log:?}"
    );
    assert!(pos("stop worker") < pos("hook app"), "{log:?}");
    assert_eq!(pos("stop app"), None, "{log:?}");
    assert_eq!(report.stopped.len(), 2);
    assert!(report.stop_failed.is_some());
    assert_all_back(&b);
}

#[tokio::test]
async fn a_container_that_exits_after_its_start_is_reported() {
    let mut b = bench(ALL);
    b.fake.exit_after_start.insert("app".into());
    let (_t, never) = Shutdown::new();
    let (r, report) = window(&b, &never, async { Ok(()) }).await;
    r.unwrap();
    assert_eq!(report.restart_failed.len(), 1, "{report:?}");
    assert!(
        report.restart_failed[0].starts_with("app: exited within 0.0 s of its start"),
        "{report:?}"
    );
    // The others run, each was checked after every start, and the journal
    // keeps the one that did not stay up.
    assert_eq!(
        b.fake.running(),
        BTreeSet::from(["web".into(), "worker".into(), "db".into()])
    );
    let log = b.fake.log();
    let starts = log.iter().filter(|l| l.starts_with("start ")).count();
    assert_eq!(starts, 3, "{log:?}");
    let after: Vec<String> = b
        .fake
        .checks
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, at)| *at == log.len())
        .map(|(id, _)| id.clone())
        .collect();
    let mut after = after;
    after.sort();
    assert_eq!(after, ["app", "web", "worker"], "checked after every start");
    assert!(b.journal.read().unwrap().is_some(), "journal cleared");
}

/// Starts follow the dependencies, not whole waves: with two chains
/// (`web` → `app`, `worker` → `db`), `web` starts as soon as `app` has,
/// while `db`'s start is still being retried (a second's pause), and
/// `worker` waits for `db`.
#[tokio::test]
async fn a_dependent_starts_once_its_own_dependencies_have() {
    let b = bench(ALL);
    let mut web = entry("web", 0);
    web.after = vec!["app".into()];
    let mut worker = entry("worker", 0);
    worker.after = vec!["db".into()];
    let chains = vec![web, worker, entry("app", 1), entry("db", 1)];
    b.fake.fail_start.lock().unwrap().insert("db".into(), 1);
    let (_t, never) = Shutdown::new();
    let (r, report) = with_stop_window(
        &b.fake,
        &b.journal,
        "run-1",
        &chains,
        Duration::from_secs(5),
        &never,
        || async { Ok(()) },
    )
    .await;
    r.unwrap();
    let log = b.fake.log();
    let starts: Vec<&str> = log
        .iter()
        .filter_map(|l| l.strip_prefix("start "))
        .collect();
    // db's first start fails; app, then web, start during its retry's pause;
    // worker follows db's second start.
    assert_eq!(starts, ["app", "db", "web", "db", "worker"], "{log:?}");
    assert_eq!(report.started.len(), 4);
    assert!(report.restart_failed.is_empty());
    assert_all_back(&b);
}

/// A stop that returns when its container is down (the engine still tearing
/// it down): the work begins then, beside the tear-downs, and nothing is
/// started again before every tear-down has ended.
#[tokio::test]
async fn the_work_begins_when_all_are_down_and_starts_wait_for_the_tear_downs() {
    let mut b = bench(ALL);
    b.fake.tear_down = Duration::from_millis(80);
    let (_t, never) = Shutdown::new();
    let log = b.fake.log.clone();
    let (r, report) = window(&b, &never, async {
        log.lock().unwrap().push("work".into());
        assert_eq!(b.fake.running(), BTreeSet::from(["db".to_string()]));
        Ok(())
    })
    .await;
    r.unwrap();
    let log = b.fake.log();
    let pos = |s: &str| {
        log.iter()
            .position(|l| l == s)
            .unwrap_or_else(|| panic!("no {s}: {log:?}"))
    };
    for id in ["web", "worker", "app"] {
        assert!(
            pos("work") < pos(&format!("torn down {id}")),
            "the work waited for {id}'s tear-down: {log:?}"
        );
        for started in ["web", "worker", "app"] {
            assert!(
                pos(&format!("torn down {id}")) < pos(&format!("start {started}")),
                "{started} started before {id} was torn down: {log:?}"
            );
        }
    }
    assert_eq!(report.stopped.len(), 3);
    assert!(report.restart_failed.is_empty());
    assert_all_back(&b);
}

/// A tear-down that fails after its container was down does not fail the
/// window (the container was down for the work): it is started like the rest.
#[tokio::test]
async fn a_failed_tear_down_still_starts_its_container() {
    let mut b = bench(ALL);
    b.fake.tear_down = Duration::from_millis(10);
    b.fake.fail_tear_down = BTreeSet::from(["app".to_string()]);
    let (_t, never) = Shutdown::new();
    let (r, report) = window(&b, &never, async { Ok(7) }).await;
    assert_eq!(r.unwrap(), 7);
    assert_eq!(report.started.len(), 3);
    assert_all_back(&b);
}

/// A stop that fails in a later wave: the tear-downs of the waves before are
/// still awaited before their containers start again.
#[tokio::test]
async fn a_failed_stop_still_waits_for_the_earlier_tear_downs() {
    let mut b = bench(ALL);
    b.fake.tear_down = Duration::from_millis(50);
    b.fake.fail_stop = BTreeSet::from(["app".to_string()]);
    let (_t, never) = Shutdown::new();
    let (r, _) = window::<()>(&b, &never, async { panic!("the work must not run") }).await;
    assert!(r.unwrap_err().to_string().contains("could not stop app"));
    let log = b.fake.log();
    let pos = |s: &str| log.iter().position(|l| l == s).unwrap();
    assert!(pos("torn down web") < pos("start web"), "{log:?}");
    assert!(pos("torn down worker") < pos("start worker"), "{log:?}");
    assert_all_back(&b);
}

/// `backup --no-restart`: the window's containers, then the database.
async fn final_window<T>(
    b: &Bench,
    work: impl Future<Output = Result<T>>,
) -> (Result<T>, WindowReport) {
    let (_t, never) = Shutdown::new();
    with_final_stop_window(
        &b.fake,
        &b.journal,
        "final",
        &stops(),
        &[entry("db", 0)],
        Duration::from_secs(5),
        &never,
        || work,
    )
    .await
}

#[tokio::test]
async fn a_final_backup_leaves_everything_down_and_no_start_up_recovers_it() {
    let b = bench(ALL);
    let (r, report) = final_window(&b, async {
        // The database runs through the work (its dump), the rest is down.
        assert_eq!(b.fake.running(), BTreeSet::from(["db".to_string()]));
        Ok(())
    })
    .await;
    r.unwrap();
    assert!(b.fake.running().is_empty(), "{:?}", b.fake.running());
    assert!(
        !b.fake.log().iter().any(|l| l.starts_with("start")),
        "{:?}",
        b.fake.log()
    );
    let mut left = report.left_down.clone();
    left.sort();
    assert_eq!(left, ["app", "db", "web", "worker"]);
    assert!(report.started.is_empty());
    let kept = b.journal.read().unwrap().expect("journal kept");
    assert!(kept.stopped.is_empty(), "nothing for a start-up to restart");
    assert_eq!(kept.left_down.len(), 4);
    // A daemon start-up (or the next run) starts none of them, and keeps the record.
    assert!(recover(&b.fake, &b.journal).await.unwrap().is_empty());
    assert!(b.fake.running().is_empty());
    assert_eq!(b.journal.left_down().1.len(), 4);
    // A later ordinary window keeps the record too, and starts only its own.
    b.fake.running.lock().unwrap().insert("app".into());
    let (_t, never) = Shutdown::new();
    let (r, _) = with_stop_window(
        &b.fake,
        &b.journal,
        "later",
        &[entry("app", 0)],
        Duration::from_secs(5),
        &never,
        || async { Ok(()) },
    )
    .await;
    r.unwrap();
    assert_eq!(b.fake.running(), BTreeSet::from(["app".to_string()]));
    // Started by hand, app leaves the record at the next recovery; the rest stay.
    recover(&b.fake, &b.journal).await.unwrap();
    let (by, left) = b.journal.left_down();
    assert_eq!(by.as_deref(), Some("final"));
    let mut names: Vec<String> = left.into_iter().map(|e| e.name).collect();
    names.sort();
    assert_eq!(names, ["db", "web", "worker"]);
    // Everything started by hand: the journal goes.
    *b.fake.running.lock().unwrap() = ALL.iter().map(|s| s.to_string()).collect();
    recover(&b.fake, &b.journal).await.unwrap();
    assert_eq!(b.journal.read().unwrap(), None);
}

#[tokio::test]
async fn a_final_backup_that_fails_starts_everything_again() {
    let b = bench(ALL);
    let (r, report) = final_window(&b, async { Err::<(), _>(anyhow!("snapshot failed")) }).await;
    assert_eq!(r.unwrap_err().to_string(), "snapshot failed");
    assert!(report.left_down.is_empty());
    assert!(!b.fake.log().contains(&"stop db".to_string()));
    assert_all_back(&b);
}

#[tokio::test]
async fn a_database_that_will_not_stop_after_a_final_backup_is_named() {
    let mut b = bench(ALL);
    b.fake.fail_stop.insert("db".into());
    let (r, report) = final_window(&b, async { Ok(()) }).await;
    let e = r.unwrap_err().to_string();
    assert!(
        e.starts_with(
            "the snapshot was written, but these databases would not stop after their dumps: db: "
        ),
        "{e}"
    );
    assert_eq!(report.left_down.len(), 4);
    assert_eq!(b.fake.running(), BTreeSet::from(["db".to_string()]));
}

/// A window opened inside another (a Redis load inside `restore all`'s)
/// keeps the outer window's containers in the journal, and hands it back.
#[tokio::test]
async fn a_window_inside_another_keeps_the_outer_journal() {
    let b = bench(ALL);
    let (_t, never) = Shutdown::new();
    let ids = |j: &Journal| -> Vec<String> {
        let mut v: Vec<String> = j
            .read()
            .unwrap()
            .map(|s| s.stopped.into_iter().map(|e| e.id).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    let (r, _) = with_stop_window(
        &b.fake,
        &b.journal,
        "outer",
        &[entry("app", 0)],
        Duration::from_secs(5),
        &never,
        || async {
            let (r, inner) = with_stop_window(
                &b.fake,
                &b.journal,
                "inner",
                &[entry("db", 0)],
                Duration::from_secs(5),
                &never,
                || async {
                    assert_eq!(ids(&b.journal), ["app", "db"]);
                    Ok(())
                },
            )
            .await;
            r?;
            assert_eq!(inner.started.len(), 1, "the inner window starts only db");
            assert!(!b.fake.running().contains("app"));
            let state = b.journal.read()?.expect("the outer journal is back");
            assert_eq!(state.run_id, "outer");
            assert_eq!(ids(&b.journal), ["app"]);
            Ok(())
        },
    )
    .await;
    r.unwrap();
    assert_all_back(&b);
}

/// A signal while a window inside the run's is open drops the work, the
/// inner window with it: the run's window starts what the inner one stopped.
#[tokio::test]
async fn a_signal_inside_an_inner_window_still_starts_everything() {
    let b = bench(ALL);
    let (trigger, shutdown) = Shutdown::new();
    let (_t, never) = Shutdown::new();
    let (r, report) = with_stop_window(
        &b.fake,
        &b.journal,
        "outer",
        &[entry("app", 0)],
        Duration::from_secs(5),
        &shutdown,
        || async {
            with_stop_window(
                &b.fake,
                &b.journal,
                "outer",
                &[entry("db", 0)],
                Duration::from_secs(5),
                &never,
                || async {
                    assert!(!b.fake.running().contains("db"));
                    trigger.trigger("SIGTERM");
                    std::future::pending::<Result<()>>().await
                },
            )
            .await
            .0
        },
    )
    .await;
    assert!(r.unwrap_err().to_string().contains("SIGTERM"));
    let mut started: Vec<String> = report.started.iter().map(|t| t.container.clone()).collect();
    started.sort();
    assert_eq!(started, ["app", "db"]);
    assert_all_back(&b);
}

/// A work that hangs (a dump waiting on a lock) is abandoned at the window's
/// limit: the containers run again, the error names the limit and what still
/// ran, and the journal recorded the opening and the limit meanwhile.
#[tokio::test]
async fn a_hung_work_is_abandoned_at_the_limit_and_everything_starts() {
    let b = bench(ALL);
    let (_t, never) = Shutdown::new();
    let times = Times {
        stop: Duration::from_secs(5),
        limit: Some(Duration::from_millis(300)),
        freeze: false,
    };
    let journal = b.journal.clone();
    let (r, report) = with_stop_window(
        &b.fake,
        &b.journal,
        "run-1",
        &stops(),
        times,
        &never,
        || async move {
            let seen = journal.read().unwrap().unwrap();
            assert!(seen.opened.is_some());
            assert_eq!(seen.limit, Some(0), "300 ms, in whole seconds");
            crate::activity::track("pg_dump of app in db (limit test)", async {
                std::future::pending::<()>().await;
            })
            .await;
            Ok(())
        },
    )
    .await;
    let e = format!("{:#}", r.unwrap_err());
    assert!(
        e.starts_with("the stop window reached its limit of 300ms (WINDOW_LIMIT) while pg_dump of app in db (limit test) still ran"),
        "{e}"
    );
    assert_eq!(report.started.len(), stops().len());
    assert!(report.restart_failed.is_empty());
    assert_all_back(&b);
    assert!(
        !crate::activity::running()
            .iter()
            .any(|w| w.contains("limit test")),
        "the abandoned work's registration went with it"
    );
}

/// Without a limit (a restore, a window inside another), a slow work ends
/// in its own time.
#[tokio::test]
async fn without_a_limit_the_work_takes_its_time() {
    let b = bench(ALL);
    let (_t, never) = Shutdown::new();
    let (r, _) = window(&b, &never, async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        Ok(7)
    })
    .await;
    assert_eq!(r.unwrap(), 7);
    assert_all_back(&b);
}

#[test]
fn a_window_journal_tells_its_age_and_limit() {
    let mut s = journal::State {
        run_id: "r".into(),
        ..Default::default()
    };
    assert_eq!(s.open_for(100, Some(10)), None, "nothing stopped: closed");
    s.stopped.push(journal::Entry {
        id: "a".into(),
        name: "a".into(),
        wave: 0,
        after: None,
        frozen: false,
    });
    assert_eq!(
        s.open_for(100, Some(10)),
        Some((90, None)),
        "from its file's time"
    );
    s.opened = Some(40);
    s.limit = Some(900);
    assert_eq!(s.open_for(100, Some(10)), Some((60, Some(900))));
}

#[test]
fn running_again_puts_the_left_down_first_and_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::in_dir(dir.path());
    let path = journal.path().display().to_string();
    // Everything runs again: the work's own result, either way.
    assert_eq!(running_again(&[], &journal, Ok(7)).unwrap(), 7);
    let err = running_again::<()>(&[], &journal, Err(anyhow!("upload failed"))).unwrap_err();
    assert_eq!(format!("{err:#}"), "upload failed");
    // Left down after good work: named, with the journal and the command.
    let failed = vec!["app: exited within 1.0 s of its start".to_string()];
    let err = running_again(&failed, &journal, Ok(())).unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        format!(
            "containers are NOT running again: app: exited within 1.0 s of its start; \
             {path} keeps them, and stackshot starts them at its next run or start-up \
             (or now: docker start NAME)"
        )
    );
    // Left down after failed work: the containers first, the work's error
    // after them (a failed placement never hides them).
    let err =
        running_again::<()>(&failed, &journal, Err(anyhow!("cannot place dump.rdb"))).unwrap_err();
    let line = format!("{err:#}");
    assert!(
        line.starts_with("containers are NOT running again: app: "),
        "{line}"
    );
    assert!(line.ends_with("; also: cannot place dump.rdb"), "{line}");
    assert!(!line.contains('\n'), "{line}");
}

mod freeze;
