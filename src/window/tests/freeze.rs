//! Freeze mode's paths through the window: frozen and thawed instead of
//! stopped and started, on every way out; a freeze that fails falls back to
//! a stop; a restore's or a final backup's window never freezes; a journal
//! left with a frozen entry is thawed at the next start-up.

use super::*;

/// `stops()` with `app` (wave 1) and `web` (wave 0) asking to be frozen.
fn freezing_stops() -> Vec<StopEntry> {
    let mut s = stops();
    for e in s.iter_mut().filter(|e| e.container.id != "worker") {
        e.freeze = true;
    }
    s
}

fn backup_times() -> Times {
    Times {
        stop: Duration::from_secs(5),
        limit: None,
        freeze: true,
    }
}

async fn freezing_window<T>(
    b: &Bench,
    times: Times,
    work: impl Future<Output = Result<T>>,
) -> (Result<T>, WindowReport) {
    let (_t, never) = Shutdown::new();
    with_stop_window(
        &b.fake,
        &b.journal,
        "run-1",
        &freezing_stops(),
        times,
        &never,
        || work,
    )
    .await
}

fn frozen_now(b: &Bench) -> BTreeSet<String> {
    b.fake.frozen.lock().unwrap().clone()
}

fn names(t: &[Timed]) -> Vec<&str> {
    t.iter().map(|t| t.container.as_str()).collect()
}

#[tokio::test]
async fn a_backup_window_freezes_what_asks_and_thaws_it_in_order() {
    let b = bench(ALL);
    let (r, report) = freezing_window(&b, backup_times(), async {
        assert_eq!(
            frozen_now(&b),
            BTreeSet::from(["app".to_string(), "web".to_string()])
        );
        let j = b.journal.read().unwrap().unwrap();
        let frozen: Vec<&str> = j
            .stopped
            .iter()
            .filter(|e| e.frozen)
            .map(|e| e.id.as_str())
            .collect();
        assert_eq!(frozen, ["web", "app"], "journaled as frozen");
        Ok(())
    })
    .await;
    r.unwrap();
    let log = b.fake.log();
    for never in ["stop web", "stop app", "start web", "start app"] {
        assert!(!log.contains(&never.to_string()), "{never}: {log:?}");
    }
    let pos = |s: &str| log.iter().position(|l| l == s).unwrap();
    assert!(
        pos("freeze web") < pos("freeze app"),
        "dependents first: {log:?}"
    );
    assert!(
        pos("thaw app") < pos("thaw web"),
        "dependencies first: {log:?}"
    );
    assert!(log.contains(&"stop worker".to_string()), "{log:?}");
    assert_eq!(names(&report.frozen), ["web", "app"]);
    assert_eq!(names(&report.stopped), ["worker"]);
    assert_eq!(report.started.len(), 3, "thawed ones count as started");
    assert!(frozen_now(&b).is_empty());
    assert_all_back(&b);
}

#[tokio::test]
async fn a_frozen_window_thaws_on_failure_and_on_panic() {
    let b = bench(ALL);
    let (r, _) = freezing_window(&b, backup_times(), async {
        Err::<(), _>(anyhow!("dump failed"))
    })
    .await;
    assert!(r.is_err());
    assert!(frozen_now(&b).is_empty(), "thawed after a failure");
    assert_all_back(&b);

    let b = bench(ALL);
    let (r, _) = freezing_window(&b, backup_times(), async {
        if frozen_now(&b).contains("app") {
            panic!("the work panicked inside a frozen window");
        }
        Ok(())
    })
    .await;
    assert!(format!("{:#}", r.unwrap_err()).contains("panicked"));
    assert!(frozen_now(&b).is_empty(), "thawed after a panic");
    assert_all_back(&b);
}

#[tokio::test]
async fn a_freeze_that_fails_falls_back_to_a_stop_and_says_why() {
    let mut b = bench(ALL);
    b.fake.fail_freeze = BTreeSet::from(["app".to_string()]);
    let (r, report) = freezing_window(&b, backup_times(), async {
        assert!(!b.fake.running().contains("app"), "app stopped instead");
        let j = b.journal.read().unwrap().unwrap();
        let app = j.stopped.iter().find(|e| e.id == "app").unwrap();
        assert!(
            !app.frozen,
            "the journal says stopped once the freeze fell back"
        );
        Ok(())
    })
    .await;
    r.unwrap();
    let log = b.fake.log();
    let pos = |s: &str| log.iter().position(|l| l == s).unwrap();
    assert!(pos("freeze app") < pos("stop app"), "{log:?}");
    assert!(log.contains(&"start app".to_string()), "{log:?}");
    assert_eq!(names(&report.frozen), ["web"]);
    assert_eq!(report.freeze_fell_back, ["app: no freezer"]);
    assert!(names(&report.stopped).contains(&"app"));
    assert_all_back(&b);
}

#[tokio::test]
async fn a_restore_window_stops_what_asks_to_be_frozen() {
    let b = bench(ALL);
    let (r, report) = freezing_window(&b, Duration::from_secs(5).into(), async {
        assert!(frozen_now(&b).is_empty());
        Ok(())
    })
    .await;
    r.unwrap();
    let log = b.fake.log();
    assert!(!log.iter().any(|l| l.starts_with("freeze")), "{log:?}");
    assert_eq!(report.stopped.len(), 3);
    assert_all_back(&b);
}

#[tokio::test]
async fn a_final_backup_stops_what_asks_to_be_frozen() {
    let b = bench(ALL);
    let (_t, never) = Shutdown::new();
    let (r, report) = with_final_stop_window(
        &b.fake,
        &b.journal,
        "run-1",
        &freezing_stops(),
        &[entry("db", 0)],
        backup_times(),
        &never,
        || async { Ok(()) },
    )
    .await;
    r.unwrap();
    assert!(
        !b.fake.log().iter().any(|l| l.starts_with("freeze")),
        "{:?}",
        b.fake.log()
    );
    assert!(report.frozen.is_empty());
    assert!(b.fake.running().is_empty(), "all left down");
}

#[tokio::test]
async fn a_start_up_thaws_what_a_killed_run_left_frozen() {
    let b = bench(&["db", "worker", "web", "app"]);
    b.fake.frozen.lock().unwrap().insert("app".into());
    let mut state = journal::State {
        run_id: "killed".into(),
        ..Default::default()
    };
    state.stopped.push(journal::Entry {
        id: "app".into(),
        name: "app".into(),
        wave: 1,
        after: Some(vec![]),
        frozen: true,
    });
    b.journal.write(&state).unwrap();
    let recovered = recover(&b.fake, &b.journal).await.unwrap();
    assert_eq!(recovered, ["app"]);
    assert_eq!(b.fake.log(), ["thaw app"]);
    assert!(frozen_now(&b).is_empty());
    assert_eq!(b.journal.read().unwrap(), None, "journal cleared");
}
